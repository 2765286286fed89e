#!/usr/bin/env bash
# The QEMU the i.MX 8M Plus board runs on. QEMU 10.0.0-10.0.2 (Debian 12's bookworm-backports
# has 10.0.2) leave the A53s' virtual IRQ/FIQ inputs unwired on imx8mp-evk, so no interrupt
# reaches a guest of L1's KVM there; 10.0.3 wires them (upstream "hw/arm/fsl-imx8mp: Wire
# VIRQ and VFIQ"). When the installed QEMU is older, this builds Debian trixie's QEMU 10.0.x
# from its source, for aarch64 and that board only (about 4 minutes on 2 cores).
# Output: $CACHE/qemu.env, QEMU_IMX8MP=the binary to run (the installed one when it will do),
# rebuilt only when this script or imx8mp.mak changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/lib.sh
. "$HERE/../../ci/lib.sh"

VERSION=10.0.13
ORIG=qemu_$VERSION+ds.orig.tar.xz
ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae
POOL=https://deb.debian.org/debian/pool/main/q/qemu
# QEMU 10 needs meson >= 1.5 (Debian 12 has 1.0); Debian's source leaves out the wheel.
WHEELS=("meson==1.5.0 --hash=sha256:52b34f4903b882df52ad0d533146d4b992c018ea77399f825579737672ae7b20"
        "pycotap==1.3.1 --hash=sha256:1c3a25b3ff89e48f4e00f1f71dbbc1642b4f65c65d416524d07e73492fff25ea")
OUT=$CACHE/qemu
BUILD=$CACHE/qemu-build

if qemu_imx8mp_virq; then
    echo "QEMU_IMX8MP=qemu-system-aarch64" >"$CACHE/qemu.env"
    step "QEMU for imx8mp: the installed one ($(qemu-system-aarch64 --version | head -1))"
    exit 0
fi
inputs=$(cat "$HERE/build.sh" "$HERE/imx8mp.mak" | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$inputs" ] && [ -x "$OUT/qemu-system-aarch64" ]; then
    echo "QEMU_IMX8MP=$OUT/qemu-system-aarch64" >"$CACHE/qemu.env"
    step "QEMU $VERSION for imx8mp up to date"
    exit 0
fi

# fetch_source: the orig tarball, checked against the pinned hash.
fetch_source() {
    mkdir -p "$BUILD"
    local tarball=$BUILD/$ORIG
    if [ ! -f "$tarball" ] || ! echo "$ORIG_SHA256  $tarball" | sha256sum -c --quiet 2>/dev/null; then
        step "downloading $ORIG (40 MB) from deb.debian.org"
        curl -fsSL -o "$tarball.tmp" "$POOL/$ORIG" ||
            die "cannot download $POOL/$ORIG: if Debian has moved past $VERSION, set VERSION and ORIG_SHA256 in $0 to trixie's current qemu (https://packages.debian.org/trixie/qemu-system-arm)"
        echo "$ORIG_SHA256  $tarball.tmp" | sha256sum -c --quiet || die "$ORIG does not have the pinned sha256"
        mv "$tarball.tmp" "$tarball"
    fi
    rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
    tar -xf "$tarball" -C "$BUILD/src" --strip-components=1
}

# configure_source: meson in a venv, the board's device list, Debian's missing firmware blobs
# not unpacked (direct kernel boot needs none).
configure_source() {
    step "meson for QEMU's build (pip, hash-pinned)"
    python3 -m venv "$BUILD/venv"
    local w
    for w in "${WHEELS[@]}"; do echo "$w"; done >"$BUILD/requirements.txt"
    "$BUILD/venv/bin/pip" install -q --require-hashes -r "$BUILD/requirements.txt" ||
        die "cannot install meson 1.5 from PyPI (QEMU 10 needs it)"
    cp "$HERE/imx8mp.mak" "$BUILD/src/configs/devices/aarch64-softmmu/platvmm-imx8mp.mak"
    sed -i 's/unpack_edk2_blobs = bzip2.found()/unpack_edk2_blobs = false/' "$BUILD/src/meson.build"
    mkdir -p "$BUILD/src/build"
    step "configuring QEMU $VERSION (aarch64, imx8mp-evk only)"
    (cd "$BUILD/src/build" && ../configure --python="$BUILD/venv/bin/python3" \
        --target-list=aarch64-softmmu --without-default-features --without-default-devices \
        --with-devices-aarch64=platvmm-imx8mp --enable-tcg --enable-fdt=system --enable-slirp \
        --enable-pixman --disable-docs --disable-werror --disable-install-blobs >"$BUILD/configure.log" 2>&1) ||
        die "QEMU's configure failed: see $BUILD/configure.log"
}

fetch_source
configure_source
step "building QEMU $VERSION (log: $BUILD/build.log)"
ninja -C "$BUILD/src/build" -j"$(nproc)" qemu-system-aarch64 >"$BUILD/build.log" 2>&1 ||
    die "QEMU's build failed: see $BUILD/build.log"
rm -rf "$OUT" && mkdir -p "$OUT"
cp "$BUILD/src/build/qemu-system-aarch64" "$OUT/"
qemu_imx8mp_virq "$OUT/qemu-system-aarch64" || die "the QEMU built does not report version >= 10.0.3"
"$OUT/qemu-system-aarch64" -machine help | grep -q '^imx8mp-evk ' || die "the QEMU built has no imx8mp-evk"
rm -rf "$BUILD/src"
echo "$inputs" >"$OUT/.stamp"
echo "QEMU_IMX8MP=$OUT/qemu-system-aarch64" >"$CACHE/qemu.env"
step "QEMU $VERSION for imx8mp ready ($OUT/qemu-system-aarch64)"
