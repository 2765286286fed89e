#!/bin/sh
# scenario zynqmp-periph: ZynqMP peripherals of the emulated ZCU102, described in L1's tree as
# zynqmp.dtsi does, passed together to one L2, no option: the RTC (xlnx,zynqmp-rtc: alarm and
# seconds interrupts, a 0x100-byte register block platvmm traps), the first FPD DMA channel
# (xlnx,zynqmp-dma-1.0, a DMA master), CAN0 (xlnx,zynq-can-1.0) and the GQSPI
# (xlnx,zynqmp-qspi-1.0, a DMA master too) with the flash QEMU puts on its first chip select.
# Their drivers (rtc-zynqmp, zynqmp_dma and dmatest to drive the channel, xilinx_can,
# spi-zynqmp-gqspi) are upstream's,
# built from Debian's own 6.1 source (resources/drivers/build.sh): Debian's config leaves them
# out. L1's own drivers first (baseline: its RTC time, dmatest's rate on the channel), then L2:
# its RTC within the run's length of L1's clock and advancing with time (QEMU's RTC model has
# no alarm timer, so no alarm interrupt can be checked; both interrupts are wired); dmatest
# over identity-mapped RAM with every byte checked, 0 failures; the rate against L1's; CAN0 in
# the controller's loopback mode (QEMU's model loops transmitted frames back to its receive
# FIFO) sends 200 frames with random IDs and payloads that must all come back unchanged
# (the canloop tool: rtnetlink set-up and a raw CAN socket), as L1 did first on CAN1;
# spi-nor finds the N25Q512A through spi-zynqmp-gqspi and its first MiB reads back
# (mtdblock) with the md5 of what the host wrote, as L1 read it first; UART1
# (cdns,uart-r1p12) through the guest's built-in xilinx_uartps exchanges 64 lines with the
# host's uart-peer.py (no L1 baseline: L1's UART driver is kept from registering so the port
# is free, tests/integration/host/zynqmp-periph.sh); SPI0 (cdns,spi-r1p6, spi-cadence built
# as above) with the SST25WF080 QEMU puts on it: the flash's first 64 KiB read through spidev
# by READ commands of at most 128 bytes (the spiread tool: QEMU's model returns only the first
# FIFO's worth of a longer transfer right, so spi-nor cannot read it), md5 against the host's,
# as L1 read them first.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
RTC=ffa60000.rtc DMA=fd500000.dma-controller CAN=ff060000.can QSPI=ff0f0000.spi UART=ff010000.serial SPI=ff040000.spi ITER=200 FRAMES=200 LINES=64
FLASH_MD5=$(sed -n 's/.*platvmm.flash_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
SPI_MD5=$(sed -n 's/.*platvmm.spi_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)

# dmatest on CHANNEL, ITER memcpy tests: prints its summary line (without the prefix).
l1_dmatest() {
    modprobe dmatest timeout=5000 iterations=$ITER channel="$1" || return 1
    echo 1 >/sys/module/dmatest/parameters/run
    _i=0
    while [ $_i -lt 120 ] && ! dmesg | grep -q "dmatest: .*summary"; do sleep 0.5; _i=$((_i + 1)); done
    dmesg | grep "dmatest: .*summary" | tail -1 | sed 's/.*summary //'
    rmmod dmatest
}

for m in rtc_zynqmp zynqmp_dma; do modprobe $m || { reason "L1 cannot load $m"; exit 1; }; done
l1_rtc=$(cat /sys/class/rtc/rtc0/since_epoch 2>/dev/null)
d=$(( $(date +%s) - ${l1_rtc:-0} ))
echo "$SCENARIO: L1's rtc-zynqmp reads $l1_rtc (L1 clock - RTC = ${d}s)"
if [ -z "$l1_rtc" ] || [ "$d" -lt -5 ] || [ "$d" -gt 5 ]; then reason "L1's own rtc-zynqmp reads '$l1_rtc'"; exit 1; fi
chan=$(basename "$(echo /sys/class/dma/dma*chan* | cut -d' ' -f1)")
l1_sum=$(l1_dmatest "$chan")
echo "$SCENARIO: L1 dmatest on $chan: $l1_sum"
case $l1_sum in "$ITER tests, 0 failures"*) ;; *) reason "L1's own dmatest: '$l1_sum'"; exit 1 ;; esac
# L1's baseline runs on CAN1, L2 gets CAN0: QEMU's CAN model sets the status register's
# NORMAL bit next to CONFIG once the controller has been reset (the hardware does not), and
# xilinx_can takes any status other than CONFIG alone at probe for big-endian registers, so a
# controller can be probed after use only once per board boot. The module then goes (it
# releases both controllers; CAN0 was probed but never opened).
l1_can_baseline ff070000.can $FRAMES || exit 1
# The GQSPI's flash through L1's own spi-zynqmp-gqspi and spi-nor; then the module goes.
# shellcheck source=resources/shared/flash-read.sh
. /lib/platvmm/flash-read.sh
r=$(flash_read "$FLASH_MD5" spi_zynqmp_gqspi) || { reason "L1's own GQSPI driver: $r"; exit 1; }
timing "L1 native: GQSPI flash read (1 MiB) in $(echo "$r" | sed -n 's/.*flash_read_s=\([0-9.]*\).*/\1/p') s"
rmmod spi_zynqmp_gqspi || { reason "cannot unload L1's spi_zynqmp_gqspi to free $QSPI"; exit 1; }
# SPI0's flash through L1's own spi-cadence and spidev; then the module goes.
r=$(spidev_read "$SPI_MD5" 65536 cdns-spi spi_cadence) || { reason "L1's own Cadence SPI driver: $r"; exit 1; }
timing "L1 native: Cadence SPI flash read (64 KiB, spidev) in $(echo "$r" | sed -n 's/.*spi_read_s=\([0-9.]*\).*/\1/p') s"
rmmod spi_cadence || { reason "cannot unload L1's spi_cadence to free $SPI"; exit 1; }
for d in $RTC $DMA $CAN $QSPI $UART $SPI; do
    vfio_bind platform "$d" vfio-platform || { reason "cannot bind $d to vfio-platform"; exit 1; }
done

RUST_LOG=info run_l2 zynqmp-periph --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --vfio-platform /sys/bus/platform/devices/$RTC --vfio-platform /sys/bus/platform/devices/$DMA \
    --vfio-platform /sys/bus/platform/devices/$CAN --vfio-platform /sys/bus/platform/devices/$QSPI \
    --vfio-platform /sys/bus/platform/devices/$UART --vfio-platform /sys/bus/platform/devices/$SPI \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=zynqmp-periph platvmm.dmatest_iterations=$ITER platvmm.can_frames=$FRAMES platvmm.flash_md5=$FLASH_MD5 platvmm.uart_lines=$LINES platvmm.spi_md5=$SPI_MD5"
l1_time=$(date +%s)
if ! l2_passed; then
    status=1
else
    t=$(l2_result | sed -n 's/.*rtc_time=\([0-9]*\).*/\1/p')
    # L2 read its RTC before it exited: within the run's length (plus 5 s) of L1's clock.
    d=$(( l1_time - ${t:-0} ))
    if [ -z "$t" ] || [ "$d" -lt -5 ] || [ "$d" -gt 300 ]; then reason "L2's RTC read '$t', L1's clock $l1_time"; status=1; fi
    l2_kbs=$(l2_result | sed -n 's/.* \([0-9.]*\) KB\/s.*/\1/p')
    l1_kbs=$(echo "$l1_sum" | sed -n 's/.* \([0-9.]*\) KB\/s.*/\1/p')
    timing "L2 passthrough: GQSPI flash read (1 MiB) in $(l2_result | sed -n 's/.*flash_read_s=\([0-9.]*\).*/\1/p') s"
    timing "L2 passthrough: CAN loopback $(l2_result | grep -o -E 'can_frames=[0-9]+ can_frames_per_s=[0-9]+')"
    timing "L2 passthrough: Cadence SPI flash read (64 KiB, spidev) in $(l2_result | sed -n 's/.*spi_read_s=\([0-9.]*\).*/\1/p') s"
    timing "L2 passthrough: Cadence UART $(l2_result | grep -o -E 'uart_lines=[0-9]+ uart_lines_per_s=[0-9]+')"
    timing "GDMA dmatest ($ITER x memcpy): L2 ${l2_kbs} KB/s, L1 ${l1_kbs} KB/s = $(awk -v a="$l2_kbs" -v b="$l1_kbs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }') x L1; RTC: L1 clock - L2 RTC = ${d}s at exit; $(l2_result | grep -o 'rtc_advance=[^ ]*')"
fi
l2_log_has "$RTC: IRQ 1 (" "the RTC's second interrupt wired" || status=1
l2_log_has "$UART: guest node by the serial handler" "the Cadence UART node by the serial handler" || status=1
l2_log_has "$QSPI: region 1 (0x8000000 bytes, read,write,mmap) at guest 0x[0-9a-f]*, mapped" "the GQSPI's linear window mapped" || status=1
exit $status
