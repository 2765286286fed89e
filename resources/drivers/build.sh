#!/usr/bin/env bash
# Builds upstream drivers that Debian's arm64 kernel leaves out, from that kernel's own source,
# out of tree, as resources/vfio/build.sh does for vfio: the ZynqMP peripherals' drivers the
# zynqmp-periph scenario drives (in L2, and in L1 for the baseline), dmatest to drive the DMA
# engine, and the memory-mapped TPM TIS driver (tpm_tis: Debian's arm64 config leaves it out)
# for the tpm scenario. Unchanged upstream code: Debian's config just does not select them.
# Output: $CACHE/drivers/*.ko for bookworm's kernel (6.1, which L2 and the ZynqMP board's L1
# run), rebuilt only when the kernel or this script changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/lib.sh
. "$HERE/../../ci/lib.sh"
[ -f "$CACHE/debian.env" ] || "$ROOT/resources/fetch-debian.sh"
# shellcheck source=/dev/null
. "$CACHE/debian.env"

OUT=$CACHE/drivers
# Source files (with the headers they include by relative path) and the objects built.
SOURCES=(drivers/rtc/rtc-zynqmp.c drivers/dma/dmaengine.h drivers/dma/dmatest.c drivers/dma/xilinx/zynqmp_dma.c
         drivers/net/can/xilinx_can.c drivers/char/tpm/tpm_tis.c drivers/char/tpm/tpm.h drivers/char/tpm/tpm_tis_core.h
         drivers/spi/spi-zynqmp-gqspi.c drivers/spi/spi-cadence.c)
OBJECTS=(drivers/rtc/rtc-zynqmp.o drivers/dma/dmatest.o drivers/dma/xilinx/zynqmp_dma.o drivers/net/can/xilinx_can.o
         drivers/char/tpm/tpm_tis.o drivers/spi/spi-zynqmp-gqspi.o drivers/spi/spi-cadence.o)

inputs=$( { echo "$KREL $KVER ${SOURCES[*]}"; cat "$HERE/build.sh"; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$inputs" ]; then
    step "extra drivers up to date"
    exit 0
fi

BUILD=$CACHE/drivers-build
rm -rf "$BUILD" && mkdir -p "$BUILD"
step "extracting ${#SOURCES[@]} files from $(basename "$KSRC_TAR")"
tar -xf "$KSRC_TAR" -C "$BUILD" --strip-components=1 "${SOURCES[@]/#/linux-source-$KBRANCH/}"
printf 'obj-m += %s\n' "${OBJECTS[@]}" >"$BUILD/Kbuild"

cross=() strip=strip
if [ "$(uname -m)" != aarch64 ]; then cross=(CROSS_COMPILE=aarch64-linux-gnu-) strip=aarch64-linux-gnu-strip; fi
step "building ${OBJECTS[*]} against linux-headers-$KREL"
make -s -C "$KHEADERS" M="$BUILD" ARCH=arm64 "${cross[@]}" -j"$(nproc)" \
    CONFIG_DEBUG_INFO_BTF_MODULES= modules 2>&1 | { grep -v '^Skipping BTF generation' || true; }

want=$(modinfo -F vermagic "$(find "$KMODULES/kernel/drivers/rtc" -name 'rtc-*.ko*' | head -1)")
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
for o in "${OBJECTS[@]}"; do
    ko=$BUILD/${o%.o}.ko
    [ -f "$ko" ] || die "${o%.o}.ko was not built"
    [ "$(modinfo -F vermagic "$ko")" = "$want" ] || die "$(basename "$ko") does not carry the kernel's vermagic '$want'"
    "$strip" --strip-debug -o "$OUT.tmp/$(basename "$ko")" "$ko"
done
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "$inputs" >"$OUT/.stamp"
step "extra drivers ready: $(cd "$OUT" && echo *.ko)"
