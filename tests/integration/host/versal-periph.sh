# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The versal-periph scenario's board: the emulated Versal on QEMU's own tree (its CAN FD
# controllers are described there as xlnx,canfd-2.0).
use_board versal
