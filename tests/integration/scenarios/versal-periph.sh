#!/bin/sh
# scenario versal-periph: Versal peripherals of the emulated xlnx-versal-virt passed together to
# one L2 with no option, each driven by its stock driver:
#   - CAN FD controller 0 as QEMU's own tree describes it (xlnx,canfd-2.0: can_clk and
#     s_axi_aclk fixed clocks, rx-fifo-depth, tx-mailbox-count). Its driver, xilinx_can, is
#     upstream's, built from Debian's own 6.1 source (resources/drivers/build.sh). L1's own
#     xilinx_can sends 200 frames in loopback mode on CAN FD 1 first (baseline: each controller
#     can be probed after use only once per board boot on QEMU's model, see zynqmp-periph);
#     then L2's, on CAN FD 0, sends 200 standard frames with random IDs and payloads in the
#     controller's loopback mode that must all come back unchanged.
#   - PL011 UART1 (QEMU's "arm,pl011", "arm,sbsa-uart" on the platform bus): L2's amba-pl011
#     (the guest node gets "arm,primecell") exchanges 64 lines with the host's uart-peer.py.
#     L1 has no baseline: its PL011 driver is kept from registering so the port is free
#     (tests/integration/host/versal-periph.sh).
#   - OSPI (cdns,qspi-nor, its 512 MiB AHB window a second region) with the MT25QL512AB QEMU puts
#     on its first chip select: L1's own cadence-quadspi reads the first MiB (random bytes the
#     host wrote) first, then L2's through spi-nor and mtdblock, both against the host's md5.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
CAN=ff060000.canfd UART=ff010000.uart OSPI=f1010000.spi FRAMES=200 LINES=64
FLASH_MD5=$(sed -n 's/.*platvmm.flash_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
l1_can_baseline ff070000.canfd $FRAMES || exit 1
# shellcheck source=resources/shared/flash-read.sh
. /lib/platvmm/flash-read.sh
r=$(flash_read "$FLASH_MD5" spi_cadence_quadspi) || { reason "L1's own OSPI driver: $r"; exit 1; }
timing "L1 native: OSPI flash read (1 MiB) in $(echo "$r" | sed -n 's/.*flash_read_s=\([0-9.]*\).*/\1/p') s"
rmmod spi_cadence_quadspi || { reason "cannot unload L1's spi_cadence_quadspi to free $OSPI"; exit 1; }
for d in $CAN $UART $OSPI; do
    vfio_bind platform "$d" vfio-platform || { reason "cannot bind $d to vfio-platform"; exit 1; }
done
RUST_LOG=info run_l2 versal-periph --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/platform/devices/$CAN --vfio-platform /sys/bus/platform/devices/$UART \
    --vfio-platform /sys/bus/platform/devices/$OSPI \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=versal-periph platvmm.can_frames=$FRAMES platvmm.uart_lines=$LINES platvmm.flash_md5=$FLASH_MD5"
if l2_passed; then
    timing "L2 passthrough: CAN FD loopback $(l2_result | grep -o -E 'can_frames=[0-9]+ can_frames_per_s=[0-9]+')"
    timing "L2 passthrough: PL011 $(l2_result | grep -o -E 'uart_lines=[0-9]+ uart_lines_per_s=[0-9]+')"
    timing "L2 passthrough: OSPI flash read (1 MiB) in $(l2_result | sed -n 's/.*flash_read_s=\([0-9.]*\).*/\1/p') s"
else
    status=1
fi
l2_log_has "$CAN: guest node by the generic handler" "the CAN FD node by the generic handler" || status=1
for c in can_clk s_axi_aclk; do
    l2_log_has "$CAN: synthesized clock $c: host /[a-z0-9@-]* at [0-9]* Hz (fixed-clock) → guest fixed clock /clock-" \
        "a guest fixed clock for $c" || status=1
done
l2_log_has "$UART: guest node by the serial handler" "the PL011 node by the serial handler" || status=1
exit $status
