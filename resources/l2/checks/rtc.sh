# shellcheck shell=sh
# check "rtc": a passed-through PL031 (rtc-pl031 in L2) reads the real time, and two alarms
# in a row each raise its (level) interrupt: the count goes 0 -> 1 -> 2.
# Reports rtc_time=<seconds since the epoch> so L1 can compare it with its own clock.
# Sourced by /init, which provides arg, expect, detail and fail.

rtc=$(rtc_of pl031)
if [ -z "$rtc" ]; then
    fail "no pl031 RTC in /sys/class/rtc ($(echo /sys/class/rtc/*))"
    return 0
fi
detail "rtc_time=$(cat "$rtc/since_epoch")"
detail "dev=$(basename "$(readlink -f "$rtc/device")")"

c0=$(irq_count rtc-pl031)
[ "$c0" = 0 ] || fail "rtc-pl031 IRQ count is '$c0' before any alarm, expected 0"
counts=$c0
for n in 1 2; do
    echo 0 >"$rtc/wakealarm"
    echo +2 >"$rtc/wakealarm" || { fail "cannot set alarm $n"; break; }
    i=0
    while [ $i -lt 20 ] && [ "$(irq_count rtc-pl031)" != "$n" ]; do sleep 0.5; i=$((i + 1)); done
    c=$(irq_count rtc-pl031)
    counts="$counts->$c"
    [ "$c" = "$n" ] || { fail "after alarm $n the IRQ count is $c, expected $n"; break; }
done
detail "irqs=$counts"
