#!/bin/sh
# shellcheck disable=SC2317 # on_ctl is called by run_l2 (L2_ON_CTL)
# scenario scmi: on the emulated ZCU102, SDHCI1 (its clk_xin and clk_ahb from fixed clocks in
# L1's tree) passed with --scmi on: the guest gets platvmm's SCMI system controller (a
# brcm,bcm2835-mbox doorbell and an arm,scmi-shmem channel, both platvmm's; L2's stock
# arm-scmi, bcm2835-mailbox and clk-scmi drivers, all built in) and the controller's clocks
# point at SCMI clocks. L2 checks that its SCMI stack talked to platvmm, that its clock
# framework reads the host rates through SCMI, then that sdhci-arasan, clocked through SCMI,
# reads the card (md5 equal to the host's) and writes a token the host finds in the image.
# platvmm's --stats must count the clock messages, the guest's clock enables and the mailbox
# interrupts. Before the disk is read, L2 posts hostile messages through /dev/mem (a length
# past the channel, an unknown protocol, a clock it was not given, a write outside the
# window): each is answered as the transport says, counted, and the VM goes on. Resets and
# power domains: the rig's boards have no provider for them in L1 (unit tests and preview-dt
# cover them).
# A second VM reboots in place once (the guest's PSCI SYSTEM_RESET after its check): its
# identity-mapped RAM zeroed, SDHCI1 reset, the SCMI controller back as at start; on its
# second boot arm-scmi probes again, the clocks read the host rates, and sdhci-arasan reads
# the card's first 16 MiB (md5) as on the first; SIGTERM then presses the power button and the
# guest powers off.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=ff170000.mmc
sdhci1_to_vfio || exit 1
RUST_LOG=info run_l2 scmi --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --scmi on --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 iomem=relaxed platvmm.check=scmi platvmm.scmi_hostile=1 platvmm.scmi_clocks=sdio1_ref:200000000,lpd_lsbus:100000000 platvmm.disk_modules=sdhci_of_arasan,mmc_block platvmm.disk_dev=mmcblk0 platvmm.disk_md5=$SD_MD5 platvmm.dma_token=$SD_TOKEN"
if ! l2_passed; then
    status=1
else
    l2_disk_report
fi
l2_log_has "SCMI system controller: on (--scmi on)" "the SCMI controller was asked for" || status=1
l2_log_has "SCMI system controller: mailbox transport (brcm,bcm2835-mbox doorbell, arm,scmi-shmem channel) at guest 0x[0-9a-f]*, SPI [0-9]*; 2 clocks, 0 reset domains, 0 power domains" \
    "the controller on the bus with the SDHCI's two clocks" || status=1
for c in clk_xin clk_ahb; do
    l2_log_has "$DEV: synthesized clock $c: host /clock-[a-z0-9-]* at [0-9]* Hz → SCMI clock [01]" \
        "an SCMI clock for $c" || status=1
done
l2_log_has "SCMI: refused a guest message: the guest posted an SCMI message of length 4294967295" \
    "the hostile length said once in the log" || status=1
# The guest used it: messages per protocol, clock enables, doorbells answered by interrupts.
stats=$(grep -o 'platvmm stats: scmi .*' "$L2_LOG" | tail -1)
timing "SCMI:$(echo "$stats" | grep -o -E ' ((base|clock)_messages|clock_enables|doorbells|interrupts|error_replies)=[0-9]+' | tr -d '\n')"
for k in base_messages clock_messages clock_enables doorbells interrupts; do
    v=$(echo "$stats" | sed -n "s/.* $k=\([0-9]*\).*/\1/p")
    [ "${v:-0}" -gt 0 ] || { reason "platvmm stats: $k=${v:-missing} (want > 0): $stats"; status=1; }
done
# Exactly what the hostile messages caused: the guest's own driver causes none of these.
for kv in refused=1 unknown_protocol_messages=1 error_replies=2 bad_accesses=1; do
    k=${kv%=*}
    v=$(echo "$stats" | sed -n "s/.* $k=\([0-9]*\).*/\1/p")
    [ "$v" = "${kv#*=}" ] || { reason "platvmm stats: $k=${v:-missing} (want ${kv#*=}): $stats"; status=1; }
done

# The reboot in place. At the second boot's "reboot-ready", SIGTERM: platvmm presses the power
# button (the guest listens) and the guest powers off.
SD16_MD5=$(sed -n 's/.*platvmm.sd16_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
on_ctl() {
    [ "$1" = reboot-ready ] || return 0
    echo x >>/tmp/scmi.ready
    [ "$(wc -l </tmp/scmi.ready)" -lt 2 ] || kill -TERM "$(pidof platvmm)"
}
rm -f /tmp/scmi.ready
L2_ON_CTL=on_ctl RUST_LOG=info run_l2 scmi-reboot --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --identity-map-ram --scmi on --vfio-platform /sys/bus/platform/devices/$DEV \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=scmi platvmm.after=reboot platvmm.scmi_clocks=sdio1_ref:200000000,lpd_lsbus:100000000 platvmm.disk_modules=sdhci_of_arasan,mmc_block platvmm.disk_dev=mmcblk0 platvmm.disk_mib=16 platvmm.disk_write=0 platvmm.disk_md5=$SD16_MD5"
l2_passed || status=1
passes=$(tr -d '\r' <"$L2_LOG" | grep -c "L2-RESULT: PASS scmi")
[ "$passes" = 2 ] || { reason "reboot: $passes boots passed the SCMI check (2 expected): $(grep 'L2-RESULT' "$L2_LOG" | tr -d '\r' | tr '\n' ';')"; status=1; }
l2_log_has "reboot in place #1: the guest restarts" "a reboot in place" || status=1
l2_log_has "$DEV: reboot: DMA stopped" "SDHCI1's DMA stopped for the new boot" || status=1
took=$(grep -o "reboot in place #1: the guest restarts ([^)]*)" "$L2_LOG" | sed 's/.*(\(.*\))/\1/')
base=$(grep -o 'platvmm stats: scmi .*' "$L2_LOG" | tail -1 | sed -n 's/.* base_messages=\([0-9]*\).*/\1/p')
timing "SCMI reboot in place: 2 boots passed, platvmm's part $took, base_messages=${base:-?} over both"
exit $status
