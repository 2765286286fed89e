# shellcheck shell=sh
# check "vnet": a virtio-net interface over L1's tap: eth0 has the MAC platvmm.mac=M, gets
# 10.0.2.2/24, and netblast moves platvmm.net_bytes=N each way with L1's netblast server at
# 10.0.2.1:5201, every byte checked. Reports the two rates and the stream hashes (L1 compares
# them with its side's).
# Sourced by /init, which provides arg, expect, detail and fail.
bytes=$(expect net_bytes) || return 0
for m in virtio_mmio virtio_net; do modprobe "$m" || fail "cannot load $m"; done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 80 ]; do sleep 0.25; i=$((i + 1)); done
[ -e /sys/class/net/eth0 ] || { fail "no eth0: virtio_net did not probe"; return 0; }
mac=$(cat /sys/class/net/eth0/address)
[ "$mac" = "$(arg platvmm.mac)" ] || fail "eth0 MAC $mac, expected $(arg platvmm.mac)"
detail "mac=$mac"
ip link set lo up
if ! ip addr add 10.0.2.2/24 dev eth0 || ! ip link set eth0 up; then fail "cannot configure eth0"; fi
if out=$(netblast client 10.0.2.1 5201 "$bytes" 2>&1); then
    detail "$(echo "$out" | sed -n 's/^netblast client //p')"
else
    fail "netblast: $out"
fi
