//! SD/MMC host controllers: Arasan SDHCI (`arasan,sdhci-*`, with the ZynqMP/Versal variants),
//! other SDHCI-compatible controllers, and Synopsys DesignWare MSHC (`snps,dw-mshc`, `*-dw-mshc`).
//!
//! - kept: bus width, `max-frequency`, the capability booleans (`no-1-8-v`, `non-removable`,
//!   `disable-wp`, `cap-*`, `mmc-*`...), `sdhci-caps`/`-mask`, `fifo-depth`,
//!   `card-detect-delay`, Arasan's `#clock-cells`/`clock-output-names` (its card clock
//!   provider).
//! - synthesized: `clk_xin`/`clk_ahb` (`biu`/`ciu` for DW MSHC) as guest fixed clocks, by the
//!   planner.
//! - changed: `xlnx,zynqmp-8.9a`/`xlnx,versal-8.9a` become plain `arasan,sdhci-8.9a`: those
//!   variants set tap delays and DLL resets through the platform firmware, which a guest does
//!   not have; the host's settings stay in force.
//! - dropped, with what the host must do: resets, power domains, pinctrl, card-detect and
//!   write-protect GPIOs (`cd-gpios`, `wp-gpios`: the lines stay with the host; use
//!   `broken-cd`/`non-removable` through an overlay), supplies (`vmmc-supply`, `vqmmc-supply`).

use super::super::hostdt::HostNode;
use super::super::{self as node, Generated, NodeParams};
use super::{drop_firmware_variant, first_match, rename, FirmwareVariant, RegWrite, TypeHandler};

/// SD/MMC host controllers.
pub struct Mmc;

/// What the ZynqMP/Versal Arasan variants do through the platform firmware.
const TAP_DELAYS: &str = "that variant sets tap delays through the platform firmware the guest \
                          does not have; the host's settings stay";

/// The ZynqMP/Versal Arasan variants that need the platform firmware.
const FIRMWARE_VARIANTS: &[FirmwareVariant] = &[
    FirmwareVariant {
        compatible: "xlnx,zynqmp-8.9a",
        fallback: "arasan,sdhci-8.9a",
        why: TAP_DELAYS,
    },
    FirmwareVariant {
        compatible: "xlnx,versal-8.9a",
        fallback: "arasan,sdhci-8.9a",
        why: TAP_DELAYS,
    },
    FirmwareVariant {
        compatible: "xlnx,versal-net-emmc",
        fallback: "arasan,sdhci-8.9a",
        why: TAP_DELAYS,
    },
];

fn is_mmc(c: &str) -> bool {
    c.starts_with("arasan,sdhci")
        || FIRMWARE_VARIANTS.iter().any(|v| v.compatible == c)
        || c.contains("sdhci")
        || c == "snps,dw-mshc"
        || c.ends_with("-dw-mshc")
}

impl TypeHandler for Mmc {
    fn name(&self) -> &'static str {
        "mmc"
    }
    fn dma_stop(&self, compat: &[String]) -> &'static [RegWrite] {
        if compat
            .iter()
            .any(|c| c == "snps,dw-mshc" || c.ends_with("-dw-mshc"))
        {
            // CTRL: controller, FIFO and DMA reset.
            return &[RegWrite::W32 {
                offset: 0x00,
                value: 0x7,
            }];
        }
        // SDHCI Software Reset: SRST_ALL (the ADMA/SDMA engine with the rest).
        &[RegWrite::W8 {
            offset: 0x2f,
            value: 1,
        }]
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        first_match(compat, is_mmc)
            .map(|c| format!("compatible \"{c}\" is an SD/MMC host controller"))
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        rename(&mut g, "mmc");
        drop_firmware_variant(&mut g, p, FIRMWARE_VARIANTS);
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::cells_prop;
    use crate::guest_node::test_support::{host, params};
    use crate::guest_node::GuestIrq;
    use crate::vfio::device::DeviceKind;

    const IRQ: &[GuestIrq] = &[GuestIrq {
        spi: 16,
        level: true,
    }];

    #[test]
    fn zynqmp_sdhci_becomes_plain_arasan_and_keeps_its_settings() {
        // zynqmp.dtsi's sdhci1 with the zcu102 board's settings.
        let h = host(
            "mmc@ff170000",
            &[
                ("compatible", b"xlnx,zynqmp-8.9a\0arasan,sdhci-8.9a\0"),
                ("clock-names", b"clk_xin\0clk_ahb\0"),
                (
                    "clocks",
                    &[0, 0, 0, 3, 0, 0, 0, 55, 0, 0, 0, 3, 0, 0, 0, 31],
                ),
                ("#clock-cells", &[0, 0, 0, 1]),
                ("clock-output-names", b"clk_out_sd1\0clk_in_sd1\0"),
                ("no-1-8-v", b""),
                ("disable-wp", b""),
                ("bus-width", &[0, 0, 0, 4]),
                ("cd-gpios", &[0, 0, 0, 0x40, 0, 0, 0, 1, 0, 0, 0, 0]),
                ("power-domains", &[0, 0, 0, 9, 0, 0, 0, 0x28]),
                ("resets", &[0, 0, 0, 8, 0, 0, 0, 39]),
                ("assigned-clocks", &[0, 0, 0, 3, 0, 0, 0, 55]),
            ],
        );
        let (handler, why) = super::super::select(Some(&h));
        assert_eq!(handler.name(), "mmc");
        assert!(why.contains("SD/MMC"), "{why}");
        let g = Mmc.generate(
            Some(&h),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], IRQ),
        );
        let n = &g.node;
        assert_eq!(n.name, "mmc@40000000");
        assert_eq!(n.strings("compatible"), ["arasan,sdhci-8.9a"]);
        assert_eq!(n.prop("bus-width").unwrap(), cells_prop(&[4]));
        assert_eq!(n.prop("#clock-cells").unwrap(), cells_prop(&[1]));
        assert!(n.prop("no-1-8-v").is_some() && n.prop("disable-wp").is_some());
        for p in ["cd-gpios", "power-domains", "resets", "assigned-clocks"] {
            assert!(n.prop(p).is_none(), "{p}");
            assert!(
                g.warnings.iter().any(|w| w.contains(&format!("'{p}'"))),
                "{p}"
            );
        }
        assert!(g.warnings.iter().any(|w| w.contains("platform firmware")));

        let plain = vec![
            "xlnx,zynqmp-8.9a".to_string(),
            "arasan,sdhci-8.9a".to_string(),
        ];
        let mut p = params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], IRQ);
        p.compatible = Some(&plain);
        let g = Mmc.generate(Some(&h), &p);
        assert_eq!(
            g.node.strings("compatible"),
            plain,
            "the user's compatible= wins"
        );
    }

    #[test]
    fn dw_mshc_keeps_fifo_and_clock_names() {
        // rk3399.dtsi's sdmmc (a Rockchip DW MSHC).
        let h = host(
            "mmc@fe320000",
            &[
                (
                    "compatible",
                    b"rockchip,rk3399-dw-mshc\0rockchip,rk3288-dw-mshc\0",
                ),
                (
                    "clocks",
                    &[0, 0, 0, 3, 0, 0, 0, 76, 0, 0, 0, 3, 0, 0, 0, 77],
                ),
                ("clock-names", b"biu\0ciu\0"),
                ("fifo-depth", &[0, 0, 1, 0]),
                ("max-frequency", &[0x08, 0xf0, 0xd1, 0x80]),
                ("resets", &[0, 0, 0, 3, 0, 0, 0, 99]),
                ("reset-names", b"reset\0"),
                ("cap-sd-highspeed", b""),
                ("vmmc-supply", &[0, 0, 0, 0x50]),
            ],
        );
        assert_eq!(super::super::select(Some(&h)).0.name(), "mmc");
        let mut p = params(DeviceKind::Platform, &[(0x4000_0000, 0x4000)], IRQ);
        p.clocks = Some(&[5, 6]);
        let g = Mmc.generate(Some(&h), &p);
        let n = &g.node;
        assert_eq!(n.prop("fifo-depth").unwrap(), cells_prop(&[0x100]));
        assert_eq!(n.prop("max-frequency").unwrap(), cells_prop(&[150_000_000]));
        assert_eq!(n.prop("clocks").unwrap(), cells_prop(&[5, 6]));
        assert_eq!(n.strings("clock-names"), ["biu", "ciu"]);
        assert!(n.prop("cap-sd-highspeed").is_some());
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("'vmmc-supply'") && w.contains("regulator on")));
        assert!(
            !g.warnings.iter().any(|w| w.contains("'clocks'")),
            "resolved: no note"
        );
    }
}
