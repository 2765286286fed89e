# shellcheck shell=sh
# check "gpio": a passed-through PL061 with a gpio-keys node on its line 3 (from platvmm's
# overlays). L2 loads gpio_keys, announces "L2-GPIO-READY" so the host presses the board's
# power button, and must see the key's interrupt (count 0 -> 1).
# Sourced by /init, which provides arg, expect, detail and fail.

key_irqs() {
    awk '/GPIO Key Poweroff/ { s = 0; for (i = 2; i <= NF; i++) { if ($i ~ /^[0-9]+$/) s += $i; else break }
         print s; found = 1; exit } END { if (!found) print "none" }' /proc/interrupts
}

modprobe gpio_keys || fail "modprobe gpio_keys failed"
i=0
while [ "$(key_irqs)" = none ] && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
c0=$(key_irqs)
[ "$c0" = 0 ] || { fail "GPIO Key Poweroff IRQ count is '$c0' before the press"; return 0; }
say L2-GPIO-READY
i=0
while [ "$(key_irqs)" = 0 ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
c1=$(key_irqs)
detail "key_irqs=$c0->$c1"
[ "$c1" -ge 1 ] 2>/dev/null || fail "no key interrupt after the power button press (count $c1)"
