#!/usr/bin/env bash
# Shows platvmm at work: builds the board (host setup included) and boots it with the demo
# scenario, the console on this terminal: L1 boots, platvmm boots L2 (2 vCPUs, 256 MiB) and
# you get L2's shell. Leave with `poweroff -f` in L2 (QEMU's ^A x kills the whole board).
# Without a terminal on stdin (CI, `ci/demo.sh </dev/null`), L2 runs a short scripted look
# around instead and everything powers off by itself.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

"$ROOT/ci/board.sh" build
if [ -t 0 ]; then
    exec "$ROOT/ci/board.sh" run demo "$@"
else
    exec "$ROOT/ci/board.sh" run demo --append platvmm.demo=script "$@"
fi
