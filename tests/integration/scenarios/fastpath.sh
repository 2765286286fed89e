#!/bin/sh
# scenario fastpath: counters prove the fast paths. Between platvmm's counter snapshots
# (SIGUSR1, see resources/l2/checks/fastpath.sh) the non-console MMIO exits must be: 0 across
# N reads of the mapped PL031, exactly N across N trapped fw-cfg reads (and N device reads),
# exactly B across B reads of an unclaimed address, 0 across 3 level IRQs — and across those
# IRQs no platvmm thread other than the vCPU may wake (context switches of every thread sampled
# by L1 at the guest's L2-CTXT markers, see resources/l2/checks/fastpath.sh): the interrupt
# path VFIO → irqfd → vGIC → resamplefd → VFIO unmask runs in the kernel.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
N=2000 B=2000
vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind the PL031"; exit 1; }
vfio_bind platform 9020000.fw-cfg vfio-platform || { reason "cannot bind fw-cfg"; exit 1; }
run_l2 fastpath --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vfio-platform /sys/bus/amba/devices/9010000.pl031 \
    --vfio-platform /sys/bus/platform/devices/9020000.fw-cfg \
    --cmdline "console=ttyS0 panic=-1 iomem=relaxed platvmm.check=fastpath platvmm.fastpath_n=$N platvmm.fastpath_bare=$B"
l2_passed || exit 1
result=$(l2_result)
timing "$(echo "$result" | sed 's/.*fastpath: //')"

# iomem=relaxed: L2's /dev/mem may map the PL031 page although rtc-pl031 has claimed it.
# Non-console exits and fw-cfg trapped reads at each snapshot (5 snapshots + the final one).
exits=$(awk '/platvmm stats: vm exits/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%d ", v["mmio_read"] + v["mmio_write"] - v["mmio_console"] }' "$L2_LOG")
reads=$(awk '/platvmm stats: device 9020000.fw-cfg/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "trapped_reads") printf "%d ", kv[2] } }' "$L2_LOG")
# shellcheck disable=SC2086 # one word per snapshot
set -- $exits
[ $# -ge 5 ] || { reason "expected 5 snapshots and a final count, got: $exits"; exit 1; }
mapped=$(($2 - $1)) trapped=$(($3 - $2)) bare=$(($4 - $3)) irqs=$(($5 - $4))
# shellcheck disable=SC2086
set -- $reads
dev_reads=$(($3 - $2))
timing "non-console exits: mapped=$mapped/$N trapped=$trapped/$N bare=$bare/$B irqs=$irqs; fw-cfg device reads=$dev_reads"
[ $mapped = 0 ] || { reason "$N mapped reads caused $mapped exits (expected 0)"; status=1; }
[ $trapped = $N ] || { reason "$N trapped reads caused $trapped exits (expected $N)"; status=1; }
[ $dev_reads = $N ] || { reason "$N trapped reads reached the device $dev_reads times"; status=1; }
[ $bare = $B ] || { reason "$B unclaimed reads caused $bare exits (expected $B)"; status=1; }
[ $irqs = 0 ] || { reason "3 level IRQs (and their alarm setup) caused $irqs exits"; status=1; }

# Per thread: voluntary+nonvoluntary switches between the irqs-begin and irqs-end samples.
CTXT=/tmp/fastpath.ctxt
wakes=$(awk '$1 == "irqs-begin" { b[$2] = $4 + $5; c[$2] = $3 }
             $1 == "irqs-end" { e[$2] = $4 + $5 }
             END { for (t in b) if (t in e) printf "%s:%s=%d ", c[t], t, e[t] - b[t] }' "$CTXT" 2>/dev/null)
timing "context switches across the 3 IRQs (thread:tid=count): ${wakes:-none sampled}"
others=0 vcpu=0
for w in $wakes; do
    case $w in
        vcpu*) vcpu=$((vcpu + 1)) ;;
        *) others=$((others + 1))
           [ "${w##*=}" = 0 ] || { reason "platvmm thread ${w%=*} woke ${w##*=} times across 3 level IRQs (expected 0)"; status=1; } ;;
    esac
done
if [ $vcpu -lt 1 ] || [ $others -lt 1 ]; then
    reason "the wake-up window sampled $vcpu vCPU and $others other platvmm threads (want >= 1 each): $(tr '\n' ';' <"$CTXT" 2>/dev/null)"; status=1
fi
exit $status
