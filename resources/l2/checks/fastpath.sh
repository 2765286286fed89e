# shellcheck shell=sh
# check "fastpath": with the PL031 (mapped) and fw-cfg (trapped) passed through, runs timed
# access loops and alarm IRQs between counter snapshots. Before each phase L2 prints
# "L2-SIGNAL-USR1 <phase>", on which L1 sends platvmm SIGUSR1 (it prints its counters), then
# waits so the snapshot lands before the phase starts. Phases:
#   mapped   N 32-bit reads of the PL031 data register      (expected: 0 exits)
#   trapped  N 8-bit reads of the fw-cfg data register      (expected: exactly N exits)
#   bare     B 32-bit reads of an address nothing claims    (expected: exactly B exits)
#   irqs     3 PL031 alarms (level IRQs)                    (expected: 0 exits, no platvmm
#            thread but the vCPU wakes: L1 samples them at the L2-CTXT markers)
# Sourced by /init, which provides arg, expect, detail and fail.
N=$(arg platvmm.fastpath_n); N=${N:-2000}
B=$(arg platvmm.fastpath_bare); B=${B:-200}

snap() { say "L2-SIGNAL-USR1 $1"; sleep 3; }
node_addr() { for n in /proc/device-tree/"$1"@*; do [ -d "$n" ] && echo $((0x${n##*@})); done; }
# probe NAME ARGS...: runs mmio-probe, records NAME_ns; any failure fails the check (a phase
# that performed no accesses would prove nothing).
probe() {
    _name=$1; shift
    _out=$(mmio-probe "$@" 2>&1) || { fail "$_name: mmio-probe $*: $_out"; return 1; }
    _ns=$(echo "$_out" | sed -n 's/.*ns_per_access=\([0-9]*\).*/\1/p')
    [ -n "$_ns" ] || { fail "$_name: no timing from mmio-probe: $_out"; return 1; }
    detail "${_name}_ns=$_ns"
}

irq_number() { awk '/rtc-pl031/ { sub(/:/, "", $1); print $1; exit }' /proc/interrupts; }

rtc=$(node_addr pl031); fw=$(node_addr fw-cfg)
if [ -z "$rtc" ] || [ -z "$fw" ]; then fail "pl031 or fw-cfg node missing"; return 0; fi
rtcdev=$(rtc_of pl031)

# Warm-up outside the measured phases: platvmm logs the first few unclaimed accesses, which
# would otherwise be counted in the bare-exit timing.
mmio-probe $((0x30000000)) 4 20 >/dev/null 2>&1
snap start
probe mapped "$rtc" 4 "$N"
snap mapped
probe trapped "$fw" 1 "$N"
snap trapped
probe bare $((0x30000000)) 4 "$B"
snap bare
# The wake-up window: its markers go through printk (polled console, handled on the vCPU
# thread), not the tty (interrupt-driven transmit may wake platvmm's event loop), and nothing
# else is printed inside it (detail and fail write files; say comes after the end marker).
# L1 samples platvmm's threads at each marker. The second before it lets platvmm finish the
# snapshot's output; the second after it lets L1 take its sample before the first alarm
# (an "+1" alarm fires within a second).
sleep 1
c0=$(irq_count rtc-pl031)
echo "<2>L2-CTXT irqs-begin" >/dev/kmsg
sleep 1
# Each alarm is due 2 s ahead (a 1 s one can be written just as the counter reaches it: QEMU's
# PL031 then raises it at once and the driver's enable clears it) and the next is set only once
# the RTC core has consumed this one (wakealarm empty): its deferred work re-arms a pending alarm
# in hardware, which would otherwise race the next alarm's setup.
steps=""
for n in 1 2 3; do
    echo 0 >"$rtcdev/wakealarm"; echo +2 >"$rtcdev/wakealarm"
    i=0
    while { [ "$(irq_count rtc-pl031)" = "$((c0 + n - 1))" ] || [ -n "$(cat "$rtcdev/wakealarm")" ]; } &&
        [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
    steps="$steps $(($(irq_count rtc-pl031) - c0))"
done
echo "<2>L2-CTXT irqs-end" >/dev/kmsg
c1=$(irq_count rtc-pl031)
# Interrupts the driver found no alarm for (note_interrupt's count of IRQ_NONE returns).
unhandled=$(awk '/^unhandled/ { print $2 }' "/proc/irq/$(irq_number)/spurious" 2>/dev/null)
detail "alarm_irqs=$((c1 - c0)) after_each_alarm=${steps# } unhandled=${unhandled:-?}"
[ "$((c1 - c0))" = 3 ] || fail "3 alarms raised $((c1 - c0)) interrupts (after each: ${steps# }; unhandled: ${unhandled:-?})"
snap irqs
detail "n=$N bare=$B"
