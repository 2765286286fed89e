//! UARTs: ARM PL011 (`arm,pl011`) and Cadence (`cdns,uart-r1p8`, `cdns,uart-r1p12`,
//! `xlnx,xuartps`, `xlnx,zynqmp-uart`).
//!
//! - kept: `current-speed`, `reg-io-width`/`reg-shift`, `arm,primecell-periphid`, flow-control
//!   booleans.
//! - synthesized: the clocks (PL011 `uartclk` + `apb_pclk`, Cadence `uart_clk` + `pclk`) as
//!   guest fixed clocks at the host rates, by the planner; a PL011 the host presents on its
//!   platform bus (no `arm,primecell` in the host tree, as after vfio-amba's removal) still
//!   reaches the guest as a PrimeCell with its `apb_pclk` (see [`super::super::node`]).
//! - When the host clocks have no rate, a PL011 gets platvmm's 24 MHz clock for both inputs (its
//!   driver computes baud rates from `uartclk`: give `clock-rates=uartclk:HZ`), and a Cadence
//!   UART none (its driver then fails: give `clock-rates=`).

use super::super::hostdt::HostNode;
use super::super::{self as node, Generated, NodeParams};
use super::{first_match, rename, TypeHandler};
use crate::dt::{cells_prop, strings_prop};

/// UARTs.
pub struct Serial;

fn is_pl011(c: &str) -> bool {
    c == "arm,pl011" || c == "arm,sbsa-uart"
}

fn is_cadence(c: &str) -> bool {
    c.starts_with("cdns,uart-") || c == "xlnx,xuartps" || c == "xlnx,zynqmp-uart"
}

impl TypeHandler for Serial {
    fn name(&self) -> &'static str {
        "serial"
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        first_match(compat, |c| is_pl011(c) || is_cadence(c))
            .map(|c| format!("compatible \"{c}\" is a UART"))
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        rename(&mut g, "serial");
        let compat = g.node.strings("compatible");
        if p.clocks.is_none() && compat.iter().any(|c| c == "arm,pl011") {
            // Its binding names both inputs; the driver takes uartclk for the baud rate.
            g.node
                .set("clocks", cells_prop(&[p.amba_clock, p.amba_clock]));
            g.node
                .set("clock-names", strings_prop(&["uartclk", "apb_pclk"]));
            g.warnings.push(format!(
                "{}: uartclk is platvmm's 24 MHz stand-in (no host rate): baud rates are right only if the host's is 24 MHz too; give clock-rates=uartclk:HZ",
                p.dev_name
            ));
        } else if p.clocks.is_none() && compat.iter().any(|c| is_cadence(c)) {
            g.warnings.push(format!(
                "{}: a Cadence UART without clocks does not probe: give clock-rates=uart_clk:HZ;pclk:HZ",
                p.dev_name
            ));
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_node::test_support::{host, params};
    use crate::guest_node::GuestIrq;
    use crate::vfio::device::DeviceKind;

    const IRQ: &[GuestIrq] = &[GuestIrq {
        spi: 16,
        level: true,
    }];

    /// juno-base.dtsi / QEMU virt: a PL011 with both clocks.
    fn pl011(primecell: bool) -> HostNode {
        let compat: &[u8] = if primecell {
            b"arm,pl011\0arm,primecell\0"
        } else {
            b"arm,pl011\0"
        };
        host(
            "serial@9040000",
            &[
                ("compatible", compat),
                ("clocks", &[0, 0, 0, 0x80, 0, 0, 0, 0x80]),
                ("clock-names", b"uartclk\0apb_pclk\0"),
                ("current-speed", &[0, 1, 0xc2, 0]),
            ],
        )
    }

    #[test]
    fn pl011_keeps_both_clocks_and_a_platform_bus_one_is_still_a_primecell() {
        for (kind, primecell) in [(DeviceKind::Amba, true), (DeviceKind::Platform, false)] {
            let h = pl011(primecell);
            assert_eq!(super::super::select(Some(&h)).0.name(), "serial");
            let mut p = params(kind, &[(0x4000_0000, 0x1000)], IRQ);
            p.clocks = Some(&[5, 5]);
            let g = Serial.generate(Some(&h), &p);
            let n = &g.node;
            assert_eq!(n.name, "serial@40000000");
            assert_eq!(
                n.strings("compatible"),
                ["arm,pl011", "arm,primecell"],
                "{kind:?}"
            );
            assert_eq!(n.prop("clocks").unwrap(), cells_prop(&[5, 5]));
            assert_eq!(n.strings("clock-names"), ["uartclk", "apb_pclk"]);
            assert_eq!(n.prop("current-speed").unwrap(), cells_prop(&[115200]));
            assert!(g.warnings.is_empty(), "{:?}", g.warnings);
        }
        // No host rate: both inputs from platvmm's clock, and the user is told.
        let g = Serial.generate(
            Some(&pl011(false)),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], IRQ),
        );
        assert_eq!(g.node.prop("clocks").unwrap(), cells_prop(&[2, 2]));
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("clock-rates=uartclk:HZ")));
    }

    #[test]
    fn cadence_uart_clocks() {
        let h = host(
            "serial@ff000000",
            &[
                ("compatible", b"cdns,uart-r1p12\0xlnx,xuartps\0"),
                (
                    "clocks",
                    &[0, 0, 0, 3, 0, 0, 0, 56, 0, 0, 0, 3, 0, 0, 0, 31],
                ),
                ("clock-names", b"uart_clk\0pclk\0"),
                ("power-domains", &[0, 0, 0, 9, 0, 0, 0, 0x21]),
            ],
        );
        let mut p = params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], IRQ);
        p.clocks = Some(&[5, 6]);
        let g = Serial.generate(Some(&h), &p);
        assert_eq!(
            g.node.strings("compatible"),
            ["cdns,uart-r1p12", "xlnx,xuartps"]
        );
        assert_eq!(g.node.prop("clocks").unwrap(), cells_prop(&[5, 6]));
        let g = Serial.generate(
            Some(&h),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], IRQ),
        );
        assert!(g.node.prop("clocks").is_none());
        assert!(g.warnings.iter().any(|w| w.contains("does not probe")));
    }
}
