#!/bin/sh
# scenario sata: on the emulated ZCU102 (GIC-400: platvmm runs its GICv2 path), the AHCI
# controller, described as zynqmp.dtsi does (ceva,ahci-1v84 with its sata_ref clock and the
# board's PHY parameters), passed through with identity-mapped guest RAM and no option. L2's
# ahci_ceva must probe with the synthesized clock and the ceva,* parameters, find the disk,
# read it (md5 equal to the host's), and write a token the host then finds in the image. The
# same disk read by L1's own ahci_ceva first gives the baseline throughput.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=fd0c0000.ahci
md5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
token=$(sed -n 's/.*platvmm.dma_token=\([0-9a-f]*\).*/\1/p' /proc/cmdline)

# Baseline: L1's own driver, the way L2 will read (dd, 1 MiB blocks, cold cache).
if ! modprobe ahci_ceva || ! modprobe sd_mod; then reason "L1 cannot load ahci_ceva"; exit 1; fi
l1_disk_baseline sda "$md5" || exit 1

vfio_bind platform $DEV vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 sata --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --cpus 2 --identity-map-ram --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=disk platvmm.disk_modules=ahci_ceva,sd_mod platvmm.disk_dev=sda platvmm.disk_md5=$md5 platvmm.dma_token=$token"
grep -E 'identity-mapped RAM|vGIC' "$L2_LOG" | sed 's/^.*INFO \] /sata: /'
if ! l2_passed; then
    status=1
else
    l2_disk_report
fi
grep -q "$DEV: guest node by the sata handler (compatible \"ceva,ahci-1v84\" is an AHCI SATA controller)" "$L2_LOG" ||
    { reason "the sata handler did not generate the node"; status=1; }
grep -q "$DEV: synthesized clock 0: host /clock-sata-ref at 125000000 Hz (fixed-clock) → guest fixed clock /clock-sata_ref" "$L2_LOG" ||
    { reason "the AHCI's clock did not become a guest fixed clock"; status=1; }
grep -q "vGIC V2" "$L2_LOG" || { reason "platvmm did not use a GICv2 on this board"; status=1; }
grep -q "$DEV: region 0 (0x2000 bytes, read,write,mmap) at guest 0x[0-9a-f]*, mapped" "$L2_LOG" ||
    { reason "the AHCI registers were not mapped"; status=1; }
exit $status
