# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# fw-cfg file L2 must read through the passed-through (trapped) fw-cfg device.
# shellcheck disable=SC2054 # the commas belong to a QEMU option
QEMU_ARGS+=(-fw_cfg name=opt/platvmm/greeting,string=hello-from-the-host)
