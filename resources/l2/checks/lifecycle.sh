# shellcheck shell=sh
# check "lifecycle": the guest's side of a pause through the API socket. The guest has a
# passed-through PL031 and a virtio disk (platvmm.disk_md5: the host's md5 of it).
#   1. the disk read whole (md5);
#   2. a PL031 alarm set 3 s ahead, then "L2-CTL pause": L1 pauses the VM at once through the
#      API, holds it paused 4 s and resumes it (tests/integration/scenarios/lifecycle.sh);
#      meanwhile the guest busy-loops on /proc/uptime (no fork, so every step is short) and
#      records its largest step: the pause shows as one gap of about 4 s;
#   3. the alarm fell due inside the pause: it was still pending at the last step before the
#      gap and its interrupt arrives right after the gap (it waited in the vGIC, not lost);
#   4. the disk read whole again.
# Reports gap_ms, alarm_after_gap_ms (from the end of the gap to the alarm consumed) and the
# md5s. With platvmm.after=hold /init then waits
# for L1 to stop the VM through the API.
# Sourced by /init, which provides arg, expect, detail and fail.
want_md5=$(arg platvmm.disk_md5)
rtcdev=""
for r in /sys/class/rtc/rtc*; do case $(readlink -f "$r/device") in *pl031*) rtcdev=$r ;; esac; done
[ -n "$rtcdev" ] || { fail "no pl031 RTC"; return 0; }
irq_count() {
    awk '/rtc-pl031/ { s = 0; for (i = 2; i <= NF; i++) { if ($i ~ /^[0-9]+$/) s += $i; else break }
         print s; exit }' /proc/interrupts
}
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

c0=$(irq_count)
echo 0 >"$rtcdev/wakealarm"; echo +3 >"$rtcdev/wakealarm"
say "L2-CTL pause"
# The loop: read /proc/uptime and the pending alarm (builtins only) until 10 s have passed;
# keep the largest step and whether the alarm was pending just before it.
# Also when the alarm stopped being pending (the RTC core consumed it on its interrupt).
t0=$(uptime_cs); prev=$t0; gap=0; pending_before=""; wa=x; gap_end=0; consumed=""
while [ $((prev - t0)) -lt 1000 ]; do
    read -r _up _ </proc/uptime; now=${_up%.*}${_up#*.}; now=${now#0}
    if [ $((now - prev)) -gt "$gap" ]; then gap=$((now - prev)); pending_before=$wa; gap_end=$now; fi
    read -r wa <"$rtcdev/wakealarm" || wa=""
    [ -n "$wa" ] || [ -n "$consumed" ] || consumed=$now
    prev=$now
done
c1=$(irq_count)
detail "gap_ms=$((gap * 10)) alarm_irqs=$((c1 - c0)) alarm_after_gap_ms=$(((${consumed:-0} - gap_end) * 10))"
[ "$gap" -ge 350 ] || fail "the largest step of the guest's loop was $((gap * 10)) ms (a 4 s pause expected)"
[ -n "$pending_before" ] || fail "the alarm was no longer pending before the pause (it fired too early to test the pause)"
[ "$((c1 - c0))" = 1 ] || fail "the alarm due during the pause raised $((c1 - c0)) interrupts (1 expected, after the resume)"
[ -n "$consumed" ] || fail "the alarm is still pending after the loop"
if [ -n "$consumed" ] && { [ "$consumed" -lt "$gap_end" ] || [ $((consumed - gap_end)) -gt 100 ]; }; then
    fail "the alarm was consumed at $consumed cs, the pause ended at $gap_end cs (within 1 s after expected)"
fi
m=$(md5sum /dev/vda 2>/dev/null | cut -d' ' -f1)
detail "md5_after=$m"
[ "$m" = "$want_md5" ] || fail "the disk's md5 is '$m' after the resume"
