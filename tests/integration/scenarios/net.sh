#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario net: a tap in L1 (10.0.2.1/24); L2's virtio-net on it with vhost-net exchanges
# 64 MiB each way with L1 over TCP (netblast: every byte checked, stream hashes compared on
# both sides) while platvmm handles no notify in userspace. L1's loopback runs the same
# transfer as the baseline, and a second, shorter L2 boot with vhost=off measures platvmm's
# userspace path (whose notifies must be counted). The vhost-net boot runs with --user.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
MAC=52:54:00:12:34:56
BYTES=$((64 << 20))
USER_BYTES=$((8 << 20))
[ -c /dev/vhost-net ] || { reason "no /dev/vhost-net in L1 (vhost_net not loaded?)"; exit 1; }
# A persistent tap (busybox tunctl; its ip has no tuntap) that platvmm attaches to.
tunctl -t tap0 >/dev/null && ip addr add 10.0.2.1/24 dev tap0 && ip link set tap0 up ||
    { reason "cannot create tap0"; exit 1; }
ip link set lo up

# L1's loopback: the same transfer through one kernel's TCP stack.
netblast server 5202 "$BYTES" >/tmp/lo-server.txt 2>&1 &
lo=$(netblast client 127.0.0.1 5202 "$BYTES") || { reason "netblast on loopback: $lo"; status=1; }
wait
lo_up=$(echo "$lo" | sed -n 's/.*up_MBps=\([0-9.]*\).*/\1/p')
lo_down=$(echo "$lo" | sed -n 's/.*down_MBps=\([0-9.]*\).*/\1/p')
timing "L1 loopback: $(echo "$lo" | sed 's/^netblast client //')"

# run_net NAME BYTES NET-OPTS BACKEND: one L2 boot with netblast against the L1 server; sets
# UP, DOWN, NOTIFIES (the net0 stats line's userspace_notifies, whose backend= must be BACKEND).
run_net() {
    netblast server 5201 "$2" >"/tmp/$1-server.txt" 2>&1 &
    _srv=$!
    # shellcheck disable=SC2086 # NET_EXTRA is split on purpose
    RUST_LOG=info run_l2 "$1" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
        --net "tap=tap0,mac=$MAC$3" ${NET_EXTRA:-} \
        --cmdline "console=ttyS0 panic=-1 platvmm.check=vnet platvmm.net_bytes=$2 platvmm.mac=$MAC"
    kill "$_srv" 2>/dev/null; wait "$_srv"
    _ok=0
    l2_passed || _ok=1
    _srv_line=$(cat "/tmp/$1-server.txt")
    echo "$SCENARIO: L1 server: $_srv_line"
    _r=$(l2_result)
    for h in fnv_up fnv_down; do
        _a=$(echo "$_r" | sed -n "s/.*$h=\([0-9a-f]*\).*/\1/p")
        _b=$(echo "$_srv_line" | sed -n "s/.*$h=\([0-9a-f]*\).*/\1/p")
        [ -n "$_a" ] && [ "$_a" = "$_b" ] || { reason "$1: $h differs: L2 '$_a', L1 '$_b'"; _ok=1; }
    done
    UP=$(echo "$_r" | sed -n 's/.*up_MBps=\([0-9.]*\).*/\1/p')
    DOWN=$(echo "$_r" | sed -n 's/.*down_MBps=\([0-9.]*\).*/\1/p')
    _stats=$(grep "platvmm stats: virtio net0" "$L2_LOG")
    echo "$SCENARIO: $_stats"
    NOTIFIES=$(echo "$_stats" | sed -n 's/.*userspace_notifies=\([0-9]*\).*/\1/p')
    case $_stats in
        *" backend=$4 "*) ;;
        *) reason "$1: the net0 stats line does not say backend=$4: '$_stats'"; _ok=1 ;;
    esac
    return $_ok
}

# The vhost-net run as a service would run it: unprivileged once set up (the rings are handed
# to vhost-net and the tap's offloads set after the privilege drop, when the guest starts).
NET_EXTRA="--user 65534:65534" run_net vhost "$BYTES" "" vhost-net || status=1
l2_log_has "net0: tap tap0, MAC $MAC, vhost-net" "vhost-net in use" || status=1
l2_log_has "privileges dropped" "the privilege drop (--user)" || status=1
timing "L2<->L1 virtio-net (vhost-net), 64 MiB each way: L2->L1 ${UP:-?} MB/s, L1->L2 ${DOWN:-?} MB/s = $(awk -v a="${UP:-0}" -v b="${lo_up:-1}" -v c="${DOWN:-0}" -v d="${lo_down:-1}" 'BEGIN { printf "%.2f / %.2f", a / b, c / d }') x L1 loopback; userspace notifies ${NOTIFIES:-?}"
[ "$NOTIFIES" = 0 ] || { reason "vhost-net path: userspace_notifies=$NOTIFIES, expected 0"; status=1; }
vh_up=$UP

run_net user "$USER_BYTES" ",vhost=off" user || status=1
l2_log_has "vhost=off: frames go through platvmm's userspace path" "the userspace path said so" || status=1
timing "L2<->L1 virtio-net (userspace), 8 MiB each way: L2->L1 ${UP:-?} MB/s, L1->L2 ${DOWN:-?} MB/s; vhost-net/userspace L2->L1 = $(awk -v a="${vh_up:-0}" -v b="${UP:-1}" 'BEGIN { printf "%.2f", a / b }'); userspace notifies ${NOTIFIES:-?}"
[ "${NOTIFIES:-0}" -gt 0 ] || { reason "userspace path: userspace_notifies=$NOTIFIES, expected > 0"; status=1; }
exit $status
