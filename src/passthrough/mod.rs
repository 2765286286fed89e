//! Host devices in the guest: from `--vfio-platform` specs to memslots, trapped MMIO ranges,
//! irqfds and guest DT nodes.
//!
//! Order per VM:
//! 1. [`probe`] (in `vmm::prepare`, before KVM): every device's sysfs state, duplicates, its
//!    `overlay=` file and its host DT node — a bad path fails before any VFIO state changes;
//! 2. [`open`]: groups opened and checked viable → one container, its IOMMU type set once →
//!    (TYPE1v2) guest RAM DMA-mapped IOVA = guest-physical → device fds and their infos;
//! 3. [`Vfio::attach_kvm`]: the KVM-VFIO pseudo-device gets every group;
//! 4. [`plan`]: placements, IRQ routes and guest nodes (pure; shared with inspect/preview-dt);
//! 5. [`wire`]: regions mapped (memslots) or trapped (bus), IRQs wired (after the vGIC init).
//!
//! [`Passthrough::release`] undoes 5 and 2 in reverse: VFIO IRQs disabled, DMA unmapped.

pub mod attach;
pub mod plan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use devices::dt::GuestNode;
use devices::guest_node::clocks::{self, HostClock, SysfsTree};
use devices::guest_node::hostdt::HostNode;
use devices::vfio::container::{Container, ContainerError, Group, IommuMode};
use devices::vfio::device::{DeviceError, VfioPlatformDevice};
use devices::vfio::region::Counters;
use devices::vfio::sysfs::{HostDevice, SysfsError};
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_GROUP,
    KVM_DEV_VFIO_GROUP_ADD,
};
use kvm_ioctls::{DeviceFd, VmFd};
use log::{info, warn};

use crate::config::VfioSpec;
use plan::{DeviceDesc, DeviceOptions, DevicePlan};

/// Errors passing a device through. Each names the device.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    #[error("--vfio-platform: {0}")]
    Sysfs(#[from] SysfsError),
    #[error("--vfio-platform: {0}")]
    Container(#[from] ContainerError),
    #[error("--vfio-platform: {0}")]
    Device(#[from] DeviceError),
    #[error("--vfio-platform: {0}")]
    Plan(#[from] plan::PlanError),
    /// The same device twice.
    #[error("--vfio-platform: {0} is given twice")]
    Duplicate(String),
    /// The `overlay=` file is unusable.
    #[error("--vfio-platform {dev},overlay={source}")]
    Overlay {
        dev: String,
        source: crate::host::overlay::OverlayError,
    },
    /// mmap of a region failed.
    #[error("--vfio-platform: {dev}: cannot mmap region {index}: {source}")]
    Mmap {
        dev: String,
        index: u32,
        source: std::io::Error,
    },
    /// A KVM call failed.
    #[error("--vfio-platform: {dev}: {what}: {source}")]
    Kvm {
        dev: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// A device whose sysfs state, options and host node were checked (before KVM).
#[derive(Debug, Clone)]
pub struct ProbedDevice {
    pub spec: VfioSpec,
    pub host: HostDevice,
    pub host_node: Option<HostNode>,
    pub overlay: Option<GuestNode>,
    /// The host clocks its node references, resolved in the host's live tree.
    pub clocks: Vec<HostClock>,
}

impl ProbedDevice {
    /// The user's options for the planner.
    pub fn options(&self) -> DeviceOptions<'_> {
        DeviceOptions {
            compatible: self.spec.compatible.as_deref(),
            handler: self.spec.handler.as_deref(),
            overlay: self.overlay.as_ref(),
            clock_rates: &self.spec.clock_rates,
            mac: self.spec.mac,
            fixed_link: self.spec.fixed_link,
        }
    }

    /// The host node's parent directory, which SEC job rings of one guest share.
    fn host_parent(&self) -> Option<String> {
        let p = self.host.of_node.as_deref()?.parent()?;
        Some(p.display().to_string())
    }
}

/// Checks every spec: sysfs state, no device twice, its overlay, its host DT node.
pub fn probe(sysfs: &Path, specs: &[VfioSpec]) -> Result<Vec<ProbedDevice>, PassthroughError> {
    let mut v: Vec<ProbedDevice> = Vec::new();
    // One phandle index of the live tree for every device's clocks.
    let tree = SysfsTree::new(
        &sysfs.join("firmware/devicetree/base"),
        &sysfs.join("kernel/debug/clk"),
    );
    for spec in specs {
        let host = HostDevice::probe(sysfs, &spec.path)?;
        if v.iter().any(|d| d.host.path == host.path) {
            return Err(PassthroughError::Duplicate(host.name));
        }
        let overlay = spec
            .overlay
            .as_deref()
            .map(crate::host::overlay::read)
            .transpose()
            .map_err(|source| PassthroughError::Overlay {
                dev: spec.path.display().to_string(),
                source,
            })?;
        let host_node = read_host_node(&host);
        let clocks = host_node
            .as_ref()
            .map(|h| clocks::resolve(h, &tree))
            .unwrap_or_default();
        v.push(ProbedDevice {
            spec: spec.clone(),
            host,
            host_node,
            overlay,
            clocks,
        });
    }
    Ok(v)
}

fn read_host_node(host: &HostDevice) -> Option<HostNode> {
    let p = host.of_node.as_deref()?;
    HostNode::read(p)
        .map_err(|e| warn!("{}: cannot read its host DT node: {e}", host.name))
        .ok()
}

/// Open VFIO devices, in the container that holds their groups.
pub struct Vfio {
    pub container: Container,
    pub devices: Vec<(ProbedDevice, VfioPlatformDevice)>,
    kvm_device: Option<DeviceFd>,
}

/// Opens groups, the container and the devices. `ram` (host address, guest address, size)
/// is DMA-mapped before any device fd exists (TYPE1v2; nothing in no-IOMMU mode).
pub fn open(
    sysfs: &Path,
    probed: Vec<ProbedDevice>,
    ram: &[RamMapping],
) -> Result<Option<Vfio>, PassthroughError> {
    let mut container: Option<Container> = None;
    let mut devices = Vec::new();
    for p in probed {
        let group = Group::open(&p.host, sysfs)?;
        let c = match &mut container {
            Some(c) => c,
            None => container.insert(open_container(group.mode, ram)?),
        };
        let gi = c.add_group(group, &p.host.name)?;
        let dev = VfioPlatformDevice::open(p.host.clone(), &c.groups()[gi])?;
        devices.push((p, dev));
    }
    Ok(container.map(|container| Vfio {
        container,
        devices,
        kvm_device: None,
    }))
}

/// A guest RAM region as VFIO maps it for DMA.
#[derive(Debug, Clone, Copy)]
pub struct RamMapping {
    pub host: u64,
    pub gpa: u64,
    pub size: u64,
}

fn open_container(mode: IommuMode, ram: &[RamMapping]) -> Result<Container, PassthroughError> {
    let mut c = Container::open(mode)?;
    info!("VFIO container: {:?}", c.mode);
    // Guest RAM must be reachable by DMA before any device can run.
    for r in ram {
        c.map_dma(r.host, r.gpa, r.size)?;
    }
    Ok(c)
}

impl Vfio {
    /// Adds every group to the KVM-VFIO pseudo-device.
    pub fn attach_kvm(&mut self, vm: &VmFd) -> Result<(), PassthroughError> {
        let first = self.devices.first().map_or("", |d| d.1.host.name.as_str());
        let kerr = |what| {
            let dev = first.to_string();
            move |e: kvm_ioctls::Error| PassthroughError::Kvm {
                dev: dev.clone(),
                what,
                source: std::io::Error::from_raw_os_error(e.errno()),
            }
        };
        let mut cd = kvm_create_device {
            type_: kvm_device_type_KVM_DEV_TYPE_VFIO,
            fd: 0,
            flags: 0,
        };
        let kv = vm
            .create_device(&mut cd)
            .map_err(kerr("cannot create the KVM-VFIO device"))?;
        for g in self.container.groups() {
            let gfd: i32 = std::os::fd::AsRawFd::as_raw_fd(&g.file);
            let attr = kvm_device_attr {
                group: KVM_DEV_VFIO_GROUP,
                attr: KVM_DEV_VFIO_GROUP_ADD.into(),
                addr: &gfd as *const i32 as u64,
                flags: 0,
            };
            kv.set_device_attr(&attr)
                .map_err(kerr("cannot add the VFIO group to KVM"))?;
        }
        self.kvm_device = Some(kv);
        Ok(())
    }

    /// Planner inputs, in device order.
    pub fn descs(&self, page: u64) -> Vec<DeviceDesc> {
        self.devices.iter().map(|(p, d)| desc(p, d, page)).collect()
    }
}

/// The planner's view of an open device.
pub fn desc(p: &ProbedDevice, d: &VfioPlatformDevice, page: u64) -> DeviceDesc {
    let mut desc = DeviceDesc::from_vfio(&d.host.name, d.kind, &d.regions, &d.irqs, page);
    desc.host_node = p.host_node.clone();
    desc.host_parent = p.host_parent();
    desc.clocks = p.clocks.clone();
    desc
}

/// One passed-through device and what keeps it wired.
pub struct PassDevice {
    pub dev: VfioPlatformDevice,
    pub counters: Arc<Counters>,
    pub plan: DevicePlan,
    pub wired: attach::Wired,
}

/// Every passed-through device of a VM.
#[derive(Default)]
pub struct Passthrough {
    pub devices: Vec<PassDevice>,
    container: Option<Container>,
    _kvm_device: Option<DeviceFd>,
}

impl Passthrough {
    /// Takes over the container and KVM-VFIO device of `vfio`, whose devices are `devices`.
    pub fn new(container: Container, kvm: Option<DeviceFd>, devices: Vec<PassDevice>) -> Self {
        Self {
            devices,
            container: Some(container),
            _kvm_device: kvm,
        }
    }

    /// Stops every device interrupt, then undoes DMA mappings. Call it once no vCPU runs;
    /// dropping `self` afterwards unmaps the regions and closes the fds, leaving the devices
    /// free to rebind to their host drivers.
    pub fn release(&mut self) {
        for d in &self.devices {
            for irq in d.plan.irqs.iter().filter(|i| i.shares.is_none()) {
                if let Err(e) = d.dev.irq_disable(irq.index) {
                    warn!("{e}");
                }
            }
        }
        if let Some(c) = self.container.as_mut() {
            c.unmap_all();
        }
    }
}

impl Vfio {
    /// Splits into the container, the KVM-VFIO device and the devices.
    pub fn into_parts(
        self,
    ) -> (
        Container,
        Option<DeviceFd>,
        Vec<(ProbedDevice, VfioPlatformDevice)>,
    ) {
        (self.container, self.kvm_device, self.devices)
    }
}

/// The sysfs root platvmm reads.
pub fn sysfs_root() -> PathBuf {
    PathBuf::from("/sys")
}
