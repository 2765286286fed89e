#!/bin/sh
# shellcheck disable=SC2015 # "A && B || fail" is meant: fail when either is false
# scenario rootdisk: L2 boots with its root filesystem on a virtio-blk ext4 image (made by
# mke2fs -d on the build host, no root needed) while L1's PL031 is passed through; a second,
# 128 MiB read-only disk is read whole in L2 and in L1 (the same file), a third is read-only
# with a serial, and virtio-rng feeds L2's hwrng. After exit L1 mounts the image and finds the
# file L2 wrote. Before that, a disk image locked by another process is refused.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
gunzip -c /l2/rootfs.ext4.gz >/tmp/root.ext4 || { reason "cannot unpack the root image"; exit 1; }
dd if=/dev/urandom of=/tmp/seq.img bs=1M count=128 status=none
dd if=/dev/zero of=/tmp/ro.img bs=1M count=1 status=none
seq_md5=$(md5sum /tmp/seq.img | cut -d' ' -f1)

# Image locks (flock): a read-write --disk needs an exclusive lock, a read-only one a shared
# lock. A shared holder keeps seq.img for the whole scenario: a read-write --disk on it is
# refused at once, the main run's read-only one shares it. An exclusive holder on lock.img
# keeps even a read-only --disk out. A refused run must not boot: if one does, its guest (no
# initramfs) panics and resets (exit 3).
dd if=/dev/zero of=/tmp/lock.img bs=1M count=1 status=none
holdlock -s /tmp/seq.img 600 >/tmp/hold-seq.txt &
hold_seq=$!
holdlock /tmp/lock.img 600 >/tmp/hold-lock.txt &
hold_lock=$!
i=0
while ! { grep -q locked /tmp/hold-seq.txt && grep -q locked /tmp/hold-lock.txt; } && [ $i -lt 40 ]; do
    sleep 0.25; i=$((i + 1))
done
grep -q locked /tmp/hold-seq.txt && grep -q locked /tmp/hold-lock.txt ||
    { reason "holdlock could not lock the images: $(cat /tmp/hold-seq.txt /tmp/hold-lock.txt)"; exit 1; }
# refused WHAT DISK-ARG: platvmm must refuse --disk DISK-ARG (exit 1, the "in use" line).
refused() {
    _t0=$(now)
    _out=$(timeout -s KILL 60 "$PLATVMM" --kernel "$L2_KERNEL" --cmdline "console=ttyS0 panic=-1" \
        --disk "$2" </dev/null 2>&1)
    _rc=$?
    echo "$SCENARIO: $1: --disk $2: exit $_rc after $(elapsed "$_t0" "$(now)")s: $(echo "$_out" | tail -1)"
    [ $_rc = 1 ] && echo "$_out" | grep -q "is in use by another process" ||
        { reason "$1: --disk $2 gave exit $_rc: $(echo "$_out" | tail -1)"; status=1; }
}
refused "read-write image under a shared lock" /tmp/seq.img
refused "read-only image under an exclusive lock" /tmp/lock.img,readonly
kill "$hold_lock"; wait "$hold_lock"

# L1 reads the 128 MiB file the way L2 will read it through virtio-blk (8 times: one read
# from tmpfs takes a few of now()'s 10 ms ticks).
t0=$(now)
for _ in 1 2 3 4 5 6 7 8; do dd if=/tmp/seq.img of=/dev/null bs=1M status=none; done
t1=$(now)
l1_rate=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 8 * 128 * 1.048576 / (b - a) }')
timing "L1: dd read of the 128 MiB image file (in L1's tmpfs) at $l1_rate MB/s"

vfio_bind amba 9010000.pl031 vfio-amba || { reason "cannot bind the PL031"; exit 1; }
token=l2-was-here-$$
RUST_LOG=info run_l2 rootdisk --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --disk /tmp/root.ext4 --disk /tmp/seq.img,readonly --disk /tmp/ro.img,readonly,serial=platvmm-ro \
    --rng --vfio-platform /sys/bus/amba/devices/9010000.pl031 \
    --cmdline "console=ttyS0 panic=-1 root=/dev/vda platvmm.check=rootdisk platvmm.token=$token platvmm.seq_md5=$seq_md5 platvmm.ro_serial=platvmm-ro"
l2_passed || status=1
kill "$hold_seq"; wait "$hold_seq"
rate=$(l2_result | sed -n 's/.*seq_read_MBps=\([0-9.]*\).*/\1/p')
grep "platvmm stats: virtio" "$L2_LOG" | sed "s/^/$SCENARIO: /"
# counter DISK KEY: that disk's KEY= value on its stats line (empty if absent).
counter() { sed -n "s/.*platvmm stats: virtio $1 .* $2=\([0-9]*\).*/\1/p" "$L2_LOG" | tail -1; }
timing "L2 virtio-blk: dd read of the same file at ${rate:-?} MB/s = $(awk -v a="${rate:-0}" -v b="$l1_rate" 'BEGIN { printf "%.2f", a / b }') x L1; vdb (dd + md5sum): requests=$(counter vdb requests) userspace_notifies=$(counter vdb userspace_notifies) interrupts=$(counter vdb interrupts)"
l2_log_has "platvmm stats: virtio vda blk backend=user requests=[1-9]" "vda requests counted" || status=1
l2_log_has "platvmm stats: virtio rng rng backend=user requests=[1-9].* \(read_\)\{0,1\}bytes=[1-9]" "rng bytes counted" || status=1
[ "$(counter vda write_bytes)" -gt 0 ] 2>/dev/null ||
    { reason "vda: write_bytes='$(counter vda write_bytes)', expected > 0 (L2 wrote /l2-wrote)"; status=1; }
[ "$(counter vdb read_bytes)" -ge $((128 << 20)) ] 2>/dev/null ||
    { reason "vdb: read_bytes='$(counter vdb read_bytes)', expected >= 128 MiB (L2 read it all)"; status=1; }
for d in vdb vdc; do
    [ "$(counter $d write_bytes)" = 0 ] || { reason "$d (read-only): write_bytes='$(counter $d write_bytes)'"; status=1; }
done

mkdir -p /mnt/l2root
if mount -t ext4 -o ro,loop /tmp/root.ext4 /mnt/l2root; then
    got=$(cat /mnt/l2root/l2-wrote 2>/dev/null)
    umount /mnt/l2root
    echo "$SCENARIO: /l2-wrote in the image after exit: '$got'"
    [ "$got" = "$token" ] || { reason "the image has '$got' in /l2-wrote, expected $token"; status=1; }
else
    reason "L1 cannot mount the root image after L2 exited"; status=1
fi
pl031_to_host "after rootdisk" || status=1
exit $status
