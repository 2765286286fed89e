# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The emulated ZCU102 with a random SD card in SDHCI1 (-drive if=sd,index=1) of SD_MIB MiB
# (default 128: the mmc scenario's throughput figure needs a read long enough for the 10 ms
# clock), hugepages for identity-mapped L2 RAM, and what L2 must find (the card's md5, a
# token it writes at 16 MiB). host_after checks the token landed in the image.
use_board zcu102
dd if=/dev/urandom of="$RUN_DIR/sd.img" bs=1M count="${SD_MIB:-128}" status=none
DISK_MD5=$(md5sum "$RUN_DIR/sd.img" | cut -d' ' -f1)
DISK_TOKEN=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
L1_APPEND+=(hugepagesz=32M hugepages=8 "platvmm.disk_md5=$DISK_MD5" "platvmm.dma_token=$DISK_TOKEN")
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-drive "file=$RUN_DIR/sd.img,if=sd,index=1,format=raw")
host_after() {
    local got want="platvmm-dma:$DISK_TOKEN"
    got=$(dd if="$RUN_DIR/sd.img" bs=1M skip=16 count=1 status=none | head -c ${#want})
    [ "$got" = "$want" ] || { echo "SD card image at 16 MiB holds '$got', not L2's token"; return 1; }
    echo "host: L2's write found in the SD card image"
}
