#!/bin/sh
# shellcheck disable=SC2317 # the hooks are called by run_l2 (L2_ON_CTL)
# scenario lifecycle: a VM with a passed-through PL031 and a virtio disk, run with
# --api-socket and --cpus 2,affinity=0:1,1:0,vmm=0 (L1 has CPUs 0 and 1), driven through
# `platvmm ctl`:
#   - at the guest's "L2-CTL pause" (resources/l2/checks/lifecycle.sh): pause, 6 s paused
#     (the vCPU threads use no CPU time meanwhile; `ctl info` says paused), resume; the guest
#     sees one 6 s gap in its busy loop, and the PL031 alarm due inside the pause arrives
#     right after it; its disk reads the same before and after;
#   - once the guest has its result and waits for its power button (platvmm.after=
#     power-button, gpio_keys loaded): `ctl info` (vCPUs, the PL031's guest address and SPI,
#     the virtio disk) and `ctl stats` parsed; hostile requests (garbage, a 1 MB body, an
#     unknown route, a wrong method, a client that connects and never sends) each get an error
#     reply and the VM keeps answering; the vCPU, event-loop and worker threads sit on the
#     CPUs asked for; `ctl power-button`: the guest reads EV_KEY KEY_POWER, syncs and powers
#     off, exit status 0.
# Then three more VMs: SIGTERM presses the button (the guest powers off, exit 0); `ctl stop`
# ends a guest that waits (exit 0); three reboots in place (two the guest's, one `ctl
# reboot` of the VM paused, which stays paused until `ctl resume`), the PL031's alarm
# interrupt and the disk checked on every boot, one platvmm and one set of VFIO fds
# throughout, reboot-in-place time against a full start.
# shellcheck source=tests/integration/scenarios/lib/common.sh
. /scenarios/lib/common.sh
status=0
DEV=9010000.pl031
SOCK=/tmp/platvmm.sock
IMG=/tmp/lifecycle.img

vfio_bind amba $DEV vfio-amba || { reason "cannot bind $DEV to vfio-amba"; exit 1; }
dd if=/dev/urandom of=$IMG bs=1M count=4 2>/dev/null
MD5=$(md5sum $IMG | cut -d' ' -f1)

ctl() { "$PLATVMM" ctl "$SOCK" "$@" 2>&1; }
# Sum of the vCPU threads' user + system CPU time (clock ticks).
vcpu_ticks() {
    _pid=$(pidof platvmm | cut -d' ' -f1)
    awk '$2 ~ /^\(vcpu[0-9]+\)$/ { s += $14 + $15 } END { print s + 0 }' /proc/"$_pid"/task/*/stat
}
# One line per platvmm thread: NAME CPUS_ALLOWED_LIST.
thread_cpus() {
    _pid=$(pidof platvmm | cut -d' ' -f1)
    for _st in /proc/"$_pid"/task/*/status; do
        awk '/^Name:/ { n = $2 } /^Cpus_allowed_list:/ { c = $2 } END { print n, c }' "$_st"
    done
}
# raw NAME: sends standard input as a request; prints "NAME STATUS".
raw() { echo "$1 $("$PLATVMM" ctl "$SOCK" raw 2>&1 | cut -d' ' -f1)"; }

# `ctl reboot` of a paused VM: the reboot runs, and the VM stays paused at the start of its
# new boot (vm.info says "paused" once the reboot is done; its vCPU threads use no CPU time
# for 2 s) until `ctl resume`. Records "TICKS_BEFORE TICKS_AFTER" of those 2 s.
paused_reboot() {
    ctl pause >/tmp/lc.reboot-pause
    ctl reboot >/tmp/lc.reboot
    _i=0
    while [ "$_i" -lt 50 ]; do
        ctl info >/tmp/lc.reboot-info
        grep -q '"state": "paused"' /tmp/lc.reboot-info && break
        sleep 0.1; _i=$((_i + 1))
    done
    _t0=$(vcpu_ticks); sleep 2; echo "$_t0 $(vcpu_ticks)" >/tmp/lc.reboot-held
    now >>/tmp/lc.rebooting
    ctl resume >/tmp/lc.reboot-resume
}

# The hooks run at the guest's "L2-CTL WORD" lines (run_l2's L2_ON_CTL).
on_ctl() {
    case $1 in
        pause) pause_window ;;
        power-button-ready)
            if [ "$LC_MODE" = sigterm ]; then
                kill -TERM "$(pidof platvmm)"
            else
                api_checks
                ctl power-button >/tmp/lc.press
            fi ;;
        hold) ctl stop >/tmp/lc.stop ;;
        booted) now >>/tmp/lc.booted ;;
        rebooting) now >>/tmp/lc.rebooting ;;
        reboot-ready)
            echo "$(pidof platvmm) $(vfio_fds)" >>/tmp/lc.ready
            # The second reboot is the host's (`ctl reboot`, while the guest waits for its
            # button), made paused; after three, the power button ends it.
            case $(wc -l </tmp/lc.ready) in
                2) paused_reboot ;;
                [4-9]) ctl power-button >/tmp/lc.press-reboot ;;
            esac ;;
    esac
}

# The running platvmm's VFIO file descriptors (groups, container, devices), as one word.
vfio_fds() {
    _pid=$(pidof platvmm | cut -d' ' -f1)
    for _f in /proc/"$_pid"/fd/*; do
        _t=$(readlink "$_f")
        case $_t in /dev/vfio/* | *vfio-device*) echo "${_f##*/}=$_t" ;; esac
    done | sort | tr '\n' ','
}

pause_window() {
    _t0=$(now)
    ctl pause >/tmp/lc.pause || reason "ctl pause: $(cat /tmp/lc.pause)"
    _t1=$(now)
    _c0=$(vcpu_ticks)
    sleep 6
    _c1=$(vcpu_ticks)
    ctl info >/tmp/lc.info-paused
    ctl resume >/tmp/lc.resume || reason "ctl resume: $(cat /tmp/lc.resume)"
    sleep 1
    echo "$_c0 $_c1 $(vcpu_ticks) $(elapsed "$_t0" "$_t1")" >/tmp/lc.ticks
}

api_checks() {
    ctl info >/tmp/lc.info
    ctl stats >/tmp/lc.stats
    thread_cpus >/tmp/lc.cpus
    {
        sleep 60 | "$PLATVMM" ctl "$SOCK" raw >/dev/null 2>&1 &
        printf 'garbage\r\n\r\n' | raw garbage
        { printf 'PUT /api/v1/vm.stop HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n'; head -c 1000000 /dev/zero; } | raw huge
        printf 'PUT /api/v1/vm.format HTTP/1.1\r\n\r\n' | raw unknown
        printf 'GET /api/v1/vm.pause HTTP/1.1\r\n\r\n' | raw method
        ctl info >/tmp/lc.info-after-bad && echo "info-after-bad 200"
        kill "$(pidof sleep)" 2>/dev/null
    } >/tmp/lc.bad
}

# run_vm MODE AFTER CHECK EXTRA-ARGS...: one VM with the PL031, the disk and the API socket.
run_vm() {
    LC_MODE=$1 _after=$2 _check=$3; shift 3
    L2_ON_CTL=on_ctl RUST_LOG=info \
        run_l2 "lifecycle-$LC_MODE" --kernel "$L2_KERNEL" --initramfs "$L2_INITRAMFS" --memory 256M \
        --api-socket "$SOCK" --vfio-platform /sys/bus/amba/devices/$DEV --disk $IMG "$@" \
        --cmdline "console=ttyS0 panic=-1 platvmm.check=$_check platvmm.after=$_after platvmm.disk_md5=$MD5 platvmm.expect_cpus=1 platvmm.expect_mem_mib=256"
}

rm -f /tmp/lc.*
# 1. Pause/resume, info, stats, hostile requests, placement; then `ctl power-button`.
run_vm api power-button lifecycle --cpus 2,affinity=0:1,1:0,vmm=0
l2_passed || status=1
result=$(l2_result)
timing "guest: $(echo "$result" | sed 's/.*lifecycle: //')"
key=$(tr -d '\r' <"$L2_LOG" | sed -n 's/.*L2-POWER-BUTTON type+code=\([0-9a-f]*\).*/\1/p')
# EV_KEY (0x0001) KEY_POWER (0x0074), little-endian.
[ "$key" = 01007400 ] || { reason "ctl power-button: the guest's first input event is '$key', not EV_KEY KEY_POWER"; status=1; }
grep -q '"guest_listening": true' /tmp/lc.press || { reason "ctl power-button: $(cat /tmp/lc.press)"; status=1; }

# Pause: the vCPU threads used no CPU time while paused, and did once resumed.
# shellcheck disable=SC2046 # four numbers
set -- $(cat /tmp/lc.ticks 2>/dev/null)
pause_us=$(sed -n 's/.*"took_us": \([0-9]*\).*/\1/p' /tmp/lc.pause 2>/dev/null)
resume_us=$(sed -n 's/.*"took_us": \([0-9]*\).*/\1/p' /tmp/lc.resume 2>/dev/null)
timing "pause: ${pause_us:-?} us to park both vCPUs (ctl round trip ${4:-?} s); resume ${resume_us:-?} us; vCPU CPU ticks: ${2:-?}-${1:-?} while paused 6 s, ${3:-?}-${2:-?} in the 1 s after"
if [ $# -lt 4 ]; then
    reason "the pause hook did not run (no L2-CTL pause from the guest?)"; status=1
else
    [ "$2" = "$1" ] || { reason "the vCPU threads used $(($2 - $1)) ticks of CPU while paused"; status=1; }
    [ "$3" -gt "$2" ] || { reason "the vCPU threads used no CPU after the resume (the guest busy-loops)"; status=1; }
fi
grep -q '"state": "paused"' /tmp/lc.pause || { reason "pause reply: $(cat /tmp/lc.pause)"; status=1; }
grep -q '"state": "paused"' /tmp/lc.info-paused || { reason "info while paused: $(cat /tmp/lc.info-paused)"; status=1; }
grep -q '"state": "running"' /tmp/lc.resume || { reason "resume reply: $(cat /tmp/lc.resume)"; status=1; }

# info and stats, parsed.
for want in '"vcpus": 2' '"state": "running"' '"name": "9010000.pl031"' '"guest_addr": "0x40000000"' \
            '"spi": 16' '"trigger": "level"' '"access": "mapped"' '"name": "vda"' '"kind": "blk"' \
            '"guest_listening": true'; do
    grep -qF "$want" /tmp/lc.info || { reason "ctl info lacks $want: $(tr -d '\n' </tmp/lc.info)"; status=1; }
done
reads=$(sed -n 's/.*"mmio_read": \([0-9]*\).*/\1/p' /tmp/lc.stats | head -1)
requests=$(awk '/"vda"/ { v = 1 } v && /"requests"/ { gsub(/[^0-9]/, ""); print; exit }' /tmp/lc.stats)
timing "ctl stats: mmio_read=${reads:-?} vda requests=${requests:-?}"
[ "${reads:-0}" -gt 0 ] || { reason "ctl stats: no mmio_read count: $(tr -d '\n' </tmp/lc.stats)"; status=1; }
[ "${requests:-0}" -gt 0 ] || { reason "ctl stats: no vda requests (the guest read the disk twice)"; status=1; }

# Hostile requests: each refused with its status, and the VM answered afterwards.
for want in "garbage 400" "huge 413" "unknown 404" "method 405" "info-after-bad 200"; do
    grep -qx "$want" /tmp/lc.bad || { reason "bad requests: expected '$want', got: $(tr '\n' ';' </tmp/lc.bad)"; status=1; }
done

# Placement: vcpu0 on CPU 1, vcpu1 on CPU 0, the event loop (platvmm) and worker on CPU 0.
timing "threads (name cpus): $(tr '\n' ';' </tmp/lc.cpus)"
for want in "vcpu0 1" "vcpu1 0" "platvmm 0" "virtio 0"; do
    grep -qx "$want" /tmp/lc.cpus || { reason "thread placement: expected '$want', got: $(tr '\n' ';' </tmp/lc.cpus)"; status=1; }
done

# 2. SIGTERM presses the button: the guest powers off by itself, exit 0 (not 143).
run_vm sigterm power-button boot
l2_passed || status=1
grep -q "L2-POWER-BUTTON type+code=01007400" "$L2_LOG" || { reason "SIGTERM: the guest saw no KEY_POWER"; status=1; }
grep -q "power button pressed; the VM stops in" "$L2_LOG" || { reason "SIGTERM: platvmm did not press the button"; status=1; }
timing "SIGTERM: exit $L2_RC (the guest powered off on the button)"

# 3. `ctl stop`: the VM ends at once, exit 0.
run_vm stop hold boot
l2_passed || status=1
grep -q '"state": "stopping"' /tmp/lc.stop || { reason "ctl stop: $(cat /tmp/lc.stop)"; status=1; }
full_start=$L2_T_INIT

# 4. Reboots in place: the guest reboots itself (`reboot -f`, PSCI SYSTEM_RESET) after its
#    first and third boots' check (the PL031 alarm, the disk), the host reboots the second
#    (`ctl reboot`); platvmm restarts it each time with the same VFIO groups and devices open;
#    on the fourth boot the power button powers it off.
run_vm reboot reboot reboot
l2_passed || status=1
passes=$(tr -d '\r' <"$L2_LOG" | grep -c "L2-RESULT: PASS reboot")
fails=$(tr -d '\r' <"$L2_LOG" | grep -c "L2-RESULT: FAIL")
{ [ "$passes" -ge 4 ] && [ "$fails" = 0 ]; } ||
    { reason "reboots: $passes boots passed their check, $fails failed (4 passes expected): $(grep 'L2-RESULT' "$L2_LOG" | tr -d '\r' | tr '\n' ';')"; status=1; }
grep -q "reboot in place #3: the guest restarts" "$L2_LOG" || { reason "platvmm did not reboot the guest in place 3 times"; status=1; }
grep -q '"state": "rebooting"' /tmp/lc.reboot || { reason "ctl reboot: $(cat /tmp/lc.reboot)"; status=1; }
# The paused VM's reboot left it paused until the resume.
grep -q '"state": "paused"' /tmp/lc.reboot-info || { reason "after a paused VM's reboot, ctl info: $(tr -d '\n' </tmp/lc.reboot-info)"; status=1; }
read -r held0 held1 </tmp/lc.reboot-held
timing "paused reboot: vCPU ticks ${held0:-?} -> ${held1:-?} over 2 s held after it"
{ [ -n "$held0" ] && [ "$held0" = "$held1" ]; } || { reason "the VM ran after a paused reboot before its resume (ticks $held0 -> $held1)"; status=1; }
grep -q "the VM stays paused, as it was before" "$L2_LOG" || { reason "platvmm did not keep the rebooted VM paused"; status=1; }
boots=$(wc -l </tmp/lc.ready 2>/dev/null)
same=$(sort -u /tmp/lc.ready 2>/dev/null | wc -l)
timing "reboots: $boots boots, one platvmm and one set of VFIO fds across them: $( [ "$same" = 1 ] && echo yes || echo no) ($(head -1 /tmp/lc.ready))"
{ [ "${boots:-0}" -ge 4 ] && [ "$same" = 1 ] && grep -q vfio-device /tmp/lc.ready; } ||
    { reason "the VFIO fds or platvmm changed across reboots: $(tr '\n' ';' </tmp/lc.ready)"; status=1; }
# Guest reboot → its next /init, in place (L1's clock at the guest's markers), against a full
# platvmm start → /init (run 3).
inplace=$(awk 'NR == FNR { r[NR] = $1; next } FNR > 1 && (FNR - 1) in r { d = $1 - r[FNR - 1]; s += d; n++ }
    END { if (n) printf "%.2f", s / n; else printf "?" }' /tmp/lc.rebooting /tmp/lc.booted 2>/dev/null)
took=$(grep -o "reboot in place #[0-9]*: the guest restarts ([^)]*)" "$L2_LOG" | sed 's/.*(\(.*\))/\1/' | tr '\n' ' ')
timing "reboot in place: guest reboot -> next /init ${inplace}s on average (platvmm's part: $took) vs full platvmm start -> /init ${full_start}s"
exit $status
