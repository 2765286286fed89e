#!/usr/bin/env bash
# Validates the guest nodes platvmm's type handlers generate from real upstream board trees
# (Layerscape LS1046A/LS1088A RDB, ZynqMP ZCU102) against the upstream dt-schema bindings
# of Debian's linux-source-6.12, with dt-validate from PyPI.
# Prints one line per case and "dt-validate: N passed, M failed"; exit != 0 on any failure.
# Cached under target/board/dtschema: a second run only regenerates and validates.
set -euo pipefail
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"

"$ROOT/resources/fetch-debian.sh"
# shellcheck source=/dev/null
. "$CACHE/debian.env"
# shellcheck source=ci/dtschema-lib.sh
. "$ROOT/ci/dtschema-lib.sh"
dtschema_setup
OUT=$DT_OUT

step "building platvmm for this host"
(cd "$ROOT" && cargo build -q --release --bin platvmm ${HOST_TARGET:+--target "$HOST_TARGET"})
PLATVMM=$ROOT/target/${HOST_TARGET:+$HOST_TARGET/}release/platvmm

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
    # dt-validate names nodes without the leading slash ("usb@40000000: ..."); a job ring's
    # errors come under its controller's name. The fixed clocks and regulators platvmm adds
    # for the device, and its SCMI controller's nodes, are checked with it.
    local top=${gnode#/}
    top=${top%%/*}
    errs=$(grep -E -A3 "^[^ ]+: (${top//./\\.}|clock-[^:]+|regulator-[0-9a-z-]+|mailbox@[0-9a-f]+|sram@[0-9a-f]+|scmi-sram@0|scmi|protocol@1[146]|firmware):" <<<"$all" || true)
    if [ -n "$errs" ]; then
        failed=$((failed + 1)); echo "FAIL $name ($node → $gnode)"; indent "$errs"
    else
        passed=$((passed + 1)); echo "PASS $name ($node → $gnode, $(grep -m1 " handler (" <<<"$report" | sed 's/.*: \([a-z]*\) handler.*/\1 handler/'))"
    fi
}

# platvmm's own nodes must validate too (GIC, UART, timer, PSCI, CPUs, memory...).
check_base() {
    local guest=$OUT/base.guest.dtb all
    "$PLATVMM" preview-dt --host-dtb "$(host_dtb freescale/fsl-ls1046a-rdb.dts)" \
        --node /soc/bus/sata@3200000 -o "$guest" >/dev/null
    # Everything but the sata node's own complaints (a line naming it, and its indented
    # "from schema" lines).
    all=$(dt-validate -s "$OUT/schema.json" "$guest" 2>&1 |
          awk '/sata@/ { skip = 1; next } /^[ \t]/ && skip { next } { skip = 0; print }')
    if [ -n "$all" ]; then
        failed=$((failed + 1)); echo "FAIL platvmm base nodes"; indent "$all"
    else
        passed=$((passed + 1)); echo "PASS platvmm base nodes (cpus, memory, GIC, timer, PSCI, UART, power button)"
    fi
}
check_base
check ls1046a-sata freescale/fsl-ls1046a-rdb.dts /soc/bus/sata@3200000
check ls1046a-sata-generic freescale/fsl-ls1046a-rdb.dts /soc/bus/sata@3200000 --compatible generic-ahci
check ls1046a-usb freescale/fsl-ls1046a-rdb.dts /soc/bus/usb@2f00000
check ls1088a-sata freescale/fsl-ls1088a-rdb.dts /soc/sata@3200000
check ls1088a-usb freescale/fsl-ls1088a-rdb.dts /soc/usb@3100000
check zcu102-sata xilinx/zynqmp-zcu102-rev1.0.dts /axi/ahci@fd0c0000
check zcu102-usb xilinx/zynqmp-zcu102-rev1.0.dts /axi/usb@ff9d0000/usb@fe200000
check ls1046a-sec-jr0 freescale/fsl-ls1046a-rdb.dts /soc/crypto@1700000/jr@10000
check ls1046a-sec-jr0-jr1 freescale/fsl-ls1046a-rdb.dts /soc/crypto@1700000/jr@10000 --node /soc/crypto@1700000/jr@20000
check ls1088a-sec-jr0 freescale/fsl-ls1088a-rdb.dts /soc/crypto@8000000/jr@10000
check zcu102-usb-xhci xilinx/zynqmp-zcu102-rev1.0.dts /axi/usb@ff9d0000/usb@fe200000 --compatible generic-xhci
# Devices with dependencies: clocks of firmware clock controllers (rates given with
# clock-rates=, as a user without debugfs would), PHYs and queue configurations inside the
# device's own subtree (phandles renumbered), resets/power domains/pinctrl dropped.
check zcu102-gem3 xilinx/zynqmp-zcu102-rev1.0.dts \
    "/axi/ethernet@ff0e0000,clock-rates=pclk:100M;hclk:125M;tx_clk:125M;rx_clk:125M;tsu_clk:250M" --scmi off
# The same GEM with its reset line, power domain and clocks served by platvmm's SCMI
# controller (--scmi auto: it has resets): its binding's resets and power-domains present.
check zcu102-gem3-scmi xilinx/zynqmp-zcu102-rev1.0.dts \
    "/axi/ethernet@ff0e0000,clock-rates=pclk:100M;hclk:125M;tx_clk:125M;rx_clk:125M;tsu_clk:250M"
check zcu102-sdhci1 xilinx/zynqmp-zcu102-rev1.0.dts "/axi/mmc@ff170000,clock-rates=clk_xin:200M;clk_ahb:100M"
check zcu102-can1 xilinx/zynqmp-zcu102-rev1.0.dts "/axi/can@ff070000,clock-rates=can_clk:24M;pclk:100M"
check zcu102-qspi xilinx/zynqmp-zcu102-rev1.0.dts "/axi/spi@ff0f0000,clock-rates=ref_clk:300M;pclk:100M"
# The zynqmp-periph scenario's Cadence UART and SPI (SPI0 is disabled on the ZCU102: its node
# as zynqmp.dtsi has it).
check zcu102-uart1 xilinx/zynqmp-zcu102-rev1.0.dts "/axi/serial@ff010000,clock-rates=uart_clk:100M;pclk:100M"
check zcu102-spi0 xilinx/zynqmp-zcu102-rev1.0.dts "/axi/spi@ff040000,clock-rates=ref_clk:200M;pclk:100M"
check imx8mp-evk-eqos freescale/imx8mp-evk.dts \
    "/soc@0/bus@30800000/ethernet@30bf0000,clock-rates=stmmaceth:266M;pclk:266M"
# The imx8mp scenario's devices (CCM clocks at the rates QEMU's L1 reads in debugfs), with
# their aliases; uSDHC2's supply as a fixed regulator; I2C2 with its HDMI bridge child.
check imx8mp-evk-uart1 freescale/imx8mp-evk.dts \
    "/soc@0/bus@30800000/spba-bus@30800000/serial@30860000,clock-rates=ipg:80M;per:80M"
check imx8mp-evk-usdhc2 freescale/imx8mp-evk.dts \
    "/soc@0/bus@30800000/mmc@30b50000,clock-rates=ipg:24M;ahb:24M;per:24M"
check imx8mp-evk-i2c2 freescale/imx8mp-evk.dts \
    "/soc@0/bus@30800000/i2c@30a30000,clock-rates=0:24M"
check imx8mp-evk-wdog1 freescale/imx8mp-evk.dts "/soc@0/bus@30000000/watchdog@30280000,clock-rates=0:24M"
check lx2160a-uart0 freescale/fsl-lx2160a-rdb.dts "/soc/serial@21c0000,clock-rates=uartclk:350M;apb_pclk:350M"
# Supplies become guest fixed regulators at the host's voltage: the ADC's reference.
check rk3399-saradc rockchip/rk3399-rockpro64.dts "/saradc@ff100000,clock-rates=saradc:24M;apb_pclk:100M"
# Negative control: the generic copy of LS1046A's AHCI has no clock, which its binding
# requires. If this "passes", the validator is not looking.
before=$failed
check ls1046a-sata-generic-control freescale/fsl-ls1046a-rdb.dts /soc/bus/sata@3200000 \
    --handler generic >/dev/null
if [ "$failed" = $((before + 1)) ]; then
    failed=$before; passed=$((passed + 1))
    echo "PASS negative control (the generic copy of LS1046A's AHCI is rejected, as it must be)"
else
    passed=$((passed - 1)); failed=$((failed + 1))
    echo "FAIL negative control: dt-validate accepted a node it must reject"
fi
echo "dt-validate: $passed passed, $failed failed"
[ "$failed" = 0 ]
