#!/usr/bin/env bash
# platvmm's device checks on a real aarch64 board (e.g. an NXP Layerscape RDB), as root —
# what the emulated board cannot show: SEC job rings running (the guest's caam driver on the
# rings, its hwrng producing bytes), and real SATA/USB controllers (the guest reads the disk and
# matches the host's md5 of the same bytes). Meant for a self-hosted aarch64 CI runner; see
# docs/hw-test.md.
#
#   ci/hw-test.sh [--jr DEV]... [--sata DEV] [--usb DEV] [--mib N]
#
# DEV is a platform device name (1710000.jr, 3200000.sata, 2f00000.usb). Without options every
# SEC job ring but the first (the host keeps one) is used. Each device is unbound from its host
# driver, bound to vfio-platform, handed to a guest, and rebound to its driver at the end.
# Without an IOMMU for the devices (VFIO no-IOMMU), guest RAM is identity-mapped: reserve
# hugepages on the host command line (hugepagesz=32M hugepages=16).
# Disks are only read (the first --mib MiB, default 256). Last line: "hw-test: N passed, M failed".
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

JRS=() SATA="" USB="" MIB=256
while [ $# -gt 0 ]; do
    case $1 in
        --jr) JRS+=("$2"); shift 2 ;;
        --sata) SATA=$2; shift 2 ;;
        --usb) USB=$2; shift 2 ;;
        --mib) MIB=$2; shift 2 ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

[ "$(uname -m)" = aarch64 ] || die "hw-test runs on an aarch64 board (here: $(uname -m)); use ci/e2e.sh elsewhere"
[ "$(id -u)" = 0 ] || die "hw-test must run as root (VFIO, driver binding, pagemap)"
[ -c /dev/kvm ] || die "no /dev/kvm: boot the board's kernel at EL2 with KVM"
modprobe vfio-platform 2>/dev/null || true
[ -d /sys/bus/platform/drivers/vfio-platform ] || die "no vfio-platform driver: build the kernel with CONFIG_VFIO_PLATFORM"

if [ ${#JRS[@]} = 0 ]; then
    all=()
    for j in /sys/bus/platform/devices/*.jr; do [ -e "$j" ] && all+=("$(basename "$j")"); done
    [ ${#all[@]} -gt 1 ] && JRS=("${all[@]:1}")
fi

step "building platvmm, the guest kernel and initramfs"
"$ROOT/ci/setup-host.sh"
"$ROOT/resources/fetch-debian.sh"
"$ROOT/resources/l2/build.sh"
(cd "$ROOT" && cargo build -q --release --target aarch64-unknown-linux-gnu --bin platvmm)
# shellcheck source=/dev/null
. "$CACHE/debian.env"
PLATVMM=$ROOT/target/aarch64-unknown-linux-gnu/release/platvmm
LOGS=$ROOT/target/hw-test
mkdir -p "$LOGS"

# Devices whose group has no IOMMU need identity-mapped RAM for DMA.
IDENTITY=()
noiommu() { [ -e "/dev/vfio/noiommu-$(basename "$(readlink "/sys/bus/platform/devices/$1/iommu_group")")" ]; }

declare -A ORIG=()
to_vfio() {  # DEV
    local d=/sys/bus/platform/devices/$1
    [ -e "$d" ] || die "no platform device $1"
    ORIG[$1]=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null || true)
    [ -e "$d/driver" ] && echo "$1" >"$d/driver/unbind"
    echo vfio-platform >"$d/driver_override"
    echo "$1" >/sys/bus/platform/drivers/vfio-platform/bind
    if noiommu "$1"; then IDENTITY=(--identity-map-ram); fi
}
restore() {
    local dev
    for dev in "${!ORIG[@]}"; do
        local d=/sys/bus/platform/devices/$dev
        if [ -e "$d/driver" ]; then echo "$dev" >"$d/driver/unbind" 2>/dev/null || true; fi
        echo >"$d/driver_override"
        if [ -n "${ORIG[$dev]}" ]; then
            echo "$dev" >"/sys/bus/platform/drivers/${ORIG[$dev]}/bind" 2>/dev/null ||
                echo "warning: could not rebind $dev to ${ORIG[$dev]}" >&2
        fi
    done
}
trap restore EXIT

passed=0 failed=0
guest() {  # NAME CMDLINE-EXTRA PLATVMM-ARGS...
    local name=$1 extra=$2; shift 2
    local log=$LOGS/$name.log
    step "hw-test $name: platvmm $*"
    timeout 600 "$PLATVMM" --kernel "$VMLINUZ" --initramfs "$CACHE/l2/initramfs.cpio.gz" \
        --memory 512M --cpus 2 --stats "${IDENTITY[@]}" "$@" \
        --cmdline "console=ttyS0 panic=-1 $extra" </dev/null >"$log" 2>&1 || true
    local r
    r=$(tr -d '\r' <"$log" | sed -n 's/.*\(L2-RESULT: .*\)/\1/p' | tail -1)
    case $r in
        "L2-RESULT: PASS"*) passed=$((passed + 1)); echo "PASS $name: ${r#L2-RESULT: PASS }" ;;
        *) failed=$((failed + 1)); echo "FAIL $name: ${r:-no result (see $log)}" ;;
    esac
}

# host_md5 DEV: md5 of the first MIB MiB of the disk behind controller DEV, read by the host.
host_md5() {
    local blk
    blk=$(find "/sys/bus/platform/devices/$1/" -name 'sd[a-z]' -path '*block*' 2>/dev/null | head -1)
    [ -n "$blk" ] || return 1
    dd if="/dev/$(basename "$blk")" bs=1M count="$MIB" status=none | md5sum | cut -d' ' -f1
}

if [ ${#JRS[@]} -gt 0 ]; then
    args=()
    for jr in "${JRS[@]}"; do to_vfio "$jr"; args+=(--vfio-platform "/sys/bus/platform/devices/$jr"); done
    guest sec "platvmm.check=sec platvmm.sec_rings=${#JRS[@]}" "${args[@]}"
fi
for kind in sata usb; do
    dev=${SATA}; mods=ahci_platform,sd_mod
    [ $kind = usb ] && { dev=$USB; mods=xhci_plat_hcd,usb_storage,sd_mod; }
    [ -n "$dev" ] || continue
    md5=$(host_md5 "$dev") || { failed=$((failed + 1)); echo "FAIL $kind: the host sees no disk behind $dev"; continue; }
    to_vfio "$dev"
    guest "$kind" "platvmm.check=disk platvmm.disk_modules=$mods platvmm.disk_dev=sda platvmm.disk_mib=$MIB platvmm.disk_write=0 platvmm.disk_md5=$md5" \
        --vfio-platform "/sys/bus/platform/devices/$dev"
done
echo "hw-test: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
