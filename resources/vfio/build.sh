#!/usr/bin/env bash
# Builds drivers/vfio of the Debian kernel's own source out of tree, with what Debian's arm64
# config leaves out: VFIO_NOIOMMU (platform devices on QEMU's virt board sit behind no IOMMU),
# VFIO_PLATFORM and VFIO_AMBA. Output: $CACHE/vfio/*.ko, rebuilt only when the kernel, the
# patches or this script change.
#   resources/vfio/build.sh        for bookworm's kernel (6.1): $CACHE/vfio
#   resources/vfio/build.sh bpo    for bookworm-backports' (6.12): $CACHE/vfio-bpo
# Patches: resources/vfio/BRANCH/*.patch (BRANCH: 6.1, 6.12), against the kernel tree root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/lib.sh
. "$HERE/../../ci/lib.sh"

kernel_suffix "${1:-}" "resources/vfio/build.sh [bpo]"
[ -f "$CACHE/debian$SUFFIX.env" ] || "$ROOT/resources/fetch-debian.sh" ${SUFFIX:+bpo}
# shellcheck source=/dev/null
. "$CACHE/debian$SUFFIX.env"

OUT=$CACHE/vfio$SUFFIX
# Since 6.2 VFIO_VIRQFD is a bool: virqfd.o goes into vfio.ko.
VFIO_MODULES=(vfio_virqfd vfio vfio_iommu_type1 vfio-platform-base vfio-platform vfio-amba)
virqfd=(CONFIG_VFIO_VIRQFD=m)
if [ "$KBRANCH" != 6.1 ]; then VFIO_MODULES=("${VFIO_MODULES[@]:1}") virqfd=(CONFIG_VFIO_VIRQFD=y); fi
PATCHES=()
for p in "$HERE/$KBRANCH"/*.patch; do [ -e "$p" ] && PATCHES+=("$p"); done

inputs=$( { echo "$KREL $KVER"; cat "$HERE/build.sh" "${PATCHES[@]}"; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$inputs" ]; then
    step "vfio modules up to date"
    exit 0
fi

# Decompressing the whole 140 MB source tarball takes ~10 s: keep the pristine drivers/vfio.
PRISTINE=$CACHE/linux-source-$KVER-vfio
if [ ! -f "$PRISTINE/.done" ]; then
    step "extracting drivers/vfio from $(basename "$KSRC_TAR")"
    rm -rf "$PRISTINE" && mkdir -p "$PRISTINE"
    tar -xf "$KSRC_TAR" -C "$PRISTINE" --strip-components=1 --wildcards '*/drivers/vfio'
    touch "$PRISTINE/.done"
fi

BUILD=$CACHE/vfio$SUFFIX-build
rm -rf "$BUILD"
cp -a "$PRISTINE/drivers/vfio" "$BUILD"
for p in "${PATCHES[@]}"; do
    step "applying $(basename "$p")"
    # The patches are written against the kernel tree root (a/drivers/vfio/...).
    patch -s -p3 -d "$BUILD" <"$p"
done

cross=() strip=strip
if [ "$(uname -m)" != aarch64 ]; then cross=(CROSS_COMPILE=aarch64-linux-gnu-) strip=aarch64-linux-gnu-strip; fi

step "building vfio modules against linux-headers-$KREL"
# Command-line CONFIG_ values override the kernel's auto.conf: turn on what Debian lacks and
# off what we don't need (pci, mdev, fsl-mc). CONFIG_VFIO_NOIOMMU is only tested by the C code
# (#ifdef / IS_ENABLED), so it goes in as a define.
make -s -C "$KHEADERS" M="$BUILD" ARCH=arm64 "${cross[@]}" -j"$(nproc)" \
    CONFIG_VFIO=m "${virqfd[@]}" CONFIG_VFIO_IOMMU_TYPE1=m \
    CONFIG_VFIO_PLATFORM_BASE=m CONFIG_VFIO_PLATFORM=m CONFIG_VFIO_AMBA=m \
    CONFIG_VFIO_PCI= CONFIG_VFIO_PCI_CORE= CONFIG_VFIO_MDEV= CONFIG_VFIO_FSL_MC= \
    CONFIG_VFIO_IOMMU_SPAPR_TCE= CONFIG_VFIO_SPAPR_EEH= CONFIG_VFIO_CDX= CONFIG_DEBUG_INFO_BTF_MODULES= \
    KCFLAGS="-DCONFIG_VFIO_NOIOMMU=1" \
    modules 2>&1 | { grep -v '^Skipping BTF generation' || true; }

# A module only loads if its vermagic matches the running kernel's exactly.
# (6.12's modules are xz-compressed: vfio.ko.xz.)
stock=$(find "$KMODULES/kernel/drivers/vfio" -maxdepth 1 -name 'vfio.ko*' | head -1)
[ -n "$stock" ] || die "no stock vfio module under $KMODULES/kernel/drivers/vfio"
want=$(modinfo -F vermagic "$stock")
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
for m in "${VFIO_MODULES[@]}"; do
    ko=$(find "$BUILD" -name "$m.ko" | head -1)
    [ -n "$ko" ] || die "$m.ko was not built"
    got=$(modinfo -F vermagic "$ko")
    [ "$got" = "$want" ] || die "$m.ko vermagic '$got' != kernel's '$want'"
    # Debug info makes them 5x larger; the initramfs doesn't need it (Debian strips too).
    "$strip" --strip-debug -o "$OUT.tmp/$m.ko" "$ko"
done
modinfo -F parm "$OUT.tmp/vfio.ko" | grep -q '^enable_unsafe_noiommu_mode:' ||
    die "vfio.ko was built without CONFIG_VFIO_NOIOMMU"

rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "$inputs" >"$OUT/.stamp"
step "vfio modules ready: ${VFIO_MODULES[*]}"
