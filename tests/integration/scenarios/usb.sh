#!/bin/sh
# scenario usb: on the emulated Versal, the xHCI controller (QEMU's dwc3 block, generic-xhci)
# passed through with identity-mapped guest RAM. L2's xhci-plat must enumerate the
# usb-storage disk, read it (md5 equal to the host's) and write a token the host then finds
# in the image. L1's own xhci-plat reads the disk first for the baseline throughput.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=fe200000.dwc3
md5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
token=$(sed -n 's/.*platvmm.dma_token=\([0-9a-f]*\).*/\1/p' /proc/cmdline)

l1_disk_baseline sda "$md5" || exit 1

vfio_bind platform $DEV vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 usb --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --cpus 2 --identity-map-ram --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=disk platvmm.disk_modules=xhci_plat_hcd,usb_storage,sd_mod platvmm.disk_dev=sda platvmm.disk_md5=$md5 platvmm.dma_token=$token"
grep -E 'identity-mapped RAM|vGIC' "$L2_LOG" | sed 's/^.*INFO \] /usb: /'
if ! l2_passed; then
    status=1
else
    l2_disk_report
fi
grep -q "$DEV: guest node by the usb handler (compatible \"generic-xhci\" is a USB host controller)" "$L2_LOG" ||
    { reason "the usb handler did not generate the node"; status=1; }
grep -q "$DEV: region 0 (0x10000 bytes, read,write,mmap) at guest 0x[0-9a-f]*, mapped" "$L2_LOG" ||
    { reason "the xHCI registers were not mapped"; status=1; }
exit $status
