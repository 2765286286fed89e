# shellcheck shell=sh
# flash_read MD5 MODULE...: loads spi_nor, mtdblock and the controller's MODULEs, waits for
# /dev/mtdblock0 and reads its first MiB. Prints "flash_ok flash_read_s=S" and returns 0 when
# the bytes have md5 MD5 (what the host wrote into the flash image), else prints what went
# wrong and returns 1. Installed as /lib/platvmm/flash-read.sh in L1's and L2's initramfs;
# sourced by L1 scenarios (the baseline, with L1's own driver) and L2 checks.
flash_read() {
    _want=$1
    shift
    for _m in spi_nor mtdblock "$@"; do modprobe "$_m" || { echo "cannot load $_m"; return 1; }; done
    _i=0
    while [ ! -b /dev/mtdblock0 ] && [ $_i -lt 40 ]; do sleep 0.25; _i=$((_i + 1)); done
    [ -b /dev/mtdblock0 ] || { echo "no /dev/mtdblock0 after loading $*"; return 1; }
    _t0=$(cut -d' ' -f1 /proc/uptime)
    _got=$(head -c 1048576 /dev/mtdblock0 2>/dev/null | md5sum | cut -d' ' -f1)
    _t1=$(cut -d' ' -f1 /proc/uptime)
    [ "$_got" = "$_want" ] || { echo "/dev/mtdblock0's first MiB reads as '$_got', the host wrote $_want"; return 1; }
    awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "flash_ok flash_read_s=%.2f\n", b - a }'
}

# spidev_read MD5 BYTES DRIVER MODULE...: loads the controller's MODULEs, hands the first SPI
# device under a controller bound to the platform driver DRIVER to spidev (unbinding spi-nor
# if it took it), and reads the flash's first BYTES bytes with the spiread tool (READ commands
# of at most 128 bytes each). Prints "spi_ok spi_bytes=N spi_read_s=S" and returns 0 when
# they have md5 MD5, else prints what went wrong and returns 1.
spidev_read() {
    _want=$1 _bytes=$2 _drv=$3
    shift 3
    for _m in "$@"; do modprobe "$_m" || { echo "cannot load $_m"; return 1; }; done
    _dev='' _i=0
    while [ -z "$_dev" ] && [ $_i -lt 40 ]; do
        for _d in /sys/bus/platform/drivers/"$_drv"/*/spi_master/spi*/spi*.*; do [ -e "$_d" ] && _dev=${_d##*/}; done
        [ -n "$_dev" ] || sleep 0.25
        _i=$((_i + 1))
    done
    [ -n "$_dev" ] || { echo "$_drv registered no SPI device"; return 1; }
    _sys=/sys/bus/spi/devices/$_dev
    [ ! -e "$_sys/driver" ] || echo "$_dev" >"$_sys/driver/unbind"
    echo spidev >"$_sys/driver_override"
    echo "$_dev" >/sys/bus/spi/drivers/spidev/bind || { echo "spidev does not take $_dev"; return 1; }
    _node=/dev/spidev${_dev#spi} _i=0
    while [ ! -c "$_node" ] && [ $_i -lt 40 ]; do sleep 0.25; _i=$((_i + 1)); done
    _t0=$(cut -d' ' -f1 /proc/uptime)
    _got=$(spiread "$_node" "$_bytes" | md5sum | cut -d' ' -f1)
    _t1=$(cut -d' ' -f1 /proc/uptime)
    [ "$_got" = "$_want" ] || { echo "$_node's first $_bytes bytes read as '$_got', the host wrote $_want"; return 1; }
    awk -v n="$_bytes" -v a="$_t0" -v b="$_t1" 'BEGIN { printf "spi_ok spi_bytes=%d spi_read_s=%.2f\n", n, b - a }'
}
