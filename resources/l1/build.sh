#!/usr/bin/env bash
# Builds L1's initramfs ($CACHE/l1/initramfs.cpio): busybox, /init, the vfio modules, the
# platvmm binary, L2's kernel, initramfs and gzipped ext4 root image, L2's static test tools
# (in /bin: L1 is aarch64 too, and runs their other end), and the scenarios. Rebuilt only when
# an input changes.
#   resources/l1/build.sh        for L1 on bookworm's kernel (6.1): $CACHE/l1
#   resources/l1/build.sh bpo    for L1 on bookworm-backports' (6.12): $CACHE/l1-bpo
# L2 runs bookworm's kernel on every board.
#   PLATVMM_BIN   the static aarch64 platvmm to put in /bin (default: the release build)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/lib.sh
. "$HERE/../../ci/lib.sh"
kernel_suffix "${1:-}" "resources/l1/build.sh [bpo]"
[ -f "$CACHE/debian.env" ] || "$ROOT/resources/fetch-debian.sh"
# shellcheck source=/dev/null
. "$CACHE/debian.env"
L2_IMAGE=$VMLINUZ
[ -f "$CACHE/debian$SUFFIX.env" ] || "$ROOT/resources/fetch-debian.sh" ${SUFFIX:+bpo}
# shellcheck source=/dev/null
. "$CACHE/debian$SUFFIX.env"
# shellcheck source=resources/initramfs-lib.sh
. "$ROOT/resources/initramfs-lib.sh"

# Stock modules L1's /init modprobes at boot, for scenarios that need them (with their
# dependencies; e.g. qemu_fw_cfg, virtio_mmio).
L1_STOCK_MODULES=(virtio_mmio virtio_blk tun vhost_net vhost_vsock loop ext4 ahci_platform ahci_ceva sd_mod xhci_plat_hcd usb_storage macb sdhci_of_arasan mmc_block can_dev can_raw tpm_tis_core spi_nor mtdblock)
# The imx8mp board's L1 (6.12): the SD slot's supply (a fixed regulator: until it probes,
# fw_devlink keeps every driver, vfio-platform too, off uSDHC2) and L1's own uSDHC driver for
# the baseline read.
[ -z "$SUFFIX" ] || L1_STOCK_MODULES=(fixed sdhci_esdhc_imx i2c_imx at24 nvmem_imx_ocotp fec)
# Staged, not loaded at boot: the scenario loads them when it needs them (imx2_wdt cannot be
# unbound once it has a device: the imx8mp scenario loads it to take the WDOG back from L2);
# /init loads virtio_console first on a board whose console is hvc0 (versal-periph's).
L1_LATER_MODULES=(spi_cadence_quadspi virtio_console)
[ -z "$SUFFIX" ] || L1_LATER_MODULES=(imx2_wdt rtc_snvs)

PLATVMM_BIN=${PLATVMM_BIN:-$ROOT/target/aarch64-unknown-linux-gnu/release/platvmm}
VFIO=$CACHE/vfio$SUFFIX
L2_CPIO=$CACHE/l2/initramfs.cpio.gz
SCENARIOS=$ROOT/tests/integration/scenarios
# Device-tree fragments for platvmm's overlay options, compiled here (L1 has no dtc).
OVERLAYS=$ROOT/tests/integration/overlays
OUT=$CACHE/l1$SUFFIX

[ -f "$PLATVMM_BIN" ] || die "no platvmm binary at $PLATVMM_BIN (cargo build --release --target aarch64-unknown-linux-gnu)"
[ -f "$VFIO/.stamp" ] || die "no vfio modules in $VFIO: run resources/vfio/build.sh ${SUFFIX:+bpo}"
[ -f "$L2_CPIO" ] || die "no $L2_CPIO: run resources/l2/build.sh"

# L1's initramfs has no libraries: platvmm must be an aarch64 executable, statically linked.
hdr=$(LC_ALL=C readelf -h "$PLATVMM_BIN" 2>/dev/null) || die "$PLATVMM_BIN is not an ELF file"
grep -q 'Machine: *AArch64' <<<"$hdr" || die "$PLATVMM_BIN is not an aarch64 binary"
if LC_ALL=C readelf -l "$PLATVMM_BIN" | grep -q 'program interpreter'; then
    die "$PLATVMM_BIN is dynamically linked (.cargo/config.toml should make it static)"
fi

# bookworm's L1 gets the extra drivers too (the ZynqMP peripherals' baseline); they are 6.1's.
EXTRA=()
[ -n "$SUFFIX" ] || EXTRA=("$CACHE/drivers")
hash=$(inputs_hash "=$KREL $KVER" "$L2_IMAGE" "${EXTRA[@]}" "=${L1_STOCK_MODULES[*]} ${L1_LATER_MODULES[*]}" "$BUSYBOX" "$VMLINUZ" "$MKCPIO" \
       "$ROOT/resources/initramfs-lib.sh" "$HERE" "$VFIO" "$PLATVMM_BIN" "$L2_CPIO" "$CACHE/l2/rootfs.ext4.gz" "$CACHE/l2/tools" "$SCENARIOS" "$OVERLAYS" "$ROOT/resources/net" "$ROOT/resources/shared")
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$hash" ] && [ -f "$OUT/initramfs.cpio" ]; then
    step "L1 initramfs up to date"
    exit 0
fi

step "building the L1 initramfs"
mkdir -p "$OUT"
stage_stock_modules "$OUT/modules" "${L1_STOCK_MODULES[@]}" "${L1_LATER_MODULES[@]}"
[ ${#EXTRA[@]} = 0 ] || stage_extra_modules "$OUT/modules" "${EXTRA[0]}"
printf '%s\n' "${L1_STOCK_MODULES[@]}" >"$OUT/l1-modules"
rm -rf "$OUT/overlays" && mkdir -p "$OUT/overlays"
for dts in "$OVERLAYS"/*.dts; do
    [ -e "$dts" ] || continue
    dtc -q -I dts -O dtb -o "$OUT/overlays/$(basename "${dts%.dts}").dtb" "$dts" ||
        die "cannot compile $dts"
done
# Uncompressed: inflating ~40 MB under TCG at every boot costs more than QEMU copying it.
{
    spec_busybox_base
    echo "file init $HERE/init 755"
    echo "file etc/l1-modules $OUT/l1-modules 644"
    echo "file etc/udhcpc.script $ROOT/resources/net/udhcpc.script 755"
    echo "file bin/platvmm $PLATVMM_BIN 755"
    echo "dir lib/platvmm 755"
    echo "file lib/platvmm/uart-exchange.sh $ROOT/resources/shared/uart-exchange.sh 644"
    echo "file lib/platvmm/flash-read.sh $ROOT/resources/shared/flash-read.sh 644"
    echo "dir lib/modules/vfio 755"
    for ko in "$VFIO"/*.ko; do echo "file lib/modules/vfio/$(basename "$ko") $ko 644"; done
    [ ${#L1_STOCK_MODULES[@]} = 0 ] || echo "tree lib/modules/$KREL $OUT/modules/lib/modules/$KREL"
    echo "file l2/Image $L2_IMAGE 644"
    echo "file l2/initramfs.cpio.gz $L2_CPIO 644"
    echo "file l2/rootfs.ext4.gz $CACHE/l2/rootfs.ext4.gz 644"
    # L2's static test tools (netblast, vsock-echo...) serve L1's side of the scenarios too.
    for t in "$CACHE"/l2/tools/*; do echo "file bin/$(basename "$t") $t 755"; done
    echo "tree scenarios $SCENARIOS"
    echo "tree overlays $OUT/overlays"
} | python3 "$MKCPIO" --compress none "$OUT/initramfs.cpio"
echo "$hash" >"$OUT/.stamp"
step "L1 initramfs ready ($(( $(stat -c %s "$OUT/initramfs.cpio") / 1048576 )) MiB)"
