#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario multi: the PL031 (AMBA, mapped, level IRQ) and fw-cfg (platform, trapped) passed
# through to one guest: one no-IOMMU container, two groups, distinct guest addresses and
# SPIs, and both L2 checks (rtc and fwcfg) pass.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind the PL031"; exit 1; }
vfio_bind platform 9020000.fw-cfg vfio-platform || { reason "cannot bind fw-cfg"; exit 1; }
RUST_LOG=info run_l2 multi --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/amba/devices/9010000.pl031 \
    --vfio-platform /sys/bus/platform/devices/9020000.fw-cfg \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=multi"
l2_passed || status=1
grep -q "9010000.pl031: region 0 (0x1000 bytes, read,write,mmap) at guest 0x40000000, mapped" "$L2_LOG" &&
    grep -q "9020000.fw-cfg: region 0 (0x18 bytes, read,write) at guest 0x40001000, trapped" "$L2_LOG" ||
    { reason "unexpected region placement"; status=1; }
grep -q "platvmm stats: device 9010000.pl031 trapped_reads=0 trapped_writes=0 " "$L2_LOG" &&
    grep -q "platvmm stats: device 9020000.fw-cfg .*out_of_bounds_dropped=2 io_errors=0" "$L2_LOG" ||
    { reason "unexpected counters: $(grep 'platvmm stats: device' "$L2_LOG" | tr '\n' ' ')"; status=1; }
exit $status
