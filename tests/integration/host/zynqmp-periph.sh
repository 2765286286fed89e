# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The zynqmp-periph scenario's board: the emulated ZCU102 with its RTC, first GDMA channel, CAN,
# GQSPI and second UART in L1's tree, hugepages for identity-mapped L2 RAM (the DMA channel and
# the GQSPI's DMA write guest memory), and
#   - the GQSPI's first flash (64 MiB) holding 1 MiB of random bytes (their md5 on L1's
#     command line: L1, then L2 read them back);
#   - SPI0's flash (the SST25WF080, 1 MiB) filled with random bytes, the md5 of its first
#     64 KiB on L1's command line (L1, then L2 read them through spidev);
#   - UART1 free for L2 and connected to tests/integration/host/uart-peer.py, which answers
#     every line L2 sends: the Cadence UART driver is built into Debian's kernel and cannot be
#     unbound there, so it is kept from registering (initcall_blacklist), and L1 talks through
#     an earlycon on UART0 (kept: no console driver replaces it) with /init's output going to
#     the kernel log (platvmm.console=kmsg, resources/l1/init).
use_board zcu102
# shellcheck disable=SC2054 # the commas belong to the earlycon option
L1_APPEND=(earlycon=cdns,mmio,0xff000000,115200n8 keep_bootcon printk.devkmsg=on
           initcall_blacklist=cdns_uart_init platvmm.console=kmsg "platvmm.scenario=$name"
           hugepagesz=32M hugepages=8)
head -c 1048576 /dev/urandom >"$RUN_DIR/qspi0.img"
L1_APPEND+=("platvmm.flash_md5=$(md5sum "$RUN_DIR/qspi0.img" | cut -d' ' -f1)")
truncate -s 64M "$RUN_DIR/qspi0.img"
head -c 1048576 /dev/urandom >"$RUN_DIR/spi0.img"
L1_APPEND+=("platvmm.spi_md5=$(head -c 65536 "$RUN_DIR/spi0.img" | md5sum | cut -d' ' -f1)")
uart_peer_start
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-drive "file=$RUN_DIR/qspi0.img,if=mtd,index=2,format=raw" -drive "file=$RUN_DIR/spi0.img,if=mtd,index=0,format=raw"
            -monitor none -serial stdio -serial "unix:$RUN_DIR/uart1.sock")
host_after() {
    uart_peer_check 64
}
