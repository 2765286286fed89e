# shellcheck shell=sh
# check "gpio": a passed-through PL061 with a gpio-keys node on its line 3 (from platvmm's
# overlays). L2 loads gpio_keys, announces "L2-GPIO-READY" so the host presses the board's
# power button, and must see the key's interrupt (count 0 -> 1).
# Sourced by /init, which provides arg, expect, detail and fail.

modprobe gpio_keys || fail "modprobe gpio_keys failed"
i=0
while [ "$(irq_count 'GPIO Key Poweroff')" = none ] && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
c0=$(irq_count 'GPIO Key Poweroff')
[ "$c0" = 0 ] || { fail "GPIO Key Poweroff IRQ count is '$c0' before the press"; return 0; }
say L2-GPIO-READY
i=0
while [ "$(irq_count 'GPIO Key Poweroff')" = 0 ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
c1=$(irq_count 'GPIO Key Poweroff')
detail "key_irqs=$c0->$c1"
[ "$c1" -ge 1 ] 2>/dev/null || fail "no key interrupt after the power button press (count $c1)"
