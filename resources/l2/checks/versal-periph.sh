# shellcheck shell=sh
# check "versal-periph": Versal peripherals passed together, each by its stock driver.
#   CAN FD (xilinx_can, built from Debian's source): the "can" check, with platvmm.can_frames.
#   PL011 UART1 (amba-pl011, built into the guest kernel; its console is the emulated 16550):
#     platvmm.uart_lines=N lines out of its ttyAMA, each answered by the host's uart-peer.py
#     with the md5 of its payload, which must come back right.
#   OSPI (cadence-quadspi, spi-nor, mtdblock): the first MiB of the flash on chip select 0
#     reads back with platvmm.flash_md5; reports the read's seconds.
# Sourced by /init, which provides arg, expect, detail and fail.

# shellcheck source=resources/l2/checks/can.sh
[ -z "$(arg platvmm.can_frames)" ] || . /checks/can.sh

if [ -n "$(arg platvmm.uart_lines)" ]; then
    # shellcheck source=resources/shared/uart-exchange.sh
    . /lib/platvmm/uart-exchange.sh
    if r=$(uart_exchange_sysfs '/sys/bus/amba/devices/*/tty/ttyAMA*' "$(arg platvmm.uart_lines)"); then detail "$r"; else fail "PL011: $r"; fi
fi

flash_md5=$(arg platvmm.flash_md5)
if [ -n "$flash_md5" ]; then
    # shellcheck source=resources/shared/flash-read.sh
    . /lib/platvmm/flash-read.sh
    if r=$(flash_read "$flash_md5" spi_cadence_quadspi); then detail "$r"; else fail "OSPI flash: $r"; fi
fi
