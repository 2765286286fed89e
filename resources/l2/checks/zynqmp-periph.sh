# shellcheck shell=sh
# check "zynqmp-periph": ZynqMP peripherals passed together, each by its upstream driver
# (built from Debian's own kernel source: Debian's config leaves them out).
#   RTC (rtc-zynqmp): reports its time (rtc_time=, L1 compares it with its clock); it must
#   advance 1-4 s over a 2 s sleep. (QEMU's model has no alarm timer: no alarm interrupt.)
#   GDMA channel (zynqmp_dma): dmatest runs platvmm.dmatest_iterations memcpy tests on it
#   over identity-mapped RAM and checks every byte; 0 failures wanted; reports its KB/s.
#   CAN (xilinx_can): the "can" check, with platvmm.can_frames.
#   GQSPI (spi-zynqmp-gqspi, spi-nor, mtdblock): the first MiB of the flash on chip select 0
#   reads back with platvmm.flash_md5; reports the read's seconds.
#   SPI0 (spi-cadence, spidev): the first 64 KiB of its flash read by READ commands of at most
#   128 bytes (spiread) have md5 platvmm.spi_md5; reports the read's seconds.
#   UART1 (xilinx_uartps, built into the guest kernel; the guest's console is the emulated
#   16550): platvmm.uart_lines=N lines out of its ttyPS, each answered by the host's
#   uart-peer.py with the md5 of its payload, which must come back right.
# Sourced by /init, which provides arg, expect, detail and fail.
modprobe rtc_zynqmp || fail "cannot load rtc_zynqmp"
rtc=""
for r in /sys/class/rtc/rtc*; do
    case $(readlink -f "$r/device") in *.rtc) rtc=$r ;; esac
done
if [ -z "$rtc" ]; then
    fail "rtc-zynqmp registered no RTC ($(echo /sys/class/rtc/*))"
else
    # QEMU's model keeps time but has no alarm timer (its ALARM register is storage only):
    # the time is what can be checked, read twice 2 s apart.
    t0=$(cat "$rtc/since_epoch")
    sleep 2
    t1=$(cat "$rtc/since_epoch")
    detail "rtc_time=$t1 rtc_advance=$((t1 - t0))s"
    if [ $((t1 - t0)) -lt 1 ] || [ $((t1 - t0)) -gt 4 ]; then fail "the RTC went from $t0 to $t1 in 2 s"; fi
fi

flash_md5=$(arg platvmm.flash_md5)
if [ -n "$flash_md5" ]; then
    # shellcheck source=resources/shared/flash-read.sh
    . /lib/platvmm/flash-read.sh
    if r=$(flash_read "$flash_md5" spi_zynqmp_gqspi); then detail "$r"; else fail "GQSPI flash: $r"; fi
fi
spi_md5=$(arg platvmm.spi_md5)
if [ -n "$spi_md5" ]; then
    # shellcheck source=resources/shared/flash-read.sh
    . /lib/platvmm/flash-read.sh
    if r=$(spidev_read "$spi_md5" 65536 cdns-spi spi_cadence); then detail "$r"; else fail "Cadence SPI flash: $r"; fi
fi

if [ -n "$(arg platvmm.uart_lines)" ]; then
    # shellcheck source=resources/shared/uart-exchange.sh
    . /lib/platvmm/uart-exchange.sh
    if r=$(uart_exchange_sysfs '/sys/bus/platform/devices/*.serial/tty/ttyPS*' "$(arg platvmm.uart_lines)"); then detail "$r"; else fail "Cadence UART: $r"; fi
fi

# shellcheck source=resources/l2/checks/can.sh
[ -z "$(arg platvmm.can_frames)" ] || . /checks/can.sh

iterations=$(expect dmatest_iterations) || return 0
modprobe zynqmp_dma || fail "cannot load zynqmp_dma"
chan=$(basename "$(echo /sys/class/dma/dma*chan* | cut -d' ' -f1)")
if [ ! -e "/sys/class/dma/$chan" ]; then
    fail "zynqmp_dma registered no DMA channel"
    return 0
fi
modprobe dmatest timeout=5000 iterations="$iterations" channel="$chan" || fail "cannot load dmatest"
echo 1 >/sys/module/dmatest/parameters/run
i=0
while [ $i -lt 120 ] && ! dmesg | grep -q "dmatest: .*summary"; do sleep 0.5; i=$((i + 1)); done
summary=$(dmesg | grep "dmatest: .*summary" | tail -1 | sed 's/.*summary //')
[ -n "$summary" ] || { fail "dmatest on $chan gave no summary"; return 0; }
detail "dma_chan=$chan dmatest=\"$summary\""
case $summary in
    "$iterations tests, 0 failures"*) ;;
    *) fail "dmatest on $chan: $summary" ;;
esac
