#!/bin/sh
# scenario l1: the emulated board itself: KVM works in L1, our vfio modules loaded with
# noiommu, and both vfio-amba and vfio-platform can take a device (vfio-amba only binds with
# the reset fix in resources/vfio/).
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0

if [ -c /dev/kvm ]; then
    echo "l1: /dev/kvm present; $(dmesg | grep -o 'kvm \[1\]: .*mode initialized.*' | head -1)"
else
    reason "no /dev/kvm ($(dmesg | grep -i kvm | tail -1))"; status=1
fi
dmesg | grep -q 'VHE mode initialized' || echo "l1: warning: KVM did not report VHE mode"

[ -s /tmp/l1-module-errors ] && { reason "module load errors: $(tr '\n' ' ' </tmp/l1-module-errors)"; status=1; }
for m in vfio_virqfd vfio vfio_iommu_type1 vfio_platform_base vfio_platform vfio_amba; do
    grep -q "^$m " /proc/modules || { reason "module $m not loaded"; status=1; }
done
[ "$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null)" = Y ] ||
    { reason "vfio noiommu mode not enabled"; status=1; }
[ "$(cat /sys/module/vfio_platform/parameters/reset_required 2>/dev/null)" = N ] ||
    { reason "vfio-platform reset_required is not N"; status=1; }
[ -c /dev/vfio/vfio ] || { reason "no /dev/vfio/vfio"; status=1; }

# The PL031 RTC (AMBA, bound to rtc-pl031 at boot) and fw-cfg (platform, no driver in L1).
t0=$(now)
vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind 9010000.pl031 to vfio-amba"; status=1; }
vfio_bind platform 9020000.fw-cfg vfio-platform || { reason "cannot bind 9020000.fw-cfg to vfio-platform"; status=1; }
timing "binds=$(elapsed "$t0" "$(now)")s"
groups=0
for g in /dev/vfio/noiommu-*; do [ -c "$g" ] && groups=$((groups + 1)); done
echo "l1: /dev/vfio: $(echo /dev/vfio/*)"
[ "$groups" = 2 ] || { reason "expected 2 noiommu groups, found $groups"; status=1; }
dmesg | grep -i vfio | tail -5

exit $status
