# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The emulated ZCU102 with QEMU user networking on GEM0, an HTTP server on the host's loopback
# (reached from the board through the user network's gateway, 10.0.2.2) serving a 64 MiB
# random file, and hugepages for identity-mapped L2 RAM. host_after checks that both L1 and
# L2 downloaded the file.
use_board zcu102
mkdir -p "$RUN_DIR/www"
dd if=/dev/urandom of="$RUN_DIR/www/blob" bs=1M count=64 status=none
NET_MD5=$(md5sum "$RUN_DIR/www/blob" | cut -d' ' -f1)
NET_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
L1_APPEND+=(hugepagesz=32M hugepages=8 "platvmm.net_url=http://10.0.2.2:$NET_PORT/blob"
            "platvmm.net_md5=$NET_MD5" "platvmm.net_bytes=$((64 * 1048576))")
QEMU_ARGS+=(-nic user)
host_during() {
    exec python3 -m http.server --bind 127.0.0.1 --directory "$RUN_DIR/www" "$NET_PORT" \
        >"$RUN_DIR/http.log" 2>&1
}
host_after() {
    local n
    n=$(grep -c '"GET /blob HTTP/1.1" 200' "$RUN_DIR/http.log" || true)
    [ "$n" -ge 2 ] || { echo "the host's HTTP server served the file $n times, not to L1 and L2"; return 1; }
    echo "host: the HTTP server on loopback served the file $n times (L1, then L2)"
}
