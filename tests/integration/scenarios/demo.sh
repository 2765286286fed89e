#!/bin/sh
# scenario demo: L2 with 2 vCPUs and 256 MiB and its shell on the console, for a person to
# look at (ci/demo.sh). With platvmm.demo=script on L1's command line (no terminal), L2 runs
# its scripted "demo" check instead and powers off by itself.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh

extra=""
case " $(cat /proc/cmdline) " in
    *" platvmm.demo=script "*) extra="platvmm.check=demo" ;;
esac
echo "demo: booting L2 (2 vCPUs, 256 MiB); power it off with 'poweroff -f' in its shell"
"$PLATVMM" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --cpus 2 --memory 256M \
    --cmdline "console=ttyS0 earlycon panic=-1 $extra"
rc=$?
echo "demo: platvmm exited with $rc"
[ $rc = 0 ] || reason "platvmm exited with $rc"
exit $rc
