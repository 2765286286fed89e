# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The zynqmp-periph scenario's board: the emulated ZCU102 with its RTC and first GDMA channel
# in L1's tree, hugepages for identity-mapped L2 RAM (the DMA channel copies in guest memory).
use_board zcu102
L1_APPEND+=(hugepagesz=32M hugepages=8)
