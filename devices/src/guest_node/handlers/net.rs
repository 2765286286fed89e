//! Ethernet MACs: Cadence GEM/MACB (`cdns,gem`, `cdns,macb`, `xlnx,zynqmp-gem`,
//! `cdns,zynqmp-gem`...) and Synopsys DWMAC/stmmac (`snps,dwmac*`, `*-dwmac`, `snps,dwxgmac*`).
//!
//! - kept: `phy-mode`, `phy-handle` when the PHY sits under the MAC's own `mdio` child (the
//!   subtree is copied, its phandles renumbered by the planner), the MAC address
//!   (`local-mac-address`/`mac-address`), `max-speed`, FIFO sizes, PHY delay settings, a
//!   `fixed-link` child, and for DWMAC the `snps,*` settings (its AXI/MTL configuration
//!   children are in-subtree references too).
//! - synthesized: clocks (by the planner), `local-mac-address` from `mac=`, a `fixed-link`
//!   child from `fixed-link=` (replacing `phy-handle`).
//! - dropped, with what the host must do: a `phy-handle` to a PHY outside the device (give
//!   `fixed-link=`: the guest cannot reach another MAC's MDIO bus), resets, power domains,
//!   `nvmem-cells` (the MAC address in an OTP: give `mac=`), PHY reset GPIOs.

use super::super::hostdt::HostNode;
use super::super::{self as node, Generated, NodeParams};
use super::{first_match, rename, RegWrite, TypeHandler};
use crate::dt::{cells_prop, GuestNode};

/// Ethernet controllers.
pub struct Ethernet;

fn is_cadence(c: &str) -> bool {
    matches!(
        c,
        "cdns,gem" | "cdns,macb" | "cdns,zynqmp-gem" | "xlnx,zynqmp-gem"
    ) || c.starts_with("cdns,") && (c.ends_with("-gem") || c.ends_with("-macb"))
}

fn is_dwmac(c: &str) -> bool {
    c.starts_with("snps,dwmac") || c.starts_with("snps,dwxgmac") || c.ends_with("-dwmac")
}

impl TypeHandler for Ethernet {
    fn name(&self) -> &'static str {
        "ethernet"
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        first_match(compat, |c| is_cadence(c) || is_dwmac(c))
            .map(|c| format!("compatible \"{c}\" is an Ethernet MAC"))
    }
    fn dma_stop(&self, compat: &[String]) -> &'static [RegWrite] {
        if compat.iter().any(|c| is_dwmac(c)) {
            // DMA bus mode (DWMAC 3.x) / DMA mode (4.x and later), SWR: DMA and MAC reset.
            return &[RegWrite::W32 {
                offset: 0x1000,
                value: 1,
            }];
        }
        // GEM/MACB network control: transmit and receive disabled.
        &[RegWrite::W32 {
            offset: 0x000,
            value: 0,
        }]
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        rename(&mut g, "ethernet");
        set_mac(&mut g, host, p);
        set_link(&mut g, host, p);
        g
    }
}

/// `mac=` wins; else the host's address is kept; else the guest driver makes one up.
fn set_mac(g: &mut Generated, host: Option<&HostNode>, p: &NodeParams) {
    if let Some(mac) = p.mac {
        g.node.remove("mac-address");
        g.node.set("local-mac-address", mac.to_vec());
        return;
    }
    let has = |n: &str| g.node.prop(n).is_some_and(|v| v.len() == 6);
    if has("local-mac-address") || has("mac-address") {
        return;
    }
    let otp = host.is_some_and(|h| h.prop("nvmem-cells").is_some());
    g.warnings.push(format!(
        "{}: no MAC address in the host node{}: the guest driver reads the one the controller holds or makes one up; give mac= for a stable one",
        p.dev_name,
        if otp { " (it is in an nvmem cell the guest does not get)" } else { "" }
    ));
}

/// `fixed-link=` replaces the PHY; a PHY outside the device is named with that fix.
fn set_link(g: &mut Generated, host: Option<&HostNode>, p: &NodeParams) {
    if let Some(fl) = p.fixed_link {
        g.node.remove("phy-handle");
        g.node.children.retain(|c| c.name != "fixed-link");
        let mut props = vec![("speed".to_string(), cells_prop(&[fl.speed]))];
        if fl.full_duplex {
            props.push(("full-duplex".into(), Vec::new()));
        }
        g.node.children.push(GuestNode {
            name: "fixed-link".into(),
            props,
            children: Vec::new(),
        });
        return;
    }
    let host_phy = host.is_some_and(|h| h.prop("phy-handle").is_some());
    if host_phy && g.node.prop("phy-handle").is_none() {
        g.warnings.push(format!(
            "{}: its PHY is not under the device's own mdio node (another MAC's MDIO bus, which the guest cannot reach): give fixed-link=SPEED (references between passed-through devices are not kept either)",
            p.dev_name
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_node::test_support::MapLinks;
    use crate::guest_node::test_support::{host, params};
    use crate::guest_node::{settle_phandles, FixedLink, GuestIrq};
    use crate::vfio::device::DeviceKind;

    const IRQS: &[GuestIrq] = &[
        GuestIrq {
            spi: 16,
            level: true,
        },
        GuestIrq {
            spi: 16,
            level: true,
        },
    ];

    /// zynqmp.dtsi's gem3 with the ZCU102 board's PHY under its own mdio node.
    fn zcu102_gem3() -> HostNode {
        let mut h = host(
            "ethernet@ff0e0000",
            &[
                ("compatible", b"xlnx,zynqmp-gem\0cdns,gem\0"),
                (
                    "clocks",
                    &[0, 0, 0, 3, 0, 0, 0, 31, 0, 0, 0, 3, 0, 0, 0, 107],
                ),
                ("clock-names", b"pclk\0hclk\0"),
                ("phy-mode", b"rgmii-id\0"),
                ("phy-handle", &[0, 0, 0, 0x2a]),
                ("resets", &[0, 0, 0, 8, 0, 0, 0, 32]),
                ("power-domains", &[0, 0, 0, 9, 0, 0, 0, 0x1e]),
                ("iommus", &[0, 0, 0, 7, 0, 0, 0x08, 0x77]),
                ("#address-cells", &[0, 0, 0, 1]),
                ("#size-cells", &[0, 0, 0, 0]),
            ],
        );
        let mut mdio = host(
            "mdio",
            &[("#address-cells", &[0, 0, 0, 1]), ("#size-cells", &[0; 4])],
        );
        mdio.children.push(host(
            "ethernet-phy@c",
            &[
                ("reg", &[0, 0, 0, 0xc]),
                ("ti,rx-internal-delay", &[0, 0, 0, 8]),
                ("ti,fifo-depth", &[0, 0, 0, 1]),
                ("ti,dp83867-rxctrl-strap-quirk", b""),
                ("reset-gpios", &[0, 0, 0, 0x30, 0, 0, 0, 6, 0, 0, 0, 1]),
                ("phandle", &[0, 0, 0, 0x2a]),
            ],
        ));
        h.children.push(mdio);
        h
    }

    #[test]
    fn gem_keeps_its_phy_subtree_and_names_what_the_host_keeps() {
        let h = zcu102_gem3();
        assert!(Ethernet.claims(&["xlnx,zynqmp-gem".into()]).is_some());
        let g = Ethernet.generate(
            Some(&h),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], IRQS),
        );
        let n = &g.node;
        assert_eq!(n.name, "ethernet@40000000");
        assert_eq!(n.prop("phy-mode").unwrap(), b"rgmii-id\0");
        assert_eq!(
            n.prop("phy-handle").unwrap(),
            cells_prop(&[0x2a]),
            "host value until renumbered"
        );
        let phy = &n.children[0].children[0];
        assert_eq!(phy.prop("reg").unwrap(), cells_prop(&[0xc]));
        assert_eq!(phy.prop("ti,rx-internal-delay").unwrap(), cells_prop(&[8]));
        assert_eq!(g.referenced, [0x2a]);
        assert_eq!(
            n.prop("interrupts").unwrap(),
            cells_prop(&[0, 16, 4, 0, 16, 4])
        );
        for (p, why) in [
            ("'resets'", "out of reset"),
            ("'power-domains'", "keep its power domain on"),
            ("'iommus'", "IOMMU"),
            ("'reset-gpios'", "GPIO lines stay with the host"),
            ("no MAC address", "give mac="),
        ] {
            assert!(
                g.warnings.iter().any(|w| w.contains(p) && w.contains(why)),
                "{p}: {:?}",
                g.warnings
            );
        }
        let map: std::collections::HashMap<u32, u32> = [(0x2a, 7)].into_iter().collect();
        let links = MapLinks(map.clone());
        let mut p = params(DeviceKind::Platform, &[(0x4000_0000, 0x10000)], IRQS);
        p.links = &links;
        let mut n2 = Ethernet.generate(Some(&h), &p).node;
        settle_phandles(&mut n2, &map);
        assert_eq!(n2.prop("phy-handle").unwrap(), cells_prop(&[7]));
        assert_eq!(
            n2.children[0].children[0].prop("phandle").unwrap(),
            cells_prop(&[7])
        );
    }

    #[test]
    fn phy_outside_the_device_asks_for_a_fixed_link_and_options_apply() {
        let mut h = zcu102_gem3();
        h.children.clear();
        h.props
            .push(("local-mac-address".into(), vec![0, 0x0a, 0x35, 0, 0, 1]));
        let regs = [(0x4000_0000, 0x1000)];
        let g = Ethernet.generate(Some(&h), &params(DeviceKind::Platform, &regs, IRQS));
        assert!(g.node.prop("phy-handle").is_none());
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("outside the passed-through device")));
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("give fixed-link=SPEED")));
        assert_eq!(
            g.node.prop("local-mac-address").unwrap(),
            [0, 0x0a, 0x35, 0, 0, 1]
        );
        assert!(!g.warnings.iter().any(|w| w.contains("no MAC address")));

        let mut p = params(DeviceKind::Platform, &regs, IRQS);
        p.mac = Some([2, 0, 0x5e, 0, 0, 9]);
        p.fixed_link = Some(FixedLink {
            speed: 1000,
            full_duplex: true,
        });
        let g = Ethernet.generate(Some(&h), &p);
        assert_eq!(
            g.node.prop("local-mac-address").unwrap(),
            [2, 0, 0x5e, 0, 0, 9]
        );
        let fl = g
            .node
            .children
            .iter()
            .find(|c| c.name == "fixed-link")
            .unwrap();
        assert_eq!(fl.prop("speed").unwrap(), cells_prop(&[1000]));
        assert_eq!(fl.prop("full-duplex").unwrap(), b"");
        assert!(!g.warnings.iter().any(|w| w.contains("give fixed-link")));
    }

    /// An stmmac node as rk3568.dtsi/stm32mp151.dtsi write them: AXI configuration child
    /// referenced by phandle, PHY under mdio, snps settings.
    #[test]
    fn dwmac_keeps_snps_settings_and_its_axi_config_child() {
        let mut h = host(
            "ethernet@fe010000",
            &[
                ("compatible", b"rockchip,rk3568-gmac\0snps,dwmac-4.20a\0"),
                ("snps,axi-config", &[0, 0, 0, 0x51]),
                ("snps,mtl-rx-config", &[0, 0, 0, 0x99]),
                ("snps,pbl", &[0, 0, 0, 8]),
                ("snps,mixed-burst", b""),
                ("rx-fifo-depth", &[0, 0, 0x40, 0]),
                ("phy-handle", &[0, 0, 0, 0x52]),
                ("phy-mode", b"rgmii\0"),
                ("pinctrl-0", &[0, 0, 0, 0x60]),
                ("snps,reset-gpio", &[0, 0, 0, 0x61, 0, 0, 0, 1, 0, 0, 0, 1]),
                ("nvmem-cells", &[0, 0, 0, 0x70]),
            ],
        );
        h.children.push(host(
            "stmmac-axi-config",
            &[
                ("snps,wr_osr_lmt", &[0, 0, 0, 4]),
                ("phandle", &[0, 0, 0, 0x51]),
            ],
        ));
        let mut mdio = host("mdio", &[("compatible", b"snps,dwmac-mdio\0")]);
        mdio.children.push(host(
            "ethernet-phy@0",
            &[("reg", &[0; 4]), ("phandle", &[0, 0, 0, 0x52])],
        ));
        h.children.push(mdio);
        let (handler, _) = super::super::select(Some(&h));
        assert_eq!(handler.name(), "ethernet");
        let g = Ethernet.generate(
            Some(&h),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x10000)], &IRQS[..1]),
        );
        let n = &g.node;
        assert_eq!(n.prop("snps,axi-config").unwrap(), cells_prop(&[0x51]));
        assert!(
            n.prop("snps,mtl-rx-config").is_none(),
            "points outside the device"
        );
        assert_eq!(n.prop("snps,pbl").unwrap(), cells_prop(&[8]));
        assert_eq!(n.prop("rx-fifo-depth").unwrap(), cells_prop(&[0x4000]));
        assert_eq!(g.referenced, [0x51, 0x52]);
        assert_eq!(
            n.children[0].prop("snps,wr_osr_lmt").unwrap(),
            cells_prop(&[4])
        );
        assert!(n.prop("snps,reset-gpio").is_none(), "a GPIO, not a setting");
        assert!(g.warnings.iter().any(|w| w.contains("nvmem cell")));
        assert_eq!(
            n.strings("compatible"),
            ["rockchip,rk3568-gmac", "snps,dwmac-4.20a"]
        );
    }
}
