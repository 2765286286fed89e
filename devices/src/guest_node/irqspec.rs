//! A host node's interrupts as the host kernel reads them: one [`HostIrq`] per host interrupt,
//! in the order vfio-platform numbers them, whatever the interrupt parent and its
//! `#interrupt-cells`.
//!
//! vfio-platform gives IRQ index `i` the line of `platform_get_irq(pdev, i)`: entry `i` of
//! `interrupts-extended` when the node has it, else of `interrupts` (Linux `of_irq_parse_one`
//! prefers `interrupts-extended`). Each entry keeps its parent and its raw cells (two entries
//! equal in both are one host line listed twice) and, where the parent's binding tells it, the
//! trigger ([`SpecTrigger`]) from the IRQ_TYPE_* flags:
//! - a GIC ([`GIC_COMPATIBLES`], or any interrupt controller with 3 or 4 cells and "gic" in a
//!   compatible: `<GIC_SPI n flags>`, `<GIC_SPI n flags partition>`) and the controllers whose
//!   bindings reuse the GIC's layout ([`GIC_LAYOUT_SUFFIXES`]): cell 2;
//! - the Armada CP110 ICU's legacy binding (`marvell,cp110-icu`, `<ICU_GRP_NSR n flags>`): cell 2;
//! - any other interrupt controller with 2 cells (`<hwirq flags>`: the Tegra PMC's wake events,
//!   the CP110 ICU's NSR/SEI subnodes, GPIO controllers, ...): cell 1;
//! - anything else (1-cell parents such as the i.MX irqsteer, nexus nodes with
//!   `interrupt-map`, other layouts): unknown.
//!
//! `interrupts` belong to the node's interrupt parent: its own `interrupt-parent`, else its
//! nearest ancestor's, which only the caller can see ([`effective_parent`] over the node's
//! ancestry). Parents are looked up by phandle ([`PhandleLookup`]: the live tree or a DTB).
//! When the parent of `interrupts` cannot be found (no `interrupt-parent` anywhere, a phandle
//! naming nothing, a loop), the cells are read as 3-cell GIC specifiers, the arm64 norm, and
//! [`HostIrqs::problem`] says why. Every loop is bounded by the property's length or by
//! [`MAX_PARENT_HOPS`]: hostile trees (cyclic parents, truncated specifiers) give a short list
//! and a reason, never a hang or a panic.

use crate::dt::cells_of;
use std::collections::HashMap;

use super::clocks::PhandleLookup;
use super::hostdt::HostNode;
use crate::dt::{IRQ_TYPE_LEVEL_HIGH, IRQ_TYPE_LEVEL_LOW};

/// The most cells a specifier may have (Linux's `MAX_PHANDLE_ARGS`).
pub const MAX_INTERRUPT_CELLS: u32 = 16;
/// How many `interrupt-parent` links are followed from a parent without `#interrupt-cells`.
pub const MAX_PARENT_HOPS: usize = 16;
/// The trigger bits of an IRQ_TYPE_* value (include/dt-bindings/interrupt-controller/irq.h;
/// a GICv2 PPI keeps its CPU mask above them).
const IRQ_TYPE_SENSE_MASK: u32 = 0xf;
/// IRQ_TYPE_EDGE_RISING | IRQ_TYPE_EDGE_FALLING.
const IRQ_TYPE_EDGE_BOTH: u32 = 3;

/// GIC compatibles (bindings/interrupt-controller/arm,gic.yaml and arm,gic-v3.yaml).
pub const GIC_COMPATIBLES: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,cortex-a5-gic",
    "arm,arm11mp-gic",
    "arm,arm1176jzf-devchip-gic",
    "arm,eb11mp-gic",
    "arm,pl390",
    "arm,tc11mp-gic",
    "arm,gic-v2",
    "arm,gic-v3",
    "qcom,msm-8660-qgic",
    "qcom,msm-qgic2",
];

/// Compatible endings of 3-cell controllers whose bindings take the GIC's specifier layout:
/// MediaTek `*-sysirq` and `mtk-cirq`, NVIDIA `*-ictlr`, Allwinner `*-r-intc`, Socionext
/// `synquacer-exiu`.
pub const GIC_LAYOUT_SUFFIXES: &[&str] = &["-sysirq", "-cirq", "-ictlr", "-r-intc", "-exiu"];

/// How an interrupt is triggered, as far as its host specifier tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecTrigger {
    /// IRQ_TYPE_LEVEL_HIGH or IRQ_TYPE_LEVEL_LOW.
    Level,
    /// IRQ_TYPE_EDGE_RISING, _FALLING or _BOTH.
    Edge,
    /// IRQ_TYPE_NONE, or a parent whose specifier layout is not known.
    Unknown,
}

impl SpecTrigger {
    /// From IRQ_TYPE_* flags; a level bit wins over edge bits.
    pub fn from_flags(flags: u32) -> Self {
        let sense = flags & IRQ_TYPE_SENSE_MASK;
        if sense & (IRQ_TYPE_LEVEL_HIGH | IRQ_TYPE_LEVEL_LOW) != 0 {
            SpecTrigger::Level
        } else if sense & IRQ_TYPE_EDGE_BOTH != 0 {
            SpecTrigger::Edge
        } else {
            SpecTrigger::Unknown
        }
    }
}

/// The interrupt controller a host interrupt belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqParent {
    pub phandle: u32,
    /// The lookup's key for it (its path).
    pub key: String,
}

/// One host interrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIrq {
    /// Its parent; `None` when it could not be found (the cells were read as a GIC's).
    pub parent: Option<IrqParent>,
    /// The specifier, as the host tree has it.
    pub cells: Vec<u32>,
    pub trigger: SpecTrigger,
}

impl HostIrq {
    /// Whether `other` is the same host line: the same parent and specifier.
    pub fn same_line(&self, other: &HostIrq) -> bool {
        self.parent == other.parent && self.cells == other.cells
    }

    /// The parent's key, or "an unknown parent".
    pub fn parent_name(&self) -> &str {
        self.parent.as_ref().map_or("an unknown parent", |p| &p.key)
    }
}

/// Which property a node's interrupts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqProp {
    Interrupts,
    InterruptsExtended,
}

impl std::fmt::Display for IrqProp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IrqProp::Interrupts => "interrupts",
            IrqProp::InterruptsExtended => "interrupts-extended",
        })
    }
}

/// Why a node's interrupts could not all be read as the host kernel reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IrqSpecError {
    #[error("no interrupt-parent on the node or its ancestors")]
    NoParent,
    #[error("interrupt parent phandle {phandle:#x} names no node")]
    UnknownPhandle { phandle: u32 },
    #[error("the interrupt-parent chain from phandle {phandle:#x} loops or is longer than {MAX_PARENT_HOPS} nodes")]
    ParentLoop { phandle: u32 },
    #[error("interrupt parent {parent} has no #interrupt-cells")]
    NoCells { parent: String },
    #[error("interrupt parent {parent} has #interrupt-cells = <{cells}> (1 to {MAX_INTERRUPT_CELLS} expected)")]
    BadCells { parent: String, cells: u32 },
    #[error("{bytes} bytes after the last whole specifier")]
    Trailing { bytes: usize },
}

/// A node's interrupts, in VFIO index order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIrqs {
    pub irqs: Vec<HostIrq>,
    /// Where they come from; `None` when the node has neither property.
    pub prop: Option<IrqProp>,
    /// Why the list may be short, or guessed.
    pub problem: Option<IrqSpecError>,
    /// The parent of `interrupts` was not found: the cells were read as 3-cell GIC specifiers.
    pub assumed_gic: bool,
}

impl HostIrqs {
    /// A line for the user when something could not be read as the host kernel reads it.
    pub fn note(&self) -> Option<String> {
        let problem = self.problem.as_ref()?;
        let prop = self.prop.unwrap_or(IrqProp::Interrupts);
        let guess = if self.assumed_gic {
            "; its cells were read as 3-cell GIC specifiers"
        } else {
            ""
        };
        Some(format!("{prop}: {problem}{guess}"))
    }
}

/// Where a specifier's IRQ_TYPE_* flags are, by the parent's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    FlagsAt(usize),
    Unknown,
}

impl Layout {
    /// The layout of `parent`'s specifiers, `cells` long (see the module's list).
    fn of(parent: &HostNode, cells: u32) -> Self {
        let compat = parent.strings("compatible").unwrap_or_default();
        let any = |f: &dyn Fn(&str) -> bool| compat.iter().any(|c| f(c));
        if cells >= 3 && any(&|c| GIC_COMPATIBLES.contains(&c)) {
            return Layout::FlagsAt(2);
        }
        if parent.prop("interrupt-controller").is_none() {
            return Layout::Unknown;
        }
        let gic_like = any(&|c| c.contains("gic"));
        let gic_layout = any(&|c| GIC_LAYOUT_SUFFIXES.iter().any(|s| c.ends_with(s)));
        let icu = any(&|c| c == "marvell,cp110-icu");
        match cells {
            3 | 4 if gic_like => Layout::FlagsAt(2),
            3 if gic_layout || icu => Layout::FlagsAt(2),
            2 => Layout::FlagsAt(1),
            _ => Layout::Unknown,
        }
    }

    fn trigger(self, spec: &[u32]) -> SpecTrigger {
        match self {
            Layout::FlagsAt(i) => spec
                .get(i)
                .map_or(SpecTrigger::Unknown, |&f| SpecTrigger::from_flags(f)),
            Layout::Unknown => SpecTrigger::Unknown,
        }
    }
}

/// An interrupt parent found by phandle.
#[derive(Debug, Clone)]
struct Parent {
    id: IrqParent,
    cells: usize,
    layout: Layout,
}

/// The node `phandle` names, if it has `#interrupt-cells`; else, with `follow` (as for
/// `interrupts`, Linux `of_irq_find_parent`), the node its `interrupt-parent` names, and so on.
fn find_parent(
    phandle: u32,
    tree: &dyn PhandleLookup,
    follow: bool,
) -> Result<Parent, IrqSpecError> {
    let mut ph = phandle;
    for _ in 0..MAX_PARENT_HOPS {
        let (key, node) = tree
            .node(ph)
            .ok_or(IrqSpecError::UnknownPhandle { phandle: ph })?;
        match node.u32_prop("#interrupt-cells") {
            Some(n) if n == 0 || n > MAX_INTERRUPT_CELLS => {
                return Err(IrqSpecError::BadCells {
                    parent: key,
                    cells: n,
                })
            }
            Some(n) => {
                return Ok(Parent {
                    layout: Layout::of(&node, n),
                    id: IrqParent { phandle: ph, key },
                    cells: n as usize,
                })
            }
            None => match node.u32_prop("interrupt-parent").filter(|_| follow) {
                Some(next) => ph = next,
                None => return Err(IrqSpecError::NoCells { parent: key }),
            },
        }
    }
    Err(IrqSpecError::ParentLoop { phandle })
}

/// The phandle of a node's interrupt parent from its ancestry, the node first, then its parent,
/// up to the root: the node's own `interrupt-parent`, else the nearest ancestor that is an
/// interrupt controller (`#interrupt-cells` and a `phandle`) or names one (`interrupt-parent`).
/// `None` when none does, or when the nearest controller has no phandle to find it by.
pub fn effective_parent<'a>(ancestry: impl IntoIterator<Item = &'a HostNode>) -> Option<u32> {
    let mut it = ancestry.into_iter();
    if let Some(own) = it.next().and_then(|n| n.u32_prop("interrupt-parent")) {
        return Some(own);
    }
    for a in it {
        if a.prop("#interrupt-cells").is_some() {
            return a
                .u32_prop("phandle")
                .or_else(|| a.u32_prop("linux,phandle"));
        }
        if let Some(p) = a.u32_prop("interrupt-parent") {
            return Some(p);
        }
    }
    None
}

/// `node`'s interrupts: its `interrupts-extended` if it has one, else its `interrupts` under
/// `parent` (the phandle [`effective_parent`] found), parents looked up in `tree`.
pub fn host_irqs(node: &HostNode, parent: Option<u32>, tree: &dyn PhandleLookup) -> HostIrqs {
    if let Some(v) = node.prop("interrupts-extended") {
        return extended(v, tree);
    }
    match node.prop("interrupts") {
        Some(v) => interrupts(v, parent, tree),
        None => HostIrqs::default(),
    }
}

/// `node`'s interrupts with no tree at hand (tests, fragments): `interrupts` read as 3-cell
/// GIC specifiers, `interrupts-extended` unresolved (empty, with why).
pub fn alone(node: &HostNode) -> HostIrqs {
    struct NoTree;
    impl PhandleLookup for NoTree {
        fn node(&self, _: u32) -> Option<(String, HostNode)> {
            None
        }
    }
    host_irqs(node, None, &NoTree)
}

/// `Trailing` when `v` goes on past `used` bytes.
fn trailing(v: &[u8], used: usize) -> Option<IrqSpecError> {
    let bytes = v.len().saturating_sub(used);
    (bytes > 0).then_some(IrqSpecError::Trailing { bytes })
}

fn interrupts(v: &[u8], parent: Option<u32>, tree: &dyn PhandleLookup) -> HostIrqs {
    let found = parent
        .ok_or(IrqSpecError::NoParent)
        .and_then(|ph| find_parent(ph, tree, true));
    let (parent, n, layout, problem) = match found {
        Ok(p) => (Some(p.id), p.cells, p.layout, None),
        Err(e) => (None, 3, Layout::FlagsAt(2), Some(e)),
    };
    let c = cells_of(v);
    let irqs: Vec<HostIrq> = c
        .chunks_exact(n)
        .map(|spec| HostIrq {
            parent: parent.clone(),
            cells: spec.to_vec(),
            trigger: layout.trigger(spec),
        })
        .collect();
    let used = irqs.len() * n * 4;
    HostIrqs {
        irqs,
        prop: Some(IrqProp::Interrupts),
        assumed_gic: problem.is_some(),
        problem: problem.or_else(|| trailing(v, used)),
    }
}

/// `<&parent spec...>, ...`: each entry's length is its parent's `#interrupt-cells`; the list
/// stops at the first entry whose parent cannot be found or which is cut short.
fn extended(v: &[u8], tree: &dyn PhandleLookup) -> HostIrqs {
    let c = cells_of(v);
    let mut found: HashMap<u32, Result<Parent, IrqSpecError>> = HashMap::new();
    let mut out = HostIrqs {
        prop: Some(IrqProp::InterruptsExtended),
        ..HostIrqs::default()
    };
    let mut i = 0;
    while i < c.len() {
        let p = found
            .entry(c[i])
            .or_insert_with(|| find_parent(c[i], tree, false));
        let p = match p {
            Ok(p) => p.clone(),
            Err(e) => {
                out.problem = Some(e.clone());
                return out;
            }
        };
        let Some(spec) = c.get(i + 1..i + 1 + p.cells) else {
            break;
        };
        out.irqs.push(HostIrq {
            trigger: p.layout.trigger(spec),
            parent: Some(p.id),
            cells: spec.to_vec(),
        });
        i += 1 + p.cells;
    }
    out.problem = trailing(v, i.min(c.len()) * 4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::{cells_prop, strings_prop};

    use crate::guest_node::test_support::{node, Tree};

    /// An interrupt controller as its binding writes it.
    fn controller(compatible: &[&str], cells: u32) -> HostNode {
        node(
            "interrupt-controller",
            vec![
                ("compatible", strings_prop(compatible)),
                ("#interrupt-cells", cells_prop(&[cells])),
                ("interrupt-controller", vec![]),
            ],
        )
    }

    /// A device with `interrupts` (and `interrupt-parent` when given).
    fn device(interrupts: &[u32], parent: Option<u32>) -> HostNode {
        let mut props = vec![("interrupts", cells_prop(interrupts))];
        props.extend(parent.map(|p| ("interrupt-parent", cells_prop(&[p]))));
        node("dev@0", props)
    }

    fn parent(phandle: u32, key: &str) -> Option<IrqParent> {
        Some(IrqParent {
            phandle,
            key: key.into(),
        })
    }

    fn triggers(h: &HostIrqs) -> Vec<SpecTrigger> {
        h.irqs.iter().map(|i| i.trigger).collect()
    }

    /// Upstream 6.12 controllers: LS1046A's GIC-400, RK3399's 4-cell GICv3, the Tegra234 PMC,
    /// the i.MX8MP HDMI irqsteer, the Armada CP110 ICU's NSR subnode and its legacy 3-cell
    /// form, a MediaTek pinctrl (`pio`, 2 cells).
    fn tree() -> Tree {
        let mut pio = controller(&["mediatek,mt8186-pinctrl"], 2);
        pio.name = "pinctrl@10005000".into();
        Tree(vec![
            (
                1,
                "/interrupt-controller@1400000",
                controller(&["arm,gic-400"], 3),
            ),
            (
                2,
                "/interrupt-controller@fee00000",
                controller(&["arm,gic-v3"], 4),
            ),
            (
                3,
                "/bus@0/pmc@c360000",
                controller(&["nvidia,tegra234-pmc"], 2),
            ),
            (
                4,
                "/soc@0/bus@32c00000/interrupt-controller@32fc2000",
                controller(&["fsl,imx8mp-irqsteer", "fsl,imx-irqsteer"], 1),
            ),
            (
                5,
                "/cp0/config-space@f2000000/interrupt-controller@1e0000/interrupt-controller@10",
                controller(&["marvell,cp110-icu-nsr"], 2),
            ),
            (
                6,
                "/cp0/config-space@f2000000/interrupt-controller@1e0000",
                controller(&["marvell,cp110-icu"], 3),
            ),
            (7, "/soc/pinctrl@10005000", pio),
        ])
    }

    #[test]
    fn three_cell_gic() {
        // fsl-ls1046a.dtsi sata@3200000: <GIC_SPI 69 IRQ_TYPE_LEVEL_HIGH>.
        let h = host_irqs(&device(&[0, 69, 4], None), Some(1), &tree());
        assert_eq!(
            h.irqs,
            [HostIrq {
                parent: parent(1, "/interrupt-controller@1400000"),
                cells: vec![0, 69, 4],
                trigger: SpecTrigger::Level,
            }]
        );
        assert_eq!(
            (h.prop, h.problem, h.assumed_gic),
            (Some(IrqProp::Interrupts), None, false)
        );
    }

    #[test]
    fn four_cell_gic_gains_no_interrupt() {
        // rk3399-base.dtsi pcie@f8000000: three <GIC_SPI n IRQ_TYPE_LEVEL_HIGH 0> (48 bytes,
        // four 12-byte chunks), and its own #interrupt-cells = <1> (for its children).
        let mut pcie = device(&[0, 49, 4, 0, 0, 50, 4, 0, 0, 51, 4, 0], None);
        pcie.props
            .push(("#interrupt-cells".into(), cells_prop(&[1])));
        let root = node("", vec![("interrupt-parent", cells_prop(&[2]))]);
        let ph = effective_parent([&pcie, &root]);
        assert_eq!(
            ph,
            Some(2),
            "the node's own #interrupt-cells is for its children"
        );
        let h = host_irqs(&pcie, ph, &tree());
        assert_eq!(h.irqs.len(), 3);
        assert_eq!(h.irqs[2].cells, [0, 51, 4, 0]);
        assert_eq!(triggers(&h), [SpecTrigger::Level; 3]);
        assert_eq!(h.problem, None);
    }

    #[test]
    fn armada_icu_nsr_from_an_ancestor() {
        // armada-cp11x.dtsi: the CP node says interrupt-parent = <&icu_nsr> (2 cells); the
        // SATA controller two levels down has <107 IRQ_TYPE_LEVEL_HIGH>.
        let sata = device(&[107, 4], None);
        let config_space = node("config-space@f2000000", vec![]);
        let cp = node("cp0", vec![("interrupt-parent", cells_prop(&[5]))]);
        let root = node("", vec![("interrupt-parent", cells_prop(&[1]))]);
        let ph = effective_parent([&sata, &config_space, &cp, &root]);
        assert_eq!(ph, Some(5), "the nearest ancestor's, not the root's");
        let h = host_irqs(&sata, ph, &tree());
        assert_eq!(h.irqs.len(), 1);
        assert_eq!(h.irqs[0].trigger, SpecTrigger::Level);
        assert!(h.irqs[0].parent_name().ends_with("interrupt-controller@10"));
    }

    #[test]
    fn armada_icu_legacy_three_cells() {
        // The ICU's legacy binding: <ICU_GRP_NSR 107 IRQ_TYPE_LEVEL_HIGH>, then an edge one.
        let h = host_irqs(&device(&[0, 107, 4, 0, 106, 1], Some(6)), Some(6), &tree());
        assert_eq!(triggers(&h), [SpecTrigger::Level, SpecTrigger::Edge]);
        assert_eq!(h.irqs[1].cells, [0, 106, 1]);
        assert_eq!(h.irqs[1].parent.as_ref().map(|p| p.phandle), Some(6));
        assert!(!h.assumed_gic);
    }

    #[test]
    fn two_cell_parent() {
        // tegra234.dtsi rtc@c2a0000: interrupt-parent = <&pmc>; <73 IRQ_TYPE_LEVEL_HIGH>;
        // an IRQ_TYPE_EDGE_FALLING line as a 2-cell GPIO controller gives it.
        let h = host_irqs(&device(&[73, 4, 12, 2], Some(3)), Some(3), &tree());
        assert_eq!(triggers(&h), [SpecTrigger::Level, SpecTrigger::Edge]);
        assert_eq!(h.irqs[0].parent, parent(3, "/bus@0/pmc@c360000"));
    }

    #[test]
    fn one_cell_irqsteer_has_no_trigger() {
        // imx8mp.dtsi display-bridge@32fc4000: interrupt-parent = <&irqsteer_hdmi>; <12>.
        let h = host_irqs(&device(&[12], Some(4)), Some(4), &tree());
        assert_eq!(h.irqs.len(), 1);
        assert_eq!(h.irqs[0].cells, [12]);
        assert_eq!(h.irqs[0].trigger, SpecTrigger::Unknown);
        assert_eq!(
            h.note(),
            None,
            "nothing wrong: the layout just does not say"
        );
    }

    #[test]
    fn interrupts_extended_mixes_parents_and_wins() {
        // Tegra: <&gic GIC_SPI 78 IRQ_TYPE_LEVEL_HIGH>, <&pmc 36 IRQ_TYPE_LEVEL_HIGH>; the
        // `interrupts` next to it is ignored, as Linux ignores it.
        let mut n = device(&[0, 1, 1], Some(1));
        n.props.push((
            "interrupts-extended".into(),
            cells_prop(&[1, 0, 78, 4, 3, 36, 4]),
        ));
        let h = host_irqs(&n, Some(1), &tree());
        assert_eq!(h.prop, Some(IrqProp::InterruptsExtended));
        assert_eq!(h.irqs.len(), 2);
        assert_eq!(h.irqs[0].cells, [0, 78, 4]);
        assert_eq!(h.irqs[1].cells, [36, 4]);
        assert_eq!(h.irqs[1].parent, parent(3, "/bus@0/pmc@c360000"));
        assert_eq!(triggers(&h), [SpecTrigger::Level, SpecTrigger::Level]);
        // mt8186-corsola.dtsi: <&gic GIC_SPI 101 IRQ_TYPE_LEVEL_HIGH 0>, <&pio 87
        // IRQ_TYPE_LEVEL_LOW>, here with an edge third entry on the 4-cell GIC.
        let n = node(
            "dev@0",
            vec![(
                "interrupts-extended",
                cells_prop(&[2, 0, 101, 4, 0, 7, 87, 8, 2, 0, 102, 1, 0]),
            )],
        );
        let h = host_irqs(&n, None, &tree());
        assert_eq!(
            triggers(&h),
            [SpecTrigger::Level, SpecTrigger::Level, SpecTrigger::Edge]
        );
        assert_eq!(h.problem, None);
    }

    #[test]
    fn one_line_listed_twice() {
        // zynqmp.dtsi GEM: both queues on SPI 57.
        let h = host_irqs(&device(&[0, 57, 4, 0, 57, 4], None), Some(1), &tree());
        assert!(h.irqs[0].same_line(&h.irqs[1]));
        let other = host_irqs(&device(&[57, 4], None), Some(3), &tree());
        assert!(!h.irqs[0].same_line(&other.irqs[0]));
    }

    #[test]
    fn truncated_and_garbage_specifiers() {
        // Seven cells and two stray bytes on a 3-cell GIC: two whole specifiers.
        let mut v = cells_prop(&[0, 1, 4, 0, 2, 1, 0]);
        v.extend([0xff, 0xff]);
        let n = node("dev@0", vec![("interrupts", v)]);
        let h = host_irqs(&n, Some(1), &tree());
        assert_eq!(triggers(&h), [SpecTrigger::Level, SpecTrigger::Edge]);
        assert_eq!(h.problem, Some(IrqSpecError::Trailing { bytes: 6 }));
        assert!(!h.assumed_gic);
        // interrupts-extended: a whole entry, one whose phandle names nothing, then more.
        let n = node(
            "dev@0",
            vec![("interrupts-extended", cells_prop(&[3, 36, 4, 99, 1, 2, 3]))],
        );
        let h = host_irqs(&n, None, &tree());
        assert_eq!(h.irqs.len(), 1);
        assert_eq!(
            h.problem,
            Some(IrqSpecError::UnknownPhandle { phandle: 99 })
        );
        // ... and one cut short.
        let n = node(
            "dev@0",
            vec![("interrupts-extended", cells_prop(&[1, 0, 78, 4, 2, 0, 79]))],
        );
        let h = host_irqs(&n, None, &tree());
        assert_eq!(h.irqs.len(), 1);
        assert_eq!(h.problem, Some(IrqSpecError::Trailing { bytes: 12 }));
        // A parent with #interrupt-cells = <0> or a huge one: read as the GIC's.
        for cells in [0, 0xffff_ffff] {
            let t = Tree(vec![(9, "/bad", controller(&["vendor,intc"], cells))]);
            let h = host_irqs(&device(&[0, 5, 4], Some(9)), Some(9), &t);
            assert_eq!(h.irqs.len(), 1);
            assert!(h.assumed_gic);
            assert!(
                h.note().unwrap().contains("#interrupt-cells = <"),
                "{:?}",
                h.note()
            );
        }
        // Nothing at all, and a lone interrupts-extended without a tree.
        assert_eq!(
            host_irqs(&node("x", vec![]), None, &tree()),
            HostIrqs::default()
        );
        let n = node(
            "dev@0",
            vec![("interrupts-extended", cells_prop(&[1, 0, 5, 4]))],
        );
        assert!(alone(&n).irqs.is_empty());
    }

    #[test]
    fn cyclic_or_absent_parents() {
        // A and B have no #interrupt-cells and name each other; C names itself.
        let link = |to: u32| node("nexus", vec![("interrupt-parent", cells_prop(&[to]))]);
        let t = Tree(vec![
            (10, "/a", link(11)),
            (11, "/b", link(10)),
            (12, "/c", link(12)),
        ]);
        for ph in [10, 12] {
            let h = host_irqs(&device(&[0, 5, 4, 0, 6, 1], Some(ph)), Some(ph), &t);
            assert_eq!(h.problem, Some(IrqSpecError::ParentLoop { phandle: ph }));
            assert_eq!(
                triggers(&h),
                [SpecTrigger::Level, SpecTrigger::Edge],
                "read as the GIC's"
            );
            assert_eq!(h.irqs[0].parent, None);
        }
        // A chain that ends at a controller is followed.
        let t = Tree(vec![
            (10, "/a", link(11)),
            (11, "/gic", controller(&["arm,gic-v3"], 3)),
        ]);
        let h = host_irqs(&device(&[0, 5, 4], None), Some(10), &t);
        assert_eq!(h.irqs[0].parent, parent(11, "/gic"));
        // No interrupt-parent anywhere: the arm64 norm, said.
        let h = alone(&device(&[0, 5, 4], None));
        assert_eq!(h.irqs.len(), 1);
        assert_eq!(
            h.note().unwrap(),
            "interrupts: no interrupt-parent on the node or its ancestors; its cells were read as 3-cell GIC specifiers"
        );
        // An ancestor that is a controller without a phandle cannot be named.
        let intc = node("intc", vec![("#interrupt-cells", cells_prop(&[1]))]);
        let root = node("", vec![("interrupt-parent", cells_prop(&[1]))]);
        assert_eq!(effective_parent([&device(&[1], None), &intc, &root]), None);
        assert_eq!(effective_parent(std::iter::empty()), None);
    }

    #[test]
    fn trigger_flags() {
        assert_eq!(SpecTrigger::from_flags(4), SpecTrigger::Level);
        assert_eq!(SpecTrigger::from_flags(8), SpecTrigger::Level);
        for edge in [1, 2, 3] {
            assert_eq!(SpecTrigger::from_flags(edge), SpecTrigger::Edge);
        }
        assert_eq!(
            SpecTrigger::from_flags(0),
            SpecTrigger::Unknown,
            "IRQ_TYPE_NONE"
        );
        // r8a77990.dtsi: <GIC_PPI 13 (GIC_CPU_MASK_SIMPLE(2) | IRQ_TYPE_LEVEL_LOW)>.
        assert_eq!(SpecTrigger::from_flags(0x308), SpecTrigger::Level);
        // A 3-cell controller of unknown layout.
        let t = Tree(vec![(9, "/intc", controller(&["vendor,intc"], 3))]);
        let h = host_irqs(&device(&[0, 5, 4], None), Some(9), &t);
        assert_eq!(triggers(&h), [SpecTrigger::Unknown]);
        // A nexus (no interrupt-controller) with 2 cells: unknown too.
        let nexus = node("pcie", vec![("#interrupt-cells", cells_prop(&[2]))]);
        let t = Tree(vec![(9, "/pcie", nexus)]);
        assert_eq!(
            triggers(&host_irqs(&device(&[5, 4], None), Some(9), &t)),
            [SpecTrigger::Unknown]
        );
    }
}
