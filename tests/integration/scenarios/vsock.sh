#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario vsock: L2 gets a virtio-vsock device on L1's vhost-vsock with CID 42. L2 checks its
# CID and runs 1000 round trips of 64 bytes against an echo server in L1 (host CID 2), each
# reply checked; then L1 runs as many against an echo server in L2 (CID 42). Both directions'
# latency is printed. No notify is handled in platvmm userspace. A second platvmm asking for
# the same CID while the first runs is refused.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
CID=42
[ -c /dev/vhost-vsock ] || { reason "no /dev/vhost-vsock in L1 (vhost_vsock not loaded?)"; exit 1; }
vsock-echo server 5000 >/tmp/echo.txt 2>&1 &
srv=$!
# L1 -> L2: retries its connect until L2's server listens (after L2's own round trips).
vsock-echo client $CID 5001 1000 64 >/tmp/l1-client.txt 2>&1 &
cli=$!
# While the first VM runs (it holds CID 42 from before the guest boots), a second one asking
# for CID 42 must be refused at once. If it is not, its guest (no initramfs) panics and resets.
( sleep 3; timeout -s KILL 60 "$PLATVMM" --kernel "$L2_KERNEL" --vsock cid=$CID --cmdline "console=ttyS0 panic=-1" \
      >/tmp/second.txt 2>&1; echo $? >/tmp/second.rc ) &
second=$!
RUST_LOG=info run_l2 vsock --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --vsock cid=$CID --cmdline "console=ttyS0 panic=-1 platvmm.check=vsock platvmm.cid=$CID platvmm.listen=5001"
wait "$second"
kill "$srv" "$cli" 2>/dev/null
wait "$cli"; cli_rc=$?
l2_passed || status=1
r=$(l2_result)
timing "L2->L1 vsock echo: $(echo "$r" | grep -o 'round_trips=.*p99_us=[0-9]*')"
echo "$r" | grep -q "round_trips=1000 size=64 .* ok=1" || { reason "L2->L1: no 1000 good round trips"; status=1; }

l1=$(cat /tmp/l1-client.txt)
echo "$SCENARIO: L1 -> L2 client (exit $cli_rc): $l1"
timing "L1->L2 vsock echo: $(echo "$l1" | grep -o 'round_trips=.*p99_us=[0-9]*')"
[ "$cli_rc" = 0 ] && echo "$l1" | grep -q "^vsock-echo round_trips=1000 size=64 .* ok=1" ||
    { reason "L1->L2 round trips failed (exit $cli_rc): $(echo "$l1" | tail -1)"; status=1; }

stats=$(grep "platvmm stats: virtio vsock" "$L2_LOG")
echo "$SCENARIO: $stats"
echo "$stats" | grep -q "backend=vhost-vsock .*userspace_notifies=0\( \|$\)" ||
    { reason "vsock stats: '${stats:-none printed}'"; status=1; }
l2_log_has "vsock: guest CID $CID on vhost-vsock" "the vhost-vsock backend with CID $CID" || status=1
# 2000 round trips raise at least 2000 interrupts in L2, each acknowledged by an InterruptACK
# write; a KVM ioeventfd absorbs those, so the trapped writes that reach platvmm stay those of
# the boot (about 500; 4400 without the ioeventfd).
writes=$(sed -n 's/.*platvmm stats: vm exits .*mmio_write=\([0-9]*\).*/\1/p' "$L2_LOG" | tail -1)
echo "$SCENARIO: trapped MMIO writes over the whole run: ${writes:-none}"
[ "${writes:-99999}" -lt 1000 ] ||
    { reason "$writes trapped MMIO writes: InterruptACK writes reach platvmm (expected < 1000)"; status=1; }

echo "$SCENARIO: second VM with CID $CID: exit $(cat /tmp/second.rc): $(tail -1 /tmp/second.txt)"
[ "$(cat /tmp/second.rc)" = 1 ] && grep -q "vsock CID $CID is in use" /tmp/second.txt ||
    { reason "a second VM with CID $CID was not refused (exit $(cat /tmp/second.rc)): $(tail -1 /tmp/second.txt)"; status=1; }
exit $status
