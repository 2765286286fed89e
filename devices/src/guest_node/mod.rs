//! The guest node generated for a passed-through device from its host DT node.
//!
//! Property policy (the generic handler):
//! - rewritten: `reg` (guest addresses, exact VFIO region sizes, in region order) and
//!   `interrupts` (one GIC SPI per VFIO IRQ, level-high for automasked IRQs, rising edge
//!   otherwise); `compatible` unless overridden.
//! - dropped with a warning: properties that carry phandles to host nodes the guest does not
//!   have ([`PHANDLE_PROPS`], `pinctrl-N`, `*-supply`, `*-gpios`, ...) and anything else not on
//!   the allow list that is neither a string list nor a boolean.
//! - copied: the allow list ([`ALLOW_PROPS`]), boolean (empty) properties and string lists —
//!   neither can hold a phandle.
//! - dropped silently: `phandle`, `linux,phandle`, `status` (the guest node is always enabled).
//!
//! - kept with their targets: references inside the passed-through subtree
//!   ([`SUBTREE_REF_PROPS`]: a MAC's `phy-handle` to the PHY under its own `mdio`...); the
//!   targets keep their `phandle`, which the caller renumbers ([`local_phandles`],
//!   [`remap_phandles`]). The same properties pointing outside are dropped, named.
//! - dropped references say what the host must do instead ([`drop_advice`]).
//!
//! `clocks`/`clock-names` are kept when the caller resolved every host clock to a guest fixed
//! clock ([`NodeParams::clocks`]). Otherwise AMBA devices get `clocks`/`clock-names =
//! "apb_pclk"` pointing at a fixed clock platvmm adds, because the guest's AMBA bus refuses to
//! probe a device without its bus clock. A PrimeCell ([`PRIMECELLS`]) the host presents on its
//! platform bus gets the same, and `arm,primecell`.
//! The user's overlay (properties and children) is applied last and wins.

use std::collections::{HashMap, HashSet};

use crate::dt::{
    self, cells_prop, is_string_list, strings_prop, writable_prop_name, GuestNode, PROP_NAME_MAX,
};
use crate::vfio::device::DeviceKind;
use hostdt::HostNode;

pub mod clocks;
pub mod handlers;
pub mod hostdt;
pub mod irqspec;

/// Phandle-bearing properties (or their companions) that are dropped with a warning.
pub const PHANDLE_PROPS: &[&str] = &[
    "clocks",
    "clock-names",
    "assigned-clocks",
    "assigned-clock-parents",
    "assigned-clock-rates",
    "resets",
    "reset-names",
    "phys",
    "phy-names",
    "power-domains",
    "power-domain-names",
    "pinctrl-names",
    "iommus",
    "iommu-map",
    "iommu-map-mask",
    "dmas",
    "dma-names",
    "interrupt-parent",
    "interrupts-extended",
    "msi-parent",
    "msi-map",
    "nvmem-cells",
    "nvmem-cell-names",
    "memory-region",
    "memory-region-names",
    "interconnects",
    "interconnect-names",
    "operating-points-v2",
    "gpios",
    "syscon",
];

/// Phandle-free properties copied as they are.
pub const ALLOW_PROPS: &[&str] = &[
    "compatible",
    "reg-names",
    "interrupt-names",
    "dma-coherent",
    "dma-noncoherent",
    "clock-frequency",
    "current-speed",
    "arm,primecell-periphid",
    "big-endian",
    "little-endian",
    "native-endian",
    "reg-shift",
    "reg-io-width",
    "wakeup-source",
    "dr_mode",
    "maximum-speed",
    "ports-implemented",
    "num-cs",
    "ngpios",
    "fifo-size",
    "linux,code",
    "gpio-controller",
    "#gpio-cells",
    "interrupt-controller",
    "#interrupt-cells",
    "gpio-line-names",
];

/// Properties never copied and never worth a warning.
/// (`interrupt-parent`: the guest node's `interrupts` are rewritten for the guest's GIC, the
/// root's interrupt parent.)
const SILENT_DROP: &[&str] = &[
    "phandle",
    "linux,phandle",
    "status",
    "reg",
    "interrupts",
    "interrupt-parent",
];

fn is_phandle_prop(name: &str) -> bool {
    PHANDLE_PROPS.contains(&name)
        || (name.starts_with("pinctrl-") && name[8..].chars().all(|c| c.is_ascii_digit()))
        || name.ends_with("-supply")
        || name.ends_with("-gpios")
        || name.ends_with("-gpio")
}

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
}

/// Builds the guest node (the generic handler).
pub fn generate(host: Option<&HostNode>, p: &NodeParams) -> Generated {
    generate_with(host, p, &|_| false)
}

/// Properties holding one phandle that may point inside the passed-through subtree (a MAC's
/// `phy-handle` to the PHY under its own `mdio`, a DWMAC's AXI/MTL configuration children).
/// Such a reference is kept, with the target's `phandle`; [`local_phandles`] lists them so the
/// caller can renumber them to guest phandles ([`remap_phandles`]).
pub const SUBTREE_REF_PROPS: &[&str] = &[
    "phy-handle",
    "phy",
    "phy-device",
    "pcs-handle",
    "remote-endpoint",
    "snps,axi-config",
    "snps,mtl-rx-config",
    "snps,mtl-tx-config",
];

/// How the copy treats one property (shared by the node and its children).
struct Policy<'a> {
    /// More properties a type handler knows to be phandle-free.
    extra_allow: &'a dyn Fn(&str) -> bool,
    /// Phandle properties the caller rewrites itself (no drop warning).
    rewritten: &'a dyn Fn(&str) -> bool,
    /// Phandles of nodes inside the passed-through subtree.
    subtree: HashSet<u32>,
}

/// The generic generation, with `extra_allow` naming more properties a type handler knows to
/// be phandle-free.
pub fn generate_with(
    host: Option<&HostNode>,
    p: &NodeParams,
    extra_allow: &dyn Fn(&str) -> bool,
) -> Generated {
    let mut warnings = Vec::new();
    let base = host.map(|h| h.base_name()).unwrap_or(p.dev_name);
    let addr = p.regs.first().map(|r| r.0).unwrap_or(0);
    let mut node = GuestNode {
        name: format!("{base}@{addr:x}"),
        ..Default::default()
    };
    if let Some(h) = host {
        copy_host(h, p, extra_allow, &mut node, &mut warnings);
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
    Generated { node, warnings }
}

/// The host node's properties and children under the property policy; references inside the
/// subtree are kept (with their targets' `phandle`), the rest dropped with a note.
fn copy_host(
    h: &HostNode,
    p: &NodeParams,
    extra_allow: &dyn Fn(&str) -> bool,
    node: &mut GuestNode,
    warnings: &mut Vec<String>,
) {
    // Resolved clocks are rewritten by the caller: dropping the host's is then no news.
    let rewritten = |n: &str| p.clocks.is_some() && (n == "clocks" || n == "clock-names");
    let mut subtree = HashSet::new();
    for c in &h.children {
        child_phandles(c, &mut subtree);
    }
    let policy = Policy {
        extra_allow,
        rewritten: &rewritten,
        subtree,
    };
    let mut referenced = HashSet::new();
    copy_props(h, node, warnings, true, &policy, &mut referenced);
    for c in &h.children {
        let child = copy_child(c, warnings, &h.name, &policy, &mut referenced);
        node.children.push(child);
    }
    for c in &mut node.children {
        drop_unreferenced_phandles(c, &referenced);
    }
    if h.children.is_empty() {
        node.remove("#address-cells");
        node.remove("#size-cells");
    }
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

fn one_cell(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| u32::from_be_bytes(v.try_into().expect("4 bytes")))
}

/// Phandles of `n` and its descendants.
fn child_phandles(n: &HostNode, out: &mut HashSet<u32>) {
    for p in ["phandle", "linux,phandle"] {
        if let Some(ph) = n.prop(p).and_then(one_cell) {
            out.insert(ph);
        }
    }
    for c in &n.children {
        child_phandles(c, out);
    }
}

fn drop_unreferenced_phandles(n: &mut GuestNode, referenced: &HashSet<u32>) {
    if let Some(ph) = n.prop("phandle").and_then(one_cell) {
        if !referenced.contains(&ph) {
            n.remove("phandle");
        }
    }
    for c in &mut n.children {
        drop_unreferenced_phandles(c, referenced);
    }
}

/// What the host must do for a dependency the guest loses, by the dropped property.
pub fn drop_advice(name: &str) -> &'static str {
    match name {
        "resets" | "reset-names" => {
            "the guest cannot reset it; the host must have taken it out of reset, and platvmm \
             never resets it either"
        }
        "power-domains" | "power-domain-names" => {
            "the host must keep its power domain on while VFIO holds the device"
        }
        "iommus" | "iommu-map" | "iommu-map-mask" => {
            "DMA goes through the host's IOMMU (or identity-mapped RAM in no-IOMMU mode)"
        }
        "dmas" | "dma-names" => {
            "the host's DMA engine stays with the host: the guest driver must work without it"
        }
        "phys" | "phy-names" => "the host must have powered and configured the PHY",
        n if n.starts_with("pinctrl-") => "the pins keep the host's configuration",
        n if n.ends_with("-supply") => "the host must keep the regulator on",
        n if n.ends_with("-gpios") || n.ends_with("-gpio") || n == "gpios" => {
            "the GPIO lines stay with the host"
        }
        _ => "refers to host nodes the guest does not have",
    }
}

fn copy_props(
    h: &HostNode,
    node: &mut GuestNode,
    warnings: &mut Vec<String>,
    top: bool,
    policy: &Policy,
    referenced: &mut HashSet<u32>,
) {
    for (name, value) in &h.props {
        let n = name.as_str();
        if top && SILENT_DROP.contains(&n) || (!top && n == "linux,phandle") {
            continue;
        }
        if !top && n == "phandle" {
            // Kept for now: removed afterwards unless something in the subtree refers to it.
            node.props.push((name.clone(), value.clone()));
            continue;
        }
        let local = one_cell(value).filter(|ph| policy.subtree.contains(ph));
        if let (true, Some(ph)) = (SUBTREE_REF_PROPS.contains(&n), local) {
            referenced.insert(ph);
            node.props.push((name.clone(), value.clone()));
        } else if !writable_prop_name(n) {
            warnings.push(format!(
                "{}: dropped '{n}' (the DT writer accepts property names of at most {PROP_NAME_MAX} characters from [A-Za-z0-9,._+?#-]; add it with dtc-built DTs only)",
                h.name
            ));
        } else if SUBTREE_REF_PROPS.contains(&n) {
            warnings.push(format!(
                "{}: dropped '{n}' (refers to a host node outside the passed-through device)",
                h.name
            ));
        } else if is_phandle_prop(n) {
            if !(policy.rewritten)(n) {
                warnings.push(format!("{}: dropped '{n}' ({})", h.name, drop_advice(n)));
            }
        } else if ALLOW_PROPS.contains(&n)
            || (policy.extra_allow)(n)
            || value.is_empty()
            || is_string_list(value)
            || n == "#address-cells"
            || n == "#size-cells"
            || (!top && n == "reg")
        {
            node.props.push((name.clone(), value.clone()));
        } else {
            warnings.push(format!(
                "{}: dropped '{n}' (not on the allow list and may hold a phandle; add it with the dt overlay if the guest needs it)",
                h.name
            ));
        }
    }
}

fn copy_child(
    c: &HostNode,
    warnings: &mut Vec<String>,
    parent: &str,
    policy: &Policy,
    referenced: &mut HashSet<u32>,
) -> GuestNode {
    let mut node = GuestNode {
        name: c.name.clone(),
        ..Default::default()
    };
    let before = warnings.len();
    copy_props(c, &mut node, warnings, false, policy, referenced);
    for w in &mut warnings[before..] {
        *w = format!("{parent}/{w}");
    }
    let path = format!("{parent}/{}", c.name);
    for cc in &c.children {
        let child = copy_child(cc, warnings, &path, policy, referenced);
        node.children.push(child);
    }
    node
}

/// The host phandles a generated node keeps for references inside its own subtree (the
/// `phandle` properties of its descendants), in tree order.
pub fn local_phandles(n: &GuestNode) -> Vec<u32> {
    let mut out = Vec::new();
    fn walk(n: &GuestNode, out: &mut Vec<u32>) {
        if let Some(ph) = n.prop("phandle").and_then(one_cell) {
            out.push(ph);
        }
        n.children.iter().for_each(|c| walk(c, out));
    }
    n.children.iter().for_each(|c| walk(c, &mut out));
    out
}

/// Rewrites the subtree's `phandle` properties and the references to them
/// ([`SUBTREE_REF_PROPS`]) from host to guest phandles.
pub fn remap_phandles(n: &mut GuestNode, map: &HashMap<u32, u32>) {
    for (name, value) in &mut n.props {
        if name == "phandle" || SUBTREE_REF_PROPS.contains(&name.as_str()) {
            if let Some(g) = one_cell(value).and_then(|h| map.get(&h)) {
                *value = g.to_be_bytes().to_vec();
            }
        }
    }
    for c in &mut n.children {
        remap_phandles(c, map);
    }
}

/// Builders shared by the node and handler unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{host, params};
    use super::*;

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
        assert!(n.prop("phandle").is_none());
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
    fn phandle_props_dropped_with_names_and_unknown_binary_dropped() {
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
                ("vendor,magic", &[0, 0, 0, 7]),
                ("vendor,flag", b""),
                ("vendor,mode", b"fast\0"),
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
            "pinctrl-names",
            "vbus-supply",
            "reset-gpios",
            "vendor,magic",
        ] {
            assert!(g.node.prop(p).is_none(), "{p} copied");
            assert!(
                g.warnings.iter().any(|w| w.contains(&format!("'{p}'"))),
                "no warning for {p}"
            );
        }
        assert_eq!(g.node.prop("vendor,flag").unwrap(), b"");
        assert_eq!(g.node.prop("vendor,mode").unwrap(), b"fast\0");
        assert!(g.node.prop("status").is_none());
        assert!(g.node.prop("interrupts").is_none(), "no IRQs, no property");
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
