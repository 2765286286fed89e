#!/usr/bin/env bash
# Everything CI checks, in order: host setup, formatting, lints, unit tests (host, and
# aarch64 under qemu-user on x86 hosts), then the end-to-end scenarios on the emulated board.
# Every stage runs even after a failure; the exit status is non-zero if any failed. The last
# line printed is e2e's "e2e: N passed, M failed", which CI reads.
set -uo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1

TARGET=aarch64-unknown-linux-gnu
# On an aarch64 host the host *is* the target: still pass --target, so that the +crt-static
# rustflags of .cargo/config.toml stay off build scripts and proc-macros (which cannot be
# linked statically).
host_target=()
if [ "$(uname -m)" = aarch64 ]; then host_target=(--target "$TARGET"); fi

failed=()
stage() {  # NAME COMMAND...
    local name=$1; shift
    echo
    echo "==== $name ===="
    step "$name: $*"
    if "$@"; then
        step "$name: ok"
    else
        step "$name: FAILED (status $?)"
        failed+=("$name")
    fi
}

stage setup-host ci/setup-host.sh
stage shellcheck ci/shellcheck.sh
stage layers python3 ci/layers.py
stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --workspace --all-targets "${host_target[@]}" -- -D warnings
if [ "$(uname -m)" != aarch64 ]; then
    stage clippy-aarch64 cargo clippy --workspace --all-targets --target "$TARGET" -- -D warnings
fi
stage test cargo test --workspace "${host_target[@]}"
if [ "$(uname -m)" != aarch64 ]; then
    # The test binaries are static (see .cargo/config.toml), so qemu-user needs no sysroot.
    stage test-aarch64 env CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64 \
        cargo test --workspace --target "$TARGET"
fi

stage man-completions ci/man.sh
stage fuzz-smoke ci/fuzz.sh 20
stage dt-validate ci/dt-validate.sh
stage corpus ci/corpus.sh

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "stages failed before e2e: ${failed[*]}"
else
    echo "stages before e2e: all ok"
fi

echo
echo "==== e2e ===="
# Last, so that its summary is the last line of the output.
ci/e2e.sh || failed+=(e2e)
[ ${#failed[@]} = 0 ]
