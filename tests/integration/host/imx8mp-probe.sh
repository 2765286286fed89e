# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The imx8mp-probe scenario's board: the emulated i.MX 8M Plus EVK on its upstream tree, with
# a 16 MiB random SD card in uSDHC2 (-drive if=sd,bus=1) for L1's own driver to read.
use_board imx8mp
dd if=/dev/urandom of="$RUN_DIR/sd.img" bs=1M count=16 status=none
L1_APPEND+=("platvmm.disk_md5=$(md5sum "$RUN_DIR/sd.img" | cut -d' ' -f1)")
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-drive "file=$RUN_DIR/sd.img,if=sd,bus=1,format=raw")
