# shellcheck shell=sh
# check "vsock": virtio-vsock on L1's vhost-vsock, both directions:
#   - the guest's CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock) is platvmm.cid=N;
#   - L2 -> L1: 1000 round trips of 64 bytes with L1's vsock-echo server (host CID 2, port
#     5000), each reply checked; reports the latency (mean, median, p99 in µs);
#   - L1 -> L2: with platvmm.listen=P, L2 then echoes one connection on port P (L1's client
#     does its round trips and checks them); it must come and end within 60 s.
# Sourced by /init, which provides arg, expect, detail and fail.
want=$(expect cid) || return 0
for m in virtio_mmio vmw_vsock_virtio_transport; do modprobe "$m" || fail "cannot load $m"; done
i=0
cid=$(vsock-echo cid 2>/dev/null)
# Until the virtio transport has probed, /dev/vsock answers with another CID (or none).
while [ "$cid" != "$want" ] && [ $i -lt 80 ]; do
    sleep 0.25; i=$((i + 1)); cid=$(vsock-echo cid 2>/dev/null)
done
[ "$cid" = "$want" ] || { fail "local CID is '$cid', expected $want"; return 0; }
detail "cid=$cid"
if out=$(vsock-echo client 2 5000 1000 64 2>&1); then
    detail "$(echo "$out" | sed -n 's/^vsock-echo //p')"
else
    fail "vsock-echo client: $out"
fi

port=$(arg platvmm.listen)
[ -n "$port" ] || return 0
# L1's client has been retrying since before the guest booted: it connects once we listen.
if out=$(timeout 60 vsock-echo server "$port" 1 2>&1); then
    detail "served_port=$port"
else
    fail "vsock-echo server on port $port: no connection served within 60 s ($out)"
fi
