#!/usr/bin/env bash
# Lints the project's shell: the host-side bash scripts and the busybox-sh scripts that run
# inside the board (L1/L2 inits, scenarios, checks). Run from anywhere.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
command -v shellcheck >/dev/null || die "shellcheck not installed (ci/setup-host.sh installs it)"

mapfile -t files < <(
    { ls ci/*.sh .ci/run resources/l1/init resources/l2/init 2>/dev/null
      find resources tests -name '*.sh'; } | sort -u)
# -x with paths relative to the repo root: the scripts' `# shellcheck source=` lines use them.
shellcheck -x "${files[@]}"
step "shellcheck: ${#files[@]} files clean"

# Workflow inputs are data: a `${{ inputs... }}` pasted into a `run:` script runs as shell
# text (on the self-hosted hardware runner, as root). Only `NAME: ${{ ... }}` environment
# assignments may carry them.
bad=$(grep -nE '\$\{\{ *(github\.event\.)?inputs\.' .github/workflows/*.yml |
      grep -vE '^[^:]+:[0-9]+: +[A-Z_][A-Z0-9_]*: +\$\{\{' || true)
[ -z "$bad" ] || die "workflow inputs interpolated into scripts (pass them through env:): $bad"
step "workflows: inputs reach scripts only through the environment"
