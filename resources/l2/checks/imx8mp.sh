# shellcheck shell=sh
# check "imx8mp": the imx8mp scenario's L2, given i.MX 8M Plus UART1, uSDHC2, I2C2 and WDOG1.
# The guest tree (clocks, aliases, SCMI) and, where asked, each device doing real work with
# its stock driver.
#   platvmm.expect_clocks=NAME:HZ,...   guest fixed clocks /clock-NAME with these rates
#   platvmm.expect_aliases=A,...        /aliases entries that must name passed nodes
#   platvmm.expect_tty=NAME             a tty serial_imx registered (its alias's line)
#   platvmm.expect_scmi_clocks=NAME:HZ,...  (with --scmi on) arm-scmi reached platvmm and
#                                       the clock framework reads these SCMI clocks' rates
#   platvmm.uart_lines=N                N lines "platvmm-uart I PAYLOAD" out of the tty, each
#                                       answered by the host's uart-peer.py with the md5 of
#                                       PAYLOAD, which must come back right
#   platvmm.eeprom_md5=MD5              i2c_imx + at24: a 24C32 at 0x50 on the passed
#                                       adapter reads back with this md5
#   platvmm.wdog_keepalive=S            imx2_wdt: a 3 s timeout kept alive for S seconds (if
#                                       the pings did not reach the WDOG, QEMU would reset
#                                       the board), then the timeout set to 120 s for L1
#   platvmm.disk_*                      uSDHC2's card read and written by the "disk" check
#   platvmm.net_*                       the FEC's DHCP and download by the "net" check
#   platvmm.rtc_set=EPOCH               rtc-snvs (the SNVS's RTC child): the time read, then
#                                       the RTC set to EPOCH and read back (L1 reads it after)
# Sourced by /init, which provides arg, expect, detail and fail.
be32() { [ -f "$1" ] && echo $((0x$(od -An -v -tx1 -N4 "$1" | tr -d ' \n'))); }

tree_checks() {
    for c in $(arg platvmm.expect_clocks | tr ',' ' '); do
        name=${c%%:*} want=${c#*:}
        got=$(be32 "/proc/device-tree/clock-$name/clock-frequency")
        [ "$got" = "$want" ] || fail "clock-$name: clock-frequency '${got:-absent}', L1's debugfs says $want"
    done
    [ -z "$(arg platvmm.expect_clocks)" ] || detail "clocks_ok"
    for a in $(arg platvmm.expect_aliases | tr ',' ' '); do
        p=$(tr -d '\0' <"/proc/device-tree/aliases/$a" 2>/dev/null)
        if [ -z "$p" ] || [ ! -d "/proc/device-tree$p" ]; then
            fail "alias $a: '${p:-absent}' names no node"
            continue
        fi
        detail "$a=$p"
    done
}

scmi_checks() {
    banner=$(dmesg | grep -o "SCMI Protocol v[0-9.]* '[^']*'.*" | head -1)
    [ -n "$banner" ] || fail "arm-scmi printed no SCMI Protocol banner"
    detail "scmi=\"$banner\""
    mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    for c in $(echo "$1" | tr ',' ' '); do
        name=${c%%:*} want=${c#*:}
        got=$(cat "/sys/kernel/debug/clk/$name/clk_rate" 2>/dev/null)
        [ "$got" = "$want" ] || fail "SCMI clock $name: rate '${got:-absent}', L1's debugfs says $want"
    done
    detail "scmi_clocks_ok"
}

# eeprom_read MD5: the 24C32 behind the passed I2C adapter, through i2c_imx and at24.
eeprom_read() {
    if ! modprobe i2c_imx || ! modprobe at24; then fail "cannot load i2c_imx/at24"; return; fi
    adapter=
    for a in /sys/bus/platform/devices/*.i2c/i2c-[0-9]*; do [ -e "$a" ] && adapter=${a##*/}; done
    [ -n "$adapter" ] || { fail "i2c_imx registered no adapter for the passed I2C"; return; }
    echo 24c32 0x50 >"/sys/bus/i2c/devices/$adapter/new_device"
    n=${adapter#i2c-}
    t0=$(cut -d' ' -f1 /proc/uptime)
    got=$(md5sum "/sys/bus/i2c/devices/$n-0050/eeprom" 2>/dev/null | cut -d' ' -f1)
    t1=$(cut -d' ' -f1 /proc/uptime)
    [ "$got" = "$1" ] || { fail "EEPROM on $adapter reads md5 '${got:-nothing}', the host wrote $1"; return; }
    detail "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "eeprom_ok eeprom_read_ms=%.0f", (b - a) * 1000 }')"
}

# wdog_keepalive S: busybox watchdog pings a 3 s timeout every second for S seconds.
wdog_keepalive() {
    modprobe imx2_wdt || { fail "cannot load imx2_wdt"; return; }
    [ -c /dev/watchdog ] || { fail "imx2_wdt registered no /dev/watchdog"; return; }
    watchdog -F -T 3 -t 1 /dev/watchdog & pid=$!
    sleep "$1"
    kill $pid; wait $pid 2>/dev/null
    # The WDOG cannot be stopped: leave L1 a long timeout (the kernel pings it until L2 ends).
    watchdog -F -T 120 -t 60 /dev/watchdog & pid=$!
    sleep 1; kill $pid; wait $pid 2>/dev/null
    t=$(cat /sys/class/watchdog/watchdog0/timeout 2>/dev/null)
    [ "$t" = 120 ] || fail "watchdog timeout reads '${t:-nothing}' after setting 120"
    detail "wdog_kept_alive_s=$1"
}

tree_checks
scmi=$(arg platvmm.expect_scmi_clocks)
[ -z "$scmi" ] || scmi_checks "$scmi"
tty=$(arg platvmm.expect_tty)
if [ -e "/sys/class/tty/$tty" ]; then
    detail "$tty=$(basename "$(readlink -f "/sys/class/tty/$tty/device")")"
else
    fail "no /sys/class/tty/$tty: serial_imx did not probe the passed UART"
fi
if [ -n "$(arg platvmm.uart_lines)" ]; then
    # shellcheck source=resources/shared/uart-exchange.sh
    . /lib/platvmm/uart-exchange.sh
    if r=$(uart_exchange "$tty" "$(arg platvmm.uart_lines)"); then detail "$r"; else fail "UART: $r"; fi
fi
[ -z "$(arg platvmm.eeprom_md5)" ] || eeprom_read "$(arg platvmm.eeprom_md5)"
[ -z "$(arg platvmm.wdog_keepalive)" ] || wdog_keepalive "$(arg platvmm.wdog_keepalive)"
# rtc_snvs EPOCH: the SNVS RTC read, set to EPOCH (hwclock from the system clock) and read back.
rtc_snvs() {
    modprobe rtc_snvs || { fail "cannot load rtc_snvs"; return; }
    rtc=
    for r in /sys/class/rtc/rtc*; do
        case $(readlink -f "$r/device") in *snvs-rtc-lp) rtc=${r##*/} ;; esac
    done
    [ -n "$rtc" ] || { fail "rtc-snvs registered no RTC"; return; }
    detail "snvs_rtc_time=$(cat "/sys/class/rtc/$rtc/since_epoch")"
    if ! date -s "@$1" >/dev/null || ! hwclock -u -w -f "/dev/$rtc"; then fail "setting $rtc failed"; return; fi
    t=$(cat "/sys/class/rtc/$rtc/since_epoch")
    if [ "$t" -lt "$1" ] || [ "$t" -gt $(($1 + 5)) ]; then fail "$rtc reads $t after being set to $1"; return; fi
    detail "snvs_rtc_set=$t"
}
[ -z "$(arg platvmm.rtc_set)" ] || rtc_snvs "$(arg platvmm.rtc_set)"
# shellcheck source=resources/l2/checks/disk.sh
[ -z "$(arg platvmm.disk_md5)" ] || . /checks/disk.sh
# shellcheck source=resources/l2/checks/net.sh
[ -z "$(arg platvmm.net_url)" ] || . /checks/net.sh
