# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The QEMU monitor presses the board's power button (PL061 line 3) once L2 says it is ready.
# shellcheck disable=SC2054 # the commas belong to a QEMU option
QEMU_ARGS+=(-monitor "unix:$RUN_DIR/mon.sock,server,nowait")
# $log is the board log, set by ci/board.sh before it sources this file.
# shellcheck disable=SC2154
host_during() {
    for _ in $(seq 1200); do
        if grep -q L2-GPIO-READY "$log" 2>/dev/null; then
            sleep 1
            echo system_powerdown | socat - "UNIX-CONNECT:$RUN_DIR/mon.sock" >/dev/null
            echo "host: pressed the power button" >>"$RUN_DIR/host.log"
            return
        fi
        sleep 0.25
    done
}
