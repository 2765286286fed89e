//! Host devices in the guest: from `--vfio-platform` specs to memslots, trapped MMIO ranges,
//! irqfds and guest DT nodes. A device goes `VfioSpec` → [`ProbedDevice`] → [`PassDevice`]
//! (its VFIO device open) → `plan::DeviceDesc` → `plan::DevicePlan`, all held by the VM's
//! [`Passthrough`].
//!
//! Order per VM:
//! 1. [`probe`] (in `vm::prepare`, before KVM): every device's sysfs state, duplicates, its
//!    `overlay=` file and its host DT node — a bad path fails before any VFIO state changes;
//! 2. [`attach::attach`], reading top-down: groups, container, devices opened ([`open`]) →
//!    the KVM-VFIO device → the plan ([`plan`]: pure, shared with inspect/preview-dt) →
//!    each device's regions mapped (memslots) or trapped (bus) and IRQs wired (after the vGIC
//!    init) → the emulated SEC controller page if the plan has one.
//!
//! [`Passthrough::release`] undoes them in reverse: VFIO IRQs disabled, DMA unmapped; dropping
//! it unmaps the regions and closes the fds.

pub mod attach;
pub mod open;
pub mod plan;
pub mod quiesce;
pub mod scmi;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use devices::dt::GuestNode;
use devices::guest_node::clocks::{self, HostClock, SysfsTree};
use devices::guest_node::hostdt::{self, HostNode};
use devices::guest_node::irqspec::{self, HostIrqs};
use devices::guest_node::ranges::BusCells;
use devices::vfio::container::{Container, ContainerError};
use devices::vfio::device::{DeviceError, VfioDevice};
use devices::vfio::region::{Counters, MappedRegion};
use devices::vfio::sysfs::{HostDevice, SysfsError};
use log::warn;
use vmm_sys_util::eventfd::EventFd;

use crate::config::VfioSpec;
use crate::hypervisor::KvmVfioDevice;
use plan::{DeviceDesc, DeviceOptions, VmPlan};

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
    /// An allocator ran out while planning (phandles, the SEC controller page).
    #[error("{0}")]
    Allocator(#[from] crate::resources::Exhausted),
    /// An allocator ran out while wiring (memslots).
    #[error("--vfio-platform: {dev}: {source}")]
    Resources {
        dev: String,
        source: crate::resources::Exhausted,
    },
    /// The same device twice.
    #[error("--vfio-platform: {0} is given twice")]
    Duplicate(String),
    /// `group=on` on a device without child platform devices.
    #[error("--vfio-platform {0},group=on: it has no child device-tree node the host made a platform device of; pass it without group=on")]
    EmptyGroup(String),
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
    #[error("--vfio-platform: {dev}: {source}")]
    Kvm {
        dev: String,
        source: crate::hypervisor::KvmError,
    },
    /// A trapped region overlaps another device on the bus.
    #[error("--vfio-platform: {dev}: cannot trap a device region: {source}")]
    Bus {
        dev: String,
        source: devices::BusError,
    },
    /// A host resource (an eventfd) could not be made.
    #[error("--vfio-platform: {dev}: {what}: {source}")]
    Host {
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
    /// Its host node's interrupts, decoded in the host's live tree.
    pub host_irqs: Option<HostIrqs>,
    pub overlay: Option<GuestNode>,
    /// The host clocks its node references, resolved in the host's live tree.
    pub clocks: Vec<HostClock>,
    /// The host clocks its node's descendants reference.
    pub child_clocks: Vec<devices::guest_node::clocks::ChildClocks>,
    /// The host regulators its node and descendants take power from.
    pub supplies: Vec<devices::guest_node::supplies::HostSupply>,
    /// The reset lines and power domains its node and descendants reference.
    pub providers: Vec<devices::guest_node::providers::NodeEntries>,
    /// The group parent (device name) it is passed with, for a member of a `group=on` device.
    pub member_of: Option<String>,
    /// The host's `/aliases` names for its node.
    pub aliases: Vec<String>,
}

impl ProbedDevice {
    /// The user's options for the planner.
    pub fn options(&self) -> DeviceOptions<'_> {
        DeviceOptions::from_spec(&self.spec, self.overlay.as_ref())
    }

    /// The host node's parent directory, which SEC job rings of one guest share.
    fn host_parent(&self) -> Option<String> {
        let p = self.host.of_node.as_deref()?.parent()?;
        Some(p.display().to_string())
    }

    /// The host parent bus's cells, read from the parent node's directory.
    fn host_bus(&self) -> Option<BusCells> {
        let p = self.host.of_node.as_deref()?.parent()?;
        let node = HostNode::read_props(p).ok()?;
        Some(devices::guest_node::ranges::own_cells(&node))
    }
}

/// Every spec, then after a `group=on` one its members (the platform devices of its child
/// nodes), each with the device name of the parent it goes with.
fn expand_groups(
    sysfs: &Path,
    specs: &[VfioSpec],
) -> Result<Vec<(VfioSpec, Option<String>)>, PassthroughError> {
    let mut v = Vec::new();
    for spec in specs {
        v.push((spec.clone(), None));
        if !spec.group {
            continue;
        }
        let parent = HostDevice::probe(sysfs, &spec.path)?;
        let members = parent
            .of_node
            .as_deref()
            .map(|n| devices::vfio::sysfs::child_devices(sysfs, n))
            .unwrap_or_default();
        if members.is_empty() {
            return Err(PassthroughError::EmptyGroup(
                spec.path.display().to_string(),
            ));
        }
        for m in members {
            let mut member = VfioSpec::new(m);
            // `clock-rates=NODE/NAME:HZ` on the parent name a member's clocks.
            let node = HostDevice::probe(sysfs, &member.path)?.of_node;
            if let Some(name) = node.as_deref().and_then(Path::file_name) {
                member.clock_rates =
                    clocks::scoped_rates(&spec.clock_rates, &name.to_string_lossy());
            }
            v.push((member, Some(parent.name.clone())));
        }
    }
    Ok(v)
}

/// Checks every spec (and the members of `group=on` ones): sysfs state, no device twice, its
/// overlay, its host DT node.
pub fn probe(sysfs: &Path, specs: &[VfioSpec]) -> Result<Vec<ProbedDevice>, PassthroughError> {
    let mut v: Vec<ProbedDevice> = Vec::new();
    // One phandle index of the live tree for every device's clocks and interrupt parents.
    let base = sysfs.join("firmware/devicetree/base");
    let tree = SysfsTree::new(&base, &sysfs.join("kernel/debug/clk"));
    let host_aliases = devices::guest_node::aliases::read_sysfs(&base);
    // Node paths are of_node links resolved against the canonical tree root, read once.
    let canonical_base = std::fs::canonicalize(&base).ok();
    for (spec, member_of) in expand_groups(sysfs, specs)? {
        let spec = &spec;
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
        let child_clocks = host_node
            .as_ref()
            .map(|h| clocks::resolve_children(h, &tree))
            .unwrap_or_default();
        let supplies = host_node
            .as_ref()
            .map(|h| devices::guest_node::supplies::resolve(h, &tree))
            .unwrap_or_default();
        let providers = host_node
            .as_ref()
            .map(|h| devices::guest_node::providers::resolve_all(h, &tree))
            .unwrap_or_default();
        let host_irqs = host_node
            .as_ref()
            .zip(host.of_node.as_deref())
            .map(|(h, of_node)| live_host_irqs(h, of_node, &base, &tree));
        let aliases = canonical_base
            .as_deref()
            .and_then(|b| node_path(&host, b))
            .map(|p| devices::guest_node::aliases::naming(&host_aliases, &p))
            .unwrap_or_default();
        v.push(ProbedDevice {
            spec: spec.clone(),
            host,
            host_node,
            host_irqs,
            overlay,
            clocks,
            child_clocks,
            supplies,
            providers,
            member_of,
            aliases,
        });
    }
    Ok(v)
}

/// The interrupts of host node `h`, read at `of_node` in the live tree at `base`: its interrupt
/// parent found by walking up the directories from `of_node`, parents by phandle in `tree`.
pub fn live_host_irqs(h: &HostNode, of_node: &Path, base: &Path, tree: &SysfsTree) -> HostIrqs {
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let ancestry = hostdt::interrupt_ancestry(of_node, &base);
    // The node's own properties first (its directory's entry holds the same three).
    let parent = irqspec::effective_parent(std::iter::once(h).chain(ancestry.iter().skip(1)));
    irqspec::host_irqs(h, parent, tree)
}

/// The path of `host`'s node in the live tree at `base`, canonical (`/soc@0/serial@30860000`).
fn node_path(host: &HostDevice, base: &Path) -> Option<String> {
    let rel = host.of_node.as_deref()?.strip_prefix(base).ok()?;
    Some(format!("/{}", rel.display()))
}

fn read_host_node(host: &HostDevice) -> Option<HostNode> {
    let p = host.of_node.as_deref()?;
    HostNode::read(p)
        .map_err(|e| warn!("{}: cannot read its host DT node: {e}", host.name))
        .ok()
}

/// One passed-through device: what was probed, its open VFIO device, and what keeps it
/// wired (mappings, interrupt eventfds) once attached.
pub struct PassDevice {
    pub probed: ProbedDevice,
    pub dev: Box<dyn VfioDevice>,
    /// Trapped-access counters, for `--stats`.
    pub counters: Arc<Counters>,
    maps: Vec<MappedRegion>,
    irq_fds: Vec<IrqFds>,
}

/// The eventfds of one wired interrupt.
struct IrqFds {
    _trigger: EventFd,
    /// Level interrupts: KVM's resamplefd, which VFIO unmasks the host line on.
    _resample: Option<EventFd>,
}

impl PassDevice {
    /// A device just opened, not wired yet.
    pub fn new(probed: ProbedDevice, dev: Box<dyn VfioDevice>) -> Self {
        Self {
            probed,
            dev,
            counters: Arc::new(Counters::default()),
            maps: Vec::new(),
            irq_fds: Vec::new(),
        }
    }

    /// The planner's view of the device: VFIO's regions and IRQs, the probed host node,
    /// its parent and its clocks.
    pub fn desc(&self, page: u64) -> DeviceDesc {
        let d = &self.dev;
        let mut desc = DeviceDesc::from_vfio(d.name(), d.kind(), d.regions(), d.irqs(), page);
        desc.host_node = self.probed.host_node.clone();
        desc.host_irqs = self.probed.host_irqs.clone();
        desc.host_parent = self.probed.host_parent();
        desc.clocks = self.probed.clocks.clone();
        desc.host_bus = self.probed.host_bus();
        desc.member_of = self.probed.member_of.clone();
        desc.child_clocks = self.probed.child_clocks.clone();
        desc.supplies = self.probed.supplies.clone();
        desc.providers = self.probed.providers.clone();
        desc.aliases = self.probed.aliases.clone();
        desc
    }
}

/// Every passed-through device of a VM, their container and plan. Dropping it releases
/// them ([`Passthrough::release`]) before their mappings and fds go.
#[derive(Default)]
pub struct Passthrough {
    /// The devices, in `--vfio-platform` order (the plan's order too).
    pub devices: Vec<PassDevice>,
    pub plan: VmPlan,
    pub container: Option<Container>,
    /// The SCMI system controller's counters, when the guest has one.
    pub scmi: Option<crate::stats::ScmiStat>,
    kvm_vfio: Option<KvmVfioDevice>,
    released: bool,
}

impl Drop for Passthrough {
    fn drop(&mut self) {
        self.release();
    }
}

impl Passthrough {
    /// Stops every device ([`quiesce`]: interrupts disabled, DMA engines stopped, VFIO reset
    /// where offered), then undoes DMA mappings (once; dropping `self` calls it too). Call it once no vCPU runs; dropping `self` afterwards unmaps the regions and
    /// closes the fds, leaving the devices free to rebind to their host drivers.
    pub fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        for (d, p) in self.devices.iter().zip(&self.plan.devices) {
            quiesce::quiesce(d.dev.as_ref(), p);
        }
        if let Some(c) = self.container.as_mut() {
            c.unmap_all();
        }
    }
}

impl Passthrough {
    /// A reboot in place (no vCPU runs): every device readied for the next boot
    /// ([`quiesce::reboot`]); groups, container, DMA maps and interrupt wiring stay.
    pub fn reboot(&self) {
        for (d, p) in self.devices.iter().zip(&self.plan.devices) {
            quiesce::reboot(d.dev.as_ref(), p);
        }
    }
}

/// The sysfs root platvmm reads.
pub fn sysfs_root() -> PathBuf {
    PathBuf::from("/sys")
}

/// A VFIO device double for unit tests of the attach path and the device manager: regions
/// backed by an unlinked temporary file, interrupts recorded in a shared log.
#[cfg(test)]
pub mod test_support {
    use std::fs::File;
    use std::os::fd::RawFd;
    use std::os::unix::fs::FileExt;
    use std::sync::{Arc, Mutex};

    use devices::vfio::device::{DeviceError, DeviceKind, IrqInfo, RegionInfo, VfioDevice};
    use devices::vfio::region::{MappedRegion, RegionIo};
    use devices::vfio::sysfs::{HostBus, HostDevice};

    use super::ProbedDevice;
    use crate::config::VfioSpec;
    use crate::host::scratch::scratch_file;

    /// What the double was asked to do, in order (shared with other doubles of a test).
    pub type Log = Arc<Mutex<Vec<String>>>;

    /// A device with `regions` (index, size, mmap-able) and `irqs` (index, level), whose
    /// region accesses go to `file` (writes logged) and which VFIO can reset if `resettable`.
    pub struct FakeDevice {
        pub name: String,
        pub regions: Vec<RegionInfo>,
        pub irqs: Vec<IrqInfo>,
        pub file: Arc<File>,
        pub log: Log,
        pub resettable: bool,
    }

    /// The device's register file, its writes logged as "NAME write OFFSET=BYTES".
    struct LoggedIo {
        name: String,
        file: Arc<File>,
        log: Log,
    }

    impl RegionIo for LoggedIo {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            FileExt::read_at(&*self.file, buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
            let line = format!("{} write {offset:#x}={buf:02x?}", self.name);
            self.log.lock().unwrap().push(line);
            FileExt::write_at(&*self.file, buf, offset)
        }
    }

    impl FakeDevice {
        pub fn new(name: &str, regions: &[(u64, bool)], irqs: &[bool], log: Log) -> Self {
            use vfio_bindings::bindings::vfio::*;
            let mut offset = 0;
            let regions = (0u32..)
                .zip(regions)
                .map(|(index, &(size, mmap))| {
                    let mut flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                    if mmap {
                        flags |= VFIO_REGION_INFO_FLAG_MMAP;
                    }
                    let r = RegionInfo {
                        index,
                        flags,
                        size,
                        offset,
                    };
                    offset += size.next_multiple_of(4096);
                    r
                })
                .collect();
            let irqs = (0u32..)
                .zip(irqs)
                .map(|(index, &level)| IrqInfo {
                    index,
                    flags: VFIO_IRQ_INFO_EVENTFD | if level { VFIO_IRQ_INFO_AUTOMASKED } else { 0 },
                    count: 1,
                })
                .collect();
            Self {
                name: name.into(),
                regions,
                irqs,
                file: Arc::new(scratch_file(offset.max(4096))),
                log,
                resettable: false,
            }
        }

        fn record(&self, what: String) -> Result<(), DeviceError> {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} {what}", self.name));
            Ok(())
        }
    }

    impl VfioDevice for FakeDevice {
        fn name(&self) -> &str {
            &self.name
        }
        fn kind(&self) -> DeviceKind {
            DeviceKind::Platform
        }
        fn regions(&self) -> &[RegionInfo] {
            &self.regions
        }
        fn irqs(&self) -> &[IrqInfo] {
            &self.irqs
        }
        fn map_region(&self, r: &RegionInfo) -> std::io::Result<MappedRegion> {
            MappedRegion::map(&self.file, r.offset, r.size, r.writable())
        }
        fn region_io(&self) -> Arc<dyn RegionIo> {
            Arc::new(LoggedIo {
                name: self.name.clone(),
                file: self.file.clone(),
                log: self.log.clone(),
            })
        }
        fn irq_trigger(&self, index: u32, _fd: RawFd) -> Result<(), DeviceError> {
            self.record(format!("trigger {index}"))
        }
        fn irq_unmask_fd(&self, index: u32, _fd: RawFd) -> Result<(), DeviceError> {
            self.record(format!("unmask-fd {index}"))
        }
        fn irq_unmask(&self, index: u32) -> Result<(), DeviceError> {
            self.record(format!("unmask {index}"))
        }
        fn irq_disable(&self, index: u32) -> Result<(), DeviceError> {
            self.record(format!("disable {index}"))
        }
        fn reset(&self) -> Option<Result<(), DeviceError>> {
            self.resettable.then(|| self.record("reset".into()))
        }
    }

    /// A probed device called `name`, without a host DT node.
    pub fn probed(name: &str) -> ProbedDevice {
        let path = format!("/sys/bus/platform/devices/{name}");
        ProbedDevice {
            spec: VfioSpec::new(path.clone().into()),
            host: HostDevice {
                path: path.into(),
                name: name.into(),
                bus: HostBus::Platform,
                group: 0,
                of_node: None,
            },
            host_node: None,
            host_irqs: None,
            overlay: None,
            clocks: Vec::new(),
            child_clocks: Vec::new(),
            supplies: Vec::new(),
            providers: Vec::new(),
            member_of: None,
            aliases: Vec::new(),
        }
    }
}
