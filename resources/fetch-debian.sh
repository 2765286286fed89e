#!/usr/bin/env bash
# Fetches a Debian arm64 kernel, its headers, kbuild, source and busybox-static, and unpacks
# them for the other build scripts:
#   resources/fetch-debian.sh               bookworm's kernel (6.1): $CACHE/debian, debian.env
#   resources/fetch-debian.sh bpo           bookworm-backports' (6.12, the imx8mp board's L1):
#                                           $CACHE/debian-bpo, debian-bpo.env
#
# The kernel ABI (6.1.0-NN) is read from the linux-image-arm64 meta package every run, and
# every kernel package is pinned to the image's exact version: the out-of-tree vfio modules
# must carry the image's vermagic and symbol CRCs, and the source must be the same release.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/../ci/lib.sh"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# apt needs the :arm64 qualifier only when arm64 is a foreign architecture.
if [ "$(uname -m)" = aarch64 ]; then A=""; else A=":arm64"; fi

kernel_suffix "${1:-}" "resources/fetch-debian.sh [bpo]"
REL=""
[ -z "$SUFFIX" ] || REL=/bookworm-backports

DEBS=$CACHE/debs
ROOTFS=$CACHE/debian$SUFFIX
ENVFILE=$CACHE/debian$SUFFIX.env

# Prints "name arch-qualifier version" lines for every package we need, or fails if apt's
# lists don't know them.
resolve() {
    local img
    img=$(apt-cache depends "linux-image-arm64$A$REL" 2>/dev/null |
          sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\)\(:arm64\)\{0,1\}$/\1/p' | head -1)
    [ -n "$img" ] || return 1
    # One apt-cache call for both: each one re-reads all package lists (~1.5 s).
    local versions ver bbver
    versions=$(apt-cache show --no-all-versions "$img$A" "busybox-static$A" 2>/dev/null |
               awk '/^Package: /{p=$2} /^Version: /{print p, $2}')
    ver=$(awk -v p="$img" '$1 == p {print $2; exit}' <<<"$versions")
    bbver=$(awk '$1 == "busybox-static" {print $2; exit}' <<<"$versions")
    [ -n "$ver" ] && [ -n "$bbver" ] || return 1
    local abi=${img#linux-image-}; abi=${abi%-arm64}
    local kbranch=${abi%.*}                       # 6.1.0-56 -> 6.1, 6.12.95+deb12 -> 6.12
    # kbuild is per branch in bookworm (linux-kbuild-6.1), per ABI in backports.
    local kbuild=linux-kbuild-$kbranch
    if apt-cache show "linux-kbuild-$abi=$ver" >/dev/null 2>&1; then kbuild=linux-kbuild-$abi; fi
    echo "$img $A $ver"
    echo "linux-headers-$abi-arm64 $A $ver"
    echo "linux-headers-$abi-common - $ver"
    echo "$kbuild - $ver"
    echo "linux-source-$kbranch - $ver"
    echo "busybox-static $A $bbver"
}

if ! wanted=$(resolve); then
    step "apt-cache does not know the arm64 kernel packages: apt-get update"
    $SUDO apt-get update -q >/dev/null
    wanted=$(resolve) || die "apt cannot find linux-image-arm64$A$REL (is the arm64 architecture added, and bookworm-backports in apt's sources? run ci/setup-host.sh)"
fi

# The stamp holds the unpack path too: the headers' Makefile embeds it.
stamp="$wanted
at $ROOTFS"
if [ -f "$ROOTFS/.stamp" ] && [ "$(cat "$ROOTFS/.stamp")" = "$stamp" ] && [ -f "$ENVFILE" ]; then
    step "debian packages up to date ($(head -1 <<<"$wanted" | cut -d' ' -f1,3))"
    exit 0
fi

deb_path() { echo "$DEBS/${1}_${3//:/%3a}.deb"; }

download_missing() {
    local tmp name q ver f
    mkdir -p "$DEBS"
    tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
    # apt drops privileges to _apt for downloads; let it write there to avoid its warning.
    chown _apt "$tmp" 2>/dev/null || true
    while read -r name q ver; do
        [ "$q" = - ] && q=""
        f=$(deb_path "$name" "$q" "$ver")
        [ -s "$f" ] && continue
        step "apt-get download $name$q=$ver"
        (cd "$tmp" && apt-get download -q "$name$q=$ver" >/dev/null) || { rm -rf "$tmp"; return 1; }
        mv "$tmp"/*.deb "$f"
    done <<<"$wanted"
    rm -rf "$tmp"
}

if ! download_missing; then
    # The lists may name versions the mirror no longer carries: refresh once and re-resolve.
    step "download failed: apt-get update and retry"
    $SUDO apt-get update -q >/dev/null
    wanted=$(resolve) || die "apt cannot resolve the kernel packages after apt-get update"
    download_missing || die "apt-get download failed"
fi

step "unpacking $(wc -l <<<"$wanted") packages into $ROOTFS"
rm -rf "$ROOTFS.tmp"
mkdir -p "$ROOTFS.tmp"
while read -r name q ver; do
    [ "$q" = - ] && q=""
    dpkg-deb -x "$(deb_path "$name" "$q" "$ver")" "$ROOTFS.tmp"
done <<<"$wanted"

img=$(head -1 <<<"$wanted" | cut -d' ' -f1)
KREL=${img#linux-image-}                 # 6.1.0-56-arm64, 6.12.95+deb12-arm64
ABI=${KREL%-arm64}                       # 6.1.0-56, 6.12.95+deb12
KBRANCH=$(sed -n 's/^linux-source-\([^ ]*\) .*/\1/p' <<<"$wanted")
KVER=$(head -1 <<<"$wanted" | cut -d' ' -f3)

# The arch headers include the common half by its installed absolute path.
hdr=$ROOTFS.tmp/usr/src/linux-headers-$KREL/Makefile
[ -f "$hdr" ] || die "no linux-headers-$KREL/Makefile in the headers package"
sed -i "s|^include .*/linux-headers-$ABI-common/Makefile\$|include $ROOTFS/usr/src/linux-headers-$ABI-common/Makefile|" "$hdr"
grep -q "^include $ROOTFS/" "$hdr" || die "could not point $hdr at the unpacked -common headers"

# What the image's postinst would do: modules.dep etc., so the initramfs builders can
# resolve a stock module's dependencies with modprobe --show-depends.
depmod -b "$ROOTFS.tmp" "$KREL"

rm -rf "$ROOTFS"
mv "$ROOTFS.tmp" "$ROOTFS"

vmlinuz=$ROOTFS/boot/vmlinuz-$KREL
srctar=$(echo "$ROOTFS"/usr/src/linux-source-"$KBRANCH".tar.*)
for f in "$vmlinuz" "$srctar" "$ROOTFS/bin/busybox" "$ROOTFS/lib/modules/$KREL/modules.order"; do
    [ -e "$f" ] || die "expected $f after unpacking"
done

cat >"$ENVFILE" <<EOF
# Written by resources/fetch-debian.sh; sourced by the other build scripts.
KREL=$KREL
KVER=$KVER
KBRANCH=$KBRANCH
DEB_ROOT=$ROOTFS
VMLINUZ=$vmlinuz
KHEADERS=$ROOTFS/usr/src/linux-headers-$KREL
KSRC_TAR=$srctar
KMODULES=$ROOTFS/lib/modules/$KREL
BUSYBOX=$ROOTFS/bin/busybox
EOF
stamp="$wanted
at $ROOTFS"
printf '%s\n' "$stamp" >"$ROOTFS/.stamp"
step "debian packages ready: kernel $KREL ($KVER)"
