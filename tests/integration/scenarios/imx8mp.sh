#!/bin/sh
# scenario imx8mp: the emulated NXP i.MX 8M Plus EVK (QEMU >= 10.0.3, whose imx8mp-evk wires
# the GIC's virtual interrupts), L1 on Debian's 6.12 with the upstream imx8mp-evk.dtb,
# unchanged: KVM in nVHE mode, vfio-platform, and four devices clocked by the CCM (clock
# indices a guest cannot use), each driven in L2 by its stock driver.
#   L1 baselines: its own sdhci-esdhc-imx reads the SD card in uSDHC2 (md5 equal to the
#       host's, MB/s), its i2c-imx + at24 read the EEPROM behind I2C2, its serial_imx exchanges
#       64 lines on UART1, its fec downloads the file; then UART1, uSDHC2, I2C2, WDOG1 and the
#       FEC go to vfio-platform.
#   L2, fixed clocks: platvmm names every clock as Linux's clk-imx8mp does, reads its rate in
#       L1's debugfs and gives the guest a fixed clock at that rate; the host's aliases
#       (serial0, taken by the console in the guest, becomes serial1); serial_imx probes.
#   L2, --scmi on (what users run): the SCMI controller on the SMC transport (L1's 6.12 KVM
#       forwards the call); the clock framework reads the CCM clocks at L1's rates through
#       SCMI, and the devices work: serial_imx exchanges 64 lines with the host's peer on
#       UART1's chardev, sdhci-esdhc-imx reads the card (md5, MB/s) and writes a token the
#       host finds in the image, i2c-imx + at24 read the EEPROM the host filled, imx2_wdt keeps
#       a 3 s WDOG alive for 8 s (missed pings would reset the board).
#   Afterwards L1 takes the WDOG back with its own imx2_wdt (it cannot be stopped).
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
UART=30860000.serial MMC=30b50000.mmc I2C=30a30000.i2c WDOG=30280000.watchdog FEC=30be0000.ethernet
SNVS=30370000.snvs RTC_SET=2000000000
cmdline_arg() { sed -n "s/.*$1=\([0-9a-f]*\).*/\1/p" /proc/cmdline; }
SD_MD5=$(cmdline_arg platvmm.disk_md5) SD_TOKEN=$(cmdline_arg platvmm.dma_token)
EEPROM_MD5=$(cmdline_arg platvmm.eeprom_md5) NET_MD5=$(cmdline_arg platvmm.net_md5)
NET_URL=$(sed -n 's/.*platvmm.net_url=\([^ ]*\).*/\1/p' /proc/cmdline)
NET_BYTES=$(sed -n 's/.*platvmm.net_bytes=\([0-9]*\).*/\1/p' /proc/cmdline)
grep -q 'Hyp nVHE mode initialized successfully' /dev/kmsg 2>/dev/null ||
    dmesg | grep -q 'Hyp nVHE mode initialized successfully' || { reason "L1's KVM did not start in nVHE mode"; exit 1; }
# uSDHC2 is mmc1 in the EVK's aliases.
l1_disk_baseline mmcblk1 "$SD_MD5" || exit 1
l1_eeprom_baseline() {
    _a=
    for _p in "/sys/bus/platform/devices/$I2C"/i2c-[0-9]*; do [ -e "$_p" ] && _a=${_p##*/}; done
    [ -n "$_a" ] || { reason "L1's i2c-imx registered no adapter for $I2C"; return 1; }
    echo 24c32 0x50 >"/sys/bus/i2c/devices/$_a/new_device"
    _t0=$(now)
    _got=$(md5sum "/sys/bus/i2c/devices/${_a#i2c-}-0050/eeprom" | cut -d' ' -f1)
    timing "L1 native: EEPROM read (4 KiB) in $(awk -v a="$_t0" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms"
    echo "0x50" >"/sys/bus/i2c/devices/$_a/delete_device"
    [ "$_got" = "$EEPROM_MD5" ] || { reason "L1 itself reads the EEPROM as $_got, not $EEPROM_MD5"; return 1; }
}
l1_eeprom_baseline || exit 1
# shellcheck source=resources/shared/uart-exchange.sh
. /lib/platvmm/uart-exchange.sh
r=$(uart_exchange ttymxc0 64) || { reason "L1's own serial_imx on UART1: $r"; exit 1; }
timing "L1 native: UART $r"
l1_net_baseline "$NET_URL" "$NET_MD5" "$NET_BYTES" || exit 1
# The fec driver cannot be unbound from a device (no unbind in sysfs): it leaves with its module.
rmmod fec || { reason "cannot unload L1's fec to free $FEC"; exit 1; }
# The SNVS's RTC (a child of the SNVS syscon, its registers the parent's) through L1's own
# rtc-snvs; then platvmm bind --children gives the SNVS and its children (the RTC's and the
# power key's interrupts are theirs) to vfio-platform.
snvs_rtc() {
    for _r in /sys/class/rtc/rtc*; do
        case $(readlink -f "$_r/device") in *snvs-rtc-lp) echo "$_r"; return ;; esac
    done
}
modprobe rtc_snvs || { reason "L1 cannot load rtc_snvs"; exit 1; }
l1_rtc=$(cat "$(snvs_rtc)/since_epoch" 2>/dev/null)
echo "$SCENARIO: L1's rtc-snvs reads ${l1_rtc:-nothing} (L1 clock $(date +%s))"
[ -n "$l1_rtc" ] || { reason "L1's own rtc-snvs registered no RTC"; exit 1; }
"$PLATVMM" bind --noiommu --children /sys/bus/platform/devices/$SNVS >/tmp/bind.txt 2>&1 ||
    { reason "platvmm bind --children $SNVS: $(tail -1 /tmp/bind.txt)"; exit 1; }
for d in $UART $MMC $I2C $WDOG $FEC; do
    vfio_bind platform "$d" vfio-platform || { reason "cannot bind $d to vfio-platform"; exit 1; }
done
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
rate() { cat "/sys/kernel/debug/clk/$1/clk_rate"; }
clocks=
for c in uart1_root_clk ipg_root nand_usdhc_bus usdhc2_root_clk i2c2_root_clk wdog1_root_clk; do
    clocks="$clocks${clocks:+,}$c:$(rate $c)"
done
DEVS="--vfio-platform /sys/bus/platform/devices/$UART --vfio-platform /sys/bus/platform/devices/$MMC
      --vfio-platform /sys/bus/platform/devices/$I2C --vfio-platform /sys/bus/platform/devices/$WDOG
      --vfio-platform /sys/bus/platform/devices/$FEC --vfio-platform /sys/bus/platform/devices/$SNVS,group=on"
# shellcheck disable=SC2086 # DEVS is words
RUST_LOG=info run_l2 imx8mp --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M $DEVS \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=imx8mp platvmm.expect_clocks=$clocks platvmm.expect_aliases=serial1,mmc1,i2c1 platvmm.expect_tty=ttymxc1"
l2_passed || status=1
# Every clock named after clk-imx8mp, its rate read from L1's clock framework.
for c in "$UART ipg uart1_root_clk" "$UART per uart1_root_clk" "$MMC ipg ipg_root" \
         "$MMC ahb nand_usdhc_bus" "$MMC per usdhc2_root_clk" "$I2C 0 i2c2_root_clk" "$WDOG 0 wdog1_root_clk"; do
    # shellcheck disable=SC2086 # three words
    set -- $c
    l2_log_has "$1: synthesized clock $2: host [^ ]*clock-controller@30380000-[0-9]* at [1-9][0-9]* Hz (debugfs clk_rate) → guest fixed clock /clock-$3" \
        "$1's $2 clock as $3, its rate from L1's debugfs" || status=1
done
l2_log_has "$UART: synthesized alias serial1 → /serial@[0-9a-f]* (the host's serial0: taken in the guest)" "UART1's alias" || status=1
l2_log_has "$MMC: synthesized alias mmc1 → /mmc@[0-9a-f]* (as on the host)" "uSDHC2's alias" || status=1
l2_log_has "$SNVS: synthesized group member $SNVS:snvs-rtc-lp nested as snvs-rtc-lp, no registers of its own" \
    "the SNVS's RTC cell nested with its interrupts" || status=1
l2_log_has "$MMC: synthesized mmc@30b50000 'vmmc-supply': host regulator /regulator-usdhc2 (3300 mV) → guest fixed regulator" \
    "uSDHC2's supply as a fixed regulator" || status=1
# (The SNVS cells' clock, IMX8MP_CLK_SNVS_ROOT, is one Linux's clk-imx8mp does not register:
# no rate to give, and rtc-snvs's clock is optional.)
grep "dropped 'clocks'\\|dropped 'phy-handle'" "$L2_LOG" | grep -qv snvs &&
    { reason "platvmm dropped clocks or the FEC's phy-handle"; status=1; }

# The same devices with --scmi on, doing real work. L1's 6.12 KVM has the SMCCC filter, so
# the guest's SCMI agent reaches platvmm by SMC (arm,scmi-smc).
# shellcheck disable=SC2086 # DEVS is words
RUST_LOG=info run_l2 imx8mp-scmi --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M --stats \
    --scmi on --identity-map-ram $DEVS \
    --cmdline "console=ttyS0 panic=-1 platvmm.check=imx8mp platvmm.expect_scmi_clocks=$clocks platvmm.expect_aliases=serial1,mmc1,i2c1 platvmm.expect_tty=ttymxc1 platvmm.uart_lines=64 platvmm.eeprom_md5=$EEPROM_MD5 platvmm.wdog_keepalive=8 platvmm.disk_modules=fixed,sdhci_esdhc_imx,mmc_block platvmm.disk_dev=mmcblk1 platvmm.disk_md5=$SD_MD5 platvmm.dma_token=$SD_TOKEN platvmm.net_modules=fec platvmm.net_url=$NET_URL platvmm.net_md5=$NET_MD5 platvmm.net_bytes=$NET_BYTES platvmm.rtc_set=$RTC_SET"
if l2_passed; then
    l2_disk_report
    l2_net_report
    timing "L2 passthrough: UART $(l2_result | grep -o -E 'uart_lines=[0-9]+ uart_lines_per_s=[0-9]+'); $(l2_result | grep -o -E '(eeprom_read_ms|wdog_kept_alive_s)=[0-9]+' | tr '\n' ' ')"
else
    status=1
fi
l2_log_has "SCMI system controller: SMC transport (arm,scmi-smc: function 0x82000010 forwarded by KVM's SMCCC filter; arm,scmi-shmem channel at guest 0x[0-9a-f]*); 11 clocks, 0 reset domains, 0 power domains" \
    "the SCMI controller on the SMC transport with the eleven CCM clocks" || status=1
smccc=$(grep -o 'platvmm stats: vm exits .*' "$L2_LOG" | tail -1 | sed -n 's/.* smccc=\([0-9]*\).*/\1/p')
scmi=$(grep -o 'platvmm stats: scmi .*' "$L2_LOG" | tail -1)
timing "SCMI over SMC: smccc_exits=${smccc:-?}$(echo "$scmi" | grep -o -E ' ((base|clock)_messages|clock_enables|doorbells|interrupts)=[0-9]+' | tr -d '\n')"
[ "${smccc:-0}" -gt 0 ] || { reason "no forwarded SMC counted (smccc=${smccc:-missing})"; status=1; }
for k in base_messages clock_messages clock_enables doorbells; do
    v=$(echo "$scmi" | sed -n "s/.* $k=\([0-9]*\).*/\1/p")
    [ "${v:-0}" -gt 0 ] || { reason "platvmm stats: $k=${v:-missing} (want > 0): $scmi"; status=1; }
done

# L1 takes the SNVS back and reads the time L2 set in its RTC.
for d in $SNVS $(cd /sys/bus/platform/devices && echo "$SNVS":*); do
    echo >"/sys/bus/platform/devices/$d/driver_override"
    echo "$d" >/sys/bus/platform/drivers/vfio-platform/unbind 2>/dev/null
    echo "$d" >/sys/bus/platform/drivers_probe 2>/dev/null
done
t=$(cat "$(snvs_rtc)/since_epoch" 2>/dev/null)
echo "$SCENARIO: after L2, L1's rtc-snvs reads ${t:-nothing}"
if [ -z "$t" ] || [ "$t" -lt $RTC_SET ] || [ "$t" -gt $((RTC_SET + 300)) ]; then
    reason "L1 reads the SNVS RTC as '${t:-nothing}' after L2 set it to $RTC_SET"; status=1
fi

# The WDOG keeps counting: L1's own imx2_wdt (loaded only now: it cannot be unbound) takes it
# back from vfio-platform and its watchdog core feeds it.
echo >"/sys/bus/platform/devices/$WDOG/driver_override"
echo "$WDOG" >/sys/bus/platform/drivers/vfio-platform/unbind
modprobe imx2_wdt
[ "$(basename "$(readlink "/sys/bus/platform/devices/$WDOG/driver")")" = imx2-wdt ] ||
    { reason "L1's imx2_wdt did not take $WDOG back from vfio-platform"; status=1; }
exit $status
