# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The zynqmp-periph scenario's board: the emulated ZCU102 with its RTC, first GDMA channel, CAN
# and GQSPI in L1's tree, hugepages for identity-mapped L2 RAM (the DMA channel and the GQSPI's
# DMA write guest memory), and the GQSPI's first flash (64 MiB) holding 1 MiB of random bytes
# (their md5 on L1's command line: L1, then L2 read them back).
use_board zcu102
L1_APPEND+=(hugepagesz=32M hugepages=8)
head -c 1048576 /dev/urandom >"$RUN_DIR/qspi0.img"
L1_APPEND+=("platvmm.flash_md5=$(md5sum "$RUN_DIR/qspi0.img" | cut -d' ' -f1)")
truncate -s 64M "$RUN_DIR/qspi0.img"
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-drive "file=$RUN_DIR/qspi0.img,if=mtd,index=2,format=raw")
