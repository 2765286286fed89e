//! Host devices in the guest: from `--vfio-platform` specs to memslots, trapped MMIO ranges,
//! irqfds and guest DT nodes.
//!
//! Order per VM: every device's sysfs state is checked first (so a bad path fails before any
//! VFIO state changes) → groups opened and checked viable → one container per IOMMU mode, the
//! IOMMU type set once → (TYPE1v2) all guest RAM DMA-mapped IOVA = guest-physical → the KVM-VFIO
//! pseudo-device gets every group → device fds → regions placed in the passthrough window
//! (mapped: mmap + memslot; others: trapped on the bus) → IRQs wired (the vGIC must be
//! initialised already) → guest nodes generated.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use devices::vfio::container::{Container, ContainerError, Group, IommuMode};
use devices::vfio::device::{DeviceError, VfioPlatformDevice};
use devices::vfio::handlers;
use devices::vfio::hostdt::HostNode;
use devices::vfio::node::{GuestIrq, GuestNode, NodeParams};
use devices::vfio::region::{Counters, MappedRegion, TrappedRegion};
use devices::vfio::sysfs::{HostDevice, SysfsError};
use devices::Bus;
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_VFIO,
    kvm_userspace_memory_region, KVM_DEV_VFIO_GROUP, KVM_DEV_VFIO_GROUP_ADD, KVM_MEM_READONLY,
};
use kvm_ioctls::{DeviceFd, VmFd};
use log::{info, warn};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::aarch64::layout;
use crate::cli::VfioSpec;

/// phandle of the fixed clock AMBA devices reference (the GIC is 1).
pub const AMBA_CLOCK_PHANDLE: u32 = 2;

/// Errors passing a device through. Each names the device.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    #[error("--vfio-platform: {0}")]
    Sysfs(#[from] SysfsError),
    #[error("--vfio-platform: {0}")]
    Container(#[from] ContainerError),
    #[error("--vfio-platform: {0}")]
    Device(#[from] DeviceError),
    /// The same device twice.
    #[error("--vfio-platform: {0} is given twice")]
    Duplicate(String),
    /// The window is full.
    #[error("--vfio-platform: the regions of {dev} do not fit in the {size} MiB passthrough MMIO window", size = layout::PASSTHROUGH_MMIO_SIZE >> 20)]
    WindowFull { dev: String },
    /// Out of SPIs.
    #[error("--vfio-platform: out of guest interrupt lines for {dev} ({max} available to passthrough devices)", max = layout::PASSTHROUGH_SPI_COUNT)]
    NoSpi { dev: String },
    /// An IRQ VFIO cannot signal through an eventfd.
    #[error("--vfio-platform: {dev}: IRQ {index} cannot be signalled through an eventfd")]
    IrqNoEventfd { dev: String, index: u32 },
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
    /// Job rings of two SEC blocks in one guest.
    #[error("--vfio-platform: {dev} is a job ring of another SEC block than the guest's other job rings: pass rings of one SEC per guest")]
    SecMixed { dev: String },
    /// A job ring whose offset in its SEC block is unknown.
    #[error("--vfio-platform: {dev}: a SEC job ring needs its host DT node (its reg gives the ring's offset in the SEC block)")]
    SecNoOffset { dev: String },
    /// The overlay DTB is unreadable.
    #[error("--vfio-platform: overlay {path}: {msg}")]
    Overlay { path: PathBuf, msg: String },
}

fn kvm_err<'a>(
    dev: &'a str,
    what: &'static str,
) -> impl Fn(kvm_ioctls::Error) -> PassthroughError + 'a {
    move |e| PassthroughError::Kvm {
        dev: dev.to_string(),
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// One passed-through device and what keeps it wired.
pub struct PassDevice {
    pub dev: VfioPlatformDevice,
    pub counters: Arc<Counters>,
    pub node: GuestNode,
    /// (region index, guest address, size, mapped?)
    pub placement: Vec<(u32, u64, u64, bool)>,
    /// (irq index, SPI, level)
    pub irq_map: Vec<(u32, u32, bool)>,
    /// A SEC job ring: written under the synthesized controller, not at the root.
    pub sec_ring: Option<crate::sec::JobRing>,
    _maps: Vec<MappedRegion>,
    _irq_fds: Vec<(EventFd, Option<EventFd>)>,
}

/// Every passed-through device of a VM.
#[derive(Default)]
pub struct Passthrough {
    pub devices: Vec<PassDevice>,
    /// Guest address of the SEC block holding passed-through job rings.
    pub sec_block: Option<u64>,
    container: Option<Container>,
    _kvm_vfio: Option<DeviceFd>,
}

impl Passthrough {
    /// Whether some guest node references platvmm's fixed clock (AMBA devices' `apb_pclk`,
    /// bindings that require a clock).
    pub fn needs_fixed_clock(&self) -> bool {
        self.devices.iter().any(|d| references_fixed_clock(&d.node))
    }

    pub fn iommu_mode(&self) -> Option<IommuMode> {
        self.container.as_ref().map(|c| c.mode)
    }

    /// Stops every device interrupt and undoes DMA mappings; the device and group fds close
    /// when platvmm exits, leaving the devices free to rebind to their host drivers.
    pub fn release(&mut self) {
        if let Some(c) = self.container.as_mut() {
            c.unmap_all();
        }
        for d in &self.devices {
            for irq in &d.dev.irqs {
                if let Err(e) = d.dev.irq_disable(irq.index) {
                    warn!("{e}");
                }
            }
        }
    }
}

/// Whether `n` has `clocks = <AMBA_CLOCK_PHANDLE ...>`.
pub fn references_fixed_clock(n: &GuestNode) -> bool {
    n.prop("clocks")
        .is_some_and(|c| c.chunks(4).any(|x| x == AMBA_CLOCK_PHANDLE.to_be_bytes()))
}

/// Why a host node looks like a DMA master, if it does.
pub fn looks_dma_capable(h: &HostNode) -> Option<String> {
    const DMA_COMPATIBLES: &[&str] = &[
        "virtio,mmio",
        "ahci",
        "xhci",
        "ehci",
        "ohci",
        "dwc3",
        "sdhci",
        "mmc",
        "ethernet",
        "gmac",
        "dwmac",
        "sec-v",
        "caam",
        "pcie",
        "dma",
    ];
    if let Some(c) = h.strings("compatible").and_then(|cs| {
        cs.into_iter()
            .find(|c| DMA_COMPATIBLES.iter().any(|d| c.contains(d)))
    }) {
        return Some(format!("compatible \"{c}\""));
    }
    ["iommus", "dmas", "dma-coherent", "dma-ranges"]
        .iter()
        .find(|p| h.prop(p).is_some())
        .map(|p| format!("has '{p}'"))
}

/// Bump allocator over the passthrough window.
pub struct WindowAllocator {
    next: u64,
    end: u64,
}

impl WindowAllocator {
    pub fn new(base: u64, size: u64) -> Self {
        Self {
            next: base,
            end: base + size,
        }
    }

    /// `size` bytes rounded up to `align` (a power of two), aligned to `align`.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let start = self.next.checked_add(align - 1)? & !(align - 1);
        let len = size.checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(len)?;
        (end <= self.end).then(|| {
            self.next = end;
            start
        })
    }
}

/// The host page size (mmap granularity; 4 KiB or 64 KiB on arm64).
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Reads an overlay DTB: its root node becomes a [`GuestNode`].
pub fn read_overlay(path: &Path) -> Result<GuestNode, PassthroughError> {
    let err = |msg: String| PassthroughError::Overlay {
        path: path.to_path_buf(),
        msg,
    };
    let blob = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let fdt = fdt::Fdt::new(&blob).map_err(|e| {
        err(format!(
            "not a DTB ({e:?}): compile the DTS with dtc -I dts -O dtb"
        ))
    })?;
    let root = fdt
        .find_node("/")
        .ok_or_else(|| err("no root node".into()))?;
    fn conv(n: fdt::node::FdtNode) -> GuestNode {
        GuestNode {
            name: n.name.to_string(),
            props: n
                .properties()
                .map(|p| (p.name.to_string(), p.value.to_vec()))
                .collect(),
            children: n.children().map(conv).collect(),
        }
    }
    let mut g = conv(root);
    // dtc adds nothing to the root of a fragment, but drop the usual cell-size boilerplate.
    g.remove("#address-cells");
    g.remove("#size-cells");
    Ok(g)
}

/// Opens, places and wires every device of `specs`.
pub fn setup(
    vm: &VmFd,
    ram: &[(u64, u64, u64)],
    bus: &mut Bus,
    specs: &[VfioSpec],
    first_slot: u32,
    window_base: u64,
    identity_ram: bool,
) -> Result<Passthrough, PassthroughError> {
    let sysfs = Path::new("/sys");
    let mut pt = Passthrough::default();
    if specs.is_empty() {
        return Ok(pt);
    }
    // All sysfs checks first: nothing changes on the host if any device is unusable.
    let mut hosts = Vec::new();
    for s in specs {
        let h = HostDevice::probe(sysfs, &s.path)?;
        if hosts.iter().any(|x: &HostDevice| x.path == h.path) {
            return Err(PassthroughError::Duplicate(h.name));
        }
        hosts.push(h);
    }
    let overlays = specs
        .iter()
        .map(|s| s.overlay.as_deref().map(read_overlay).transpose())
        .collect::<Result<Vec<_>, _>>()?;

    let page = page_size();
    let mut window = WindowAllocator::new(window_base, layout::PASSTHROUGH_MMIO_SIZE);
    let mut next_spi = layout::PASSTHROUGH_SPI_BASE;
    let mut slot = first_slot;
    let mut kvm_groups: Vec<u32> = Vec::new();
    let mut sec_parent: Option<PathBuf> = None;
    let mut sec_block: Option<u64> = None;

    for ((host, spec), overlay) in hosts.into_iter().zip(specs).zip(overlays) {
        let name = host.name.clone();
        let group = Group::open(&host, sysfs)?;
        if pt.container.is_none() {
            let mut c = Container::open(group.mode)?;
            info!("VFIO container: {:?}", c.mode);
            // Guest RAM must be reachable by DMA before any device can run.
            for &(gpa, size, host_addr) in ram {
                c.map_dma(host_addr, gpa, size)?;
            }
            pt.container = Some(c);
        }
        let container = pt.container.as_mut().expect("container just set");
        let gi = container.add_group(group, &name)?;
        let group = &container.groups()[gi];
        if !kvm_groups.contains(&group.id) {
            let kv = match &pt._kvm_vfio {
                Some(d) => d,
                None => {
                    let mut cd = kvm_create_device {
                        type_: kvm_device_type_KVM_DEV_TYPE_VFIO,
                        fd: 0,
                        flags: 0,
                    };
                    let d = vm
                        .create_device(&mut cd)
                        .map_err(kvm_err(&name, "cannot create the KVM-VFIO device"))?;
                    pt._kvm_vfio.insert(d)
                }
            };
            let gfd: i32 = std::os::fd::AsRawFd::as_raw_fd(&group.file);
            let attr = kvm_device_attr {
                group: KVM_DEV_VFIO_GROUP,
                attr: KVM_DEV_VFIO_GROUP_ADD.into(),
                addr: &gfd as *const i32 as u64,
                flags: 0,
            };
            kv.set_device_attr(&attr)
                .map_err(kvm_err(&name, "cannot add the VFIO group to KVM"))?;
            kvm_groups.push(group.id);
        }
        let dev = VfioPlatformDevice::open(host, group)?;
        let counters = Arc::new(Counters::default());

        let host_node = dev
            .host
            .of_node
            .as_deref()
            .map(HostNode::read)
            .transpose()
            .unwrap_or_else(|e| {
                warn!("{name}: cannot read its host DT node: {e}");
                None
            });
        let (handler, why) = match spec.handler.as_deref().and_then(handlers::by_name) {
            Some(h) => (h, "chosen with handler=".to_string()),
            None => handlers::select(host_node.as_ref()),
        };
        info!(
            "{name}: guest node by the {} handler ({why})",
            handler.name()
        );
        // A SEC job ring sits at its host offset inside one guest SEC block (the controller's
        // single `ranges` entry covers it).
        let sec_offset = if handler.name() == "sec" {
            let off = crate::sec::ring_offset(host_node.as_ref())
                .ok_or_else(|| PassthroughError::SecNoOffset { dev: name.clone() })?;
            if sec_block.is_none() {
                sec_block = Some(
                    window
                        .alloc(crate::sec::SEC_BLOCK_SIZE, crate::sec::SEC_BLOCK_SIZE)
                        .ok_or_else(|| PassthroughError::WindowFull { dev: name.clone() })?,
                );
            }
            Some(off)
        } else {
            None
        };
        let mut placement = Vec::new();
        let mut maps = Vec::new();
        for r in &dev.regions {
            if r.size == 0 {
                continue;
            }
            let mapped = r.mappable(page);
            let gpa = match (sec_offset, sec_block, placement.is_empty()) {
                (Some(off), Some(block), true) => block + u64::from(off),
                _ => window
                    .alloc(r.size, page)
                    .ok_or_else(|| PassthroughError::WindowFull { dev: name.clone() })?,
            };
            if mapped {
                let m = MappedRegion::map(&dev.fd, r.offset, r.size, r.writable()).map_err(
                    |source| PassthroughError::Mmap {
                        dev: name.clone(),
                        index: r.index,
                        source,
                    },
                )?;
                let mr = kvm_userspace_memory_region {
                    slot,
                    flags: if r.writable() { 0 } else { KVM_MEM_READONLY },
                    guest_phys_addr: gpa,
                    memory_size: r.size,
                    userspace_addr: m.host_addr(),
                };
                // SAFETY: `m` maps exactly `memory_size` bytes of the device and is kept in the
                // PassDevice, which lives until platvmm exits.
                unsafe { vm.set_user_memory_region(mr) }
                    .map_err(kvm_err(&name, "cannot map a device region into the guest"))?;
                slot += 1;
                maps.push(m);
            } else {
                let trapped = TrappedRegion::new(
                    dev.fd.clone(),
                    r.offset,
                    r.size,
                    format!("{name} region {}", r.index),
                    counters.clone(),
                );
                let span = r.size.div_ceil(page) * page;
                bus.insert(gpa, span, Arc::new(Mutex::new(trapped)))
                    .map_err(|e| PassthroughError::Kvm {
                        dev: name.clone(),
                        what: "cannot trap a device region",
                        source: std::io::Error::other(e.to_string()),
                    })?;
            }
            info!(
                "{name}: region {} ({:#x} bytes, {}) at guest {gpa:#x}, {}",
                r.index,
                r.size,
                r.flag_names(),
                if mapped { "mapped" } else { "trapped" }
            );
            placement.push((r.index, gpa, r.size, mapped));
        }

        let mut irq_map = Vec::new();
        let mut irq_fds = Vec::new();
        for irq in &dev.irqs {
            if irq.count == 0 {
                continue;
            }
            if irq.flags & vfio_bindings::bindings::vfio::VFIO_IRQ_INFO_EVENTFD == 0 {
                return Err(PassthroughError::IrqNoEventfd {
                    dev: name.clone(),
                    index: irq.index,
                });
            }
            if next_spi >= layout::PASSTHROUGH_SPI_BASE + layout::PASSTHROUGH_SPI_COUNT {
                return Err(PassthroughError::NoSpi { dev: name.clone() });
            }
            let spi = next_spi;
            next_spi += 1;
            let efd = || {
                EventFd::new(libc::EFD_NONBLOCK).map_err(|e| PassthroughError::Kvm {
                    dev: name.clone(),
                    what: "eventfd",
                    source: e,
                })
            };
            let trigger = efd()?;
            let raw = |e: &EventFd| std::os::fd::AsRawFd::as_raw_fd(e);
            if irq.level() {
                // Level: the guest's EOI signals the resamplefd, which VFIO uses to unmask
                // the host line. Both ends live in the kernel.
                let resample = efd()?;
                vm.register_irqfd_with_resample(&trigger, &resample, spi)
                    .map_err(kvm_err(&name, "cannot register a level irqfd"))?;
                dev.irq_trigger(irq.index, raw(&trigger))?;
                dev.irq_unmask_fd(irq.index, raw(&resample))?;
                // An assertion before the guest driver was ready may have left it masked.
                dev.irq_unmask(irq.index)?;
                irq_fds.push((trigger, Some(resample)));
            } else {
                vm.register_irqfd(&trigger, spi)
                    .map_err(kvm_err(&name, "cannot register an irqfd"))?;
                dev.irq_trigger(irq.index, raw(&trigger))?;
                irq_fds.push((trigger, None));
            }
            info!(
                "{name}: IRQ {} ({}) → SPI {spi} ({})",
                irq.index,
                irq.flag_names(),
                if irq.level() {
                    "level, resamplefd"
                } else {
                    "edge"
                }
            );
            irq_map.push((irq.index, spi, irq.level()));
        }

        let dma_hint = host_node.as_ref().and_then(looks_dma_capable);
        if let (Some(why), Some(IommuMode::NoIommu), false) =
            (&dma_hint, pt.iommu_mode(), identity_ram)
        {
            warn!(
                "WARNING: {name} looks DMA-capable ({why}) but VFIO runs without an IOMMU and guest \
                 RAM is not identity-mapped: any DMA it does will hit the wrong host memory. Use \
                 --identity-map-ram, or make sure the guest driver never starts DMA."
            );
        }
        let regs: Vec<(u64, u64)> = placement.iter().map(|p| (p.1, p.2)).collect();
        let irqs: Vec<GuestIrq> = irq_map
            .iter()
            .map(|&(_, spi, level)| GuestIrq { spi, level })
            .collect();
        let mut g = handler.generate(
            host_node.as_ref(),
            &NodeParams {
                dev_name: &name,
                kind: dev.kind,
                regs: &regs,
                irqs: &irqs,
                compatible: spec.compatible.as_deref(),
                amba_clock: AMBA_CLOCK_PHANDLE,
            },
        );
        for w in &g.warnings {
            warn!("{w}");
        }
        if let Some(o) = &overlay {
            g.node.merge(o);
        }
        let sec_ring = match (sec_offset, placement.first()) {
            (Some(offset), Some(&(_, _, size, _))) => Some(crate::sec::JobRing {
                node: g.node.clone(),
                offset,
                size,
            }),
            _ => None,
        };
        if let Some(r) = &sec_ring {
            let parent = dev
                .host
                .of_node
                .as_ref()
                .and_then(|p| p.parent())
                .map(Path::to_path_buf);
            match &sec_parent {
                Some(sp) if Some(sp) != parent.as_ref() => {
                    return Err(PassthroughError::SecMixed { dev: name.clone() })
                }
                _ => sec_parent = parent,
            }
            info!(
                "{name}: SEC job ring at offset {:#x} of its SEC block",
                r.offset
            );
        }
        pt.sec_block = sec_block;
        pt.devices.push(PassDevice {
            dev,
            counters,
            node: g.node,
            placement,
            irq_map,
            sec_ring,
            _maps: maps,
            _irq_fds: irq_fds,
        });
    }
    Ok(pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_allocation_is_aligned_and_bounded() {
        let mut w = WindowAllocator::new(0x4000_0000, 0x10_0000);
        assert_eq!(w.alloc(0x18, 0x1000), Some(0x4000_0000));
        assert_eq!(w.alloc(0x1000, 0x1000), Some(0x4000_1000));
        assert_eq!(w.alloc(0x200, 0x10000), Some(0x4001_0000), "64 KiB pages");
        assert_eq!(w.alloc(0x10_0000, 0x1000), None, "does not fit");
        assert_eq!(w.alloc(0xd_0000, 0x1000), Some(0x4002_0000));
        assert_eq!(
            w.alloc(0x1_0000, 0x1000),
            Some(0x400f_0000),
            "fills the window"
        );
        assert_eq!(w.alloc(1, 0x1000), None);
    }

    #[test]
    fn dma_capable_heuristic() {
        let node = |props: &[(&str, &[u8])]| HostNode {
            name: "x@0".into(),
            props: props
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            children: vec![],
        };
        assert!(looks_dma_capable(&node(&[("compatible", b"virtio,mmio\0")])).is_some());
        assert!(looks_dma_capable(&node(&[("compatible", b"generic-ahci\0")])).is_some());
        assert!(
            looks_dma_capable(&node(&[("compatible", b"x\0"), ("dma-coherent", b"")])).is_some()
        );
        assert!(
            looks_dma_capable(&node(&[("compatible", b"arm,pl031\0arm,primecell\0")])).is_none()
        );
    }

    #[test]
    fn overlay_from_dtb() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("ports-implemented", 1).unwrap();
        let c = w.begin_node("port@0").unwrap();
        w.property_u32("reg", 0).unwrap();
        w.end_node(c).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let p = std::env::temp_dir().join(format!("platvmm-overlay-{}.dtb", std::process::id()));
        std::fs::write(&p, blob).unwrap();
        let g = read_overlay(&p).unwrap();
        assert_eq!(g.prop("ports-implemented").unwrap(), [0, 0, 0, 1]);
        assert_eq!(g.children[0].name, "port@0");
        std::fs::write(&p, b"not a dtb").unwrap();
        assert!(read_overlay(&p)
            .unwrap_err()
            .to_string()
            .contains("dtc -I dts -O dtb"));
        std::fs::remove_file(&p).unwrap();
    }
}
