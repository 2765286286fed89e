# shellcheck shell=sh
# check "can": a passed-through Xilinx CAN or CAN FD controller (xlnx,zynq-can-1.0,
# xlnx,canfd-2.0) through xilinx_can (upstream, built from Debian's source by
# resources/drivers/build.sh), alone in the guest, so its interface is can0.
#   platvmm.can_frames=N   frames sent in the controller's own loopback mode at 500 kbit/s,
#                          each must come back unchanged (the canloop tool)
# Reports can_frames= and can_frames_per_s=.
# Sourced by /init, which provides arg, expect, detail and fail.
frames=$(expect can_frames) || return 0
if ! modprobe xilinx_can; then
    fail "cannot load xilinx_can"
elif r=$(canloop can0 500000 "$frames"); then
    detail "$r"
else
    fail "CAN: $r"
fi
