# shellcheck shell=sh
# check "net": a passed-through Ethernet MAC with its PHY. The MAC driver probes, the PHY
# reports a link, DHCP gives an address, and a file downloaded over HTTP has the host's md5.
#   platvmm.net_modules=a,b   modules to load (default macb)
#   platvmm.net_url=URL       what to download (through the network's gateway)
#   platvmm.net_md5=MD5       its md5, computed by the host
#   platvmm.net_bytes=N       its size
# Reports the drivers, the address, the download rate and the MAC's interrupts per MiB.
# Sourced by /init, which provides arg, expect, detail and fail.
url=$(arg platvmm.net_url)
want_md5=$(arg platvmm.net_md5)
bytes=$(expect net_bytes) || return 0
modules=$(arg platvmm.net_modules); modules=${modules:-macb}
for m in $(echo "$modules" | tr ',' ' '); do modprobe "$m" || fail "cannot load $m"; done

# wait_for SECONDS COMMAND...: polls COMMAND every 0.25 s.
wait_for() {
    _n=$(($1 * 4)); shift
    while ! "$@"; do
        _n=$((_n - 1)); [ $_n -gt 0 ] || return 1
        sleep 0.25
    done
}
if_exists() { [ -e /sys/class/net/eth0 ]; }
link_up() { [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ]; }
# The MAC's interrupts, named after the interface (macb) or its device (fec).
eth_irqs() {
    awk -v dev="$(basename "$(readlink /sys/class/net/eth0/device)")" \
        '/eth0/ || index($0, dev) { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' \
        /proc/interrupts
}

wait_for 20 if_exists || { fail "no eth0: the MAC driver did not probe ($modules)"; return 0; }
detail "driver=$(basename "$(readlink /sys/class/net/eth0/device/driver)")"
ip link set eth0 up
wait_for 20 link_up || { fail "eth0: no link: the PHY was not found or reports none"; return 0; }
detail "phy=$(basename "$(readlink /sys/class/net/eth0/phydev/driver)" | tr ' ' '_')"

udhcpc -i eth0 -n -q -t 10 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1 ||
    { fail "eth0: no DHCP lease"; return 0; }
detail "addr=$(ip -4 -o addr show eth0 | awk '{ print $4 }')"

i0=$(eth_irqs)
t0=$(cut -d' ' -f1 /proc/uptime)
got_md5=$(wget -q -O - "$url" | md5sum | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
i1=$(eth_irqs)
detail "md5_ok=$([ "$got_md5" = "$want_md5" ] && echo yes || echo no)"
[ "$got_md5" = "$want_md5" ] || fail "download md5 $got_md5, host says $want_md5"
detail "$(awk -v b="$bytes" -v a="$t0" -v c="$t1" -v n=$((i1 - i0)) \
    'BEGIN { printf "net_MBps=%.2f irqs_per_MiB=%.1f", b / 1e6 / (c - a), n / (b / 1048576) }')"
