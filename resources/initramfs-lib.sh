# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
# Helpers shared by resources/l1/build.sh and resources/l2/build.sh. Sourced after ci/lib.sh
# and $CACHE/debian.env. The builders emit resources/mkcpio.py spec lines on stdout.

MKCPIO=$ROOT/resources/mkcpio.py

# busybox is an arm64 binary: on an x86 host it runs under qemu-user (it is static).
run_arm64() {
    if [ "$(uname -m)" = aarch64 ]; then "$@"; else qemu-aarch64 "$@"; fi
}

# The skeleton both inits need: busybox with a link per applet, mount points, and a
# /dev/console node so the kernel can hand /init its stdio before devtmpfs is mounted.
spec_busybox_base() {
    local applets
    applets=$(run_arm64 "$BUSYBOX" --list-full) || die "cannot run $BUSYBOX --list-full"
    echo "file bin/busybox $BUSYBOX 755"
    while read -r path; do
        [ "$path" = bin/busybox ] || echo "slink $path /bin/busybox"
    done <<<"$applets"
    local d
    for d in proc sys dev run root etc mnt; do echo "dir $d 755"; done
    echo "dir tmp 1777"
    echo "nod dev/console 600 c 5 1"
}

# Stages stock modules NAMEs (with what they depend on) from the Debian image into
# STAGE/lib/modules/$KREL with fresh indexes, so busybox modprobe finds them at boot.
stage_stock_modules() {
    local stage=$1; shift
    local dst=$stage/lib/modules/$KREL name dep rel
    rm -rf "$stage" && mkdir -p "$dst"
    [ $# -gt 0 ] || return 0
    for name in "$@"; do
        deps=$(modprobe --show-depends -d "$DEB_ROOT" -S "$KREL" "$name") ||
            die "stock module $name not found in $KMODULES"
        while read -r _ dep _; do
            case $dep in
                "$KMODULES"/*) ;;
                *) continue ;;   # "builtin NAME" lines: nothing to copy
            esac
            rel=${dep#"$KMODULES"/}
            mkdir -p "$dst/$(dirname "$rel")"
            case $rel in
                # 6.12's modules are xz-compressed; busybox modprobe loads plain ELF only.
                *.ko.xz) xz -dc "$dep" >"$dst/${rel%.xz}" ;;
                *) cp "$dep" "$dst/$rel" ;;
            esac
        done <<<"$deps"
    done
    cp "$KMODULES"/modules.{order,builtin,builtin.modinfo} "$dst/"
    depmod -b "$stage" "$KREL"
}

# Adds the out-of-tree modules of DIR (resources/drivers/build.sh) to STAGE's module tree as
# extra/*.ko and re-indexes it, so modprobe finds them by name.
stage_extra_modules() {
    local stage=$1 dir=$2 dst=$1/lib/modules/$KREL/extra
    mkdir -p "$dst"
    cp "$dir"/*.ko "$dst/"
    depmod -b "$stage" "$KREL"
}

# A hash of everything that goes into an image: file names and contents, in order.
# Arguments are files or directories (taken recursively) or literal strings prefixed "=".
inputs_hash() {
    local a
    for a in "$@"; do
        case $a in
            =*) echo "$a" ;;
            *) if [ -d "$a" ]; then
                   (cd "$a" && find . -type f -print0 | sort -z | xargs -0r sha256sum)
               else
                   echo "$a"; sha256sum <"$a"
               fi ;;
        esac
    done | sha256sum | cut -d' ' -f1
}
