#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario rtc: L1's PL031 (AMBA) passed through with vfio-amba. Its 4 KiB register page must
# be mapped (not trapped) into L2, its level IRQ wired irqfd + resamplefd; L2's rtc-pl031
# must read a time within seconds of L1's clock and see two alarm IRQs (0 -> 1 -> 2), with no
# interrupt handled in platvmm userspace.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=9010000.pl031

vfio_bind amba $DEV vfio-amba || { reason "cannot bind $DEV to vfio-amba"; exit 1; }

# What platvmm would do with it, without starting a VM.
"$PLATVMM" inspect /sys/bus/amba/devices/$DEV >/tmp/inspect.txt 2>&1 || { reason "inspect failed: $(cat /tmp/inspect.txt)"; status=1; }
cat /tmp/inspect.txt
for want in "VFIO device kind: Amba" "0: size 0x1000 fd offset 0x0 flags read,write,mmap → mapped into the guest at 0x40000000" \
            "0: count 1 flags eventfd,maskable,automasked → SPI 16, level: irqfd + resamplefd" \
            'handler: generic (no type handler for [arm,pl031, arm,primecell]' \
            'compatible = "arm,pl031", "arm,primecell";' "interrupts = <0x0 0x10 0x4>;" 'clock-names = "apb_pclk";'; do
    grep -qF "$want" /tmp/inspect.txt || { reason "inspect output lacks: $want"; status=1; }
done
RUST_LOG=info run_l2 rtc --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/amba/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=rtc"
l1_time=$(date +%s)
if ! l2_passed; then
    status=1
else
    result=$(l2_result)
    rtc_time=$(echo "$result" | sed -n 's/.*rtc_time=\([0-9]*\).*/\1/p')
    drift=$((l1_time - rtc_time))
    timing "L1 clock - L2 rtc reading = ${drift}s (L2 read it before powering off)"
    [ "$drift" -ge -2 ] && [ "$drift" -le 10 ] ||
        { reason "L2's RTC read $rtc_time, L1's clock says $l1_time"; status=1; }
fi
grep -q "$DEV: region 0 (0x1000 bytes, read,write,mmap) at guest 0x40000000, mapped" "$L2_LOG" ||
    { reason "the PL031 region was not mapped into the guest"; status=1; }
grep -q "$DEV: IRQ 0 (eventfd,maskable,automasked) → SPI 16 (level, resamplefd)" "$L2_LOG" ||
    { reason "the PL031 IRQ was not wired as a level irqfd with resample"; status=1; }
stats=$(grep "platvmm stats: device $DEV" "$L2_LOG")
echo "$stats" | grep -q "trapped_reads=0 trapped_writes=0 .*io_errors=0" ||
    { reason "unexpected device counters: ${stats:-none printed}"; status=1; }
exit $status
