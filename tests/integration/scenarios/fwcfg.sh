#!/bin/sh
# scenario fwcfg: L1's fw-cfg (platform, a 0x18-byte region) passed through with
# vfio-platform. The region is sub-page, so platvmm traps it and forwards each access with
# pread/pwrite; L2 reads the signature and a host file, and platvmm drops (and counts) L2's
# two accesses past the region's end.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=9020000.fw-cfg

vfio_bind platform $DEV vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 fwcfg --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=fwcfg"
l2_passed || status=1
grep -q "$DEV: region 0 (0x18 bytes, read,write) at guest 0x40000000, trapped" "$L2_LOG" ||
    { reason "the fw-cfg region was not trapped at 0x40000000"; status=1; }
stats=$(grep "platvmm stats: device $DEV" "$L2_LOG")
timing "${stats#platvmm stats: }"
echo "$stats" | grep -q " out_of_bounds_dropped=2 io_errors=0" ||
    { reason "expected exactly 2 dropped accesses: ${stats:-no stats printed}"; status=1; }
reads=$(echo "$stats" | sed -n 's/.*trapped_reads=\([0-9]*\).*/\1/p')
[ "${reads:-0}" -ge 4 ] || { reason "only ${reads:-0} trapped reads reached the device"; status=1; }
exit $status
