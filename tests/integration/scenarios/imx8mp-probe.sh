#!/bin/sh
# scenario imx8mp-probe: the emulated NXP i.MX 8M Plus EVK (QEMU >= 10), L1 on Debian's 6.12
# with the upstream imx8mp-evk.dtb, unchanged: KVM in nVHE mode, vfio-platform, and what
# platvmm makes of two devices clocked by the CCM (clock indices a guest cannot use).
#   L1: its own sdhci-esdhc-imx reads the SD card in uSDHC2 (md5 equal to the host's); then
#       UART1 and uSDHC2 go to vfio-platform.
#   platvmm: names every clock as Linux's clk-imx8mp does, reads its rate in L1's debugfs and
#       gives the guest a fixed clock at that rate; gives the host's aliases (serial0, taken by
#       the console in the guest, becomes serial1; mmc1 stays).
#   L2: the fixed clocks carry L1's rates, the aliases name the passed nodes, and the stock
#       serial_imx probes the UART as ttymxc1.
#   Then again with --scmi on: the SCMI controller on the SMC transport (L1's 6.12 KVM
#       forwards the call); L2's arm-scmi reaches it, its clock framework reads the four CCM
#       clocks at L1's rates through SCMI, serial_imx probes with them.
# What it cannot check: any driver that waits for an interrupt or a timer. QEMU 10.0.2's
# imx8mp-evk wires the GIC to the Cortex-A53s' IRQ and FIQ inputs only, not to their virtual
# IRQ/FIQ inputs, so no virtual interrupt ever reaches a KVM guest: L1's "kvm guest vtimer"
# fires, L2's arch_timer count stays 0, and L2's `sleep 1` never returns (measured). L2 runs
# with `quiet` and does nothing that sleeps; it cannot power off either (the kernel's power-off
# path sleeps), so platvmm gets SIGTERM once L2 reports (exit status 143).
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
UART=30860000.serial MMC=30b50000.mmc
SD_MD5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
grep -q 'Hyp nVHE mode initialized successfully' /dev/kmsg 2>/dev/null ||
    dmesg | grep -q 'Hyp nVHE mode initialized successfully' || { reason "L1's KVM did not start in nVHE mode"; exit 1; }
# uSDHC2 is mmc1 in the EVK's aliases.
l1_disk_baseline mmcblk1 "$SD_MD5" || exit 1
for d in $UART $MMC; do
    vfio_bind platform "$d" vfio-platform || { reason "cannot bind $d to vfio-platform"; exit 1; }
done
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
rate() { cat "/sys/kernel/debug/clk/$1/clk_rate"; }
clocks="uart1_root_clk:$(rate uart1_root_clk),ipg_root:$(rate ipg_root),nand_usdhc_bus:$(rate nand_usdhc_bus),usdhc2_root_clk:$(rate usdhc2_root_clk)"
L2_TERM_ON_RESULT=1
RUST_LOG=info run_l2 imx8mp-probe --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M \
    --vfio-platform /sys/bus/platform/devices/$UART --vfio-platform /sys/bus/platform/devices/$MMC \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=imx8mp-probe platvmm.expect_clocks=$clocks platvmm.expect_aliases=serial1,mmc1 platvmm.expect_tty=ttymxc1"
l2_passed || status=1
# Every clock named after clk-imx8mp, its rate read from L1's clock framework.
for c in "$UART ipg uart1_root_clk" "$UART per uart1_root_clk" "$MMC ipg ipg_root" \
         "$MMC ahb nand_usdhc_bus" "$MMC per usdhc2_root_clk"; do
    # shellcheck disable=SC2086 # three words
    set -- $c
    l2_log_has "$1: synthesized clock $2: host [^ ]*clock-controller@30380000-[0-9]* at [1-9][0-9]* Hz (debugfs clk_rate) → guest fixed clock /clock-$3" \
        "$1's $2 clock as $3, its rate from L1's debugfs" || status=1
done
l2_log_has "$UART: synthesized alias serial1 → /serial@[0-9a-f]* (the host's serial0: taken in the guest)" "UART1's alias" || status=1
l2_log_has "$MMC: synthesized alias mmc1 → /mmc@[0-9a-f]* (as on the host)" "uSDHC2's alias" || status=1
l2_log_has "$MMC: synthesized mmc@30b50000 'vmmc-supply': host regulator /regulator-usdhc2 (3300 mV) → guest fixed regulator" \
    "uSDHC2's supply as a fixed regulator" || status=1
grep -q "dropped 'clocks'" "$L2_LOG" && { reason "platvmm dropped clocks"; status=1; }

# The same two devices with --scmi on: L1's 6.12 KVM has the SMCCC filter, so the guest's
# SCMI agent reaches platvmm by SMC (arm,scmi-smc), which needs no interrupt: the reply is
# ready when the SMC returns. serial_imx probes with its clocks served over SCMI.
RUST_LOG=info run_l2 imx8mp-probe-scmi --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --scmi on --vfio-platform /sys/bus/platform/devices/$UART --vfio-platform /sys/bus/platform/devices/$MMC \
    --cmdline "console=ttyS0 panic=-1 quiet platvmm.check=imx8mp-probe platvmm.expect_scmi_clocks=$clocks platvmm.expect_aliases=serial1,mmc1 platvmm.expect_tty=ttymxc1"
l2_passed || status=1
l2_log_has "SCMI system controller: SMC transport (arm,scmi-smc: function 0x82000010 forwarded by KVM's SMCCC filter; arm,scmi-shmem channel at guest 0x[0-9a-f]*); 4 clocks, 0 reset domains, 0 power domains" \
    "the SCMI controller on the SMC transport with the four CCM clocks" || status=1
smccc=$(grep -o 'platvmm stats: vm exits .*' "$L2_LOG" | tail -1 | sed -n 's/.* smccc=\([0-9]*\).*/\1/p')
scmi=$(grep -o 'platvmm stats: scmi .*' "$L2_LOG" | tail -1)
timing "SCMI over SMC: smccc_exits=${smccc:-?}$(echo "$scmi" | grep -o -E ' ((base|clock)_messages|clock_enables|doorbells|interrupts)=[0-9]+' | tr -d '\n')"
[ "${smccc:-0}" -gt 0 ] || { reason "no forwarded SMC counted (smccc=${smccc:-missing})"; status=1; }
for k in base_messages clock_messages clock_enables doorbells; do
    v=$(echo "$scmi" | sed -n "s/.* $k=\([0-9]*\).*/\1/p")
    [ "${v:-0}" -gt 0 ] || { reason "platvmm stats: $k=${v:-missing} (want > 0): $scmi"; status=1; }
done
exit $status
