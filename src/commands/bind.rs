//! `platvmm bind PATH...` and `platvmm unbind PATH...`: hand a host device to its VFIO driver
//! and give it back, the unbind / driver_override / bind sequence done for the user.
//!
//! `bind` loads vfio-platform / vfio-amba if needed, refuses a device without an IOMMU unless
//! `--noiommu` asks for VFIO's no-IOMMU mode (and says loudly what that means), refuses a
//! device whose IOMMU group has members bound elsewhere unless `--group` moves them all, and
//! records the driver it took the device from under `/run/platvmm/bound/`, so that `unbind`
//! clears the override and binds that driver again. Both are idempotent.

use std::fs;
use std::path::{Path, PathBuf};

use devices::vfio::sysfs::{
    driver_of, group_members, group_of, resolve, GroupMember, HostBus, ResolvedPath, SysfsError,
};

/// Where `bind` records the drivers it took devices from.
pub const STATE_DIR: &str = "/run/platvmm/bound";

/// `bind`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct BindOptions {
    /// Allow VFIO's no-IOMMU mode for devices with no IOMMU.
    pub noiommu: bool,
    /// Move every member of the device's IOMMU group.
    pub group: bool,
}

/// Why a device could not be bound or given back.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{0}")]
    Path(#[from] SysfsError),
    /// The VFIO driver is not there even after modprobe.
    #[error("{driver} is not available ({detail}): build and load it (modprobe {driver}; vfio-platform needs CONFIG_VFIO_PLATFORM, vfio-amba CONFIG_VFIO_AMBA)")]
    NoVfioDriver {
        driver: &'static str,
        detail: String,
    },
    /// No IOMMU, and no-IOMMU mode was not asked for.
    #[error("{dev} is not behind an IOMMU: rerun with --noiommu to use VFIO's unsafe no-IOMMU mode (the device can then DMA to any host memory)")]
    NeedsNoIommu { dev: String },
    /// The group has members bound to other drivers.
    #[error(
        "IOMMU group {group} of {dev} also holds {others}: rerun with --group to bind them all"
    )]
    GroupShared {
        dev: String,
        group: u32,
        others: String,
    },
    /// A sysfs write failed.
    #[error("{dev}: cannot write {file}: {source}")]
    Write {
        dev: String,
        file: PathBuf,
        source: std::io::Error,
    },
    /// The kernel did not bind the device where asked.
    #[error("{dev}: after binding it to {want} it is bound to {got} (see dmesg)")]
    NotBound {
        dev: String,
        want: String,
        got: String,
    },
    /// The record of the original driver could not be kept.
    #[error("cannot record the original driver in {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds and unbinds devices under a sysfs root, recording in a state directory.
pub struct Binder {
    pub sysfs: PathBuf,
    pub state: PathBuf,
}

impl Default for Binder {
    fn default() -> Self {
        Self {
            sysfs: PathBuf::from("/sys"),
            state: PathBuf::from(STATE_DIR),
        }
    }
}

fn write(dev: &str, file: PathBuf, value: &str) -> Result<(), BindError> {
    fs::write(&file, value).map_err(|source| BindError::Write {
        dev: dev.to_string(),
        file,
        source,
    })
}

impl Binder {
    /// `paths`, each followed (with `children`) by its child platform devices: the platform
    /// devices whose DT node is a child of its own (a group's members).
    pub fn with_children(&self, paths: &[PathBuf], children: bool) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for p in paths {
            v.push(p.clone());
            if !children {
                continue;
            }
            let of_node = fs::canonicalize(p.join("of_node"));
            if let Ok(n) = of_node {
                v.extend(devices::vfio::sysfs::child_devices(&self.sysfs, &n));
            }
        }
        v
    }

    fn record(&self, d: &ResolvedPath) -> PathBuf {
        self.state.join(format!("{}:{}", d.bus.name(), d.name))
    }

    fn drivers(&self, bus: HostBus) -> PathBuf {
        self.sysfs.join(format!("bus/{}/drivers", bus.name()))
    }

    /// Binds `path` to its VFIO driver; returns what was done, a line each.
    pub fn bind(&self, path: &Path, opts: BindOptions) -> Result<Vec<String>, BindError> {
        let d = resolve(path)?;
        let vfio = d.bus.vfio_driver();
        let current = driver_of(&d.dir);
        if current.as_deref() == Some(vfio) {
            return Ok(vec![format!("{}: already bound to {vfio}", d.name)]);
        }
        self.ensure_driver(d.bus)?;
        let mut out = Vec::new();
        let group = group_of(&d.dir);
        match group {
            None => out.push(self.allow_noiommu(&d.name, opts)?),
            Some(g) => {
                let others: Vec<GroupMember> = group_members(&self.sysfs, g, &d.name)
                    .into_iter()
                    .filter(GroupMember::busy)
                    .collect();
                if !others.is_empty() && !opts.group {
                    let others: Vec<String> = others.iter().map(ToString::to_string).collect();
                    return Err(BindError::GroupShared {
                        dev: d.name,
                        group: g,
                        others: others.join(", "),
                    });
                }
                for m in others {
                    out.push(self.bind_one(&resolve(&m.path)?)?);
                }
            }
        }
        out.push(self.bind_one(&d)?);
        if d.bus == HostBus::Amba {
            out.push(format!("note: {}", devices::vfio::sysfs::AMBA_REMOVAL_NOTE));
        }
        Ok(out)
    }

    /// Loads the VFIO driver of `bus` if its sysfs directory is missing.
    fn ensure_driver(&self, bus: HostBus) -> Result<(), BindError> {
        let vfio = bus.vfio_driver();
        if self.drivers(bus).join(vfio).is_dir() {
            return Ok(());
        }
        let detail = match std::process::Command::new("modprobe").arg(vfio).output() {
            Ok(o) if o.status.success() => "modprobe succeeded".to_string(),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run modprobe: {e}"),
        };
        if self.drivers(bus).join(vfio).is_dir() {
            return Ok(());
        }
        Err(BindError::NoVfioDriver {
            driver: vfio,
            detail: format!("no {}: {detail}", self.drivers(bus).join(vfio).display()),
        })
    }

    /// A device without a group needs no-IOMMU mode: only with `--noiommu`, said loudly.
    fn allow_noiommu(&self, dev: &str, opts: BindOptions) -> Result<String, BindError> {
        if !opts.noiommu {
            return Err(BindError::NeedsNoIommu { dev: dev.into() });
        }
        let param = self
            .sysfs
            .join("module/vfio/parameters/enable_unsafe_noiommu_mode");
        if fs::read_to_string(&param)
            .map(|v| v.trim() != "Y")
            .unwrap_or(true)
        {
            write(dev, param, "Y")?;
        }
        Ok(format!("WARNING: {dev} is bound in VFIO's no-IOMMU mode: it can DMA to any host memory, and the kernel is tainted; pass it only to guests you trust as much as the host"))
    }

    /// unbind → driver_override → bind for one device, its original driver recorded first.
    fn bind_one(&self, d: &ResolvedPath) -> Result<String, BindError> {
        let vfio = d.bus.vfio_driver();
        let current = driver_of(&d.dir);
        let record = self.record(d);
        if !record.exists() {
            let state_err = |source| BindError::State {
                path: record.clone(),
                source,
            };
            fs::create_dir_all(&self.state).map_err(state_err)?;
            fs::write(&record, current.clone().unwrap_or_default()).map_err(state_err)?;
        }
        if current.is_some() {
            write(&d.name, d.dir.join("driver/unbind"), &d.name)?;
        }
        write(&d.name, d.dir.join("driver_override"), vfio)?;
        write(
            &d.name,
            self.drivers(d.bus).join(vfio).join("bind"),
            &d.name,
        )?;
        check_bound(d, Some(vfio))?;
        Ok(match current {
            Some(c) => format!(
                "{}: bound to {vfio} (was {c}; `platvmm unbind` gives it back)",
                d.name
            ),
            None => format!("{}: bound to {vfio} (was unbound)", d.name),
        })
    }

    /// Gives `path` back to the driver recorded by `bind` (or lets the kernel pick one).
    pub fn unbind(&self, path: &Path) -> Result<String, BindError> {
        let d = resolve(path)?;
        let vfio = d.bus.vfio_driver();
        let current = driver_of(&d.dir);
        let record = self.record(&d);
        let original = fs::read_to_string(&record)
            .ok()
            .map(|s| s.trim().to_string());
        if current.is_some() && current.as_deref() != Some(vfio) {
            let _ = fs::remove_file(&record);
            return Ok(format!(
                "{}: not bound to {vfio} (bound to {}): nothing to do",
                d.name,
                current.unwrap_or_default()
            ));
        }
        if current.is_some() {
            write(&d.name, d.dir.join("driver/unbind"), &d.name)?;
        }
        write(&d.name, d.dir.join("driver_override"), "\n")?;
        let msg = match original.as_deref().filter(|o| !o.is_empty()) {
            Some(orig) => {
                write(
                    &d.name,
                    self.drivers(d.bus).join(orig).join("bind"),
                    &d.name,
                )?;
                check_bound(&d, Some(orig))?;
                format!("{}: given back to {orig}", d.name)
            }
            None => {
                let probe = self
                    .sysfs
                    .join(format!("bus/{}/drivers_probe", d.bus.name()));
                write(&d.name, probe, &d.name)?;
                match driver_of(&d.dir) {
                    Some(drv) => format!("{}: unbound from {vfio}, the kernel bound {drv}", d.name),
                    None => format!("{}: unbound from {vfio} (no host driver claims it)", d.name),
                }
            }
        };
        let _ = fs::remove_file(&record);
        Ok(msg)
    }
}

fn check_bound(d: &ResolvedPath, want: Option<&str>) -> Result<(), BindError> {
    let got = driver_of(&d.dir);
    if got.as_deref() == want {
        return Ok(());
    }
    Err(BindError::NotBound {
        dev: d.name.clone(),
        want: want.unwrap_or("no driver").to_string(),
        got: got.unwrap_or_else(|| "no driver".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs where device NAME on BUS is bound to DRIVER, in GROUP; the driver directories
    /// exist (bind files are plain files: the kernel's side is not simulated).
    struct Fake {
        root: PathBuf,
    }

    impl Fake {
        fn new(tag: &str) -> Self {
            let root =
                std::env::temp_dir().join(format!("platvmm-bind-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            Self { root }
        }
        fn dev(&self, bus: &str, name: &str, drv: &str, group: Option<u32>) -> PathBuf {
            let r = &self.root;
            let d = r.join(format!("devices/{name}"));
            fs::create_dir_all(&d).unwrap();
            fs::create_dir_all(r.join(format!("bus/{bus}/devices"))).unwrap();
            for dd in [drv, "vfio-platform", "vfio-amba"] {
                fs::create_dir_all(r.join(format!("bus/{bus}/drivers/{dd}"))).unwrap();
            }
            symlink(r.join(format!("bus/{bus}")), d.join("subsystem")).unwrap();
            symlink(r.join(format!("bus/{bus}/drivers/{drv}")), d.join("driver")).unwrap();
            if let Some(g) = group {
                let gd = r.join(format!("kernel/iommu_groups/{g}"));
                fs::create_dir_all(gd.join("devices")).unwrap();
                symlink(&gd, d.join("iommu_group")).unwrap();
                symlink(&d, gd.join(format!("devices/{name}"))).unwrap();
            }
            let p = r.join(format!("bus/{bus}/devices/{name}"));
            symlink(&d, &p).unwrap();
            p
        }
        fn binder(&self) -> Binder {
            Binder {
                sysfs: self.root.clone(),
                state: self.root.join("run"),
            }
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn children_follow_their_parent() {
        let f = Fake::new("children");
        let wrapper = f.dev("platform", "ff9d0000.usb", "simple-pm-bus", Some(1));
        let core = f.dev("platform", "fe200000.dwc3", "xhci-hcd", Some(2));
        let other = f.dev("platform", "1000.rtc", "rtc", Some(3));
        let dt = f.root.join("firmware/usb@ff9d0000");
        fs::create_dir_all(dt.join("dwc3@fe200000")).unwrap();
        fs::create_dir_all(f.root.join("firmware/rtc@1000")).unwrap();
        let link = |dev: &Path, node: PathBuf| {
            symlink(node, fs::canonicalize(dev).unwrap().join("of_node")).unwrap()
        };
        link(&wrapper, dt.clone());
        link(&core, dt.join("dwc3@fe200000"));
        link(&other, f.root.join("firmware/rtc@1000"));
        let b = f.binder();
        let paths = [wrapper.clone(), other.clone()];
        assert_eq!(
            b.with_children(&paths, true),
            [
                wrapper.clone(),
                f.root.join("bus/platform/devices/fe200000.dwc3"),
                other.clone()
            ]
        );
        assert_eq!(b.with_children(&paths, false), paths);
    }

    #[test]
    fn no_iommu_needs_the_flag() {
        let f = Fake::new("noiommu");
        let p = f.dev("amba", "9010000.pl031", "rtc-pl031", None);
        let e = f.binder().bind(&p, BindOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("9010000.pl031 is not behind an IOMMU: rerun with --noiommu"),
            "{e}"
        );
        assert!(
            !f.root.join("run").exists(),
            "nothing recorded for a refused device"
        );
    }

    #[test]
    fn a_shared_group_needs_the_flag() {
        let f = Fake::new("group");
        let p = f.dev("platform", "a.dev", "drv-a", Some(7));
        f.dev("platform", "b.dev", "drv-b", Some(7));
        let e = f.binder().bind(&p, BindOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IOMMU group 7 of a.dev also holds b.dev (drv-b): rerun with --group to bind them all"
        );
    }

    /// With the flags, bind records the original driver and writes the sequence; the fake
    /// kernel does not rebind, so the final check reports it.
    #[test]
    fn bind_records_the_original_driver_and_writes_the_sequence() {
        let f = Fake::new("seq");
        let p = f.dev("amba", "9010000.pl031", "rtc-pl031", None);
        fs::create_dir_all(f.root.join("module/vfio/parameters")).unwrap();
        let opts = BindOptions {
            noiommu: true,
            group: false,
        };
        let e = f.binder().bind(&p, opts).unwrap_err().to_string();
        assert!(
            e.contains("after binding it to vfio-amba it is bound to rtc-pl031"),
            "{e}"
        );
        let rec = fs::read_to_string(f.root.join("run/amba:9010000.pl031")).unwrap();
        assert_eq!(rec, "rtc-pl031");
        let d = f.root.join("devices/9010000.pl031");
        assert_eq!(
            fs::read_to_string(d.join("driver_override")).unwrap(),
            "vfio-amba"
        );
        assert_eq!(
            fs::read_to_string(f.root.join("bus/amba/drivers/vfio-amba/bind")).unwrap(),
            "9010000.pl031"
        );
        let param = f
            .root
            .join("module/vfio/parameters/enable_unsafe_noiommu_mode");
        assert_eq!(fs::read_to_string(param).unwrap(), "Y");
    }

    #[test]
    fn both_are_idempotent() {
        let f = Fake::new("idem");
        let p = f.dev("amba", "9010000.pl031", "vfio-amba", None);
        let out = f.binder().bind(&p, BindOptions::default()).unwrap();
        assert_eq!(out, ["9010000.pl031: already bound to vfio-amba"]);
        let q = f.dev("platform", "9020000.fw-cfg", "fw_cfg", None);
        let msg = f.binder().unbind(&q).unwrap();
        assert_eq!(
            msg,
            "9020000.fw-cfg: not bound to vfio-platform (bound to fw_cfg): nothing to do"
        );
    }
}
