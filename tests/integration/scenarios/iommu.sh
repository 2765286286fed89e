#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario iommu: L1's PL031 sits behind the board's SMMUv3 (tests/integration/host/iommu.sh),
# so it has a real IOMMU group (/dev/vfio/N, not noiommu-N) and platvmm runs VFIO's TYPE1v2
# IOMMU: the group joins the container, the IOMMU type is set, guest RAM is DMA-mapped
# IOVA = guest-physical (the L1 kernel pins it and programs the SMMU), then the device is
# opened. L2's rtc-pl031 must read L1's time, and the SMMU must report no fault.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=9010000.pl031
SYS=/sys/bus/amba/devices/$DEV

[ -e "$SYS/iommu_group" ] || { reason "$DEV has no IOMMU group: the SMMU did not take it"; exit 1; }
GROUP=$(basename "$(readlink "$SYS/iommu_group")")
echo "iommu: $DEV is in IOMMU group $GROUP ($(cat "$SYS/iommu_group/type" 2>/dev/null) domain)"
# An IOMMU is there: platvmm bind needs no --noiommu and says no WARNING.
"$PLATVMM" bind "$SYS" >/tmp/bind.txt 2>&1 || { reason "platvmm bind: $(tail -1 /tmp/bind.txt)"; exit 1; }
cat /tmp/bind.txt
! grep -q WARNING /tmp/bind.txt || { reason "bind warned about no-IOMMU mode"; status=1; }
[ -c "/dev/vfio/$GROUP" ] && [ ! -e "/dev/vfio/noiommu-$GROUP" ] ||
    { reason "no TYPE1 group node /dev/vfio/$GROUP: $(ls /dev/vfio)"; exit 1; }

"$PLATVMM" list >/tmp/list.txt 2>&1
grep "$DEV" /tmp/list.txt
grep "$DEV" /tmp/list.txt | grep -q "ready" || { reason "list does not call $DEV ready"; status=1; }

RUST_LOG=info run_l2 iommu --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M \
    --vfio-platform $SYS --cmdline "console=ttyS0 panic=-1 platvmm.check=rtc"
l1_time=$(date +%s)
grep -q "VFIO container: Type1v2" "$L2_LOG" ||
    { reason "platvmm did not run a TYPE1v2 container"; status=1; }
if ! l2_passed; then
    status=1
else
    rtc_time=$(l2_result | sed -n 's/.*rtc_time=\([0-9]*\).*/\1/p')
    drift=$((l1_time - rtc_time))
    timing "TYPE1: L1 clock - L2 rtc reading = ${drift}s"
    [ "$drift" -ge -2 ] && [ "$drift" -le 10 ] ||
        { reason "L2's RTC read $rtc_time, L1's clock says $l1_time"; status=1; }
fi
faults=$(dmesg | grep -ci "arm-smmu-v3.*\(event\|fault\)")
[ "$faults" = 0 ] || { reason "the SMMU reported $faults events: $(dmesg | grep -i smmu | tail -2)"; status=1; }
# Released: the device goes back to rtc-pl031.
"$PLATVMM" unbind "$SYS" || { reason "platvmm unbind failed"; status=1; }
[ "$(basename "$(readlink "$SYS/driver")")" = rtc-pl031 ] ||
    { reason "$DEV is not back on rtc-pl031 after unbind"; status=1; }
exit $status
