#!/bin/sh
# scenario sec-dt: an L2 guest with platvmm's synthesized SEC (CAAM) controller node; its
# caam controller driver must probe against platvmm's emulated controller page. (Job rings
# cannot run here: no emulator models CAAM. ci/hw-test.sh runs them on a real NXP board; the
# generated job-ring nodes are validated against the bindings by ci/dt-validate.sh.)
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
RUST_LOG=info run_l2 sec-dt --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --sec-controller --cmdline "console=ttyS0 panic=-1 platvmm.check=sec"
l2_passed || status=1
exit $status
