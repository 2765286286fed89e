# shellcheck shell=sh
# check "imx8mp-probe": the guest tree the imx8mp-probe scenario's L2 gets for i.MX 8M Plus
# UART1 and uSDHC2, and serial_imx (built in) probing the UART. Nothing here waits for an
# interrupt or a timer: on QEMU 10.0.2's imx8mp-evk no virtual interrupt reaches L2.
#   platvmm.expect_clocks=NAME:HZ,...   guest fixed clocks /clock-NAME with these rates
#   platvmm.expect_aliases=A,...        /aliases entries that must name passed nodes
#   platvmm.expect_tty=NAME             a tty serial_imx registered (its alias's line)
#   platvmm.expect_scmi_clocks=NAME:HZ,...  (with --scmi on) arm-scmi reached platvmm and
#                                       the clock framework reads these SCMI clocks' rates
# Sourced by /init, which provides arg, expect, detail and fail.
be32() { [ -f "$1" ] && echo $((0x$(od -An -v -tx1 -N4 "$1" | tr -d ' \n'))); }
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
scmi=$(arg platvmm.expect_scmi_clocks)
if [ -n "$scmi" ]; then
    banner=$(dmesg | grep -o "SCMI Protocol v[0-9.]* '[^']*'.*" | head -1)
    [ -n "$banner" ] || fail "arm-scmi printed no SCMI Protocol banner"
    detail "scmi=\"$banner\""
    mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    for c in $(echo "$scmi" | tr ',' ' '); do
        name=${c%%:*} want=${c#*:}
        got=$(cat "/sys/kernel/debug/clk/$name/clk_rate" 2>/dev/null)
        [ "$got" = "$want" ] || fail "SCMI clock $name: rate '${got:-absent}', L1's debugfs says $want"
    done
    detail "scmi_clocks_ok"
fi
tty=$(arg platvmm.expect_tty)
if [ -e "/sys/class/tty/$tty" ]; then
    detail "$tty=$(basename "$(readlink -f "/sys/class/tty/$tty/device")")"
else
    fail "no /sys/class/tty/$tty: serial_imx did not probe the passed UART"
fi
