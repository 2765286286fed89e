# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
# Shared helpers for the ci/ scripts. Sourced, not run.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PLATVMM_CACHE:-$ROOT/target/board}
T0=${T0:-$(date +%s)}
export T0

# kernel_suffix ARG USAGE: sets SUFFIX for the kernel a resources/ script builds for: "" for
# bookworm's (no ARG), "-bpo" for bookworm-backports' (ARG "bpo"); dies with USAGE otherwise.
kernel_suffix() {
    case $1 in
        "") SUFFIX="" ;;
        bpo) SUFFIX=-bpo ;;
        *) die "usage: $2" ;;
    esac
}

# qemu_imx8mp_virq [BINARY]: whether this QEMU (default the installed one) wires the i.MX 8M
# Plus A53s' virtual IRQ/FIQ inputs, which KVM's guests need for every interrupt: >= 10.0.3.
qemu_imx8mp_virq() {
    local v
    v=$("${1:-qemu-system-aarch64}" --version 2>/dev/null | sed -n '1s/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p')
    [ -n "$v" ] && [ "$(printf '%s\n' 10.0.3 "$v" | sort -V | head -1)" = 10.0.3 ]
}

step() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
