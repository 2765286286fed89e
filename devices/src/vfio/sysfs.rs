//! What sysfs says about a host device: its bus, driver, IOMMU group and device-tree node,
//! and whether its group is ready for VFIO. Every refusal names the command that fixes it.

use std::fs;
use std::path::{Path, PathBuf};

/// The bus a device sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBus {
    Platform,
    Amba,
}

impl HostBus {
    /// The sysfs bus name.
    pub fn name(self) -> &'static str {
        match self {
            HostBus::Platform => "platform",
            HostBus::Amba => "amba",
        }
    }

    /// The VFIO driver that binds devices of this bus.
    pub fn vfio_driver(self) -> &'static str {
        match self {
            HostBus::Platform => "vfio-platform",
            HostBus::Amba => "vfio-amba",
        }
    }
}

/// What `platvmm list` and `bind` say of every AMBA device.
pub const AMBA_REMOVAL_NOTE: &str = "vfio-amba is marked for removal in Linux 6.18 (vfio-platform stays): on kernels without it, describe the device without \"arm,primecell\" in the host tree so it is a platform device (docs/devices.md)";

/// Problems with the device path or its binding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysfsError {
    /// The path does not exist.
    #[error("{0}: no such device (give a path like /sys/bus/platform/devices/<dev> or /sys/bus/amba/devices/<dev>)")]
    NoDevice(PathBuf),
    /// A PCI device.
    #[error("{0} is a PCI device: platvmm passes platform and AMBA devices; use a PCI VFIO VMM (vfio-pci) for it")]
    Pci(PathBuf),
    /// Some other bus.
    #[error("{path} is on the '{bus}' bus: platvmm passes only platform and AMBA devices")]
    OtherBus { path: PathBuf, bus: String },
    /// Not bound to the VFIO driver.
    #[error("{dev} is {bound}, not to {vfio}: bind it with `{fix}`")]
    NotVfio {
        dev: String,
        bound: String,
        vfio: &'static str,
        fix: String,
    },
    /// No IOMMU group (vfio not loaded, or no-IOMMU mode not enabled).
    #[error("{0} has no IOMMU group: bind it to vfio-platform/vfio-amba, and on a host without an IOMMU load vfio with enable_unsafe_noiommu_mode=1")]
    NoGroup(String),
    /// Other devices of the group are bound to non-VFIO drivers.
    #[error(
        "IOMMU group {group} is not viable: {others} must be bound to vfio or unbound too: {fix}"
    )]
    GroupNotViable {
        group: u32,
        others: String,
        fix: String,
    },
    /// A sysfs read failed.
    #[error("cannot read {path}: {msg}")]
    Read { path: PathBuf, msg: String },
}

/// A host device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Canonical sysfs directory.
    pub path: PathBuf,
    /// Device name (`9010000.pl031`), the name VFIO_GROUP_GET_DEVICE_FD wants.
    pub name: String,
    pub bus: HostBus,
    /// IOMMU group number.
    pub group: u32,
    /// The host device-tree node (`of_node`), if any.
    pub of_node: Option<PathBuf>,
}

fn link_name(p: &Path) -> Option<String> {
    fs::read_link(p)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Sysfs name of the driver `dev_dir` is bound to, if any.
pub fn driver_of(dev_dir: &Path) -> Option<String> {
    link_name(&dev_dir.join("driver"))
}

/// The IOMMU group of the device at `dev_dir`, if it has one.
pub fn group_of(dev_dir: &Path) -> Option<u32> {
    link_name(&dev_dir.join("iommu_group")).and_then(|g| g.parse().ok())
}

/// A device of an IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its entry under /sys/kernel/iommu_groups/N/devices.
    pub path: PathBuf,
    pub name: String,
    pub driver: Option<String>,
}

impl GroupMember {
    /// Bound to a driver that is not VFIO's (it keeps the group from being viable).
    pub fn busy(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| !d.starts_with("vfio"))
    }
}

impl std::fmt::Display for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.driver {
            Some(d) => write!(f, "{} ({d})", self.name),
            None => write!(f, "{} (unbound)", self.name),
        }
    }
}

/// The devices of IOMMU group `group` other than `except`, by name.
pub fn group_members(sysfs_root: &Path, group: u32, except: &str) -> Vec<GroupMember> {
    let dir = sysfs_root.join(format!("kernel/iommu_groups/{group}/devices"));
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<GroupMember> = entries
        .flatten()
        .filter(|e| e.file_name() != except)
        .map(|e| GroupMember {
            name: e.file_name().to_string_lossy().into_owned(),
            driver: driver_of(&e.path()),
            path: e.path(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The commands that bind `name` on `bus` to its VFIO driver (unbinding it first if needed).
pub fn bind_command(sysfs_root: &Path, bus: HostBus, name: &str, bound: bool) -> String {
    let root = sysfs_root.display();
    let dev = format!("{root}/bus/{}/devices/{name}", bus.name());
    let mut cmd = String::new();
    if bound {
        cmd += &format!("echo {name} > {dev}/driver/unbind; ");
    }
    cmd += &format!(
        "echo {drv} > {dev}/driver_override; echo {name} > {root}/bus/{bus}/drivers/{drv}/bind",
        drv = bus.vfio_driver(),
        bus = bus.name()
    );
    cmd
}

/// A device path resolved: its canonical sysfs directory, name and bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    pub dir: PathBuf,
    pub name: String,
    pub bus: HostBus,
}

/// Resolves a device path; refuses what is not a platform or AMBA device.
pub fn resolve(path: &Path) -> Result<ResolvedPath, SysfsError> {
    let dir = fs::canonicalize(path).map_err(|_| SysfsError::NoDevice(path.to_path_buf()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SysfsError::NoDevice(path.to_path_buf()))?;
    let bus = match link_name(&dir.join("subsystem")).as_deref() {
        Some("platform") => HostBus::Platform,
        Some("amba") => HostBus::Amba,
        Some("pci") => return Err(SysfsError::Pci(path.to_path_buf())),
        Some(other) => {
            return Err(SysfsError::OtherBus {
                path: path.to_path_buf(),
                bus: other.to_string(),
            })
        }
        None => return Err(SysfsError::NoDevice(path.to_path_buf())),
    };
    Ok(ResolvedPath { dir, name, bus })
}

impl HostDevice {
    /// Resolves `path` (under `sysfs_root`, normally `/sys`) and checks the device is bound
    /// to VFIO.
    pub fn probe(sysfs_root: &Path, path: &Path) -> Result<Self, SysfsError> {
        let ResolvedPath { dir, name, bus } = resolve(path)?;
        let driver = driver_of(&dir);
        if driver.as_deref() != Some(bus.vfio_driver()) {
            let bound = match &driver {
                Some(d) => format!("bound to {d}"),
                None => "not bound to any driver".to_string(),
            };
            return Err(SysfsError::NotVfio {
                fix: bind_command(sysfs_root, bus, &name, driver.is_some()),
                dev: name,
                bound,
                vfio: bus.vfio_driver(),
            });
        }
        let group = group_of(&dir).ok_or_else(|| SysfsError::NoGroup(name.clone()))?;
        let of_node = fs::canonicalize(dir.join("of_node")).ok();
        Ok(Self {
            path: dir,
            name,
            bus,
            group,
            of_node,
        })
    }

    /// Checks every device of this device's IOMMU group is bound to VFIO (or unbound), the
    /// kernel's viability rule. Used to explain a non-viable group.
    pub fn check_group(&self, sysfs_root: &Path) -> Result<(), SysfsError> {
        let gdir = sysfs_root.join(format!("kernel/iommu_groups/{}/devices", self.group));
        fs::read_dir(&gdir).map_err(|e| SysfsError::Read {
            path: gdir.clone(),
            msg: e.to_string(),
        })?;
        let mut others = Vec::new();
        let mut fixes = Vec::new();
        for m in group_members(sysfs_root, self.group, &self.name) {
            if !m.busy() {
                continue;
            }
            let dev_dir = fs::canonicalize(&m.path).unwrap_or(m.path.clone());
            let bus = match link_name(&dev_dir.join("subsystem")).as_deref() {
                Some("amba") => HostBus::Amba,
                _ => HostBus::Platform,
            };
            fixes.push(bind_command(sysfs_root, bus, &m.name, true));
            others.push(format!(
                "{} (bound to {})",
                m.name,
                m.driver.unwrap_or_default()
            ));
        }
        if others.is_empty() {
            return Ok(());
        }
        Err(SysfsError::GroupNotViable {
            group: self.group,
            others: others.join(", "),
            fix: fixes.join("; "),
        })
    }
}

#[cfg(test)]
pub(crate) mod testfs {
    //! A miniature sysfs in a temporary directory: real files and symlinks.
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    pub struct FakeSysfs {
        pub root: PathBuf,
    }

    impl FakeSysfs {
        pub fn new(tag: &str) -> Self {
            let root = std::env::temp_dir().join(format!(
                "platvmm-sysfs-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            Self { root }
        }

        /// Adds device `name` on `bus`, bound to `driver`, in IOMMU group `group`.
        pub fn device(
            &self,
            bus: &str,
            name: &str,
            driver: Option<&str>,
            group: Option<u32>,
        ) -> PathBuf {
            let r = &self.root;
            let dev = r.join(format!("devices/platform/{name}"));
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::create_dir_all(r.join(format!("bus/{bus}/devices"))).unwrap();
            symlink(r.join(format!("bus/{bus}")), dev.join("subsystem")).unwrap();
            symlink(&dev, r.join(format!("bus/{bus}/devices/{name}"))).unwrap();
            if let Some(d) = driver {
                let ddir = r.join(format!("bus/{bus}/drivers/{d}"));
                std::fs::create_dir_all(&ddir).unwrap();
                symlink(&ddir, dev.join("driver")).unwrap();
            }
            if let Some(g) = group {
                let gdir = r.join(format!("kernel/iommu_groups/{g}"));
                std::fs::create_dir_all(gdir.join("devices")).unwrap();
                symlink(&gdir, dev.join("iommu_group")).unwrap();
                symlink(&dev, gdir.join(format!("devices/{name}"))).unwrap();
            }
            r.join(format!("bus/{bus}/devices/{name}"))
        }

        pub fn path(&self, rel: &str) -> PathBuf {
            Path::new(&self.root).join(rel)
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The platform devices whose DT node is a child of `parent_of_node` (a group's members: the
/// host kernel made them platform devices of their own), as `bus/platform/devices/NAME`
/// paths under `sysfs_root`, sorted by name.
pub fn child_devices(sysfs_root: &Path, parent_of_node: &Path) -> Vec<PathBuf> {
    let dir = sysfs_root.join("bus/platform/devices");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let parent = fs::canonicalize(parent_of_node).unwrap_or(parent_of_node.to_path_buf());
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            fs::canonicalize(p.join("of_node"))
                .ok()
                .is_some_and(|n| n.parent() == Some(parent.as_path()))
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::testfs::FakeSysfs;
    use super::*;

    #[test]
    fn a_groups_members_are_the_devices_of_its_child_nodes() {
        let fs = FakeSysfs::new("group");
        let dt = fs.path("firmware/devicetree/base/usb@ff9d0000");
        std::fs::create_dir_all(dt.join("dwc3@fe200000")).unwrap();
        std::fs::create_dir_all(fs.path("firmware/devicetree/base/rtc@1000")).unwrap();
        let parent = fs.device("platform", "ff9d0000.usb", Some("vfio-platform"), Some(1));
        let child = fs.device("platform", "fe200000.dwc3", Some("vfio-platform"), Some(2));
        let other = fs.device("platform", "1000.rtc", None, Some(3));
        let link = |dev: &Path, node: &Path| {
            std::os::unix::fs::symlink(node, fs::canonicalize(dev).unwrap().join("of_node"))
                .unwrap()
        };
        link(&parent, &dt);
        link(&child, &dt.join("dwc3@fe200000"));
        link(&other, &fs.path("firmware/devicetree/base/rtc@1000"));
        assert_eq!(child_devices(&fs.root, &dt), [child]);
        assert!(child_devices(&fs.root, &dt.join("dwc3@fe200000")).is_empty());
        assert!(child_devices(&fs.path("nowhere"), &dt).is_empty());
    }

    #[test]
    fn probes_a_vfio_bound_amba_device() {
        let fs = FakeSysfs::new("amba");
        let p = fs.device("amba", "9010000.pl031", Some("vfio-amba"), Some(3));
        let d = HostDevice::probe(&fs.root, &p).unwrap();
        assert_eq!(d.name, "9010000.pl031");
        assert_eq!(d.bus, HostBus::Amba);
        assert_eq!(d.group, 3);
        assert!(d.check_group(&fs.root).is_ok());
    }

    #[test]
    fn unbound_and_wrongly_bound_devices_get_the_fix() {
        let fs = FakeSysfs::new("bind");
        let p = fs.device("amba", "9010000.pl031", Some("rtc-pl031"), None);
        let e = HostDevice::probe(&fs.root, &p).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("9010000.pl031 is bound to rtc-pl031, not to vfio-amba"),
            "{msg}"
        );
        assert!(msg.contains("/driver/unbind"), "{msg}");
        assert!(msg.contains("echo vfio-amba > "), "{msg}");
        assert!(msg.contains("/bus/amba/drivers/vfio-amba/bind"), "{msg}");

        let p = fs.device("platform", "9020000.fw-cfg", None, None);
        let msg = HostDevice::probe(&fs.root, &p).unwrap_err().to_string();
        assert!(msg.contains("not bound to any driver"), "{msg}");
        assert!(!msg.contains("unbind"), "{msg}");
    }

    #[test]
    fn refuses_pci_other_buses_and_missing_paths() {
        let fs = FakeSysfs::new("pci");
        let p = fs.device("pci", "0000:00:01.0", Some("vfio-pci"), Some(1));
        assert!(matches!(
            HostDevice::probe(&fs.root, &p),
            Err(SysfsError::Pci(_))
        ));
        let p = fs.device("usb", "1-1", Some("usb"), None);
        assert!(matches!(
            HostDevice::probe(&fs.root, &p),
            Err(SysfsError::OtherBus { .. })
        ));
        let missing = fs.path("bus/platform/devices/nope");
        assert_eq!(
            HostDevice::probe(&fs.root, &missing),
            Err(SysfsError::NoDevice(missing.clone()))
        );
    }

    #[test]
    fn vfio_device_without_group() {
        let fs = FakeSysfs::new("nogroup");
        let p = fs.device(
            "platform",
            "a003e00.virtio_mmio",
            Some("vfio-platform"),
            None,
        );
        assert!(matches!(
            HostDevice::probe(&fs.root, &p),
            Err(SysfsError::NoGroup(_))
        ));
    }

    #[test]
    fn non_viable_group_names_the_culprits() {
        let fs = FakeSysfs::new("group");
        let p = fs.device("platform", "a.sata", Some("vfio-platform"), Some(7));
        fs.device("platform", "b.phy", Some("phy-foo"), Some(7));
        fs.device("platform", "c.unbound", None, Some(7));
        let d = HostDevice::probe(&fs.root, &p).unwrap();
        let msg = d.check_group(&fs.root).unwrap_err().to_string();
        assert!(msg.contains("IOMMU group 7 is not viable"), "{msg}");
        assert!(msg.contains("b.phy (bound to phy-foo)"), "{msg}");
        assert!(
            !msg.contains("c.unbound"),
            "unbound devices do not block viability: {msg}"
        );
        assert!(msg.contains("echo b.phy > "), "{msg}");
    }
}
