#!/bin/sh
# scenario dma: L1's top virtio-mmio transport (platform, 0x200-byte region: trapped; edge
# IRQ) with a virtio-blk disk, passed through with identity-mapped guest RAM (hugepages at
# their physical addresses, no IOMMU). L2's virtio_blk must read the disk (md5 checked) and
# write a token that the host then finds in the disk image. The same disk read by L1's own
# driver first gives the baseline throughput.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
md5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
token=$(sed -n 's/.*platvmm.dma_token=\([0-9a-f]*\).*/\1/p' /proc/cmdline)

# The transport with the disk: the one virtio_mmio bound a virtio device to.
DEV=""
for d in /sys/bus/platform/devices/*.virtio_mmio; do
    for v in "$d"/virtio[0-9]*; do [ -e "$v" ] && DEV=$(basename "$d"); done
done
[ -n "$DEV" ] || { reason "no virtio-mmio transport with a device in L1"; exit 1; }
echo "dma: the disk is behind $DEV"

# Baseline: L1 reads the whole disk with its own virtio-blk, the way L2 will (dd, 1 MiB
# blocks, cold cache), and checks its md5.
l1_disk_baseline vda "$md5" || exit 1

vfio_bind platform "$DEV" vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 dma --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --vfio-platform "/sys/bus/platform/devices/$DEV" \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=disk platvmm.disk_md5=$md5 platvmm.dma_token=$token"
grep 'identity-mapped RAM' "$L2_LOG" | sed 's/^.*INFO \] /dma: /'
# The identity-mapped pages are pinned where they are (no migration under the device's DMA).
timing "identity-mapped RAM pinned: VmPin=${L2_VMPIN:-?}kB"
[ "${L2_VMPIN:-0}" -ge $((256 * 1024)) ] ||
    { reason "platvmm pins ${L2_VMPIN:-no} kB, not its 256 MiB of identity-mapped RAM"; status=1; }
# Released: the transport's DMA stopped (virtio status 0) before guest RAM went.
grep -q "$DEV: released: .*DMA stopped (1 register write(s))" "$L2_LOG" ||
    { reason "the virtio-mmio transport was not stopped at release"; status=1; }
if ! l2_passed; then
    status=1
else
    l2_disk_report
fi
grep -q "$DEV: region 0 (0x200 bytes, read,write) at guest 0x[0-9a-f]*, trapped" "$L2_LOG" ||
    { reason "the virtio-mmio region was not trapped"; status=1; }
grep -q "$DEV: IRQ 0 (eventfd) → SPI 16 (edge)" "$L2_LOG" ||
    { reason "the virtio-mmio IRQ was not wired as an edge irqfd"; status=1; }
exit $status
