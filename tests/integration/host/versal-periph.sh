# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The versal-periph scenario's board: the emulated Versal on QEMU's own tree (its CAN FD
# controllers are described there as xlnx,canfd-2.0), with
#   - the OSPI controller's node (ci/board.sh versal_ospi_node) and its first flash holding
#     1 MiB of random bytes (their md5 on L1's command line: L1, then L2 read them back): a
#     Micron MT25QL512AB (ospi-flash=), as QEMU's default MT35XU01G is a part Linux 6.1's
#     spi-nor does not know;
#   - both PL011 UARTs free for guests: L1's console is a virtio console (hvc0) on one of the
#     machine's virtio-mmio transports, and the PL011 driver, built into Debian's kernel and
#     unbindable there, is kept from registering (initcall_blacklist); UART1 goes to
#     tests/integration/host/uart-peer.py, which answers every line L2 sends.
use_board versal
head -c 1048576 /dev/urandom >"$RUN_DIR/ospi0.img"
L1_APPEND=(console=hvc0 initcall_blacklist=pl011_init
           "platvmm.flash_md5=$(md5sum "$RUN_DIR/ospi0.img" | cut -d' ' -f1)" "platvmm.scenario=$name")
truncate -s 64M "$RUN_DIR/ospi0.img"
uart_peer_start
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-machine ospi-flash=mt25ql512ab -drive "file=$RUN_DIR/ospi0.img,if=mtd,index=0,format=raw"
            -monitor none -serial null -serial "unix:$RUN_DIR/uart1.sock"
            -chardev stdio,id=l1con -device virtio-serial-device -device virtconsole,chardev=l1con)
host_after() {
    uart_peer_check 64
}
