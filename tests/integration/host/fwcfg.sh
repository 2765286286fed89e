# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# fw-cfg file L2 must read through the passed-through (trapped) fw-cfg device.
QEMU_ARGS+=(-fw_cfg name=opt/platvmm/greeting,string=hello-from-the-host)
