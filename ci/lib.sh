# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
# Shared helpers for the ci/ scripts. Sourced, not run.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PLATVMM_CACHE:-$ROOT/target/board}
T0=${T0:-$(date +%s)}
export T0

step() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
