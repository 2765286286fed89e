#!/bin/sh
# scenario ethernet: on the emulated ZCU102, GEM0 described as zynqmp.dtsi does (five clocks
# from fixed clocks, two queue interrupts on one line, its PHY under its own mdio node) with
# QEMU user networking behind it. L1's macb downloads a 64 MiB file from the host's loopback
# first (baseline); then L2 gets the GEM with identity-mapped RAM and no overlay or option:
# its macb must probe with the synthesized clocks and the renumbered phy-handle, the PHY must
# report a link, DHCP must answer, and the same download must match the host's md5.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=ff0b0000.ethernet
url=$(sed -n 's/.*platvmm.net_url=\([^ ]*\).*/\1/p' /proc/cmdline)
md5=$(sed -n 's/.*platvmm.net_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
bytes=$(sed -n 's/.*platvmm.net_bytes=\([0-9]*\).*/\1/p' /proc/cmdline)

# Baseline: L1's own macb (loaded at boot), the way L2 will download.
l1_net_baseline "$url" "$md5" "$bytes" || exit 1

vfio_bind platform $DEV vfio-platform || { reason "cannot bind $DEV to vfio-platform"; exit 1; }
RUST_LOG=info run_l2 ethernet --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=net platvmm.net_url=$url platvmm.net_md5=$md5 platvmm.net_bytes=$bytes"
if ! l2_passed; then
    status=1
else
    l2_net_report
    r=$(l2_result)
    for want in driver=macb md5_ok=yes addr=10.0.2.; do
        case $r in *"$want"*) ;; *) reason "L2 result lacks $want: $r"; status=1 ;; esac
    done
fi
l2_log_has "$DEV: guest node by the ethernet handler" "the ethernet handler made the node" || status=1
for c in pclk hclk tx_clk rx_clk tsu_clk; do
    l2_log_has "$DEV: synthesized clock $c: host /clock-[a-z0-9-]* at [0-9]* Hz (fixed-clock) → guest fixed clock /clock-" \
        "a guest fixed clock for $c" || status=1
done
l2_log_has "$DEV: synthesized phandle 0x[0-9a-f]* inside the device → guest phandle 0x" "phy-handle renumbered into the guest" || status=1
l2_log_has "$DEV: IRQ 1 is the host line of IRQ 0 again → SPI [0-9]* (shared, wired once)" "the second queue interrupt shared" || status=1
l2_log_has "$DEV: region 0 (0x1000 bytes, read,write,mmap) at guest 0x[0-9a-f]*, mapped" "the GEM registers mapped" || status=1
if grep -q "dropped 'phy-handle'\|dropped 'clocks'" "$L2_LOG"; then
    reason "platvmm dropped phy-handle or clocks"; status=1
fi
exit $status
