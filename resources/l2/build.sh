#!/usr/bin/env bash
# Builds L2's initramfs ($CACHE/l2/initramfs.cpio.gz): busybox-static, /init and the checks
# it can run (resources/l2/checks/*.sh), and the same tree as an ext4 root filesystem image
# ($CACHE/l2/rootfs.ext4.gz). Rebuilt only when an input changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/lib.sh
. "$HERE/../../ci/lib.sh"
[ -f "$CACHE/debian.env" ] || "$ROOT/resources/fetch-debian.sh"
# shellcheck source=/dev/null
. "$CACHE/debian.env"
# shellcheck source=resources/initramfs-lib.sh
. "$ROOT/resources/initramfs-lib.sh"

# Stock modules the guest needs (e.g. virtio_mmio virtio_blk qemu_fw_cfg for device
# scenarios). Its /init does not load them: a check runs modprobe for what it uses.
L2_STOCK_MODULES=(qemu_fw_cfg gpio_keys evdev virtio_mmio virtio_blk virtio_net virtio_rng vmw_vsock_virtio_transport ext4 ahci_platform ahci_ceva sd_mod xhci_plat_hcd usb_storage caam caam_jr macb sdhci_of_arasan mmc_block fixed sdhci_esdhc_imx i2c_imx at24 imx2_wdt fec can_dev can_raw tpm_tis_core spi_nor mtdblock rtc_snvs spi_cadence_quadspi)

OUT=$CACHE/l2
[ -f "$CACHE/drivers/.stamp" ] || die "no extra drivers in $CACHE/drivers: run resources/drivers/build.sh"
hash=$(inputs_hash "=$KREL $KVER" "=${L2_STOCK_MODULES[*]}" "$CACHE/drivers" "$BUSYBOX" "$MKCPIO" \
       "$ROOT/resources/initramfs-lib.sh" "$HERE" "$ROOT/resources/net" "$ROOT/resources/shared")
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$hash" ] && [ -f "$OUT/initramfs.cpio.gz" ] &&
   [ -f "$OUT/rootfs.ext4.gz" ]; then
    step "L2 initramfs up to date"
    exit 0
fi

step "building the L2 initramfs"
mkdir -p "$OUT"
stage_stock_modules "$OUT/modules" "${L2_STOCK_MODULES[@]}"
stage_extra_modules "$OUT/modules" "$CACHE/drivers"
# Small static guest tools (tools/*.c): the cross compiler on x86_64, the native one on arm64.
CC=aarch64-linux-gnu-gcc
command -v $CC >/dev/null || CC=gcc
mkdir -p "$OUT/tools"
for src in "$HERE"/tools/*.c; do
    $CC -static -O2 -Wall -Werror -o "$OUT/tools/$(basename "${src%.c}")" "$src" ||
        die "cannot build $src"
done
# The same tree twice: as the initramfs, and as an ext4 root filesystem image for the
# rootdisk scenario (/etc/l2-rootfs marks it), made without root by mke2fs -d.
l2_spec() {
    spec_busybox_base
    echo "file init $HERE/init 755"
    echo "file etc/udhcpc.script $ROOT/resources/net/udhcpc.script 755"
    echo "dir checks 755"
    echo "dir lib/platvmm 755"
    echo "file lib/platvmm/uart-exchange.sh $ROOT/resources/shared/uart-exchange.sh 644"
    echo "file lib/platvmm/flash-read.sh $ROOT/resources/shared/flash-read.sh 644"
    for c in "$HERE"/checks/*.sh; do echo "file checks/$(basename "$c") $c 644"; done
    [ ${#L2_STOCK_MODULES[@]} = 0 ] || echo "tree lib/modules $OUT/modules/lib/modules"
    for t in "$OUT"/tools/*; do echo "file bin/$(basename "$t") $t 755"; done
}
l2_spec | python3 "$MKCPIO" --compress gzip "$OUT/initramfs.cpio.gz"

# Spec lines -> a directory (device nodes left out: the guest mounts devtmpfs).
spec_to_dir() {
    local dir=$1 kind path a b
    rm -rf "$dir" && mkdir -p "$dir"
    while read -r kind path a b; do
        case $kind in
            dir) mkdir -p "$dir/$path" ;;
            file) mkdir -p "$dir/$(dirname "$path")"; cp "$a" "$dir/$path"; chmod "$b" "$dir/$path" ;;
            slink) mkdir -p "$dir/$(dirname "$path")"; ln -sfn "$a" "$dir/$path" ;;
            tree) mkdir -p "$dir/$path"; cp -a "$a/." "$dir/$path/" ;;
            nod) ;;
            *) die "spec_to_dir: unknown entry '$kind'" ;;
        esac
    done
}
command -v mke2fs >/dev/null || die "mke2fs not found: install e2fsprogs (ci/setup-host.sh does)"
{ l2_spec; echo "file etc/l2-rootfs /dev/null 644"; } | spec_to_dir "$OUT/rootfs"
rm -f "$OUT/rootfs.ext4"
mke2fs -q -F -t ext4 -L l2root -E root_owner=0:0 -d "$OUT/rootfs" "$OUT/rootfs.ext4" 48M ||
    die "mke2fs could not build the L2 root filesystem image"
gzip -1 -n -f "$OUT/rootfs.ext4"
rm -rf "$OUT/rootfs"
echo "$hash" >"$OUT/.stamp"
step "L2 initramfs ready ($(du -k "$OUT/initramfs.cpio.gz" | cut -f1) KiB; root image $(du -k "$OUT/rootfs.ext4.gz" | cut -f1) KiB gzipped)"
