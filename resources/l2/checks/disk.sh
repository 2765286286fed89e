# shellcheck shell=sh
# check "disk": a disk behind a passed-through DMA-capable controller (virtio-mmio, AHCI,
# xHCI...), guest RAM identity-mapped so the device's DMA lands in guest memory.
#   platvmm.disk_modules=a,b  modules to load (default virtio_mmio,virtio_blk)
#   platvmm.disk_dev=NAME     block device (default vda)
#   platvmm.disk_md5=MD5      md5 of the whole disk, computed by the host
#   platvmm.dma_token=TOKEN   written as "platvmm-dma:TOKEN" at 16 MiB (the host checks it)
#   platvmm.disk_mib=N        hash and read only the first N MiB (real disks: ci/hw-test.sh)
#   platvmm.disk_write=0      read-only: no token is written (real disks)
# Reports the sequential read rate and the disk's interrupts per MiB.
# Sourced by /init, which provides arg, expect, detail and fail.
want_md5=$(arg platvmm.disk_md5)
token=$(arg platvmm.dma_token)

modules=$(arg platvmm.disk_modules); modules=${modules:-virtio_mmio,virtio_blk}
dev=$(arg platvmm.disk_dev); dev=${dev:-vda}

# Interrupts of the passed-through controller: the GIC SPI lines from 48 up (passthrough SPIs
# start at 16), whatever the driver named them.
dev_irqs() {
    # Fields: "N:", one count per CPU, the chip (GICv3 / GIC-0), the hardware IRQ, ...
    awk '/GIC/ { c = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) c += $i
                 if ($(i + 1) >= 48 && $(i + 1) < 256) s += c }
         END { print s + 0 }' /proc/interrupts
}

for m in $(echo "$modules" | tr ',' ' '); do modprobe "$m" || fail "cannot load $m"; done
i=0
while [ ! -b "/dev/$dev" ] && [ $i -lt 120 ]; do sleep 0.25; i=$((i + 1)); done
[ -b "/dev/$dev" ] || { fail "no /dev/$dev: the disk driver did not probe ($modules)"; return 0; }
detail "dev=$dev"
size_mib=$(( $(cat "/sys/block/$dev/size") / 2048 ))
limit=$(arg platvmm.disk_mib)
[ -n "$limit" ] && [ "$limit" -lt "$size_mib" ] && size_mib=$limit
detail "disk=${size_mib}MiB"
# The first size_mib MiB of the disk.
head_of_disk() { dd if="/dev/$dev" bs=1M count="$size_mib" status=none; }

echo 3 >/proc/sys/vm/drop_caches
i0=$(dev_irqs)
t0=$(cut -d' ' -f1 /proc/uptime)
got_md5=$(head_of_disk | md5sum | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
i1=$(dev_irqs)
detail "md5_ok=$([ "$got_md5" = "$want_md5" ] && echo yes || echo no)"
[ "$got_md5" = "$want_md5" ] || fail "disk md5 $got_md5, host says $want_md5"
detail "$(awk -v s="$size_mib" -v a="$t0" -v b="$t1" -v n=$((i1 - i0)) \
    'BEGIN { printf "read_MBps=%.1f irqs_per_MiB=%.1f", s * 1.048576 / (b - a), n / s }')"

echo 3 >/proc/sys/vm/drop_caches
echo 3 >/proc/sys/vm/drop_caches
t0=$(cut -d' ' -f1 /proc/uptime)
head_of_disk >/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
detail "$(awk -v s="$size_mib" -v a="$t0" -v b="$t1" 'BEGIN { printf "dd_read_MBps=%.1f", s * 1.048576 / (b - a) }')"

[ "$(arg platvmm.disk_write)" = 0 ] && return 0
printf 'platvmm-dma:%s' "$token" | dd of="/dev/$dev" bs=1M seek=16 conv=notrunc,fsync status=none ||
    fail "writing the token failed"
echo 3 >/proc/sys/vm/drop_caches
want="platvmm-dma:$token"
back=$(dd if="/dev/$dev" bs=1M skip=16 count=1 status=none | head -c ${#want})
[ "$back" = "$want" ] || fail "token read back as '$back'"
