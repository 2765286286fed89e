# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The imx8mp scenario's board: the emulated i.MX 8M Plus EVK on its upstream tree, with
#   - a 32 MiB random SD card in uSDHC2 (-drive if=sd,bus=1): L1's own driver reads it, then
#     L2 reads it (md5) and writes a token at 16 MiB that host_after finds in the image;
#   - UART1 connected to tests/integration/host/uart-peer.py, which answers every line L1
#     and then L2 send (host_after counts what it answered);
#   - a 24C32 EEPROM (4 KiB of random bytes; 16-bit addresses) at 0x50 on I2C2's bus (i2c-bus.1: QEMU numbers the
#     six i.MX I2C buses in order) that L2 reads back through at24;
#   - QEMU user networking on the FEC (ENET1) and an HTTP server on the host's loopback
#     (reached through the user network's gateway, 10.0.2.2) serving a 16 MiB random file
#     that L1, then L2 download;
#   - hugepages for the identity-mapped L2 RAM uSDHC's and the FEC's DMA needs.
use_board imx8mp "unix:$RUN_DIR/uart1.sock"
dd if=/dev/urandom of="$RUN_DIR/sd.img" bs=1M count=32 status=none
dd if=/dev/urandom of="$RUN_DIR/eeprom.bin" bs=4096 count=1 status=none
SD_TOKEN=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
L1_APPEND+=(hugepagesz=32M hugepages=8 "platvmm.disk_md5=$(md5sum "$RUN_DIR/sd.img" | cut -d' ' -f1)"
            "platvmm.dma_token=$SD_TOKEN" "platvmm.eeprom_md5=$(md5sum "$RUN_DIR/eeprom.bin" | cut -d' ' -f1)")
mkdir -p "$RUN_DIR/www"
dd if=/dev/urandom of="$RUN_DIR/www/blob" bs=1M count=16 status=none
NET_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
L1_APPEND+=("platvmm.net_url=http://10.0.2.2:$NET_PORT/blob" "platvmm.net_md5=$(md5sum "$RUN_DIR/www/blob" | cut -d' ' -f1)"
            "platvmm.net_bytes=$((16 * 1048576))")
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-drive "file=$RUN_DIR/sd.img,if=sd,bus=1,format=raw"
            -drive "file=$RUN_DIR/eeprom.bin,if=none,id=eeprom,format=raw"
            -device at24c-eeprom,bus=i2c-bus.1,address=0x50,rom-size=4096,drive=eeprom -nic user)
uart_peer_start
host_during() {
    exec python3 -m http.server --bind 127.0.0.1 --directory "$RUN_DIR/www" "$NET_PORT" \
        >"$RUN_DIR/http.log" 2>&1
}
host_after() {
    local got want="platvmm-dma:$SD_TOKEN" n
    uart_peer_check 128 || return 1
    got=$(dd if="$RUN_DIR/sd.img" bs=1M skip=16 count=1 status=none | head -c ${#want})
    [ "$got" = "$want" ] || { echo "SD card image at 16 MiB holds '$got', not L2's token"; return 1; }
    echo "host: L2's write found in the SD card image"
    n=$(grep -c '"GET /blob HTTP/1.1" 200' "$RUN_DIR/http.log" || true)
    [ "$n" -ge 2 ] || { echo "the host's HTTP server served the file $n times, not to L1 and L2"; return 1; }
    echo "host: the HTTP server on loopback served the file $n times (L1, then L2)"
}
