#!/bin/sh
# scenario demo: L1's PL031 RTC and fw-cfg handed to an L2 with 2 vCPUs and 256 MiB, its shell
# on the console, for a person to look at (ci/demo.sh). First `platvmm inspect` shows what
# platvmm sees of the RTC. With platvmm.demo=script on L1's command line (no terminal), L2
# runs its scripted "demo" check instead and powers off by itself.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh

extra=""
case " $(cat /proc/cmdline) " in
    *" platvmm.demo=script "*) extra="platvmm.check=demo" ;;
esac
vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind the PL031 to vfio-amba"; exit 1; }
vfio_bind platform 9020000.fw-cfg vfio-platform || { reason "cannot bind fw-cfg"; exit 1; }
echo "demo: \$ platvmm inspect /sys/bus/amba/devices/9010000.pl031"
"$PLATVMM" inspect /sys/bus/amba/devices/9010000.pl031 || { reason "inspect failed"; exit 1; }
echo "demo: booting L2 (2 vCPUs, 256 MiB) with the PL031 and fw-cfg passed through;"
echo "demo: try: cat /sys/class/rtc/rtc0/time; modprobe qemu_fw_cfg; ls /sys/firmware/qemu_fw_cfg/by_name"
echo "demo: power L2 off with 'poweroff -f' in its shell"
"$PLATVMM" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --cpus 2 --memory 256M --stats \
    --vfio-platform /sys/bus/amba/devices/9010000.pl031 \
    --vfio-platform /sys/bus/platform/devices/9020000.fw-cfg \
    --cmdline "console=ttyS0 earlycon panic=-1 $extra"
rc=$?
echo "demo: platvmm exited with $rc"
[ $rc = 0 ] || reason "platvmm exited with $rc"
exit $rc
