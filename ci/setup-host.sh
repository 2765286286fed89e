#!/usr/bin/env bash
# Installs everything the build, the unit tests and the emulated board need on a fresh
# Debian/Ubuntu machine (x86_64 or aarch64). Idempotent: a second run only checks.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

HOST_ARCH=$(uname -m)
PKGS=(qemu-system-arm device-tree-compiler kmod cpio xz-utils zstd make bc flex bison python3-venv python3-libfdt
      python3 socat e2fsprogs patch shellcheck gcc libc6-dev swtpm)
if [ "$HOST_ARCH" = x86_64 ]; then
    PKGS+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
fi

need_update=0
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# arm64 packages are fetched with `apt-get download NAME:arm64`: the arch must be known to apt.
if [ "$HOST_ARCH" = x86_64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    step "adding the arm64 architecture to dpkg"
    $SUDO dpkg --add-architecture arm64
    need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
    step "apt-get update"
    $SUDO apt-get update -q >/dev/null
fi
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The rig runs on QEMU 10. Debian 12 ships 7.2 and has 10.0.2 in bookworm-backports (same
# mirror); Debian 13 and Ubuntu 25.10 ship >= 10 themselves.
have_imx8mp() { qemu-system-aarch64 -machine help 2>/dev/null | grep -q '^imx8mp-evk '; }
if ! have_imx8mp; then
    . /etc/os-release
    if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
        src=/etc/apt/sources.list.d/platvmm-bookworm-backports.sources
        if ! apt-cache policy 2>/dev/null | grep -q 'bookworm-backports'; then
            step "adding bookworm-backports to apt's sources ($src) for QEMU 10"
            printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" \
                "Suites: bookworm-backports" "Components: main" \
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | $SUDO tee "$src" >/dev/null
            $SUDO apt-get update -q >/dev/null
        fi
        step "installing qemu-system-arm from bookworm-backports (QEMU 10, for imx8mp-evk)"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
            -t bookworm-backports qemu-system-arm >/dev/null
    fi
    have_imx8mp || step "note: $(qemu-system-aarch64 --version | head -1) has no imx8mp-evk machine:" \
        "resources/qemu/build.sh builds one for that board"
fi

# QEMU < 10.0.3 leaves imx8mp-evk without virtual interrupts: resources/qemu/build.sh then
# builds one from source, with these.
if ! qemu_imx8mp_virq qemu-system-aarch64; then
    qemu_deps=(ninja-build pkg-config libglib2.0-dev libfdt-dev libpixman-1-dev libslirp-dev python3-venv curl)
    missing=()
    for p in "${qemu_deps[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "installing ${missing[*]} (to build QEMU >= 10.0.3 for imx8mp-evk)"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

if ! command -v cargo >/dev/null; then
    die "cargo not found: install Rust with rustup (https://rustup.rs) and re-run"
fi
if [ "$HOST_ARCH" = x86_64 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    step "rustup target add aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
fi
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
step "host ready ($(qemu-system-aarch64 --version | head -1))"
