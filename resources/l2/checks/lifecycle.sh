# shellcheck shell=sh
# check "lifecycle": the guest's side of a pause through the API socket. The guest has a
# passed-through PL031 and a virtio disk (platvmm.disk_md5: the host's md5 of it).
#   1. the disk read whole (md5);
#   2. a PL031 alarm set 5 s ahead (due 4-5 s later: the RTC counts whole seconds), then
#      "L2-CTL pause": L1 pauses the VM through the API (its reader may take a few seconds to
#      get there), holds it paused 6 s and resumes it (tests/integration/scenarios/
#      lifecycle.sh); meanwhile the guest busy-loops on /proc/uptime (no fork, so every step
#      is short), re-arming the alarm whenever it fires before the pause: the pause shows as
#      one step of ~6 s;
#   3. an alarm fell due inside the pause: it was pending at the step before the gap and its
#      interrupt arrives right after it (it waited in the vGIC, not lost); every alarm armed
#      raised exactly one interrupt;
#   4. the disk read whole again.
# Reports gap_ms, alarm_after_gap_ms (from the end of the gap to the alarm consumed) and the
# md5s. With platvmm.after=hold /init then waits
# for L1 to stop the VM through the API.
# Sourced by /init, which provides arg, expect, detail and fail.
want_md5=$(arg platvmm.disk_md5)
rtcdev=$(rtc_of pl031)
[ -n "$rtcdev" ] || { fail "no pl031 RTC"; return 0; }
# Guest uptime in centiseconds, with the shell's builtins only.
uptime_cs() { read -r _up _ </proc/uptime; _c=${_up%.*}${_up#*.}; echo "${_c#0}"; }

disk_md5() {
    modprobe virtio_mmio 2>/dev/null; modprobe virtio_blk 2>/dev/null
    _i=0
    while [ ! -b /dev/vda ] && [ $_i -lt 80 ]; do sleep 0.25; _i=$((_i + 1)); done
    md5sum /dev/vda 2>/dev/null | cut -d' ' -f1
}
m=$(disk_md5)
detail "md5_before=$m"
[ "$m" = "$want_md5" ] || fail "the disk's md5 is '$m' before the pause, the host's is $want_md5"

c0=$(irq_count rtc-pl031)
echo 0 >"$rtcdev/wakealarm"; echo +5 >"$rtcdev/wakealarm"; arms=1
say "L2-CTL pause"
# The loop, builtins only: read /proc/uptime and the pending alarm; re-arm the alarm (5 s
# ahead) each time it fires until the pause is seen, so one is pending whenever L1 gets to
# pause (its reader may be slow); a step of over 5.5 s is the pause. Keep whether the alarm
# was pending at the step before it and when it was consumed after it (the RTC core clears
# it on its interrupt). Ends 3 s after the pause, or after 40 s. Each step reads the alarm,
# then the time: a gap between two time readings holds the pause (and the alarm reading
# between them, which may come after it), and the alarm read one step earlier came before.
t0=$(uptime_cs); prev=$t0; gap=0; pending_before=""; prev_wa=x; gap_end=""; consumed=""
while [ $((prev - t0)) -lt 4000 ] && { [ -z "$gap_end" ] || [ $((prev - gap_end)) -lt 300 ]; }; do
    read -r wa <"$rtcdev/wakealarm" || wa=""
    read -r _up _ </proc/uptime; now=${_up%.*}${_up#*.}; now=${now#0}
    if [ -z "$gap_end" ] && [ $((now - prev)) -gt 550 ]; then
        gap=$((now - prev)); pending_before=$prev_wa; gap_end=$now
    fi
    if [ -z "$wa" ]; then
        if [ -z "$gap_end" ]; then
            echo +5 >"$rtcdev/wakealarm"; arms=$((arms + 1)); wa=x
        elif [ -z "$consumed" ]; then
            consumed=$now
        fi
    fi
    prev_wa=$wa; prev=$now
done
c1=$(irq_count rtc-pl031)
detail "gap_ms=$((gap * 10)) alarms=$arms alarm_irqs=$((c1 - c0)) alarm_after_gap_ms=$(((${consumed:-0} - ${gap_end:-0}) * 10))"
[ -n "$gap_end" ] || fail "no pause seen: the guest's loop never stopped for over 5.5 s in 40 s"
[ -n "$pending_before" ] || fail "no alarm was pending when the pause began"
[ "$((c1 - c0))" = "$arms" ] || fail "$arms alarms raised $((c1 - c0)) interrupts (one each expected; the last after the resume)"
[ -n "$consumed" ] || fail "the alarm due during the pause was still pending 3 s after the resume"
if [ -n "$consumed" ] && [ $((consumed - gap_end)) -gt 100 ]; then
    fail "the alarm was consumed $(((consumed - gap_end) * 10)) ms after the resume (within 1 s expected)"
fi
m=$(md5sum /dev/vda 2>/dev/null | cut -d' ' -f1)
detail "md5_after=$m"
[ "$m" = "$want_md5" ] || fail "the disk's md5 is '$m' after the resume"
