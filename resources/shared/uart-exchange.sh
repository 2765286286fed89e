# shellcheck shell=sh
# uart_exchange TTY N: N lines "platvmm-uart I PAYLOAD" (16 random bytes in hex) out of
# /dev/TTY to the host's tests/integration/host/uart-peer.py, which answers each with
# "platvmm-host I MD5(PAYLOAD)"; every answer must come back, right, within 10 s. Prints
# "uart_lines=N uart_lines_per_s=R" and returns 0, or prints what went wrong and returns 1.
# Installed as /lib/platvmm/uart-exchange.sh in L1's and L2's initramfs; sourced by L1
# scenarios (the baseline, with L1's own driver) and L2 checks.
uart_exchange() {
    _dev=/dev/$1 _want=/tmp/uart-$1.want _got=/tmp/uart-$1.got
    stty -F "$_dev" 115200 raw -echo -echoe -echok || { echo "stty on $_dev failed"; return 1; }
    cat "$_dev" >"$_got" &
    _reader=$!
    : >"$_want"
    _t0=$(cut -d' ' -f1 /proc/uptime)
    exec 3>"$_dev"
    _i=0
    while [ $_i -lt "$2" ]; do
        _p=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
        printf 'platvmm-uart %s %s\n' $_i "$_p" >&3
        printf 'platvmm-host %s %s\n' $_i "$(printf %s "$_p" | md5sum | cut -d' ' -f1)" >>"$_want"
        _i=$((_i + 1))
    done
    _i=0
    while [ "$(grep -c '^platvmm-host' "$_got")" -lt "$2" ] && [ $_i -lt 100 ]; do
        usleep 100000
        _i=$((_i + 1))
    done
    _t1=$(cut -d' ' -f1 /proc/uptime)
    exec 3>&-
    kill $_reader
    if ! tr -d '\r' <"$_got" | grep '^platvmm-host' | cmp -s - "$_want"; then
        echo "$(grep -c '^platvmm-host' "$_got") of $2 answers came back on $_dev, or some were wrong"
        return 1
    fi
    awk -v n="$2" -v a="$_t0" -v b="$_t1" 'BEGIN { printf "uart_lines=%d uart_lines_per_s=%.0f\n", n, n / (b - a) }'
}

# uart_exchange_sysfs PATTERN N: uart_exchange on the tty that the passed UART's driver
# registered, found by the sysfs glob PATTERN (e.g. /sys/bus/amba/devices/*/tty/ttyAMA*).
# Prints "uart_tty=TTY " and uart_exchange's figures, or what went wrong (returns 1).
uart_exchange_sysfs() {
    _tty=''
    # shellcheck disable=SC2086 # PATTERN is a glob, expanded here
    for _t in $1; do [ -e "$_t" ] && _tty=${_t##*/} && break; done
    [ -n "$_tty" ] || { echo "the passed UART's driver registered no tty ($1)"; return 1; }
    _r=$(uart_exchange "$_tty" "$2") || { echo "$_r"; return 1; }
    echo "uart_tty=$_tty $_r"
}
