# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# A 128 MiB random disk behind L1's top virtio-mmio transport, hugepages for identity-mapped
# L2 RAM, and the expectations L2 checks (md5 of the disk, a token it writes at 16 MiB).
dd if=/dev/urandom of="$RUN_DIR/disk.img" bs=1M count=128 status=none
DMA_MD5=$(md5sum "$RUN_DIR/disk.img" | cut -d' ' -f1)
DMA_TOKEN=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
L1_APPEND+=(hugepagesz=32M hugepages=8 "platvmm.disk_md5=$DMA_MD5" "platvmm.dma_token=$DMA_TOKEN")
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-drive "file=$RUN_DIR/disk.img,if=none,id=d0,format=raw"
            -device virtio-blk-device,drive=d0)
# After the board powered off: L2's write must be in the image.
host_after() {
    local got want="platvmm-dma:$DMA_TOKEN"
    got=$(dd if="$RUN_DIR/disk.img" bs=1M skip=16 count=1 status=none | head -c ${#want})
    [ "$got" = "$want" ] || { echo "disk image at 16 MiB holds '$got', not L2's token"; return 1; }
    echo "host: L2's write found in the disk image"
}
