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

# The wake-up window: L1 sampled every platvmm thread at the guest's "L2-CTXT irqs-begin" and
# "L2-CTXT irqs-end" markers (lines "LABEL TID COMM VOLUNTARY NONVOLUNTARY", see run_l2).
# Per thread, one line "KIND COMM TID VOLUNTARY NONVOLUNTARY" with its switches in the window.
# KIND: vcpu (COMM vcpuN; the guest idles in WFI, so these are information only), other
# (every other thread: 0 and 0 expected), once (sampled at only one of the markers, or twice
# at one: it started or ended inside the window, or a marker came twice; then VOLUNTARY and
# NONVOLUNTARY are its sample counts at begin and end).
CTXT=/tmp/fastpath.ctxt
window=$(awk '$1 == "irqs-begin" { nb[$2]++; c[$2] = $3; bv[$2] = $4; bn[$2] = $5 }
    $1 == "irqs-end" { ne[$2]++; c[$2] = $3; ev[$2] = $4; en[$2] = $5 }
    END { for (t in c) {
        k = c[t] ~ /^vcpu[0-9]+$/ ? "vcpu" : "other"
        if (nb[t] != 1 || ne[t] != 1) printf "once %s %s %d %d\n", c[t], t, nb[t], ne[t]
        else printf "%s %s %s %d %d\n", k, c[t], t, ev[t] - bv[t], en[t] - bn[t] } }' \
    "$CTXT" 2>/dev/null | sort -k3n)
# Guest time between the markers (their printk timestamps): the window held the 3 alarms.
secs=$(tr -d '\r' <"$L2_LOG" | awk '
    function ts(l) { sub(/^[^[]*\[ */, "", l); sub(/\].*/, "", l); return l }
    /L2-CTXT irqs-begin/ { b = ts($0) } /L2-CTXT irqs-end/ { e = ts($0) }
    END { if (b != "" && e != "") printf "%.2f", e - b; else printf "?" }')
others=0 vcpu0=0 wakes="" vcpus=""
while read -r kind comm tid vol nonvol; do
    case $kind in
        vcpu)
            [ "$comm" = vcpu0 ] && vcpu0=1
            vcpus="$vcpus $comm:$tid=vol:$vol+nonvol:$nonvol" ;;
        other)
            others=$((others + 1))
            wakes="$wakes $comm:$tid=$((vol + nonvol))"
            [ $((vol + nonvol)) = 0 ] || { reason "platvmm thread $comm (tid $tid) woke across the 3 level IRQs: $vol voluntary + $nonvol nonvoluntary context switches (expected 0)"; status=1; } ;;
        once)
            wakes="$wakes $comm:$tid=sampled-$vol+$nonvol"
            reason "platvmm thread $comm (tid $tid) sampled $vol time(s) at irqs-begin and $nonvol at irqs-end (expected once each: a thread started or ended inside the window?)"; status=1 ;;
    esac
done <<EOF
$window
EOF
timing "irqs window (${secs}s guest time, sampled by L1 at the L2-CTXT markers): non-vCPU thread wakes (comm:tid=switches):${wakes:- none sampled}; vCPU switches (information, the guest idles in WFI):${vcpus:- none sampled}"
if [ $others -lt 1 ] || [ $vcpu0 != 1 ]; then
    [ $vcpu0 = 1 ] && v=vcpu0 || v="no vcpu0"
    reason "the wake-up window found $others non-vCPU thread(s) and $v in both samples (want >= 1 and vcpu0: a measurement that found nothing proves nothing): $(tr '\n' ';' <"$CTXT" 2>/dev/null)"; status=1
fi
exit $status
