# shellcheck shell=bash disable=SC2034 # sourced by ci/board.sh
# The tpm scenario's board: virt with a TPM 2.0 on QEMU's platform bus (tpm-tis-device, a
# memory-mapped TIS: tcg,tpm-tis-mmio), backed by swtpm with a fresh state in the run's
# directory.
mkdir -p "$RUN_DIR/tpm"
rm -f "$RUN_DIR/tpm/"* "$RUN_DIR/swtpm.sock"
swtpm socket --tpm2 --tpmstate dir="$RUN_DIR/tpm" --ctrl type=unixio,path="$RUN_DIR/swtpm.sock" \
    --daemon --terminate --log file="$RUN_DIR/swtpm.log" ||
    die "swtpm did not start (ci/setup-host.sh installs it)"
for _ in $(seq 50); do [ -S "$RUN_DIR/swtpm.sock" ] && break; sleep 0.1; done
# shellcheck disable=SC2054 # the commas belong to QEMU options
QEMU_ARGS+=(-chardev "socket,id=chrtpm,path=$RUN_DIR/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
            -device tpm-tis-device,tpmdev=tpm0)
