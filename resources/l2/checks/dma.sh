# shellcheck shell=sh
# check "dma": a passed-through virtio-mmio transport with a virtio-blk disk behind it, guest
# RAM identity-mapped so the device's DMA (to host physical addresses) lands in guest memory.
#   platvmm.disk_md5=MD5     md5 of the whole disk, computed by the host
#   platvmm.dma_token=TOKEN  written as "platvmm-dma:TOKEN" at 16 MiB (the host checks it)
# Reports the sequential read rate and the disk's interrupts per MiB.
# Sourced by /init, which provides arg, expect, detail and fail.
want_md5=$(arg platvmm.disk_md5)
token=$(arg platvmm.dma_token)

virtio_irqs() {
    awk '/virtio/ { for (i = 2; i <= NF; i++) { if ($i ~ /^[0-9]+$/) s += $i; else break } }
         END { print s + 0 }' /proc/interrupts
}

if ! modprobe virtio_mmio || ! modprobe virtio_blk; then fail "cannot load virtio_mmio/virtio_blk"; fi
i=0
while [ ! -b /dev/vda ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
[ -b /dev/vda ] || { fail "no /dev/vda: virtio-blk did not probe"; return 0; }
size_mib=$(( $(cat /sys/block/vda/size) / 2048 ))
detail "disk=${size_mib}MiB"

echo 3 >/proc/sys/vm/drop_caches
i0=$(virtio_irqs)
t0=$(cut -d' ' -f1 /proc/uptime)
got_md5=$(md5sum /dev/vda | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
i1=$(virtio_irqs)
detail "md5_ok=$([ "$got_md5" = "$want_md5" ] && echo yes || echo no)"
[ "$got_md5" = "$want_md5" ] || fail "disk md5 $got_md5, host says $want_md5"
detail "$(awk -v s="$size_mib" -v a="$t0" -v b="$t1" -v n=$((i1 - i0)) \
    'BEGIN { printf "read_MBps=%.1f irqs_per_MiB=%.1f", s * 1.048576 / (b - a), n / s }')"

echo 3 >/proc/sys/vm/drop_caches
echo 3 >/proc/sys/vm/drop_caches
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/vda of=/dev/null bs=1M status=none
t1=$(cut -d' ' -f1 /proc/uptime)
detail "$(awk -v s="$size_mib" -v a="$t0" -v b="$t1" 'BEGIN { printf "dd_read_MBps=%.1f", s * 1.048576 / (b - a) }')"

printf 'platvmm-dma:%s' "$token" | dd of=/dev/vda bs=1M seek=16 conv=notrunc,fsync status=none ||
    fail "writing the token failed"
echo 3 >/proc/sys/vm/drop_caches
want="platvmm-dma:$token"
back=$(dd if=/dev/vda bs=1M skip=16 count=1 status=none | head -c ${#want})
[ "$back" = "$want" ] || fail "token read back as '$back'"
