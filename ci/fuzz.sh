#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, AddressSanitizer) of the parsers and the
# guest-node generation: the fuzz/ crate's ten targets (guest_node, overlay, image_header,
# vfio_spec, trapped_access, virtio_queue, scmi, scmi_mailbox, pl061, api_request), each run
# SECONDS (default 300)
# from its committed seeds (fuzz/seeds/TARGET, copied into the scratch corpus
# fuzz/corpus/TARGET, which keeps what earlier runs found and is not committed).
# Prints one line per target with its executions per second and libFuzzer's final coverage
# (cov: edges, ft: features), then "fuzz: N passed, M failed"; exit != 0 if any target
# crashed, with the input that did it (fuzz/artifacts/TARGET/...) and how to replay it.
# Usage: ci/fuzz.sh [SECONDS]
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

secs=${1:-300}
case $secs in '' | *[!0-9]*) die "usage: ci/fuzz.sh [SECONDS]" ;; esac
TARGETS=(guest_node overlay image_header vfio_spec trapped_access virtio_queue scmi scmi_mailbox pl061 api_request)
# The newest cargo-fuzz; it builds with the stable rustc of this repo's machines (1.95).
CARGO_FUZZ_VERSION=0.13.2
# cargo-fuzz compiles with nightly-only rustc flags (-Zsanitizer=address and the -Z options
# of libFuzzer's coverage instrumentation) and only a stable toolchain exists here:
# RUSTC_BOOTSTRAP=1 makes the stable compiler accept them, as it does for its own build.
export RUSTC_BOOTSTRAP=1
# --release: optimised, as cargo-fuzz runs by default; --debug-assertions: with overflow
# checks and debug_assert!s too, so that arithmetic that wraps is found, not hidden.
BUILD=(--release --debug-assertions)
LOGS=$ROOT/fuzz/target/logs
mkdir -p "$LOGS"

# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null; then
    step "installing g++ (libFuzzer is C++)"
    sudo_apt=""; [ "$(id -u)" = 0 ] || sudo_apt=sudo
    $sudo_apt apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_apt apt-get install -y -q --no-install-recommends g++ >/dev/null
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    step "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install -q --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

step "building the fuzz targets (log: fuzz/target/logs/build.log)"
if ! cargo fuzz build "${BUILD[@]}" >"$LOGS/build.log" 2>&1; then
    tail -40 "$LOGS/build.log"
    die "cargo fuzz build failed"
fi

passed=0 failed=0
for t in "${TARGETS[@]}"; do
    corpus=$ROOT/fuzz/corpus/$t
    mkdir -p "$corpus"
    cp "$ROOT/fuzz/seeds/$t/"* "$corpus/"
    log=$LOGS/$t.log
    step "$t: ${secs}s from $(find "$corpus" -type f | wc -l) inputs"
    status=0
    # -timeout: an input taking 10 s is a hang, reported like a crash.
    cargo fuzz run "${BUILD[@]}" "$t" "$corpus" -- -max_total_time="$secs" \
        -print_final_stats=1 -timeout=10 >"$log" 2>&1 || status=$?
    # libFuzzer's last status line ("#N DONE cov: C ft: F corp: K/SIZE ... exec/s: E") and
    # its final stats (stat::NAME: VALUE).
    last=$(grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -1 || true)
    field() { sed -n "s/.* $1: \([^ ]*\).*/\1/p" <<<"$last"; }
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    summary="$(stat number_of_executed_units) execs, $(stat average_exec_per_sec) exec/s, cov $(field cov), ft $(field ft), corpus $(field corp)"
    if [ "$status" = 0 ]; then
        passed=$((passed + 1))
        echo "PASS $t: $summary"
    else
        failed=$((failed + 1))
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "FAIL $t (status $status): $summary"
        grep -E -m1 -A2 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | sed 's/^/    /' || true
        echo "    input: ${artifact:-none written (see $log)}"
        echo "    replay: RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD[*]} $t ${artifact:-ARTIFACT}"
        echo "    log: $log"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
