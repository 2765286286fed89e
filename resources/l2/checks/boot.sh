# shellcheck shell=sh
# check "boot": the guest sees the vCPUs and the RAM that platvmm was asked for.
#   platvmm.expect_cpus=N       CPUs online must be exactly N
#   platvmm.expect_mem_mib=M    the device tree's memory nodes must add up to exactly M MiB,
#                               and MemTotal must exceed 75% of it (the kernel keeps the rest)
# Sourced by /init, which provides arg, expect, detail and fail.

# Number of CPUs in a kernel cpu list such as "0-3,5".
count_cpu_list() {
    _n=0
    for _r in $(echo "$1" | tr ',' ' '); do
        case $_r in
            *-*) _n=$((_n + ${_r#*-} - ${_r%-*} + 1)) ;;
            *) _n=$((_n + 1)) ;;
        esac
    done
    echo $_n
}

# A big-endian u32 device-tree property as a decimal number (empty if absent).
dt_u32() {
    [ -f "$1" ] || return 0
    echo $((0x$(od -An -v -tx1 "$1" | tr -d ' \n')))
}

# Total bytes of all (address, size) pairs in the reg of every memory node.
dt_memory_bytes() {
    _ac=$(dt_u32 /proc/device-tree/#address-cells); _ac=${_ac:-2}
    _sc=$(dt_u32 /proc/device-tree/#size-cells); _sc=${_sc:-1}
    _total=0
    for _node in /proc/device-tree/memory@* /proc/device-tree/memory; do
        [ -f "$_node/reg" ] || continue
        # shellcheck disable=SC2046 # one word per byte is the point
        set -- $(od -An -v -tx1 "$_node/reg")
        while [ $# -ge $(((_ac + _sc) * 4)) ]; do
            shift $((_ac * 4))
            _hex=""
            _i=0
            while [ $_i -lt $((_sc * 4)) ]; do _hex="$_hex$1"; shift; _i=$((_i + 1)); done
            _total=$((_total + 0x$_hex))
        done
    done
    echo $_total
}

if want_cpus=$(expect expect_cpus); then
    online=$(cat /sys/devices/system/cpu/online)
    cpus=$(count_cpu_list "$online")
    detail "cpus=$cpus"
    [ "$cpus" = "$want_cpus" ] || fail "$cpus CPUs online ($online), expected $want_cpus"
fi

if want_mib=$(expect expect_mem_mib); then
    dt_bytes=$(dt_memory_bytes)
    detail "dt_mem=$((dt_bytes / 1048576))MiB"
    [ "$dt_bytes" = $((want_mib * 1048576)) ] ||
        fail "device-tree memory is $dt_bytes bytes ($((dt_bytes / 1048576)) MiB), expected $want_mib MiB"

    memtotal_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    detail "MemTotal=${memtotal_kib}kB"
    [ $((memtotal_kib * 100)) -gt $((want_mib * 1024 * 75)) ] ||
        fail "MemTotal is ${memtotal_kib} kB, not more than 75% of $want_mib MiB"
fi
