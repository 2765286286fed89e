//! `platvmm preview-dt`: the guest device tree platvmm would build for host nodes taken from a
//! DTB (e.g. a board's upstream device tree compiled with dtc), without VFIO or KVM. Regions
//! come from the host `reg` (their sizes; placed in the passthrough window as platvmm would),
//! interrupts from the host `interrupts-extended`, else `interrupts` under the node's
//! interrupt parent (found by walking from the root to the node), one guest SPI per host
//! interrupt whatever its parent's `#interrupt-cells`: edge where the specifier says edge,
//! level otherwise (`devices::guest_node::irqspec`).
//! Used to check the type handlers against real board trees and to validate their output with
//! dt-schema (ci/dt-validate.sh), and by users before they bind anything to VFIO.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use devices::dt::GuestNode;
use devices::guest_node::hostdt::HostNode;
use devices::guest_node::irqspec;
use devices::guest_node::ranges::BusCells;

use crate::arch::aarch64::fdt::{self, FdtConfig};
use crate::arch::aarch64::layout::{self, MIB};
use crate::arch::aarch64::GicVersion;
use crate::config::{ScmiMode, VfioSpec};
use crate::passthrough::plan::{DeviceDesc, DeviceOptions, PlanError, Planner, VmPlan};
use crate::resources::{Exhausted, Resources};

/// Page size preview-dt places regions with (the common arm64 host page).
pub const PREVIEW_PAGE: u64 = 4096;

/// Errors of preview-dt.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot read {path}: {msg}")]
    Read { path: PathBuf, msg: String },
    #[error("{0}: no such node in the host device tree")]
    NoNode(String),
    #[error("{0}: the host node has no reg")]
    NoReg(String),
    /// `group=on` on a node whose children are not memory-mapped devices.
    #[error("{0},group=on: it has no child with compatible and reg reachable through its ranges (no ranges: its children are not memory-mapped devices); pass it without group=on")]
    EmptyGroup(String),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Overlay(#[from] crate::host::overlay::OverlayError),
    #[error("{0}")]
    Fdt(#[from] fdt::FdtError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn to_host(n: ::fdt::node::FdtNode) -> HostNode {
    HostNode {
        children: n.children().map(to_host).collect(),
        ..props_of(n)
    }
}

/// The node's properties, without its children.
fn props_of(n: ::fdt::node::FdtNode) -> HostNode {
    HostNode {
        name: n.name.to_string(),
        props: n
            .properties()
            .map(|p| (p.name.to_string(), p.value.to_vec()))
            .collect(),
        children: Vec::new(),
    }
}

/// Builds the guest DTB for `nodes` of `host_dtb` and writes it to `out`; returns the handler
/// chosen for each node, with the reason, and the warnings.
pub fn run(
    host_dtb: &Path,
    nodes: &[VfioSpec],
    compatible: Option<Vec<String>>,
    handler: Option<&str>,
    scmi: ScmiMode,
    out: &Path,
) -> Result<Vec<String>, PreviewError> {
    let read_err = |msg: String| PreviewError::Read {
        path: host_dtb.to_path_buf(),
        msg,
    };
    // The same checks as every input file (a FIFO or a character device would be read for
    // ever); FDT_NOPs, as a host's own /sys/firmware/fdt has them, are dropped first.
    let raw = crate::host::input::read_regular(host_dtb).map_err(|e| read_err(e.to_string()))?;
    let blob =
        crate::host::input::strip_nops(&raw).map_err(|e| read_err(format!("not a DTB: {e}")))?;
    let tree = host_tree(&blob).map_err(read_err)?;
    let mut overlays = Vec::new();
    for n in nodes {
        let ov = n
            .overlay
            .as_deref()
            .map(crate::host::overlay::read)
            .transpose()?;
        overlays.push(ov);
    }
    let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
    let mut planner = Planner::new(&mut res, PREVIEW_PAGE).map_err(plan_err("the guest"))?;
    let descs = nodes
        .iter()
        .map(|n| desc(&tree, &n.path.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?;
    let members = group_members(&tree, nodes, &descs)?;
    planner.peers(descs.iter().chain(&members));
    let all: Vec<DeviceDesc> = descs.iter().chain(&members).cloned().collect();
    let scmi_why = planner.scmi(scmi, &all)?;
    for ((n, ov), d) in nodes.iter().zip(&overlays).zip(&descs) {
        let mut opts = DeviceOptions::from_spec(n, ov.as_ref());
        opts.compatible = opts.compatible.or(compatible.as_deref());
        opts.handler = opts.handler.or(handler);
        planner.add(d, &opts)?;
    }
    for m in &members {
        // `clock-rates=NODE/NAME:HZ` on the parent name a member's clocks.
        let parent = nodes
            .iter()
            .zip(&descs)
            .find(|(_, d)| m.member_of == Some(d.name.clone()));
        let node = m.host_node.as_ref().map(|h| h.name.as_str()).unwrap_or("");
        let rates = parent
            .map(|(n, _)| devices::guest_node::clocks::scoped_rates(&n.clock_rates, node))
            .unwrap_or_default();
        let opts = DeviceOptions {
            clock_rates: &rates,
            ..DeviceOptions::default()
        };
        planner.add(m, &opts)?;
    }
    let plan = planner.finish(false)?;
    // Added at the root as a fragment's nodes are.
    let mut button = GuestNode::with_props("", &[]);
    button.children = power_button(&mut res).map_err(plan_err("the power button"))?;
    write_guest_dtb(&plan, &[button], out)?;
    let mut lines = Vec::new();
    if let (Some(why), Some(s)) = (scmi_why, &plan.scmi) {
        lines.push(format!(
            "SCMI system controller: on ({why}): {} clocks, {} reset domains, {} power domains",
            s.clocks.len(),
            s.resets.len(),
            s.power_domains.len()
        ));
    }
    lines.extend(report(&plan));
    Ok(lines)
}

fn plan_err(dev: &'static str) -> impl Fn(Exhausted) -> PreviewError {
    move |source| {
        PreviewError::Plan(PlanError::Exhausted {
            dev: dev.to_string(),
            source,
        })
    }
}

/// A host DTB held in memory (any bytes: a fuzz target), ready for [`desc`].
pub fn host_tree(blob: &[u8]) -> Result<::fdt::Fdt<'_>, String> {
    crate::host::input::check_dtb(blob).map_err(|e| format!("not a DTB: {e}"))?;
    ::fdt::Fdt::new(blob).map_err(|e| format!("not a DTB: {e:?}"))
}

/// The names of the host tree's `/aliases` entries that name `path`.
fn dtb_aliases(tree: &::fdt::Fdt, path: &str) -> Vec<String> {
    let Some(aliases) = tree.find_node("/aliases") else {
        return Vec::new();
    };
    let all: Vec<devices::guest_node::aliases::Alias> = aliases
        .properties()
        .filter_map(|p| {
            Some(devices::guest_node::aliases::Alias {
                name: p.name.to_string(),
                path: p.as_str()?.to_string(),
            })
        })
        .collect();
    devices::guest_node::aliases::naming(&all, path)
}

/// The planner's view of host node `path`: VFIO would give one region per `reg` entry and one
/// IRQ per host interrupt (`interrupts-extended` entry, else `interrupts` specifier).
pub fn desc(tree: &::fdt::Fdt, path: &str) -> Result<DeviceDesc, PreviewError> {
    let n = tree
        .find_node(path)
        .ok_or_else(|| PreviewError::NoNode(path.to_string()))?;
    let sizes: Vec<u64> = n
        .reg()
        .ok_or_else(|| PreviewError::NoReg(path.to_string()))?
        .map(|r| r.size.unwrap_or(0) as u64)
        .collect();
    let host = to_host(n);
    let lookup = DtbTree::new(tree);
    let clocks = devices::guest_node::clocks::resolve(&host, &lookup);
    let child_clocks = devices::guest_node::clocks::resolve_children(&host, &lookup);
    let supplies = devices::guest_node::supplies::resolve(&host, &lookup);
    let providers = devices::guest_node::providers::resolve_all(&host, &lookup);
    let ancestors = ancestors(tree, path);
    let parent = irqspec::effective_parent(std::iter::once(&host).chain(&ancestors));
    let irqs = irqspec::host_irqs(&host, parent, &lookup);
    let mut d = DeviceDesc::from_dt(path, host, irqs, &sizes, PREVIEW_PAGE);
    d.host_parent = path.rsplit_once('/').map(|(p, _)| p.to_string());
    d.clocks = clocks;
    d.child_clocks = child_clocks;
    d.supplies = supplies;
    d.providers = providers;
    d.aliases = dtb_aliases(tree, path);
    d.host_bus = d
        .host_parent
        .as_deref()
        .map(|p| if p.is_empty() { "/" } else { p })
        .and_then(|p| tree.find_node(p))
        .map(|p| {
            let c = p.cell_sizes();
            BusCells {
                address: c.address_cells as u32,
                size: c.size_cells as u32,
            }
        });
    Ok(d)
}

/// The ancestors of node `path` (an absolute path, or an alias of one), its parent first, up
/// to the root; their properties only. Bounded by the path's components.
fn ancestors(tree: &::fdt::Fdt, path: &str) -> Vec<HostNode> {
    let resolved = match path.starts_with('/') {
        true => None,
        false => tree.aliases().and_then(|a| a.resolve(path)),
    };
    let parts: Vec<&str> = resolved
        .unwrap_or(path)
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    (0..parts.len())
        .rev()
        .filter_map(|k| tree.find_node(&format!("/{}", parts[..k].join("/"))))
        .map(props_of)
        .collect()
}

/// The members of every `group=on` node: its enabled children with `compatible` and `reg`,
/// the node having `ranges` (what the host kernel makes platform devices of: memory-mapped
/// children), each described as VFIO would present it.
pub fn group_members(
    tree: &::fdt::Fdt,
    nodes: &[VfioSpec],
    descs: &[DeviceDesc],
) -> Result<Vec<DeviceDesc>, PreviewError> {
    let mut v = Vec::new();
    for (n, d) in nodes.iter().zip(descs).filter(|(n, _)| n.group) {
        let path = n.path.to_string_lossy();
        let node = tree
            .find_node(&path)
            .ok_or_else(|| PreviewError::NoNode(path.to_string()))?;
        if node.property("ranges").is_none() {
            return Err(PreviewError::EmptyGroup(path.to_string()));
        }
        let before = v.len();
        for c in node.children() {
            let enabled = !matches!(
                c.property("status").and_then(|s| s.as_str()),
                Some(s) if s != "okay" && s != "ok"
            );
            if c.property("compatible").is_none() || c.property("reg").is_none() || !enabled {
                continue;
            }
            let mut m = desc(tree, &format!("{}/{}", path.trim_end_matches('/'), c.name))?;
            m.member_of = Some(d.name.clone());
            v.push(m);
        }
        if v.len() == before {
            return Err(PreviewError::EmptyGroup(path.to_string()));
        }
    }
    Ok(v)
}

/// Phandle lookups in a host DTB, a node's path its key (found by one walk of the tree, on
/// the first lookup: the fdt crate gives no paths).
struct DtbTree<'a, 'b> {
    tree: &'a ::fdt::Fdt<'b>,
    paths: std::sync::OnceLock<HashMap<u32, String>>,
}

impl<'a, 'b> DtbTree<'a, 'b> {
    fn new(tree: &'a ::fdt::Fdt<'b>) -> Self {
        Self {
            tree,
            paths: std::sync::OnceLock::new(),
        }
    }

    fn index(n: ::fdt::node::FdtNode, path: &str, out: &mut HashMap<u32, String>) {
        if let Some(ph) = n.property("phandle").and_then(|p| p.as_usize()) {
            out.insert(ph as u32, path.to_string());
        }
        for c in n.children() {
            let p = format!("{}/{}", path.trim_end_matches('/'), c.name);
            Self::index(c, &p, out);
        }
    }
}

impl devices::guest_node::clocks::PhandleLookup for DtbTree<'_, '_> {
    fn node(&self, phandle: u32) -> Option<(String, HostNode)> {
        let n = self.tree.find_phandle(phandle)?;
        let paths = self.paths.get_or_init(|| {
            let mut m = HashMap::new();
            if let Some(root) = self.tree.find_node("/") {
                Self::index(root, "/", &mut m);
            }
            m
        });
        let key = paths
            .get(&phandle)
            .cloned()
            .unwrap_or_else(|| format!("/{}", n.name));
        Some((key, props_of(n)))
    }
}

/// One line per node (handler, why, where it went), then its notes.
fn report(plan: &VmPlan) -> Vec<String> {
    let mut v = Vec::new();
    for d in &plan.devices {
        v.push(format!(
            "{}: {} handler ({}) → {}",
            d.name,
            d.handler,
            d.why,
            plan.node_path(d)
        ));
        v.extend(d.synthesized.iter().map(|w| format!("  synthesized: {w}")));
        v.extend(d.warnings.iter().map(|w| format!("  note: {w}")));
    }
    v
}

/// The power button's nodes, placed after the devices as setup places them
/// (`vm::power_button::place`, less the virtio devices preview-dt has none of).
fn power_button(res: &mut Resources) -> Result<Vec<GuestNode>, Exhausted> {
    let size = PREVIEW_PAGE.max(devices::gpio::Pl061::SIZE);
    let base = res.emulated(size, size)?;
    let spi = res.emulated_spi()?;
    let (clock, gpio) = (res.phandle()?, res.phandle()?);
    Ok(devices::gpio::power_button_nodes(base, spi, clock, gpio))
}

fn write_guest_dtb(plan: &VmPlan, fragments: &[GuestNode], out: &Path) -> Result<(), PreviewError> {
    let dtb = guest_dtb(plan, fragments)?;
    std::fs::write(out, dtb).map_err(|source| PreviewError::Write {
        path: out.to_path_buf(),
        source,
    })
}

/// The guest DTB for `plan`'s devices and `dt_overlays`' nodes (one vCPU, 256 MiB, GICv3).
pub fn guest_dtb(plan: &VmPlan, dt_overlays: &[GuestNode]) -> Result<Vec<u8>, fdt::FdtError> {
    let g = plan.guest_nodes(dt_overlays);
    fdt::create_fdt(&FdtConfig {
        mpidrs: &[0],
        gic: GicVersion::V3,
        memory: &[(layout::RAM_BASE, 256 * MIB)],
        cmdline: "console=ttyS0",
        initrd: None,
        nodes: &g,
        aliases: &plan.aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host tree shaped like fsl-ls1046a.dtsi's soc with the SATA controller.
    fn host_dtb() -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let soc = w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let sata = w.begin_node("sata@3200000").unwrap();
        w.property_string("compatible", "fsl,ls1046a-ahci").unwrap();
        w.property_array_u64("reg", &[0x320_0000, 0x1_0000, 0x2014_0520, 4])
            .unwrap();
        w.property_string_list("reg-names", vec!["ahci".into(), "sata-ecc".into()])
            .unwrap();
        w.property_array_u32("interrupts", &[0, 69, 4]).unwrap();
        w.property_null("dma-coherent").unwrap();
        w.end_node(sata).unwrap();
        w.end_node(soc).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// A controller node: `compatible`, `#interrupt-cells`, `interrupt-controller`, `phandle`.
    fn controller(w: &mut vm_fdt::FdtWriter, name: &str, compatible: &str, cells: u32, ph: u32) {
        let n = w.begin_node(name).unwrap();
        w.property_string("compatible", compatible).unwrap();
        w.property_u32("#interrupt-cells", cells).unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_phandle(ph).unwrap();
        w.end_node(n).unwrap();
    }

    /// RK3399's 4-cell GICv3 as the root's interrupt parent, a Tegra-style 2-cell PMC and an
    /// i.MX8MP irqsteer (1 cell); under a bus: rk3399-base.dtsi's pcie@f8000000 (three
    /// `<GIC_SPI n IRQ_TYPE_LEVEL_HIGH 0>`, 48 bytes: four 12-byte chunks), an RTC with
    /// `interrupts-extended` on the GIC and the PMC (one level, one falling edge), a display
    /// bridge behind the irqsteer (`interrupt-parent` on the node).
    fn irq_parents_dtb() -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", 1).unwrap();
        controller(&mut w, "interrupt-controller@fee00000", "arm,gic-v3", 4, 1);
        controller(&mut w, "pmc@c360000", "nvidia,tegra234-pmc", 2, 2);
        controller(
            &mut w,
            "interrupt-controller@32fc2000",
            "fsl,imx-irqsteer",
            1,
            3,
        );
        let bus = w.begin_node("bus@0").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let n = w.begin_node("pcie@f8000000").unwrap();
        w.property_string("compatible", "rockchip,rk3399-pcie")
            .unwrap();
        w.property_array_u64("reg", &[0xf800_0000, 0x200_0000])
            .unwrap();
        w.property_array_u32("interrupts", &[0, 49, 4, 0, 0, 50, 4, 0, 0, 51, 4, 0])
            .unwrap();
        w.property_u32("#interrupt-cells", 1).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("rtc@c2a0000").unwrap();
        w.property_string("compatible", "nvidia,tegra234-rtc")
            .unwrap();
        w.property_array_u64("reg", &[0xc2a_0000, 0x1_0000])
            .unwrap();
        w.property_array_u32("interrupts-extended", &[1, 0, 78, 4, 0, 2, 36, 2])
            .unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("display-bridge@32fc4000").unwrap();
        w.property_string("compatible", "fsl,imx8mp-hdmi-pvi")
            .unwrap();
        w.property_array_u64("reg", &[0x32fc_4000, 0x1000]).unwrap();
        w.property_u32("interrupt-parent", 3).unwrap();
        w.property_array_u32("interrupts", &[12]).unwrap();
        w.end_node(n).unwrap();
        w.end_node(bus).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// Each host interrupt, whatever its parent's cells, is one guest SPI with its trigger;
    /// the guest node has neither the host's `interrupt-parent` nor `interrupts-extended`.
    #[test]
    fn interrupts_of_any_parent_become_guest_spis() {
        let blob = irq_parents_dtb();
        let tree = host_tree(&blob).unwrap();
        let bridge = desc(&tree, "/bus@0/display-bridge@32fc4000").unwrap();
        assert_eq!(bridge.irqs.len(), 1);
        assert!(
            bridge.irqs[0].level && bridge.irqs[0].assumed_level,
            "1 cell: level assumed"
        );
        let dir = std::env::temp_dir().join(format!("platvmm-preview-irq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (host, out) = (dir.join("host.dtb"), dir.join("guest.dtb"));
        std::fs::write(&host, &blob).unwrap();
        let nodes = [
            VfioSpec::new("/bus@0/pcie@f8000000".into()),
            VfioSpec::new("/bus@0/rtc@c2a0000".into()),
            VfioSpec::new("/bus@0/display-bridge@32fc4000".into()),
        ];
        let report = run(&host, &nodes, None, None, ScmiMode::Auto, &out).unwrap();
        assert!(
            report.iter().any(|l| l.contains("host specifier <12> of /interrupt-controller@32fc2000 does not tell the trigger: level assumed")),
            "{report:?}"
        );
        assert!(
            !report.iter().any(|l| l.contains("note: interrupts")),
            "{report:?}"
        );
        let blob = std::fs::read(&out).unwrap();
        let g = ::fdt::Fdt::new(&blob).unwrap();
        let node = |prefix: &str| g.all_nodes().find(|n| n.name.starts_with(prefix)).unwrap();
        let cells = |n: ::fdt::node::FdtNode| -> Vec<u32> {
            let v = n.property("interrupts").unwrap().value;
            v.chunks(4)
                .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
                .collect()
        };
        let spi = layout::PASSTHROUGH_SPI_BASE;
        let pcie = node("pcie@");
        assert_eq!(
            cells(pcie),
            [0, spi, 4, 0, spi + 1, 4, 0, spi + 2, 4],
            "three, not four"
        );
        let rtc = node("rtc@");
        assert_eq!(
            cells(rtc),
            [0, spi + 3, 4, 0, spi + 4, 1],
            "level, then edge"
        );
        for n in [pcie, rtc, node("display-bridge@")] {
            assert!(n.property("interrupt-parent").is_none(), "{}", n.name);
            assert!(n.property("interrupts-extended").is_none(), "{}", n.name);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// LS1046A's crypto block: two job rings under crypto@1700000 (1 address cell).
    #[test]
    fn job_rings_go_under_the_synthesized_controller() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let c = w.begin_node("crypto@1700000").unwrap();
        w.property_string_list(
            "compatible",
            vec!["fsl,sec-v5.4".into(), "fsl,sec-v4.0".into()],
        )
        .unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_array_u32("ranges", &[0, 0, 0x170_0000, 0x10_0000])
            .unwrap();
        for (name, off, irq) in [("jr@10000", 0x10000u32, 71u32), ("jr@20000", 0x20000, 72)] {
            let j = w.begin_node(name).unwrap();
            w.property_string_list(
                "compatible",
                vec![
                    "fsl,sec-v5.4-job-ring".into(),
                    "fsl,sec-v4.0-job-ring".into(),
                ],
            )
            .unwrap();
            w.property_array_u32("reg", &[off, 0x10000]).unwrap();
            w.property_array_u32("interrupts", &[0, irq, 4]).unwrap();
            w.end_node(j).unwrap();
        }
        w.end_node(c).unwrap();
        w.end_node(root).unwrap();
        let dir = std::env::temp_dir().join(format!("platvmm-preview-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (host, out) = (dir.join("host.dtb"), dir.join("guest.dtb"));
        std::fs::write(&host, w.finish().unwrap()).unwrap();
        let nodes = [
            VfioSpec::new("/crypto@1700000/jr@10000".into()),
            VfioSpec::new("/crypto@1700000/jr@20000".into()),
        ];
        let report = run(&host, &nodes, None, None, ScmiMode::Auto, &out).unwrap();
        assert!(report[0].contains("sec handler"), "{report:?}");
        assert!(
            report[0].ends_with("/crypto@9100000/jr@10000"),
            "{report:?}"
        );
        let blob = std::fs::read(&out).unwrap();
        let g = ::fdt::Fdt::new(&blob).unwrap();
        let ctrl = g.find_node("/crypto@9100000").unwrap();
        assert_eq!(ctrl.children().count(), 2);
        let jr2 = g.find_node("/crypto@9100000/jr@20000").unwrap();
        assert_eq!(jr2.property("reg").unwrap().value, [0, 2, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            jr2.property("interrupts").unwrap().value,
            [0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 4]
        );
        assert!(
            g.find_node("/jr@40010000").is_none(),
            "rings are not root nodes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A UART whose `dmas` point at a DMA controller: passed together, the reference is kept
    /// and renumbered and the controller gets that phandle; passed alone, it is dropped, said.
    #[test]
    fn references_between_devices_of_one_vm_are_kept() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        let dma = w.begin_node("dma-controller@1000").unwrap();
        w.property_string("compatible", "arm,pl330").unwrap();
        w.property_array_u32("reg", &[0x1000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 10, 4]).unwrap();
        w.property_u32("#dma-cells", 1).unwrap();
        w.property_u32("phandle", 0x42).unwrap();
        w.end_node(dma).unwrap();
        let uart = w.begin_node("serial@2000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.property_array_u32("reg", &[0x2000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 11, 4]).unwrap();
        w.property_array_u32("dmas", &[0x42, 3, 0x42, 4]).unwrap();
        w.property_string_list("dma-names", vec!["rx".into(), "tx".into()])
            .unwrap();
        w.end_node(uart).unwrap();
        w.end_node(root).unwrap();
        let dir = std::env::temp_dir().join(format!("platvmm-preview-dma-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (host, out) = (dir.join("host.dtb"), dir.join("guest.dtb"));
        std::fs::write(&host, w.finish().unwrap()).unwrap();
        let both = [
            VfioSpec::new("/serial@2000".into()),
            VfioSpec::new("/dma-controller@1000".into()),
        ];
        let report = run(&host, &both, None, None, ScmiMode::Auto, &out).unwrap();
        assert!(
            report.iter().any(|l| l.contains("passed to the same VM")),
            "{report:?}"
        );
        let blob = std::fs::read(&out).unwrap();
        let g = ::fdt::Fdt::new(&blob).unwrap();
        let dma = g.find_node("/dma-controller@40001000").unwrap();
        let ph = dma.property("phandle").unwrap().as_usize().unwrap() as u32;
        assert_ne!(ph, 0x42, "a guest phandle");
        let uart = g.find_node("/serial@40000000").unwrap();
        let want: Vec<u8> = [ph, 3, ph, 4]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        assert_eq!(uart.property("dmas").unwrap().value, want);
        assert_eq!(uart.property("dma-names").unwrap().value, b"rx\0tx\0");

        let alone = [VfioSpec::new("/serial@2000".into())];
        let report = run(&host, &alone, None, None, ScmiMode::Auto, &out).unwrap();
        assert!(
            report
                .iter()
                .any(|l| l.contains("dropped 'dmas' and 'dma-names'")),
            "{report:?}"
        );
        let blob = std::fs::read(&out).unwrap();
        let g = ::fdt::Fdt::new(&blob).unwrap();
        let uart = g.find_node("/serial@40000000").unwrap();
        assert!(uart.property("dmas").is_none() && uart.property("dma-names").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The emulated Versal's USB wrapper (a simple-bus in L1) with its xHCI child, as
    /// `group=on` passes them: `reg` 2/2 cells, identity `ranges`.
    fn versal_usb(parent: [u64; 2]) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let bus = w.begin_node("usb@ff9d0000").unwrap();
        w.property_string("compatible", "simple-bus").unwrap();
        w.property_array_u64("reg", &parent).unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_null("ranges").unwrap();
        let x = w.begin_node("dwc3@fe200000").unwrap();
        w.property_string("compatible", "generic-xhci").unwrap();
        w.property_array_u64("reg", &[0xfe20_0000, 0x1_0000])
            .unwrap();
        w.property_array_u32("interrupts", &[0, 22, 4]).unwrap();
        w.end_node(x).unwrap();
        let off = w.begin_node("phy@0").unwrap();
        w.property_string("compatible", "vendor,phy").unwrap();
        w.property_array_u64("reg", &[0xfe30_0000, 0x1000]).unwrap();
        w.property_string("status", "disabled").unwrap();
        w.end_node(off).unwrap();
        w.end_node(bus).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn a_group_nests_its_members_behind_translated_ranges() {
        let dir = std::env::temp_dir().join(format!("platvmm-preview-grp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (host, out) = (dir.join("host.dtb"), dir.join("guest.dtb"));
        std::fs::write(&host, versal_usb([0xff9d_0000, 0x1_0000])).unwrap();
        let spec = crate::config::parse_vfio("/usb@ff9d0000,group=on").unwrap();
        let report = run(
            &host,
            std::slice::from_ref(&spec),
            None,
            None,
            ScmiMode::Auto,
            &out,
        )
        .unwrap();
        assert!(
            report.iter().any(
                |l| l.starts_with("/usb@ff9d0000/dwc3@fe200000: usb handler")
                    && l.ends_with("→ /usb@40000000/usb@fe200000")
            ),
            "{report:?}"
        );
        assert!(
            !report.iter().any(|l| l.contains("phy@0")),
            "disabled: no member"
        );
        let blob = std::fs::read(&out).unwrap();
        let g = ::fdt::Fdt::new(&blob).unwrap();
        let bus = g.find_node("/usb@40000000").unwrap();
        let cells = |v: &[u8]| -> Vec<u64> {
            v.chunks(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
                .collect()
        };
        assert_eq!(
            cells(bus.property("ranges").unwrap().value),
            [
                0xff9d_0000,
                0x4000_0000,
                0x1_0000,
                0xfe20_0000,
                0x4001_0000,
                0x1_0000
            ]
        );
        let xhci = g.find_node("/usb@40000000/usb@fe200000").unwrap();
        assert_eq!(
            cells(xhci.property("reg").unwrap().value),
            [0xfe20_0000, 0x1_0000],
            "the host's child address, reached through ranges"
        );
        assert_eq!(
            xhci.property("interrupts").unwrap().value,
            [0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 4]
        );
        assert!(g.find_node("/usb@40010000").is_none(), "not a root node");
        // A parent whose own region covers the child's cannot nest it.
        std::fs::write(&host, versal_usb([0xfe00_0000, 0x200_0000])).unwrap();
        let wide = run(&host, &[spec], None, None, ScmiMode::Auto, &out)
            .unwrap_err()
            .to_string();
        assert!(wide.contains("without group=on"), "{wide}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn previews_a_layerscape_sata_node() {
        let dir = std::env::temp_dir().join(format!("platvmm-preview-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (host, out) = (dir.join("host.dtb"), dir.join("guest.dtb"));
        std::fs::write(&host, host_dtb()).unwrap();
        let report = run(
            &host,
            &[VfioSpec::new("/soc/sata@3200000".into())],
            None,
            None,
            ScmiMode::Auto,
            &out,
        )
        .unwrap();
        assert!(report[0].contains("sata handler"), "{report:?}");
        let blob = std::fs::read(&out).unwrap();
        let g = ::fdt::Fdt::new(&blob).unwrap();
        let n = g.find_node("/sata@40000000").unwrap();
        let reg: Vec<u64> = n
            .property("reg")
            .unwrap()
            .value
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            reg,
            [0x4000_0000, 0x1_0000, 0x4001_0000, 4],
            "ECC register keeps its 4 bytes"
        );
        assert!(run(
            &host,
            &[VfioSpec::new("/soc/nope".into())],
            None,
            None,
            ScmiMode::Auto,
            &out
        )
        .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
