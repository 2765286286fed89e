# shellcheck shell=sh
# check "scmi": the guest's SCMI system controller (platvmm's, over the bcm2835 mailbox
# transport, all built into Debian's kernel) serves the passed device's clocks, then the
# device does real work with them (check "disk", sourced after).
#   platvmm.scmi_clocks=NAME:HZ,...  SCMI clocks L2's clock framework must have, at these rates
#   (and every argument of check "disk")
# Sourced by /init, which provides arg, expect, detail and fail.
mount -t debugfs none /sys/kernel/debug 2>/dev/null
banner=$(dmesg | grep -o "SCMI Protocol v[0-9.]* '[^']*' Firmware version 0x[0-9a-f]*" | head -1)
[ -n "$banner" ] || fail "the arm-scmi driver did not talk to the platform (no 'SCMI Protocol' line): $(dmesg | grep -i -E 'scmi|mbox|mailbox' | tail -3 | tr '\n' ' ')"
detail "banner=$(echo "$banner" | tr ' ' '_')"
n=0
for c in $(arg platvmm.scmi_clocks | tr ',' ' '); do
    name=${c%%:*} hz=${c#*:}
    got=$(cat "/sys/kernel/debug/clk/$name/clk_rate" 2>/dev/null)
    [ "$got" = "$hz" ] || fail "SCMI clock $name: L2 reads '${got:-no such clock}', the host rate is $hz"
    n=$((n + 1))
done
detail "scmi_clocks_ok=$n"
# The consumers: the clocks the passed device enabled through SCMI.
enabled=$(awk '$1 ~ /^[a-z]/ && $2 > 0 { n++ } END { print n + 0 }' /sys/kernel/debug/clk/clk_summary)
detail "clocks_enabled=$enabled"
# shellcheck source=resources/l2/checks/disk.sh
. /checks/disk.sh
