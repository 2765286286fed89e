#!/usr/bin/env bash
# Validates the guest nodes platvmm's type handlers generate from real upstream board trees
# (Layerscape LS1046A/LS1088A RDB, ZynqMP ZCU102) against the upstream dt-schema bindings of
# the same Linux source package the board uses (6.1), with dt-validate from PyPI.
# Prints one line per case and "dt-validate: N passed, M failed"; exit != 0 on any failure.
# Cached under target/board/dtschema: a second run only regenerates and validates.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

"$ROOT/resources/fetch-debian.sh"
# shellcheck source=/dev/null
. "$CACHE/debian.env"
OUT=$CACHE/dtschema
mkdir -p "$OUT"

# dt-schema 2022.12 matches the 6.1 bindings; it resolves $refs with jsonschema's RefResolver,
# which jsonschema 4.18 replaced (refs then go unresolved and it tries the network): pin 4.17.
# Debian's python3-libfdt saves building pylibfdt.
DTSCHEMA_VERSION="2022.12 jsonschema 4.17.3"
if [ ! -x "$OUT/venv/bin/dt-validate" ] || [ "$(cat "$OUT/venv/.version" 2>/dev/null)" != "$DTSCHEMA_VERSION" ]; then
    step "installing dtschema $DTSCHEMA_VERSION (venv)"
    rm -rf "$OUT/venv"
    /usr/bin/python3 -m venv --system-site-packages "$OUT/venv"
    "$OUT/venv/bin/pip" install -q "dtschema==2022.12" "jsonschema==4.17.3"
    echo "$DTSCHEMA_VERSION" >"$OUT/venv/.version"
fi
export PATH=$OUT/venv/bin:$PATH

SRC=$OUT/linux
if [ ! -f "$SRC/.stamp" ] || [ "$(cat "$SRC/.stamp")" != "$KVER" ]; then
    step "extracting bindings and arm64 board trees from $(basename "$KSRC_TAR")"
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xJf "$KSRC_TAR" -C "$SRC" --strip-components=1 \
        "linux-source-$KBRANCH/Documentation/devicetree/bindings" \
        "linux-source-$KBRANCH/include/dt-bindings" \
        "linux-source-$KBRANCH/include/uapi/linux/input-event-codes.h" \
        "linux-source-$KBRANCH/arch/arm64/boot/dts/freescale" \
        "linux-source-$KBRANCH/arch/arm64/boot/dts/xilinx"
    echo "$KVER" >"$SRC/.stamp"
fi
if [ ! -f "$OUT/schema.json" ] || [ "$SRC/.stamp" -nt "$OUT/schema.json" ]; then
    step "processing the binding schemas (dt-mk-schema)"
    dt-mk-schema -j "$SRC/Documentation/devicetree/bindings" >"$OUT/schema.json.tmp"
    mv "$OUT/schema.json.tmp" "$OUT/schema.json"
fi

step "building platvmm for this host"
(cd "$ROOT" && cargo build -q --release --bin platvmm ${HOST_TARGET:+--target "$HOST_TARGET"})
PLATVMM=$ROOT/target/${HOST_TARGET:+$HOST_TARGET/}release/platvmm

# host_dtb DTS: the upstream board tree, preprocessed and compiled like the kernel does.
host_dtb() {
    local dts=$SRC/arch/arm64/boot/dts/$1 out
    out=$OUT/$(basename "$1" .dts).dtb
    gcc -E -nostdinc -undef -D__DTS__ -x assembler-with-cpp -I "$SRC/include" \
        -I "$(dirname "$dts")" -o "$out.pre" "$dts"
    dtc -q -I dts -O dtb -o "$out" "$out.pre"
    echo "$out"
}

passed=0 failed=0
indent() { while IFS= read -r l; do echo "    $l"; done <<<"$1"; }
# check NAME DTS NODE [preview options]: generate the guest tree for NODE and validate it;
# any dt-validate complaint about the generated device node fails the case.
check() {
    local name=$1 dts=$2 node=$3; shift 3
    local host guest report errs
    host=$(host_dtb "$dts")
    guest=$OUT/$name.guest.dtb
    if ! report=$("$PLATVMM" preview-dt --host-dtb "$host" --node "$node" -o "$guest" "$@" 2>&1); then
        failed=$((failed + 1)); echo "FAIL $name: preview-dt: $report"; return
    fi
    local gnode
    gnode=$(sed -n 's/.*→ \(\/[^ ]*\).*/\1/p' <<<"$report" | head -1)
    local all
    all=$(dt-validate -s "$OUT/schema.json" "$guest" 2>&1 || true)
    if grep -q Traceback <<<"$all"; then
        failed=$((failed + 1)); echo "FAIL $name: dt-validate crashed: $(tail -1 <<<"$all")"; return
    fi
    # dt-validate names nodes without the leading slash ("usb@40000000: ...").
    errs=$(grep -F -A3 "${gnode#/}:" <<<"$all" || true)
    if [ -n "$errs" ]; then
        failed=$((failed + 1)); echo "FAIL $name ($node → $gnode)"; indent "$errs"
    else
        passed=$((passed + 1)); echo "PASS $name ($node → $gnode, $(head -1 <<<"$report" | sed 's/.*: \([a-z]*\) handler.*/\1 handler/'))"
    fi
}

# platvmm's own nodes must validate too (GIC, UART, timer, PSCI, CPUs, memory...).
check_base() {
    local guest=$OUT/base.guest.dtb all
    "$PLATVMM" preview-dt --host-dtb "$(host_dtb freescale/fsl-ls1046a-rdb.dts)" \
        --node /soc/aux_bus/sata@3200000 -o "$guest" >/dev/null
    all=$(dt-validate -s "$OUT/schema.json" "$guest" 2>&1 | grep -v "sata@" || true)
    if [ -n "$all" ]; then
        failed=$((failed + 1)); echo "FAIL platvmm base nodes"; indent "$all"
    else
        passed=$((passed + 1)); echo "PASS platvmm base nodes (cpus, memory, GIC, timer, PSCI, UART)"
    fi
}
check_base
check ls1046a-sata freescale/fsl-ls1046a-rdb.dts /soc/aux_bus/sata@3200000
check ls1046a-sata-generic freescale/fsl-ls1046a-rdb.dts /soc/aux_bus/sata@3200000 --compatible generic-ahci
check ls1046a-usb freescale/fsl-ls1046a-rdb.dts /soc/aux_bus/usb@2f00000
check ls1088a-sata freescale/fsl-ls1088a-rdb.dts /soc/sata@3200000
check ls1088a-usb freescale/fsl-ls1088a-rdb.dts /soc/usb@3100000
check zcu102-sata xilinx/zynqmp-zcu102-rev1.0.dts /axi/ahci@fd0c0000
check zcu102-usb xilinx/zynqmp-zcu102-rev1.0.dts /axi/usb@ff9d0000/usb@fe200000
check zcu102-usb-xhci xilinx/zynqmp-zcu102-rev1.0.dts /axi/usb@ff9d0000/usb@fe200000 --compatible generic-xhci
# Negative control: the generic copy of the same dwc3 keeps its OTG interrupt, which the
# binding rejects. If this "passes", the validator is not looking.
before=$failed
check zcu102-usb-generic-control xilinx/zynqmp-zcu102-rev1.0.dts /axi/usb@ff9d0000/usb@fe200000 \
    --handler generic >/dev/null
if [ "$failed" = $((before + 1)) ]; then
    failed=$before; passed=$((passed + 1))
    echo "PASS negative control (the generic copy of zcu102's dwc3 is rejected, as it must be)"
else
    passed=$((passed - 1)); failed=$((failed + 1))
    echo "FAIL negative control: dt-validate accepted a node it must reject"
fi
echo "dt-validate: $passed passed, $failed failed"
[ "$failed" = 0 ]
