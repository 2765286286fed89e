#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario release: after platvmm ends — the guest powering off, SIGTERM, and SIGKILL — the
# host can take the PL031 back: L1 rebinds it to rtc-pl031 and reads a sane time from it.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=9010000.pl031
SYS=/sys/bus/amba/devices/$DEV
L2_ARGS="--kernel $L2_KERNEL --initramfs $L2_INITRAMFS --memory 128M --vfio-platform $SYS"

# Starts platvmm in the background; returns once L2 reached /init (or fails).
start_bg() {  # LOG
    # shellcheck disable=SC2086 # word splitting of L2_ARGS is intended
    $PLATVMM $L2_ARGS --cmdline "console=ttyS0 panic=-1" </dev/null >"$1" 2>&1 &
    BG=$!
    i=0
    while ! grep -q L2-INIT "$1"; do
        i=$((i + 1)); [ $i -lt 600 ] || { reason "L2 never reached /init"; return 1; }
        kill -0 $BG 2>/dev/null || { reason "platvmm died early: $(tail -3 "$1")"; return 1; }
        sleep 0.1
    done
}

# 1. normal exit: the guest powers off.
vfio_bind amba $DEV vfio-amba || { reason "cannot bind to vfio-amba"; exit 1; }
# shellcheck disable=SC2086
run_l2 release-poweroff $L2_ARGS \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=boot platvmm.expect_cpus=1 platvmm.expect_mem_mib=128"
[ "$L2_RC" = 0 ] && l2_result | grep -q "L2-RESULT: PASS" ||
    { reason "power-off run: exit $L2_RC, $(l2_result)"; status=1; }
pl031_to_host "after power-off" || status=1

# 2. SIGTERM: platvmm stops the VM itself and exits with 128 + 15.
vfio_bind amba $DEV vfio-amba || { reason "cannot bind to vfio-amba again"; exit 1; }
if start_bg /tmp/release-term.log; then
    kill -TERM $BG; wait $BG; rc=$?
    echo "release: SIGTERM: platvmm exited with $rc"
    [ $rc = 143 ] || { reason "after SIGTERM platvmm exited with $rc, expected 143"; status=1; }
else
    kill -KILL $BG 2>/dev/null; status=1
fi
pl031_to_host "after SIGTERM" || status=1

# 3. SIGKILL: no cleanup by platvmm at all; the kernel must release everything.
vfio_bind amba $DEV vfio-amba || { reason "cannot bind to vfio-amba a third time"; exit 1; }
if start_bg /tmp/release-kill.log; then
    kill -KILL $BG; wait $BG; rc=$?
    echo "release: SIGKILL: platvmm exited with $rc"
else
    kill -KILL $BG 2>/dev/null; status=1
fi
pl031_to_host "after SIGKILL" || status=1
exit $status
