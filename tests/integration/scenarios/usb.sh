#!/bin/sh
# scenario usb: on the emulated Versal, a device group: the USB wrapper (usb@ff9d0000, a
# simple-bus in L1's tree) passed with group=on, its child xHCI controller (QEMU's dwc3 block,
# generic-xhci, a platform device of its own) opened through VFIO with it and nested in the
# wrapper's guest node behind translated ranges; identity-mapped guest RAM. L2's kernel must
# make the child a device through the wrapper's ranges, and L2's xhci-plat must enumerate the
# usb-storage disk, read it (md5 equal to the host's) and write a token the host then finds
# in the image. L1's own xhci-plat reads the disk first for the baseline throughput.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=fe200000.dwc3
BUS=ff9d0000.usb
md5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
token=$(sed -n 's/.*platvmm.dma_token=\([0-9a-f]*\).*/\1/p' /proc/cmdline)

l1_disk_baseline sda "$md5" || exit 1

# platvmm bind --children hands the wrapper and its child platform device to vfio-platform.
"$PLATVMM" bind --noiommu --children /sys/bus/platform/devices/$BUS >/tmp/bind.txt 2>&1 ||
    { reason "platvmm bind --children: $(tail -1 /tmp/bind.txt)"; exit 1; }
for d in $DEV $BUS; do
    [ "$(basename "$(readlink "/sys/bus/platform/devices/$d/driver")")" = vfio-platform ] ||
        { reason "$d is not bound to vfio-platform after bind --children"; exit 1; }
done
RUST_LOG=info run_l2 usb --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --cpus 2 --identity-map-ram --vfio-platform /sys/bus/platform/devices/$BUS,group=on \
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
grep -q "$BUS: synthesized group member $DEV nested as dwc3@fe200000" "$L2_LOG" ||
    { reason "the xHCI was not nested in the wrapper's node"; status=1; }
# L2 names a platform device by its translated address: the nested xHCI's child address
# (0xfe200000) must have become the guest address its region was placed at.
gpa=$(sed -n "s/.*$DEV: region 0 .* at guest 0x\([0-9a-f]*\), mapped.*/\1/p" "$L2_LOG" | head -n1)
if [ -n "$gpa" ] && grep -q "xhci-hcd $gpa.usb: xHCI Host Controller" "$L2_LOG"; then
    echo "usb: L2's xhci-hcd $gpa.usb: the child address translated through the wrapper's ranges"
else
    reason "L2 has no xhci-hcd at the xHCI's guest address (${gpa:-none}): ranges not translated"
    status=1
fi
exit $status
