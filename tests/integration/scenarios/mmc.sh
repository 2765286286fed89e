#!/bin/sh
# scenario mmc: on the emulated ZCU102, SDHCI1 described as arasan,sdhci-8.9a with clk_xin and
# clk_ahb from fixed clocks, an SD card in it. L1's sdhci-arasan reads the card first
# (baseline); then L2 gets the controller with identity-mapped RAM and no overlay or option:
# its sdhci-arasan must probe with the synthesized clocks, read the card (md5 equal to the
# host's) and write a token the host then finds in the image.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=ff170000.mmc
md5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
token=$(sed -n 's/.*platvmm.dma_token=\([0-9a-f]*\).*/\1/p' /proc/cmdline)

# Baseline: L1's own sdhci-arasan (loaded at boot).
l1_disk_baseline mmcblk0 "$md5" || exit 1

vfio_bind platform $DEV vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 mmc --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=disk platvmm.disk_modules=sdhci_of_arasan,mmc_block platvmm.disk_dev=mmcblk0 platvmm.disk_md5=$md5 platvmm.dma_token=$token"
if ! l2_passed; then
    status=1
else
    l2_disk_report
fi
l2_log_has "$DEV: guest node by the mmc handler" "the mmc handler made the node" || status=1
for c in clk_xin clk_ahb; do
    l2_log_has "$DEV: synthesized clock $c: host /clock-[a-z0-9-]* at [0-9]* Hz (fixed-clock) → guest fixed clock /clock-" \
        "a guest fixed clock for $c" || status=1
done
l2_log_has "$DEV: region 0 (0x1000 bytes, read,write,mmap) at guest 0x[0-9a-f]*, mapped" "the SDHCI registers mapped" || status=1
grep -q "dropped 'clocks'" "$L2_LOG" && { reason "platvmm dropped the clocks"; status=1; }
exit $status
