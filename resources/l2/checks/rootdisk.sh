# shellcheck shell=sh
# check "rootdisk": L2 runs from an ext4 root filesystem on virtio-blk /dev/vda (the initramfs
# switched to it), with more devices at once:
#   /dev/vda  the root; /l2-wrote gets platvmm.token=T (L1 reads it in the image after exit)
#   /dev/vdb  read-only, read whole with dd (1 MiB blocks, cold cache): seq_read_MBps, and its
#             md5 against platvmm.seq_md5=M
#   /dev/vdc  read-only with serial platvmm.ro_serial=S: ro=1 in sysfs, the serial, writes fail
#   the PL031 passed through (the rtc check), and virtio-rng as the hwrng.
# Finally / is remounted read-only, so the image is clean when L1 mounts it.
# Sourced by /init, which provides arg, expect, detail and fail.
root=$(awk '$2 == "/" { r = $1 " " $3 } END { print r }' /proc/mounts)
[ "$root" = "/dev/vda ext4" ] || fail "/ is '$root', expected /dev/vda ext4"
[ -e /etc/l2-rootfs ] || fail "no /etc/l2-rootfs: not running from the disk image"
detail "root=vda"
token=$(arg platvmm.token)
{ echo "$token" >/l2-wrote && sync; } || fail "cannot write /l2-wrote on the root disk"

# shellcheck source=resources/l2/checks/rtc.sh
. /checks/rtc.sh

if [ -b /dev/vdb ]; then
    mib=$(( $(cat /sys/block/vdb/size) / 2048 ))
    echo 3 >/proc/sys/vm/drop_caches
    t0=$(cut -d' ' -f1 /proc/uptime)
    dd if=/dev/vdb of=/dev/null bs=1M status=none
    t1=$(cut -d' ' -f1 /proc/uptime)
    detail "$(awk -v s="$mib" -v a="$t0" -v b="$t1" 'BEGIN { printf "seq_read_MiB=%d seq_read_MBps=%.1f", s, s * 1.048576 / (b - a) }')"
    md5=$(md5sum /dev/vdb | cut -d' ' -f1)
    [ "$md5" = "$(arg platvmm.seq_md5)" ] || fail "/dev/vdb md5 $md5, L1 says $(arg platvmm.seq_md5)"
else
    fail "no /dev/vdb"
fi

ro=$(cat /sys/block/vdc/ro 2>/dev/null)
serial=$(cat /sys/block/vdc/serial 2>/dev/null)
[ "$ro" = 1 ] || fail "/sys/block/vdc/ro is '$ro', expected 1"
[ "$serial" = "$(arg platvmm.ro_serial)" ] || fail "/dev/vdc serial '$serial', expected '$(arg platvmm.ro_serial)'"
if dd if=/dev/zero of=/dev/vdc bs=512 count=1 conv=notrunc status=none 2>/dev/null; then
    fail "a write to the read-only /dev/vdc succeeded"
fi
detail "vdc_ro=$ro vdc_serial=$serial"

modprobe virtio_rng || fail "cannot load virtio_rng"
i=0
cur=/sys/class/misc/hw_random/rng_current
while [ "$(cat $cur 2>/dev/null)" != virtio_rng.0 ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
[ "$(cat $cur 2>/dev/null)" = virtio_rng.0 ] || fail "rng_current is '$(cat $cur 2>/dev/null)', expected virtio_rng.0"
n=$(dd if=/dev/hwrng bs=4096 count=1 status=none | wc -c)
[ "$n" = 4096 ] || fail "read $n bytes from /dev/hwrng, expected 4096"
detail "hwrng_bytes=$n"

mount -o remount,ro / || fail "cannot remount / read-only"
