#!/bin/sh
# scenario versal-periph: Versal peripherals of the emulated xlnx-versal-virt, as QEMU's own
# tree describes them, passed to L2 with no option: CAN FD controller 0 (xlnx,canfd-2.0:
# can_clk and s_axi_aclk fixed clocks, rx-fifo-depth, tx-mailbox-count). Its driver,
# xilinx_can, is upstream's, built from Debian's own 6.1 source (resources/drivers/build.sh).
# L1's own xilinx_can sends 200 frames in loopback mode on CAN FD 1 first (baseline: each
# controller can be probed after use only once per board boot on QEMU's model, see
# zynqmp-periph); then L2's, on CAN FD 0, sends 200 standard frames with random IDs and
# payloads in the controller's loopback mode that must all come back unchanged.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
CAN=ff060000.canfd FRAMES=200
l1_can_baseline ff070000.canfd $FRAMES || exit 1
vfio_bind platform $CAN vfio-platform || { reason "cannot bind $CAN to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 versal-periph --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/platform/devices/$CAN \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=can platvmm.can_frames=$FRAMES"
if l2_passed; then
    timing "L2 passthrough: CAN FD loopback $(l2_result | grep -o -E 'can_frames=[0-9]+ can_frames_per_s=[0-9]+')"
else
    status=1
fi
l2_log_has "$CAN: guest node by the generic handler" "the CAN FD node by the generic handler" || status=1
for c in can_clk s_axi_aclk; do
    l2_log_has "$CAN: synthesized clock $c: host /[a-z0-9@-]* at [0-9]* Hz (fixed-clock) → guest fixed clock /clock-" \
        "a guest fixed clock for $c" || status=1
done
exit $status
