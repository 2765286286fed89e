//! The property policy: a guest node gets every property of the host node and of its
//! children, except
//! - what platvmm rewrites (`reg`, `interrupts`, `ranges`) or makes true by construction
//!   (`status`: the guest node is enabled), dropped silently;
//! - a short deny-list ([`DENY`]) of host-only properties that would mislead a guest, each
//!   with its reason;
//! - references to host nodes ([`refs`]): kept when every entry points inside the passed
//!   subtree or into another device passed to the same VM ([`Links`]), renumbered to guest
//!   phandles as they are copied; else dropped by kind with advice, their `…-names`
//!   companions with them (also when the reference is absent), and the settings that depend
//!   on them ([`refs::depends_on`]: `snps,reset-delays-us` on `snps,reset-gpio`...; only when
//!   the reference was there and is dropped). A child's interrupts are kept when its
//!   interrupt parent is inside the subtree: otherwise they are host lines this VFIO device
//!   does not carry.
//!
//! Every copied node keeps its host `phandle` for now: once every device of the VM is
//! generated, [`settle_phandles`] gives the referenced ones their guest phandle and removes
//! the rest (a device referenced by one generated later is only known then).

use crate::dt::one_cell;
use std::collections::{HashMap, HashSet};

use super::hostdt::HostNode;
use super::refs::{self, Layout, RefKind};
use crate::dt::GuestNode;

/// Host-only properties that would mislead the guest, with why they are dropped.
pub const DENY: &[(&str, &str)] = &[
    (
        "secure-status",
        "the secure world's view of the device, not the guest's",
    ),
    ("linux,phandle", "the old spelling of phandle"),
];

/// Properties of the top node that platvmm rewrites or drops without a word.
const TOP_SILENT: &[&str] = &[
    "status",
    "reg",
    "interrupts",
    "interrupt-parent",
    "interrupts-extended",
    "ranges",
];

/// A guest provider standing in for a host reference the guest cannot have: a fixed clock
/// for a descendant's `clocks`, a fixed regulator for a `*-supply` (planned by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandIn {
    /// The node's path from the device's node, its name first (`i2c@e6510000/clk@4f`).
    pub path: String,
    /// The reference property (`clocks`, `vmmc-supply`).
    pub prop: String,
    /// The value it gets, in cells: phandles and their arguments.
    pub cells: Vec<u32>,
}

/// The other devices passed to the same VM, and the guest phandles of host nodes.
pub trait Links: std::fmt::Debug {
    /// A node of another passed device (its top node or one inside it), by host phandle.
    fn peer(&self, host: u32) -> Option<&HostNode>;
    /// The guest phandle standing for host phandle `host`, once one is given.
    fn guest(&self, host: u32) -> Option<u32>;
}

/// No other device, and guest phandles equal to the host's (to find what a copy refers to).
#[derive(Debug)]
pub struct NoLinks;

impl Links for NoLinks {
    fn peer(&self, _: u32) -> Option<&HostNode> {
        None
    }
    fn guest(&self, host: u32) -> Option<u32> {
        Some(host)
    }
}

/// One copy of a host subtree under the policy.
pub struct Copier<'a> {
    /// Reference properties the caller rewrites itself (resolved clocks): no drop warning.
    rewritten: &'a dyn Fn(&str) -> bool,
    /// The subtree's nodes by phandle (providers' `#…-cells` for decoding).
    local: HashMap<u32, &'a HostNode>,
    links: &'a dyn Links,
    /// Guest providers standing in for host references, by node path and property.
    stand_ins: &'a [StandIn],
    /// Host phandles the kept references point at.
    referenced: HashSet<u32>,
    pub warnings: Vec<String>,
}

fn phandle_of(n: &HostNode) -> Option<u32> {
    n.prop("phandle")
        .or_else(|| n.prop("linux,phandle"))
        .and_then(one_cell)
}

fn index<'a>(n: &'a HostNode, out: &mut HashMap<u32, &'a HostNode>) {
    if let Some(ph) = phandle_of(n) {
        out.insert(ph, n);
    }
    n.children.iter().for_each(|c| index(c, out));
}

impl<'a> Copier<'a> {
    /// A copier for `top`'s subtree (the top node's own phandle is not local: a reference to
    /// the device itself names the host node, which the guest does not have).
    pub fn new(
        top: &'a HostNode,
        rewritten: &'a dyn Fn(&str) -> bool,
        links: &'a dyn Links,
        stand_ins: &'a [StandIn],
    ) -> Self {
        let mut local = HashMap::new();
        top.children.iter().for_each(|c| index(c, &mut local));
        Self {
            rewritten,
            local,
            links,
            stand_ins,
            referenced: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// The copy of `top` and its children (host `phandle`s kept: see [`settle_phandles`]).
    pub fn copy(&mut self, top: &HostNode) -> GuestNode {
        self.node(top, &top.name, true, false)
    }

    /// The host phandles the kept references point at (inside the device or at other passed
    /// devices), sorted: each needs a guest phandle.
    pub fn referenced(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.referenced.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// `irq_local`: the node's inherited interrupt parent is inside the subtree.
    fn node(&mut self, h: &HostNode, path: &str, top: bool, irq_local: bool) -> GuestNode {
        let mut g = GuestNode {
            name: h.name.clone(),
            ..Default::default()
        };
        let irq_local = match h.prop("interrupt-parent").and_then(one_cell) {
            Some(ph) => self.local.contains_key(&ph) || self.links.peer(ph).is_some(),
            None => irq_local,
        };
        let mut dropped = HashSet::new();
        for (name, value) in &h.props {
            if top && TOP_SILENT.contains(&name.as_str()) {
                continue;
            }
            match self.keep(path, h, name, value, top, irq_local) {
                Some(v) => g.props.push((name.clone(), v)),
                None => {
                    dropped.insert(name.as_str());
                }
            }
        }
        // A rewritten reference (resolved clocks) is back in the node: its dependents stay.
        let rewritten = self.rewritten;
        let gone = |m: &str| dropped.contains(m) && !rewritten(m);
        g.props.retain(|(n, _)| {
            let companion =
                refs::companion_of(n).is_some_and(|m| dropped.contains(m) || h.prop(m).is_none());
            !companion && !refs::depends_on(n).any(gone)
        });
        for c in &h.children {
            let cp = format!("{path}/{}", c.name);
            let child = self.node(c, &cp, false, irq_local);
            g.children.push(child);
        }
        g
    }

    /// Property `name` of the node at `path` as the guest gets it, or `None` (a drop is
    /// noted).
    fn keep(
        &mut self,
        path: &str,
        h: &HostNode,
        name: &str,
        value: &[u8],
        top: bool,
        irq_local: bool,
    ) -> Option<Vec<u8>> {
        if let Some((_, why)) = DENY.iter().find(|(n, _)| *n == name) {
            self.warnings
                .push(format!("{path}: dropped '{name}' ({why})"));
            return None;
        }
        if name == "phandle" {
            // Settled once the whole VM is generated.
            return Some(value.to_vec());
        }
        if !top && name == "interrupts" {
            if !irq_local {
                let why = refs::drop_advice(name, RefKind::Interrupt);
                self.warnings
                    .push(format!("{path}: dropped '{name}' ({why})"));
            }
            return irq_local.then(|| value.to_vec());
        }
        // A GPIO hog's `gpios` are line specifiers of its parent controller, no phandle.
        let hog = name == "gpios" && h.prop("gpio-hog").is_some();
        let Some(r) = refs::reference(name).filter(|_| !hog) else {
            return Some(value.to_vec());
        };
        let linked = self.linked(value, r.layout);
        if linked.is_some() || (name == "interrupt-parent" && !top) {
            // A child's interrupt parent outside goes silently with the interrupts it serves.
            return linked;
        }
        // A provider inside or passed along is better than a stand-in: checked first.
        let stand_in = self
            .stand_ins
            .iter()
            .find(|s| s.path == path && s.prop == name);
        if let Some(s) = stand_in.filter(|_| !top || name != "clocks") {
            return Some(s.cells.iter().flat_map(|p| p.to_be_bytes()).collect());
        }
        if !(self.rewritten)(name) {
            let why = refs::drop_advice(name, r.kind);
            let props = || h.props.iter().map(|(n, _)| n.as_str());
            let with: String = refs::companions(name, props())
                .into_iter()
                .chain(refs::dependents(name, props()))
                .map(|c| format!(" and '{c}'"))
                .collect();
            self.warnings
                .push(format!("{path}: dropped '{name}'{with} ({why})"));
        }
        None
    }

    /// Reference `value` in guest phandles, when every entry points inside the subtree or
    /// at another passed device (those phandles are recorded as referenced).
    fn linked(&mut self, value: &[u8], layout: Layout) -> Option<Vec<u8>> {
        let (local, links) = (&self.local, self.links);
        let node = |ph: u32| local.get(&ph).copied().or_else(|| links.peer(ph));
        let cells = |ph: u32, name: &str| node(ph).and_then(|n| n.prop(name)).and_then(one_cell);
        let entries = refs::decode(value, layout, &cells)?;
        if entries.is_empty() || !entries.iter().all(|e| node(e.phandle).is_some()) {
            return None;
        }
        self.referenced.extend(entries.iter().map(|e| e.phandle));
        refs::encode(&entries, &|ph| links.guest(ph))
    }
}

/// Gives every node of `n` whose host `phandle` has a guest one (`map`) that phandle, and
/// removes the others'.
pub fn settle_phandles(n: &mut GuestNode, map: &HashMap<u32, u32>) {
    match n
        .prop("phandle")
        .and_then(one_cell)
        .and_then(|h| map.get(&h))
    {
        Some(g) => n.set("phandle", g.to_be_bytes().to_vec()),
        None => {
            n.remove("phandle");
        }
    }
    n.children.iter_mut().for_each(|c| settle_phandles(c, map));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::cells_prop;
    use crate::guest_node::test_support::host;

    /// One other passed device: a GPIO controller at host phandle 0x20.
    #[derive(Debug)]
    struct GpioPeer(HostNode);

    impl Links for GpioPeer {
        fn peer(&self, host: u32) -> Option<&HostNode> {
            (host == 0x20).then_some(&self.0)
        }
        fn guest(&self, host: u32) -> Option<u32> {
            Some(host + 0x100)
        }
    }

    fn gpio_peer() -> GpioPeer {
        GpioPeer(host(
            "gpio@ff720000",
            &[
                ("#gpio-cells", &cells_prop(&[2])),
                ("phandle", &cells_prop(&[0x20])),
            ],
        ))
    }

    /// A DWMAC whose PHY reset line is GPIO 15 of the controller at host phandle `gpio`.
    fn mac(gpio: u32) -> HostNode {
        host(
            "ethernet@fe300000",
            &[
                ("compatible", b"rockchip,rk3399-gmac\0"),
                ("snps,reset-gpio", &cells_prop(&[gpio, 15, 1])),
                ("snps,reset-active-low", b""),
                ("snps,reset-delays-us", &cells_prop(&[0, 10000, 50000])),
                ("phy-mode", b"rgmii\0"),
            ],
        )
    }

    /// The copy of `h` and the warnings.
    fn copy(
        h: &HostNode,
        rewritten: &dyn Fn(&str) -> bool,
        links: &dyn Links,
    ) -> (GuestNode, Vec<String>) {
        let mut c = Copier::new(h, rewritten, links, &[]);
        let g = c.copy(h);
        (g, c.warnings)
    }

    const NONE: &dyn Fn(&str) -> bool = &|_| false;

    #[test]
    fn dependents_go_with_their_dropped_reference_said_so() {
        let h = mac(0x99);
        let (g, warnings) = copy(&h, NONE, &NoLinks);
        for p in [
            "snps,reset-gpio",
            "snps,reset-active-low",
            "snps,reset-delays-us",
        ] {
            assert!(g.prop(p).is_none(), "{p} kept");
        }
        assert!(g.prop("phy-mode").is_some());
        assert_eq!(
            warnings,
            [format!(
                "ethernet@fe300000: dropped 'snps,reset-gpio' and 'snps,reset-active-low' and \
                 'snps,reset-delays-us' ({})",
                refs::drop_advice("snps,reset-gpio", RefKind::Gpio)
            )]
        );
    }

    #[test]
    fn dependents_stay_with_a_kept_reference() {
        let h = mac(0x20);
        let peer = gpio_peer();
        let mut c = Copier::new(&h, NONE, &peer, &[]);
        let g = c.copy(&h);
        assert_eq!(
            g.prop("snps,reset-gpio").unwrap(),
            cells_prop(&[0x120, 15, 1])
        );
        assert_eq!(g.prop("snps,reset-active-low").unwrap(), b"");
        assert!(g.prop("snps,reset-delays-us").is_some());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.referenced(), [0x20]);
    }

    /// Unlike a `-names` companion, a dependent without its reference is the host's own
    /// (in)validity: it stays.
    #[test]
    fn dependents_stay_without_their_reference() {
        let h = host(
            "usb@11290000",
            &[
                ("compatible", b"mediatek,mt8195-xhci\0"),
                ("wakeup-source", b""),
                ("pinctrl-names", b"default\0"),
            ],
        );
        let (g, warnings) = copy(&h, NONE, &NoLinks);
        assert_eq!(g.prop("wakeup-source").unwrap(), b"");
        assert!(g.prop("pinctrl-names").is_none(), "a companion goes anyway");
        assert!(warnings.is_empty());
        let mut h = h;
        h.props.push((
            "mediatek,syscon-wakeup".into(),
            cells_prop(&[0x30, 0x400, 2]),
        ));
        let (g, warnings) = copy(&h, NONE, &NoLinks);
        assert!(g.prop("wakeup-source").is_none());
        assert!(warnings[0].contains("'mediatek,syscon-wakeup' and 'wakeup-source'"));
    }

    /// Clocks the caller rewrites are not lost: what depends on them stays.
    #[test]
    fn dependents_of_rewritten_clocks_stay() {
        let h = host(
            "ufs@11270000",
            &[
                ("clocks", &cells_prop(&[0x40, 1, 0x40, 2])),
                ("freq-table-hz", &cells_prop(&[0, 0, 0, 0])),
            ],
        );
        let (g, _) = copy(&h, NONE, &NoLinks);
        assert!(g.prop("freq-table-hz").is_none());
        let (g, warnings) = copy(&h, &|n| n == "clocks", &NoLinks);
        assert!(g.prop("freq-table-hz").is_some());
        assert!(g.prop("clocks").is_none(), "the caller writes its own");
        assert!(warnings.is_empty());
    }

    /// Stand-ins replace the references they stand for (at their node only); a provider
    /// inside the device wins over a stand-in.
    #[test]
    fn stand_ins_replace_supplies_and_child_clocks() {
        let mut h = host(
            "mmc@11240000",
            &[
                ("vmmc-supply", &cells_prop(&[0x50])),
                ("vqmmc-supply", &cells_prop(&[0x51])),
                ("clocks", &cells_prop(&[0x40, 1])),
            ],
        );
        let mut card = host(
            "card@0",
            &[
                ("vcc-supply", &cells_prop(&[0x50])),
                ("clocks", &cells_prop(&[0x40, 3])),
                ("vio-supply", &cells_prop(&[0x60])),
            ],
        );
        card.children
            .push(host("ldo@1", &[("phandle", &cells_prop(&[0x60]))]));
        h.children.push(card);
        let stand = |path: &str, prop: &str, ph: u32| StandIn {
            path: path.into(),
            prop: prop.into(),
            cells: vec![ph],
        };
        let stand_ins = [
            stand("mmc@11240000", "vmmc-supply", 7),
            stand("mmc@11240000", "clocks", 8),
            stand("mmc@11240000/card@0", "vcc-supply", 7),
            stand("mmc@11240000/card@0", "clocks", 9),
            stand("mmc@11240000/card@0", "vio-supply", 10),
        ];
        let mut c = Copier::new(&h, NONE, &NoLinks, &stand_ins);
        let g = c.copy(&h);
        assert_eq!(g.prop("vmmc-supply").unwrap(), cells_prop(&[7]));
        assert!(g.prop("vqmmc-supply").is_none(), "no stand-in: dropped");
        assert!(
            g.prop("clocks").is_none(),
            "the device's own clocks are the caller's"
        );
        let card = &g.children[0];
        assert_eq!(card.prop("vcc-supply").unwrap(), cells_prop(&[7]));
        assert_eq!(card.prop("clocks").unwrap(), cells_prop(&[9]));
        assert_eq!(
            card.prop("vio-supply").unwrap(),
            cells_prop(&[0x60]),
            "the regulator inside the device, not the stand-in"
        );
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("'vqmmc-supply'")));
    }
}
