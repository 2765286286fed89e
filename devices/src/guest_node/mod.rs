//! The guest node generated for a passed-through device from its host DT node.
//!
//! The generic generation: the host node's properties and children under the property policy
//! ([`policy`]: everything is kept but references to host nodes, which are kept inside the
//! device, translated, or dropped with advice by kind ([`refs`])); then
//! - rewritten: `reg` (guest addresses, exact VFIO region sizes, in region order),
//!   `interrupts` (one GIC SPI per VFIO IRQ, level-high for automasked IRQs, rising edge
//!   otherwise), `ranges` (its children's addresses into the guest addresses of the passed
//!   regions, [`ranges`]); `compatible` unless overridden.
//!
//! `clocks`/`clock-names` are kept when the caller resolved every host clock to a guest fixed
//! clock ([`NodeParams::clocks`]). Otherwise AMBA devices get `clocks`/`clock-names =
//! "apb_pclk"` pointing at a fixed clock platvmm adds, because the guest's AMBA bus refuses to
//! probe a device without its bus clock. A PrimeCell ([`PRIMECELLS`]) the host presents on its
//! platform bus gets the same, and `arm,primecell`.
//! The user's overlay (properties and children) is applied last and wins.

use crate::dt::{self, cells_prop, strings_prop, GuestNode};
use crate::vfio::device::DeviceKind;
use hostdt::HostNode;
pub use policy::{settle_phandles, Links, NoLinks};
use ranges::BusCells;

pub mod aliases;
mod clock_ids;
pub mod clocks;
pub mod handlers;
pub mod hostdt;
pub mod irqspec;
pub mod policy;
pub mod providers;
pub mod ranges;
pub mod refs;
pub mod supplies;

/// One guest interrupt: SPI number and trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestIrq {
    pub spi: u32,
    pub level: bool,
}

/// What the generator needs besides the host node.
#[derive(Debug, Clone)]
pub struct NodeParams<'a> {
    /// Device name (used when there is no host node).
    pub dev_name: &'a str,
    pub kind: DeviceKind,
    /// Guest address and exact size of each VFIO region, in region order.
    pub regs: &'a [(u64, u64)],
    pub irqs: &'a [GuestIrq],
    /// `compatible=` override.
    pub compatible: Option<&'a [String]>,
    /// phandle of the fixed clock AMBA devices reference.
    pub amba_clock: u32,
    /// Guest phandles standing for the host node's `clocks`, one per entry, when every one of
    /// them was resolved to a rate (see [`super::clocks`]); `clock-names` is then kept.
    pub clocks: Option<&'a [u32]>,
    /// The user's MAC address for an Ethernet controller (`mac=`).
    pub mac: Option<[u8; 6]>,
    /// The user's fixed link for a MAC whose PHY the guest does not get (`fixed-link=`).
    pub fixed_link: Option<FixedLink>,
    /// The host parent bus's cells, to read the host `reg` and `ranges` (translated for a
    /// device with children); unknown: `ranges` is dropped with a note.
    pub host_bus: Option<BusCells>,
    /// The other devices of the VM and the guest phandles of host nodes.
    pub links: &'a dyn Links,
    /// Guest providers standing in for host references: fixed clocks for descendants'
    /// `clocks` ([`clocks::ChildClocks`]), fixed regulators for `*-supply` ([`supplies`]).
    pub stand_ins: &'a [policy::StandIn],
}

/// An Ethernet fixed link (no PHY): speed in Mb/s and duplex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedLink {
    pub speed: u32,
    pub full_duplex: bool,
}

/// The generated node and what was dropped.
#[derive(Debug, Clone)]
pub struct Generated {
    pub node: GuestNode,
    /// One message per dropped property, naming it and why.
    pub warnings: Vec<String>,
    /// Host phandles its kept references point at (each needs a guest phandle).
    pub referenced: Vec<u32>,
}

/// Builds the guest node (the generic handler).
pub fn generate(host: Option<&HostNode>, p: &NodeParams) -> Generated {
    let mut warnings = Vec::new();
    let mut referenced = Vec::new();
    let base = host.map(|h| h.base_name()).unwrap_or(p.dev_name);
    let addr = p.regs.first().map(|r| r.0).unwrap_or(0);
    let mut node = GuestNode {
        name: format!("{base}@{addr:x}"),
        ..Default::default()
    };
    if let Some(h) = host {
        (node, referenced) = copy_host(h, p, &mut warnings);
    }
    if let Some(c) = p.compatible {
        node.set("compatible", strings_prop(c));
    } else if node.prop("compatible").is_none() {
        warnings.push(format!(
            "{}: no host DT node with a compatible: give compatible= so the guest can bind a driver",
            p.dev_name
        ));
    }
    set_reg_and_interrupts(&mut node, p);
    if let (Some(ph), Some(h)) = (p.clocks, host) {
        node.set("clocks", cells_prop(ph));
        if let Some(names) = h.prop("clock-names") {
            node.set("clock-names", names.to_vec());
        }
    }
    if p.kind == DeviceKind::Amba || primecell_on_platform_bus(&node, p) {
        make_primecell(&mut node, p);
    }
    Generated {
        node,
        warnings,
        referenced,
    }
}

/// The host node's properties and children under the property policy, named for the guest,
/// with its `ranges` translated; and the host phandles it refers to.
fn copy_host(h: &HostNode, p: &NodeParams, warnings: &mut Vec<String>) -> (GuestNode, Vec<u32>) {
    // Resolved clocks are rewritten by the caller: dropping the host's is then no news.
    let rewritten = |n: &str| p.clocks.is_some() && n == "clocks";
    let mut copier = policy::Copier::new(h, &rewritten, p.links, p.stand_ins);
    let mut node = copier.copy(h);
    warnings.append(&mut copier.warnings);
    let addr = p.regs.first().map(|r| r.0).unwrap_or(0);
    node.name = format!("{}@{addr:x}", h.base_name());
    if h.prop("ranges").is_some() {
        match guest_ranges(h, p) {
            Ok(r) => node.set("ranges", r),
            Err(why) => warnings.push(format!("{}: dropped 'ranges' ({why})", h.name)),
        }
    }
    (node, copier.referenced())
}

/// The guest `ranges` of `h`, from where its regions went.
fn guest_ranges(h: &HostNode, p: &NodeParams) -> Result<Vec<u8>, String> {
    let bus = p
        .host_bus
        .ok_or("the host parent bus's #address-cells/#size-cells are not known")?;
    let host = ranges::host_regs(h, bus).ok_or("its host reg does not decode")?;
    let w = ranges::windows(&host, p.regs)
        .ok_or("its host reg entries do not pair with the device's regions")?;
    ranges::guest_ranges(h, bus, &w)
}

/// `reg` (the guest tree has #address-cells = #size-cells = 2 at the root) and `interrupts`.
fn set_reg_and_interrupts(node: &mut GuestNode, p: &NodeParams) {
    let reg: Vec<u8> = p
        .regs
        .iter()
        .flat_map(|&(a, s)| [a, s])
        .flat_map(|x| x.to_be_bytes())
        .collect();
    if !reg.is_empty() {
        node.set("reg", reg);
    }
    let irqs: Vec<u32> = p
        .irqs
        .iter()
        .flat_map(|i| dt::spi_specifier(i.spi, i.level))
        .collect();
    if !irqs.is_empty() {
        node.set("interrupts", cells_prop(&irqs));
    }
}

/// ARM PrimeCell peripherals: the guest's AMBA bus probes them by `arm,primecell`.
pub const PRIMECELLS: &[&str] = &[
    "arm,pl011",
    "arm,pl031",
    "arm,pl061",
    "arm,pl022",
    "arm,pl030",
    "arm,pl050",
    "arm,pl180",
    "arm,pl330",
    "arm,sp804",
    "arm,sp805",
];

/// A PrimeCell the host presents on its platform bus (its tree without `arm,primecell`, as
/// must be done once vfio-amba is gone): the guest still gets it as a PrimeCell.
fn primecell_on_platform_bus(node: &GuestNode, p: &NodeParams) -> bool {
    p.kind == DeviceKind::Platform
        && p.compatible.is_none()
        && node
            .strings("compatible")
            .iter()
            .any(|c| PRIMECELLS.contains(&c.as_str()))
}

/// `arm,primecell` and the `apb_pclk` bus clock the guest's AMBA bus needs: the resolved host
/// clock when there is one, else platvmm's fixed clock.
fn make_primecell(node: &mut GuestNode, p: &NodeParams) {
    let has_apb_pclk = node.strings("clock-names").iter().any(|n| n == "apb_pclk");
    if p.clocks.is_none() || !has_apb_pclk {
        node.set("clocks", cells_prop(&[p.amba_clock]));
        node.set("clock-names", strings_prop(&["apb_pclk"]));
    }
    let mut compat = node.strings("compatible");
    if !compat.iter().any(|c| c == "arm,primecell") {
        compat.push("arm,primecell".into());
        node.set("compatible", strings_prop(&compat));
    }
}

/// Builders shared by the node and handler unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::collections::HashMap;

    /// Nodes by phandle, as the live tree or a DTB would give them: (phandle, path, node).
    pub struct Tree(pub Vec<(u32, &'static str, HostNode)>);

    impl clocks::PhandleLookup for Tree {
        fn node(&self, ph: u32) -> Option<(String, HostNode)> {
            self.0
                .iter()
                .find(|(p, _, _)| *p == ph)
                .map(|(_, path, n)| (path.to_string(), n.clone()))
        }
    }

    /// A host node with owned property values and no children.
    pub fn node(name: &str, props: Vec<(&str, Vec<u8>)>) -> HostNode {
        HostNode {
            name: name.into(),
            props: props.into_iter().map(|(n, v)| (n.into(), v)).collect(),
            children: vec![],
        }
    }

    /// Guest phandles from a fixed map, no other device.
    #[derive(Debug)]
    pub struct MapLinks(pub HashMap<u32, u32>);

    impl Links for MapLinks {
        fn peer(&self, _: u32) -> Option<&HostNode> {
            None
        }
        fn guest(&self, host: u32) -> Option<u32> {
            self.0.get(&host).copied()
        }
    }

    /// A host node with `props` and no children.
    pub fn host(name: &str, props: &[(&str, &[u8])]) -> HostNode {
        HostNode {
            name: name.into(),
            props: props
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            children: vec![],
        }
    }

    /// Parameters of a device called "dev" with the fixed clock at phandle 2.
    pub fn params<'a>(
        kind: DeviceKind,
        regs: &'a [(u64, u64)],
        irqs: &'a [GuestIrq],
    ) -> NodeParams<'a> {
        NodeParams {
            dev_name: "dev",
            kind,
            regs,
            irqs,
            compatible: None,
            amba_clock: 2,
            clocks: None,
            mac: None,
            fixed_link: None,
            host_bus: Some(ranges::GUEST_BUS),
            links: &NoLinks,
            stand_ins: &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{host, params, MapLinks};
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn pl031_amba_node() {
        // As QEMU's virt board describes its PL031.
        let h = host(
            "pl031@9010000",
            &[
                ("compatible", b"arm,pl031\0arm,primecell\0"),
                ("reg", &[0; 16]),
                ("interrupts", &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4]),
                ("clocks", &[0, 0, 0x80, 0]),
                ("clock-names", b"apb_pclk\0"),
                ("phandle", &[0, 0, 0, 9]),
            ],
        );
        let g = generate(
            Some(&h),
            &params(
                DeviceKind::Amba,
                &[(0x4000_0000, 0x1000)],
                &[GuestIrq {
                    spi: 16,
                    level: true,
                }],
            ),
        );
        let n = &g.node;
        assert_eq!(n.name, "pl031@40000000");
        assert_eq!(n.prop("compatible").unwrap(), b"arm,pl031\0arm,primecell\0");
        assert_eq!(
            n.prop("reg").unwrap(),
            [0x4000_0000u64.to_be_bytes(), 0x1000u64.to_be_bytes()].concat()
        );
        assert_eq!(n.prop("interrupts").unwrap(), cells_prop(&[0, 16, 4]));
        assert_eq!(
            n.prop("clocks").unwrap(),
            cells_prop(&[2]),
            "platvmm's clock, not the host's"
        );
        assert_eq!(n.prop("clock-names").unwrap(), b"apb_pclk\0");
        assert_eq!(
            n.prop("phandle").unwrap(),
            cells_prop(&[9]),
            "the host's, until settled"
        );
        let mut settled = n.clone();
        settle_phandles(&mut settled, &HashMap::new());
        assert!(settled.prop("phandle").is_none(), "nothing refers to it");
        assert!(
            g.warnings.iter().any(|w| w.contains("dropped 'clocks'")),
            "{:?}",
            g.warnings
        );
    }

    #[test]
    fn fw_cfg_platform_node_and_edge_irq() {
        let h = host(
            "fw-cfg@9020000",
            &[("compatible", b"qemu,fw-cfg-mmio\0"), ("dma-coherent", b"")],
        );
        let g = generate(
            Some(&h),
            &params(
                DeviceKind::Platform,
                &[(0x4000_1000, 0x18)],
                &[GuestIrq {
                    spi: 17,
                    level: false,
                }],
            ),
        );
        assert_eq!(g.node.name, "fw-cfg@40001000");
        assert_eq!(
            g.node.prop("reg").unwrap(),
            [0x4000_1000u64.to_be_bytes(), 0x18u64.to_be_bytes()].concat()
        );
        assert_eq!(g.node.prop("interrupts").unwrap(), cells_prop(&[0, 17, 1]));
        assert_eq!(g.node.prop("dma-coherent").unwrap(), b"");
        assert!(g.node.prop("clocks").is_none());
        assert!(g.warnings.is_empty());
    }

    #[test]
    fn references_dropped_by_kind_and_everything_else_kept() {
        let h = host(
            "sata@3200000",
            &[
                ("compatible", b"fsl,ls1046a-ahci\0"),
                ("resets", &[0, 0, 0, 1]),
                ("phys", &[0, 0, 0, 2]),
                ("pinctrl-0", &[0, 0, 0, 3]),
                ("pinctrl-names", b"default\0"),
                ("vbus-supply", &[0, 0, 0, 4]),
                ("reset-gpios", &[0, 0, 0, 5, 0, 0, 0, 1]),
                ("rockchip,grf", &[0, 0, 0, 6]),
                ("secure-status", b"okay\0"),
                ("dma-ranges", &[0; 12]),
                ("vendor,magic", &[0, 0, 0, 7]),
                ("vendor,flag", b""),
                ("vendor,mode", b"fast\0"),
                ("#dma-cells", &[0, 0, 0, 1]),
                ("bus-width", &[0, 0, 0, 8]),
                ("status", b"okay\0"),
            ],
        );
        let g = generate(
            Some(&h),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x10000)], &[]),
        );
        for p in [
            "resets",
            "phys",
            "pinctrl-0",
            "vbus-supply",
            "reset-gpios",
            "rockchip,grf",
            "secure-status",
        ] {
            assert!(g.node.prop(p).is_none(), "{p} copied");
            assert!(
                g.warnings.iter().any(|w| w.contains(&format!("'{p}'"))),
                "no warning for {p}: {:?}",
                g.warnings
            );
        }
        assert!(
            g.node.prop("pinctrl-names").is_none(),
            "goes with pinctrl-0"
        );
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("'pinctrl-0' and 'pinctrl-names'")));
        // What the device says about itself stays, whatever its shape.
        assert_eq!(g.node.prop("vendor,magic").unwrap(), [0, 0, 0, 7]);
        assert_eq!(g.node.prop("vendor,flag").unwrap(), b"");
        assert_eq!(g.node.prop("vendor,mode").unwrap(), b"fast\0");
        assert_eq!(g.node.prop("#dma-cells").unwrap(), cells_prop(&[1]));
        assert_eq!(g.node.prop("bus-width").unwrap(), cells_prop(&[8]));
        // The DMA window its children's bus gives them holds in the guest too.
        assert_eq!(g.node.prop("dma-ranges").unwrap(), [0; 12]);
        assert!(g.node.prop("status").is_none());
        assert!(g.node.prop("interrupts").is_none(), "no IRQs, no property");
    }

    /// A child's references into the device are kept and renumbered, entries decoded with
    /// the local provider's cells; its interrupts from a host parent outside are dropped.
    #[test]
    fn children_keep_local_references_and_lose_host_interrupts() {
        let mut h = host(
            "gpio@1000",
            &[
                ("compatible", b"vendor,gpio\0"),
                ("gpio-controller", b""),
                ("#gpio-cells", &cells_prop(&[2])),
                ("interrupt-controller", b""),
                ("#interrupt-cells", &cells_prop(&[2])),
                ("phandle", &cells_prop(&[0x10])),
            ],
        );
        let mut bank = host(
            "bank@0",
            &[
                ("reg", &cells_prop(&[0])),
                ("gpio-controller", b""),
                ("#gpio-cells", &cells_prop(&[2])),
                ("phandle", &cells_prop(&[0x11])),
            ],
        );
        bank.children.push(host(
            "hog",
            &[
                ("gpios", &cells_prop(&[0x11, 3, 0, 0x11, 4, 1])),
                ("interrupts", &cells_prop(&[0, 40, 4])),
                ("other-gpios", &cells_prop(&[0x99, 1, 0])),
            ],
        ));
        bank.children.push(host(
            "usb-hog",
            &[
                ("gpio-hog", b""),
                ("gpios", &cells_prop(&[7, 0])),
                ("output-high", b""),
            ],
        ));
        h.children.push(bank);
        let g = generate(
            Some(&h),
            &params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], &[]),
        );
        let hog = &g.node.children[0].children[0];
        assert_eq!(
            hog.prop("gpios").unwrap(),
            cells_prop(&[0x11, 3, 0, 0x11, 4, 1])
        );
        assert!(hog.prop("interrupts").is_none());
        assert!(hog.prop("other-gpios").is_none());
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("bank@0/hog: dropped 'interrupts'")));
        assert_eq!(g.referenced, [0x11]);
        let map = HashMap::from([(0x11, 7)]);
        let links = MapLinks(map.clone());
        let mut p = params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], &[]);
        p.links = &links;
        let mut n = generate(Some(&h), &p).node;
        settle_phandles(&mut n, &map);
        let hog = &n.children[0].children[0];
        assert_eq!(hog.prop("gpios").unwrap(), cells_prop(&[7, 3, 0, 7, 4, 1]));
        assert_eq!(n.children[0].prop("phandle").unwrap(), cells_prop(&[7]));
        assert!(n.prop("phandle").is_none(), "the device's own: not local");
    }

    /// A SEC controller passed whole: its ranges follow its region into the guest; without
    /// the host bus's cells they are dropped, said.
    #[test]
    fn ranges_are_translated_into_the_guest_window() {
        let mut h = host(
            "crypto@1700000",
            &[
                ("compatible", b"fsl,sec-v5.4\0"),
                ("#address-cells", &cells_prop(&[1])),
                ("#size-cells", &cells_prop(&[1])),
                ("reg", &cells_prop(&[0, 0x170_0000, 0, 0x10_0000])),
                ("ranges", &cells_prop(&[0, 0, 0x170_0000, 0x10_0000])),
            ],
        );
        h.children.push(host(
            "jr@10000",
            &[
                ("reg", &cells_prop(&[0x1_0000, 0x1_0000])),
                ("interrupts", &cells_prop(&[0, 71, 4])),
            ],
        ));
        let regs = [(0x4000_0000, 0x10_0000)];
        let g = generate(Some(&h), &params(DeviceKind::Platform, &regs, &[]));
        assert_eq!(
            g.node.prop("ranges").unwrap(),
            cells_prop(&[0, 0, 0x4000_0000, 0x10_0000])
        );
        assert_eq!(g.node.prop("#address-cells").unwrap(), cells_prop(&[1]));
        assert_eq!(
            g.node.children[0].prop("reg").unwrap(),
            cells_prop(&[0x1_0000, 0x1_0000])
        );
        let mut p = params(DeviceKind::Platform, &regs, &[]);
        p.host_bus = None;
        let g = generate(Some(&h), &p);
        assert!(g.node.prop("ranges").is_none());
        assert!(g.warnings.iter().any(|w| w.contains("dropped 'ranges'")));
    }

    #[test]
    fn compatible_override_and_overlay() {
        let h = host("x@1", &[("compatible", b"vendor,x\0")]);
        let compat = vec!["generic-ahci".to_string()];
        let mut p = params(DeviceKind::Platform, &[(0x4000_0000, 0x1000)], &[]);
        p.compatible = Some(&compat);
        let mut g = generate(Some(&h), &p);
        assert_eq!(g.node.prop("compatible").unwrap(), b"generic-ahci\0");
        let overlay = GuestNode {
            name: String::new(),
            props: vec![("ports-implemented".into(), cells_prop(&[1]))],
            children: vec![GuestNode {
                name: "port@0".into(),
                props: vec![("reg".into(), cells_prop(&[0]))],
                children: vec![],
            }],
        };
        g.node.merge(&overlay);
        assert_eq!(g.node.prop("ports-implemented").unwrap(), cells_prop(&[1]));
        assert_eq!(g.node.children[0].name, "port@0");
    }

    #[test]
    fn amba_without_primecell_gets_it_and_no_host_node_warns() {
        let g = generate(
            None,
            &params(DeviceKind::Amba, &[(0x4000_0000, 0x1000)], &[]),
        );
        assert_eq!(g.node.name, "dev@40000000");
        assert_eq!(g.node.prop("compatible").unwrap(), b"arm,primecell\0");
        assert!(g.warnings[0].contains("give compatible="));
    }

    #[test]
    fn primecell_on_the_platform_bus_is_still_a_primecell() {
        // A PL031 whose host tree lacks arm,primecell (how it must be passed once vfio-amba
        // is gone): a platform device on the host, a PrimeCell with apb_pclk in the guest.
        let h = host("pl031@9010000", &[("compatible", b"arm,pl031\0")]);
        let regs = [(0x4000_0000, 0x1000)];
        let g = generate(Some(&h), &params(DeviceKind::Platform, &regs, &[]));
        assert_eq!(g.node.strings("compatible"), ["arm,pl031", "arm,primecell"]);
        assert_eq!(g.node.prop("clocks").unwrap(), cells_prop(&[2]));
        assert_eq!(g.node.strings("clock-names"), ["apb_pclk"]);
        // Not for other platform devices, nor when the user chose the compatible.
        let other = host("rtc@0", &[("compatible", b"vendor,rtc\0")]);
        let g = generate(Some(&other), &params(DeviceKind::Platform, &regs, &[]));
        assert_eq!(g.node.strings("compatible"), ["vendor,rtc"]);
        let mine = vec!["arm,pl031".to_string()];
        let mut p = params(DeviceKind::Platform, &regs, &[]);
        p.compatible = Some(&mine);
        assert_eq!(
            generate(Some(&h), &p).node.strings("compatible"),
            ["arm,pl031"]
        );
    }
}
