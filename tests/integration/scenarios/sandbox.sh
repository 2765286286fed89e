#!/bin/sh
# scenario sandbox: platvmm's seccomp sandbox and privilege drop on the real board.
# 1. With the default sandbox and --user 65534:65534, the PL031 (mapped) and fw-cfg (trapped)
#    checks pass on 2 vCPUs while every platvmm thread shows "Seccomp: 2" and "CapEff: 0" in
#    /proc/PID/task/TID/status, and teardown under the filters still ends with status 0. A
#    disk and virtio-rng are attached too, so the virtio worker thread is among them.
# 2. --test-denied-syscall makes the event loop call socket() on SIGUSR1: platvmm names the
#    syscall, stops the guest with status 159 (128 + SIGSYS), and L1 takes the PL031 back.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
PL031=/sys/bus/amba/devices/9010000.pl031
FWCFG=/sys/bus/platform/devices/9020000.fw-cfg

vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind the PL031"; exit 1; }
vfio_bind platform 9020000.fw-cfg vfio-platform || { reason "cannot bind fw-cfg"; exit 1; }
dd if=/dev/zero of=/tmp/sandbox.img bs=1M count=1 status=none
L2_PROBE_SANDBOX=1 RUST_LOG=info run_l2 sandbox --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" \
    --memory 256M --cpus 2 --stats --user 65534:65534 \
    --vfio-platform $PL031 --vfio-platform $FWCFG --disk /tmp/sandbox.img --rng \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=multi"
l2_passed || status=1
l2_log_has "privileges dropped" "the privilege drop" || status=1
l2_log_has "seccomp sandbox installed (On)" "the sandbox" || status=1
l2_log_has "platvmm stats: device 9020000.fw-cfg .*io_errors=0" "fw-cfg counters after teardown" || status=1
echo "sandbox: threads at L2 /init (name, Seccomp, CapEff):"
cat /tmp/sandbox.sandbox
threads=$(wc -l </tmp/sandbox.sandbox)
timing "threads=$threads $(awk '{ printf "%s:seccomp=%s,capeff=%s ", $1, $2, $3 }' /tmp/sandbox.sandbox)"
[ "$threads" -ge 4 ] || { reason "expected the main thread, 2 vCPU threads and the virtio worker, saw $threads"; status=1; }
grep -q "^virtio " /tmp/sandbox.sandbox || { reason "no virtio worker thread"; status=1; }
awk '$2 != 2 { bad = 1 } END { exit bad }' /tmp/sandbox.sandbox ||
    { reason "a thread without a seccomp filter: $(tr '\n' ';' </tmp/sandbox.sandbox)"; status=1; }
awk '$3 !~ /^0+$/ { bad = 1 } END { exit bad }' /tmp/sandbox.sandbox ||
    { reason "a thread with effective capabilities: $(tr '\n' ';' </tmp/sandbox.sandbox)"; status=1; }

# A denied syscall: the message, the status, and the device back to its host driver.
run_l2 sandbox-denied --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 128M \
    --vfio-platform $PL031 --test-denied-syscall \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=usr1"
timing "denied: status $L2_RC after ${L2_T_EXIT}s"
[ "$L2_RC" = 159 ] || { reason "after the denied syscall platvmm exited with $L2_RC, expected 159"; status=1; }
l2_log_has "platvmm: error: the sandbox (seccomp) denied syscall socket ([0-9]*) in the event-loop thread" \
    "the message naming the denied syscall" || status=1
pl031_to_host "after the denied syscall" || status=1
exit $status
