//! `platvmm list`: every platform and AMBA device of the host, what it has (regions, IRQs,
//! IOMMU group), the handler that would write its guest node, and whether it can be passed
//! through now. Reads sysfs and the host device tree only: no VFIO state is opened, so it is
//! fast on a host with hundreds of devices and safe while VMs run.

use std::fs;
use std::path::{Path, PathBuf};

use devices::guest_node::clocks::SysfsTree;
use devices::guest_node::hostdt::HostNode;
use devices::vfio::sysfs::{driver_of, group_members, group_of, GroupMember, HostBus};
use serde::Serialize;

use crate::passthrough::live_host_irqs;
use crate::passthrough::plan::DeviceDesc;

/// Whether a device can be passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Bound to its VFIO driver, in a viable group.
    Ready,
    /// `platvmm bind` (with the flags in `reason`) makes it ready.
    NeedsBind,
    /// It cannot be passed through (`reason` says why).
    Cannot,
}

/// One device as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedDevice {
    pub name: String,
    pub path: PathBuf,
    pub bus: &'static str,
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
    /// The other devices of its IOMMU group, as "NAME (DRIVER)" or "NAME (unbound)".
    pub group_members: Vec<String>,
    pub compatible: Vec<String>,
    pub regions_mapped: usize,
    pub regions_trapped: usize,
    pub irqs_level: usize,
    pub irqs_edge: usize,
    /// The guest-node handler `--vfio-platform` would use.
    pub handler: Option<&'static str>,
    pub verdict: Verdict,
    /// For `needs-bind`, the command; for `cannot`, why.
    pub reason: Option<String>,
    pub notes: Vec<String>,
}

/// The note every AMBA device gets.
pub use devices::vfio::sysfs::AMBA_REMOVAL_NOTE as AMBA_NOTE;

/// Whether the host has an IOMMU at all (else VFIO needs its no-IOMMU mode).
pub fn host_has_iommu(sysfs_root: &Path) -> bool {
    fs::read_dir(sysfs_root.join("class/iommu")).is_ok_and(|mut d| d.next().is_some())
}

/// Every platform and AMBA device under `sysfs_root`, by bus then name.
pub fn list(sysfs_root: &Path) -> Vec<ListedDevice> {
    let iommu = host_has_iommu(sysfs_root);
    // One phandle index of the live tree for every device's interrupt parents.
    let tree = SysfsTree::new(&dt_root(sysfs_root), &sysfs_root.join("kernel/debug/clk"));
    let mut out = Vec::new();
    for bus in [HostBus::Platform, HostBus::Amba] {
        let dir = sysfs_root.join(format!("bus/{}/devices", bus.name()));
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            out.push(describe(sysfs_root, &tree, bus, &name, iommu));
        }
    }
    out
}

/// The host device tree's root directory under `sysfs_root`.
fn dt_root(sysfs_root: &Path) -> PathBuf {
    sysfs_root.join("firmware/devicetree/base")
}

/// One device: its sysfs state, host DT node (interrupt parents looked up in `tree`) and
/// verdict.
pub fn describe(
    sysfs_root: &Path,
    tree: &SysfsTree,
    bus: HostBus,
    name: &str,
    iommu: bool,
) -> ListedDevice {
    let path = sysfs_root.join(format!("bus/{}/devices/{name}", bus.name()));
    let dev = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let driver = driver_of(&dev);
    let iommu_group = group_of(&dev);
    let members: Vec<GroupMember> = iommu_group
        .map(|g| group_members(sysfs_root, g, name))
        .unwrap_or_default();
    let group_busy = members.iter().any(GroupMember::busy);
    let of_node = fs::canonicalize(dev.join("of_node")).ok();
    let host = of_node
        .as_deref()
        .and_then(|d| HostNode::read_props(d).ok());
    let mut d = ListedDevice {
        name: name.to_string(),
        path,
        bus: bus.name(),
        driver,
        iommu_group,
        group_members: members.iter().map(ToString::to_string).collect(),
        compatible: host
            .as_ref()
            .and_then(|h| h.strings("compatible"))
            .unwrap_or_default(),
        regions_mapped: 0,
        regions_trapped: 0,
        irqs_level: 0,
        irqs_edge: 0,
        handler: None,
        verdict: Verdict::Cannot,
        reason: None,
        notes: Vec::new(),
    };
    if bus == HostBus::Amba {
        d.notes.push(AMBA_NOTE.into());
    }
    let (Some(host), Some(of_node)) = (host, of_node) else {
        d.reason = Some("no device-tree node: platvmm passes device-tree described devices".into());
        return d;
    };
    d.handler = Some(devices::guest_node::handlers::select(Some(&host)).0.name());
    let sizes = reg_sizes(&host, &of_node);
    let irqs = live_host_irqs(&host, &of_node, &dt_root(sysfs_root), tree);
    let desc = DeviceDesc::from_dt(name, host, irqs, &sizes, crate::resources::page_size());
    d.regions_mapped = desc.regions.iter().filter(|r| r.mappable).count();
    d.regions_trapped = desc.regions.len() - d.regions_mapped;
    d.irqs_level = desc.irqs.iter().filter(|i| i.level).count();
    d.irqs_edge = desc.irqs.len() - d.irqs_level;
    judge(&mut d, bus, iommu, group_busy);
    d
}

/// Sets the verdict and its reason; `group_busy`: another member of its group is bound to a
/// driver other than VFIO's.
fn judge(d: &mut ListedDevice, bus: HostBus, iommu: bool, group_busy: bool) {
    if d.regions_mapped + d.regions_trapped == 0 {
        d.verdict = Verdict::Cannot;
        d.reason = Some("no MMIO region (`reg`) to pass".into());
        return;
    }
    let bound = d.driver.as_deref() == Some(bus.vfio_driver());
    if bound && !group_busy && d.iommu_group.is_some() {
        d.verdict = Verdict::Ready;
        return;
    }
    let mut cmd = String::from("platvmm bind");
    if !iommu && d.iommu_group.is_none() {
        cmd += " --noiommu";
    }
    if group_busy {
        cmd += " --group";
    }
    d.verdict = Verdict::NeedsBind;
    d.reason = Some(format!("{cmd} {}", d.path.display()));
}

/// A big-endian cell count property of the node at `dir` (`#address-cells`...), or `default`.
fn cells(dir: &Path, name: &str, default: usize) -> usize {
    fs::read(dir.join(name))
        .ok()
        .and_then(|v| Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?) as usize))
        .unwrap_or(default)
}

/// The sizes of the node's `reg` entries, with the parent's cell counts.
fn reg_sizes(host: &HostNode, of_node: &Path) -> Vec<u64> {
    let parent = of_node.parent().unwrap_or(of_node);
    let ac = cells(parent, "#address-cells", 2);
    let sc = cells(parent, "#size-cells", 1);
    let Some(reg) = host.prop("reg") else {
        return Vec::new();
    };
    if sc == 0 || ac + sc > 4 {
        return Vec::new();
    }
    reg.chunks_exact((ac + sc) * 4)
        .map(|e| {
            e[ac * 4..].chunks_exact(4).fold(0u64, |s, c| {
                (s << 32) | u64::from(u32::from_be_bytes(c.try_into().expect("4 bytes")))
            })
        })
        .collect()
}

/// The text report: a line per device, then its reason and notes indented.
pub fn render_text(devices: &[ListedDevice]) -> Vec<String> {
    let mut v = Vec::new();
    for d in devices {
        let group = match d.iommu_group {
            Some(g) if d.group_members.is_empty() => g.to_string(),
            Some(g) => format!("{g} (with {})", d.group_members.join(", ")),
            None => "none".into(),
        };
        let verdict = match d.verdict {
            Verdict::Ready => "ready",
            Verdict::NeedsBind => "needs bind",
            Verdict::Cannot => "cannot be passed",
        };
        v.push(format!(
            "{} [{}] driver={} group={} compatible={} regions={} mapped/{} trapped irqs={} level/{} edge handler={}: {verdict}",
            d.name,
            d.bus,
            d.driver.as_deref().unwrap_or("none"),
            group,
            if d.compatible.is_empty() { "none".into() } else { d.compatible.join(";") },
            d.regions_mapped,
            d.regions_trapped,
            d.irqs_level,
            d.irqs_edge,
            d.handler.unwrap_or("none"),
        ));
        v.extend(d.reason.iter().map(|r| format!("    {r}")));
        v.extend(d.notes.iter().map(|n| format!("    note: {n}")));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs with a PL031 (AMBA, rtc-pl031, no group; two interrupts, level and edge, under
    /// the root's 4-cell GICv3), a fw-cfg bound to vfio-platform in group 3 alone, and a
    /// platform device without a DT node.
    fn fake_sysfs() -> PathBuf {
        let root = std::env::temp_dir().join(format!("platvmm-list-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dt = root.join("firmware/devicetree/base");
        let mk = |p: &Path| fs::create_dir_all(p).unwrap();
        mk(&dt.join("pl031@9010000"));
        fs::write(dt.join("#address-cells"), 2u32.to_be_bytes()).unwrap();
        fs::write(dt.join("#size-cells"), 2u32.to_be_bytes()).unwrap();
        fs::write(dt.join("interrupt-parent"), 1u32.to_be_bytes()).unwrap();
        let gic = dt.join("interrupt-controller@8000000");
        mk(&gic);
        fs::write(gic.join("compatible"), b"arm,gic-v3\0").unwrap();
        fs::write(gic.join("#interrupt-cells"), 4u32.to_be_bytes()).unwrap();
        fs::write(gic.join("interrupt-controller"), b"").unwrap();
        fs::write(gic.join("phandle"), 1u32.to_be_bytes()).unwrap();
        let pl = dt.join("pl031@9010000");
        fs::write(pl.join("compatible"), b"arm,pl031\0arm,primecell\0").unwrap();
        let reg: Vec<u8> = [0u32, 0x0901_0000, 0, 0x1000]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        fs::write(pl.join("reg"), reg).unwrap();
        let irq: Vec<u8> = [0u32, 2, 4, 0, 0, 9, 1, 0]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        fs::write(pl.join("interrupts"), irq).unwrap();
        let fw = dt.join("fw-cfg@9020000");
        mk(&fw);
        fs::write(fw.join("compatible"), b"qemu,fw-cfg-mmio\0").unwrap();
        let reg: Vec<u8> = [0u32, 0x0902_0000, 0, 0x18]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        fs::write(fw.join("reg"), reg).unwrap();
        let dev =
            |bus: &str, name: &str, drv: Option<&str>, node: Option<&Path>, group: Option<u32>| {
                let d = root.join(format!("devices/{name}"));
                mk(&d);
                mk(&root.join(format!("bus/{bus}/devices")));
                symlink(&d, root.join(format!("bus/{bus}/devices/{name}"))).unwrap();
                if let Some(drv) = drv {
                    let dd = root.join(format!("bus/{bus}/drivers/{drv}"));
                    mk(&dd);
                    symlink(&dd, d.join("driver")).unwrap();
                }
                if let Some(n) = node {
                    symlink(n, d.join("of_node")).unwrap();
                }
                if let Some(g) = group {
                    let gd = root.join(format!("kernel/iommu_groups/{g}/devices"));
                    mk(&gd);
                    symlink(&d, gd.join(name)).unwrap();
                    symlink(
                        root.join(format!("kernel/iommu_groups/{g}")),
                        d.join("iommu_group"),
                    )
                    .unwrap();
                }
            };
        dev("amba", "9010000.pl031", Some("rtc-pl031"), Some(&pl), None);
        dev(
            "platform",
            "9020000.fw-cfg",
            Some("vfio-platform"),
            Some(&fw),
            Some(3),
        );
        dev("platform", "serial8250", Some("serial8250"), None, None);
        root
    }

    #[test]
    fn verdicts_handlers_regions_and_irqs() {
        let root = fake_sysfs();
        let l = list(&root);
        let names: Vec<&str> = l.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["9020000.fw-cfg", "serial8250", "9010000.pl031"]);
        let fw = &l[0];
        assert_eq!(fw.verdict, Verdict::Ready, "{fw:?}");
        assert_eq!((fw.regions_mapped, fw.regions_trapped), (0, 1));
        assert_eq!(fw.iommu_group, Some(3));
        let s = &l[1];
        assert_eq!(s.verdict, Verdict::Cannot);
        assert!(s.reason.as_deref().unwrap().contains("no device-tree node"));
        let pl = &l[2];
        assert_eq!(pl.verdict, Verdict::NeedsBind);
        assert_eq!(pl.handler, Some("generic"));
        assert_eq!((pl.regions_mapped, pl.irqs_level, pl.irqs_edge), (1, 1, 1));
        let r = pl.reason.as_deref().unwrap();
        assert!(r.starts_with("platvmm bind --noiommu "), "{r}");
        assert!(pl.notes[0].contains("6.18"));
        let text = render_text(&l).join("\n");
        assert!(text.contains("9010000.pl031 [amba] driver=rtc-pl031 group=none compatible=arm,pl031;arm,primecell regions=1 mapped/0 trapped irqs=1 level/1 edge handler=generic: needs bind"), "{text}");
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains("\"verdict\":\"needs-bind\""), "{json}");
        fs::remove_dir_all(&root).unwrap();
    }
}
