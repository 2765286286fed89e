# shellcheck shell=sh disable=SC2034 # the variables are for the scenarios that source this
# Helpers for the scenarios (/scenarios/*.sh inside L1, busybox sh). Sourced.
# L1's /init exports SCENARIO (the name) and SCENARIO_REASON (a file for failure reasons).

L2_KERNEL=/l2/Image
L2_INITRAMFS=/l2/initramfs.cpio.gz
PLATVMM=/bin/platvmm
# Upper bound for one platvmm run: a hung guest must fail the scenario, not eat the board's
# whole timeout.
L2_TIMEOUT=${L2_TIMEOUT:-240}

# Records why the scenario fails (the scenario still has to exit non-zero).
reason() {
    echo "$*" >>"${SCENARIO_REASON:-/dev/stderr}"
    echo "$SCENARIO: FAIL: $*" >&2
}

# Seconds since L1 booted, 10 ms resolution (busybox date has no %N).
now() { cut -d' ' -f1 /proc/uptime; }
# B - A for two now() values, in seconds with 2 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# run_l2 NAME PLATVMM-ARGS...: runs platvmm without a console input, its output on the
# console and in /tmp/NAME.log. Sets L2_LOG, L2_RC (exit status, 137 when the timeout killed
# it), L2_T_INIT (seconds from start to L2 /init's first output "L2-INIT", or "none") and
# L2_T_EXIT (seconds from start to exit), L2_RSS (vmm_rss when the guest reached /init) and
# L2_VMPIN (platvmm's pinned memory then, kB: VmPin of /proc/PID/status).
# With L2_PROBE_SANDBOX set, /tmp/NAME.sandbox gets thread_sandbox at L2 /init. With
# L2_TERM_ON_RESULT set, platvmm gets SIGTERM once the guest prints its L2-RESULT line (for a
# guest that cannot power off by itself) and l2_passed expects exit status 143. With
# L2_ON_CTL set, that function runs with WORD at each "L2-CTL WORD" line (on the reader of
# platvmm's output: the console waits meanwhile; what it prints lands in the log).
run_l2() {
    _name=$1; shift
    L2_LOG=/tmp/$_name.log
    rm -f "/tmp/$_name.rc" "/tmp/$_name.t-init" "/tmp/$_name.ctxt"
    echo "$SCENARIO: \$ platvmm $*"
    _t0=$(now)
    { timeout -s KILL "$L2_TIMEOUT" "$PLATVMM" "$@" </dev/null 2>&1; echo $? >"/tmp/$_name.rc"; } |
        while IFS= read -r _line || [ -n "$_line" ]; do
            case $_line in
                *L2-SIGNAL-USR1*) kill -USR1 "$(pidof platvmm)" ;;
                *L2-RESULT*) [ -z "${L2_TERM_ON_RESULT:-}" ] || kill -TERM "$(pidof platvmm)" ;;
                *L2-CTL*)
                    [ -z "${L2_ON_CTL:-}" ] || "$L2_ON_CTL" "$(printf '%s' "${_line##*L2-CTL }" | tr -d '\r')" </dev/null ;;
                *L2-CTXT*)
                    _l=$(printf '%s' "${_line##*L2-CTXT }" | tr -d '\r')
                    thread_switches "$_l" >>"/tmp/$_name.ctxt" ;;
                *L2-INIT*)
                    [ -f "/tmp/$_name.t-init" ] || now >"/tmp/$_name.t-init"
                    [ -z "${L2_PROBE_SANDBOX:-}" ] || thread_sandbox >"/tmp/$_name.sandbox"
                    vmm_rss >"/tmp/$_name.rss"
                    _pid=$(pidof platvmm | cut -d' ' -f1)
                    sed -n 's/^VmPin:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$_pid/status" >"/tmp/$_name.vmpin" ;;
            esac
            printf '%s\n' "$_line"
        done | tee "$L2_LOG"
    _t1=$(now)
    L2_RC=$(cat "/tmp/$_name.rc")
    L2_RSS=$(cat "/tmp/$_name.rss" 2>/dev/null)
    L2_VMPIN=$(cat "/tmp/$_name.vmpin" 2>/dev/null)
    L2_T_EXIT=$(elapsed "$_t0" "$_t1")
    if [ -f "/tmp/$_name.t-init" ]; then
        L2_T_INIT=$(elapsed "$_t0" "$(cat "/tmp/$_name.t-init")")
    else
        L2_T_INIT=none
    fi
}

# thread_switches LABEL: one line "LABEL TID COMM VOLUNTARY NONVOLUNTARY" per thread of the
# running platvmm (context switches from /proc/PID/task/TID/status: a thread that sleeps and
# wakes up counts one voluntary switch; blanks in COMM become "_"). run_l2 records them at
# each "L2-CTXT LABEL" line. One awk for all threads: the guest runs on while L1 samples.
thread_switches() {
    _pid=$(pidof platvmm | cut -d' ' -f1)
    [ -n "$_pid" ] || return 0
    awk -v l="$1" 'FNR == 1 { split(FILENAME, p, "/"); t = p[5] }
        FILENAME ~ /comm$/ { gsub(/[ \t]/, "_"); c[t] = $0; next }
        /^voluntary_ctxt_switches:/ { v[t] = $2 }
        /^nonvoluntary_ctxt_switches:/ { n[t] = $2 }
        END { for (t in c) if ((t in v) && (t in n)) print l, t, c[t], v[t], n[t] }' \
        /proc/"$_pid"/task/*/comm /proc/"$_pid"/task/*/status 2>/dev/null
}

# Memory of the running platvmm, from /proc/PID/smaps: "rss=KB guest_ram_rss=KB
# vmm_rss=KB" where the guest RAM is platvmm's largest mapping and vmm_rss is the rest.
vmm_rss() {
    _pid=$(pidof platvmm | cut -d' ' -f1)
    [ -n "$_pid" ] || { echo "rss=unknown"; return; }
    awk '/^Size:/ { size = $2 } /^Rss:/ { total += $2; if (size > maxsize) { maxsize = size; ram = $2 } }
         END { printf "rss=%dkB guest_ram_rss=%dkB vmm_rss=%dkB", total, ram, total - ram }' \
        "/proc/$_pid/smaps"
}

# The L2-RESULT line of the last run_l2 (without the kernel log prefix), or nothing.
l2_result() {
    tr -d '\r' <"$L2_LOG" | sed -n 's/.*\(L2-RESULT: .*\)/\1/p' | tail -1
}

# l2_passed: reports the last run_l2's timings; returns 0 if platvmm exited 0 and the guest
# printed "L2-RESULT: PASS", else records why (reason) and returns 1.
l2_passed() {
    timing "start->L2-INIT=${L2_T_INIT}s start->exit=${L2_T_EXIT}s exit=$L2_RC"
    _r=$(l2_result)
    if [ -n "${L2_TERM_ON_RESULT:-}" ] && [ "$L2_RC" = 143 ]; then
        : # stopped by SIGTERM after the result, as asked
    elif [ "$L2_RC" != 0 ]; then
        reason "platvmm exited with $L2_RC${_r:+ ($_r)}"; return 1
    fi
    case $_r in "L2-RESULT: PASS"*) return 0 ;; esac
    reason "${_r:-no L2-RESULT line from the guest}"; return 1
}

# l1_disk_baseline BLOCKDEV MD5: L1's own driver reads the whole disk the way L2 will (dd,
# 1 MiB blocks, cold cache): sets L1_RATE (MB/s) and reports it; fails (returns 1) if the disk
# is missing or its md5 is not the host's.
l1_disk_baseline() {
    _i=0
    while [ ! -b "/dev/$1" ] && [ $_i -lt 160 ]; do sleep 0.25; _i=$((_i + 1)); done
    [ -b "/dev/$1" ] || { reason "L1's own driver found no disk /dev/$1"; return 1; }
    _mib=$(( $(cat "/sys/block/$1/size") / 2048 ))
    echo 3 >/proc/sys/vm/drop_caches
    _t0=$(now)
    dd if="/dev/$1" of=/dev/null bs=1M status=none
    _t1=$(now)
    L1_RATE=$(awk -v s="$_mib" -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.1f", s * 1.048576 / (b - a) }')
    timing "L1 native: dd read of ${_mib} MiB at ${L1_RATE} MB/s"
    [ "$(md5sum "/dev/$1" | cut -d' ' -f1)" = "$2" ] || { reason "L1 itself reads a different md5"; return 1; }
}

# l1_net_baseline URL MD5 BYTES: L1's own driver for eth0 downloads URL the way L2's net check
# will (DHCP, then wget), then gives the interface up: sets L1_NET_RATE (MB/s) and reports it;
# fails (returns 1, with the reason) if eth0 never appears, DHCP does not answer or the md5
# is not the host's.
l1_net_baseline() {
    _i=0
    while [ ! -e /sys/class/net/eth0 ] && [ $_i -lt 80 ]; do sleep 0.25; _i=$((_i + 1)); done
    [ -e /sys/class/net/eth0 ] || { reason "L1's own Ethernet driver made no eth0"; return 1; }
    ip link set eth0 up
    udhcpc -i eth0 -n -q -t 10 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1 ||
        { reason "L1 got no DHCP lease on eth0"; return 1; }
    _t0=$(now)
    _got=$(wget -q -O - "$1" | md5sum | cut -d' ' -f1)
    _t1=$(now)
    [ "$_got" = "$2" ] || { reason "L1's own download has md5 $_got, the host's is $2"; return 1; }
    L1_NET_RATE=$(awk -v b="$3" -v a="$_t0" -v c="$_t1" 'BEGIN { printf "%.2f", b / 1e6 / (c - a) }')
    timing "L1 native: HTTP download of $(($3 / 1048576)) MiB at ${L1_NET_RATE} MB/s"
    ip addr flush dev eth0
    ip link set eth0 down
}

# l1_can_baseline DEVICE N: L1's own xilinx_can sends N frames in loopback mode on the
# controller DEVICE (e.g. ff070000.can) with canloop and reports the rate; then the module
# goes, releasing every controller it had for vfio-platform. Returns 1 (with the reason) if
# any of it fails.
l1_can_baseline() {
    modprobe xilinx_can || { reason "L1 cannot load xilinx_can"; return 1; }
    _if=
    for _n in /sys/class/net/can*; do
        case $(readlink -f "$_n/device") in */"$1") _if=${_n##*/} ;; esac
    done
    [ -n "$_if" ] || { reason "L1's xilinx_can made no interface for $1"; return 1; }
    _r=$(canloop "$_if" 500000 "$2") || { reason "L1's own xilinx_can on $1: $_r"; return 1; }
    timing "L1 native: CAN loopback ($1) $_r"
    ip link set "$_if" down
    rmmod xilinx_can || { reason "cannot unload L1's xilinx_can"; return 1; }
}

# l2_net_report: the last run_l2's download rate (net check) against L1_NET_RATE.
l2_net_report() {
    _r=$(l2_result)
    _rate=$(echo "$_r" | sed -n 's/.*net_MBps=\([0-9.]*\).*/\1/p')
    timing "L2 passthrough: HTTP download at ${_rate} MB/s = $(awk -v a="$_rate" -v b="$L1_NET_RATE" 'BEGIN { printf "%.2f", a / b }') x L1; $(echo "$_r" | grep -o 'irqs_per_MiB=[0-9.]*' | tail -1)"
}

# l2_disk_report: the last run_l2's read rate (disk check) against L1_RATE.
l2_disk_report() {
    _r=$(l2_result)
    _rate=$(echo "$_r" | sed -n 's/.*dd_read_MBps=\([0-9.]*\).*/\1/p')
    timing "L2 passthrough: dd read at ${_rate} MB/s = $(awk -v a="$_rate" -v b="$L1_RATE" 'BEGIN { printf "%.2f", a / b }') x L1; $(echo "$_r" | grep -o 'irqs_per_MiB=[0-9.]*')"
}

# l2_log_has PATTERN WHAT: whether the last run_l2's log has a line matching PATTERN (grep
# basic regex); if not, records "platvmm log lacks: WHAT" and returns 1.
l2_log_has() {
    grep -q "$1" "$L2_LOG" && return 0
    reason "platvmm log lacks: $2"
    return 1
}

# pl031_to_host WHEN: gives L1's PL031 back to rtc-pl031 (from vfio-amba) and checks that
# its time is within 5 s of L1's clock; WHEN names the moment in messages.
pl031_to_host() {
    _sys=/sys/bus/amba/devices/9010000.pl031
    echo 9010000.pl031 >"$_sys/driver/unbind" || { reason "$1: cannot unbind from vfio-amba"; return 1; }
    echo >"$_sys/driver_override"
    echo 9010000.pl031 >/sys/bus/amba/drivers/rtc-pl031/bind || { reason "$1: rtc-pl031 refused to bind"; return 1; }
    _t=$(cat "$_sys"/rtc/rtc*/since_epoch 2>/dev/null)
    _d=$(( $(date +%s) - ${_t:-0} ))
    echo "$SCENARIO: $1: rebound to rtc-pl031, its time is $_t (L1 clock - RTC = ${_d}s)"
    if [ -z "$_t" ] || [ "$_d" -lt -5 ] || [ "$_d" -gt 5 ]; then
        reason "$1: rtc-pl031 reads '$_t'"; return 1
    fi
}

# thread_sandbox: one line "NAME SECCOMP CAPEFF" per thread of the running platvmm, from
# /proc/PID/task/TID/status (Seccomp: 2 is a filter installed; CapEff the effective set).
thread_sandbox() {
    _pid=$(pidof platvmm | cut -d' ' -f1)
    [ -n "$_pid" ] || return 0
    for _st in /proc/"$_pid"/task/*/status; do
        awk '/^Name:/ { n = $2 } /^Seccomp:/ { s = $2 } /^CapEff:/ { c = $2 }
             END { print n, s, c }' "$_st"
    done
}

# "TIMING" lines are collected by ci/board.sh into its summary.
timing() { echo "TIMING $SCENARIO $*"; }

# vfio_bind BUS DEVICE DRIVER: hands DEVICE (e.g. 9010000.pl031) on BUS (amba, platform)
# to DRIVER (vfio-amba, vfio-platform), unbinding its current driver first.
vfio_bind() {
    _dev=/sys/bus/$1/devices/$2
    [ -e "$_dev" ] || { echo "vfio_bind: no $_dev" >&2; return 1; }
    [ -e "$_dev/driver" ] && echo "$2" >"$_dev/driver/unbind"
    echo "$3" >"$_dev/driver_override"
    echo "$2" >"/sys/bus/$1/drivers/$3/bind" || return 1
    [ "$(basename "$(readlink "$_dev/driver")")" = "$3" ]
}

# sdhci1_to_vfio: the ZCU102's SD card (host file mmc.sh): sets SD_MD5 and SD_TOKEN from the
# command line, has L1's own sdhci-arasan read the card (baseline), then hands SDHCI1 to
# vfio-platform; returns 1 (with the reason) if any of it fails.
sdhci1_to_vfio() {
    SD_MD5=$(sed -n 's/.*platvmm.disk_md5=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
    SD_TOKEN=$(sed -n 's/.*platvmm.dma_token=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
    l1_disk_baseline mmcblk0 "$SD_MD5" || return 1
    vfio_bind platform ff170000.mmc vfio-platform ||
        { reason "cannot bind ff170000.mmc to vfio-platform"; return 1; }
}
