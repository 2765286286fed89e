#!/usr/bin/env bash
# The corpus benchmark (issue 24): how many of the guest nodes platvmm generates from real
# upstream board trees satisfy their own binding. For each board of BOARDS (linux-source-6.12),
# every enabled MMIO device node with interrupts of a passthrough class goes through
# `platvmm preview-dt` (with no options, then with a rate for every clock, the devices it
# references — DMA controllers, PHYs, GPIO and interrupt controllers of its children... —
# passed to the same VM, and group=on for a node with memory-mapped child devices) and
# dt-validate;
# ci/corpus.py does the selection, the class table, validation and the tables.
# Ends with "corpus: N valid of M (P%), floor F%"; exit 1 below the floor.
# Shares ci/dt-validate.sh's cache (target/board/dtschema): warm, it takes about a minute.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=ci/dtschema-lib.sh
. "$ROOT/ci/dtschema-lib.sh"

# The share of guest nodes valid given clock rates (and the devices the node references), last
# measured (86.5%, docs/devices.md) and rounded down: the run is deterministic, so the same
# input never fails it. Raise it as the generator improves (never lower it to make a change
# pass).
FLOOR=86

# At least 12 boards from at least 8 vendors; the vendor directories are DT_VENDORS.
BOARDS=(
    freescale/imx8mp-evk.dts
    freescale/fsl-ls1046a-rdb.dts
    freescale/fsl-lx2160a-rdb.dts
    xilinx/zynqmp-zcu102-rev1.0.dts
    rockchip/rk3399-rockpro64.dts
    rockchip/rk3588-rock-5b.dts
    amlogic/meson-g12b-odroid-n2.dts
    allwinner/sun50i-h6-pine-h64.dts
    mediatek/mt8195-demo.dts
    nvidia/tegra194-p2972-0000.dts
    renesas/r8a77951-salvator-xs.dts
    ti/k3-am625-sk.dts
    socionext/uniphier-ld20-ref.dts
    marvell/armada-8040-mcbin.dts
)

t0=$(date +%s)
dtschema_setup

step "building platvmm for this host"
(cd "$ROOT" && cargo build -q --release --bin platvmm ${HOST_TARGET:+--target "$HOST_TARGET"})
PLATVMM=$ROOT/target/${HOST_TARGET:+$HOST_TARGET/}release/platvmm

WORK=$DT_OUT/corpus
rm -rf "$WORK" && mkdir -p "$WORK/guest"
step "compiling ${#BOARDS[@]} board trees"
args=()
for b in "${BOARDS[@]}"; do
    dtb=$(host_dtb "$b" "$WORK") || die "$b does not compile"
    args+=("$(basename "$b" .dts)=$dtb")
done

step "preview-dt and validation of every node"
status=0
python3 "$ROOT/ci/corpus.py" "$PLATVMM" "$DT_SCHEMA" "$WORK/guest" "$FLOOR" "${args[@]}" ||
    status=$?
step "corpus: $(( $(date +%s) - t0 ))s"
exit $status
