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
# Baseline: L1's own sdhci-arasan (loaded at boot); then SDHCI1 to vfio-platform.
sdhci1_to_vfio || exit 1
RUST_LOG=info run_l2 mmc --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=disk platvmm.disk_modules=sdhci_of_arasan,mmc_block platvmm.disk_dev=mmcblk0 platvmm.disk_md5=$SD_MD5 platvmm.dma_token=$SD_TOKEN"
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
