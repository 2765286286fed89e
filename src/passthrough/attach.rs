//! A device plan made real on a VM: mapped regions become memslots, trapped ones bus devices,
//! interrupts irqfds (level ones with a resamplefd that VFIO uses to unmask). The vGIC must be
//! initialised before [`device`] runs.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::vfio::device::VfioPlatformDevice;
use devices::vfio::region::{Counters, MappedRegion, TrappedRegion};
use devices::Bus;
use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::VmFd;
use log::info;
use vmm_sys_util::eventfd::EventFd;

use super::plan::{Access, DevicePlan, IrqRoute, Placement, PlanError, Trigger};
use super::PassthroughError;
use crate::resources::Resources;

/// What keeps one device wired: its mappings and interrupt eventfds.
#[derive(Default)]
pub struct Wired {
    _maps: Vec<MappedRegion>,
    _irq_fds: Vec<(EventFd, Option<EventFd>)>,
}

/// Where a wired device's pieces go.
pub struct Target<'a> {
    pub vm: &'a VmFd,
    pub bus: &'a mut Bus,
    pub res: &'a mut Resources,
    pub page: u64,
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

/// Wires every region and interrupt of `dev` as `plan` says.
pub fn device(
    t: &mut Target,
    dev: &VfioPlatformDevice,
    plan: &DevicePlan,
    counters: &Arc<Counters>,
) -> Result<Wired, PassthroughError> {
    let mut w = Wired::default();
    for p in &plan.placements {
        match p.access {
            Access::Mapped => w._maps.push(map_region(t, dev, p)?),
            Access::Trapped => trap_region(t, dev, p, counters)?,
        }
        info!(
            "{}: region {} ({:#x} bytes, {}) at guest {:#x}, {}",
            plan.name,
            p.index,
            p.size,
            region_info(dev, p.index).flag_names(),
            p.gpa,
            match p.access {
                Access::Mapped => "mapped",
                Access::Trapped => "trapped",
            }
        );
    }
    for r in &plan.irqs {
        if let Some(first) = r.shares {
            info!(
                "{}: IRQ {} is the host line of IRQ {first} again → SPI {} (shared, wired once)",
                plan.name, r.index, r.spi
            );
            continue;
        }
        w._irq_fds.push(wire_irq(t.vm, dev, r)?);
        let flags = dev
            .irqs
            .iter()
            .find(|i| i.index == r.index)
            .map(|i| i.flag_names())
            .unwrap_or_default();
        let how = match r.trigger {
            Trigger::Level => "level, resamplefd",
            Trigger::Edge => "edge",
        };
        info!(
            "{}: IRQ {} ({flags}) → SPI {} ({how})",
            plan.name, r.index, r.spi
        );
    }
    Ok(w)
}

fn region_info(dev: &VfioPlatformDevice, index: u32) -> &devices::vfio::device::RegionInfo {
    dev.regions
        .iter()
        .find(|r| r.index == index)
        .expect("the plan places regions of this device")
}

/// mmap + a memslot (read-only if the region is).
fn map_region(
    t: &mut Target,
    dev: &VfioPlatformDevice,
    p: &Placement,
) -> Result<MappedRegion, PassthroughError> {
    let name = &dev.host.name;
    let r = region_info(dev, p.index);
    let m = MappedRegion::map(&dev.fd, r.offset, r.size, r.writable()).map_err(|source| {
        PassthroughError::Mmap {
            dev: name.clone(),
            index: r.index,
            source,
        }
    })?;
    let slot = t.res.memslot().map_err(|source| PlanError::Exhausted {
        dev: name.clone(),
        source,
    })?;
    let mr = kvm_userspace_memory_region {
        slot,
        flags: if r.writable() { 0 } else { KVM_MEM_READONLY },
        guest_phys_addr: p.gpa,
        memory_size: r.size,
        userspace_addr: m.host_addr(),
    };
    // SAFETY: `m` maps exactly `memory_size` bytes of the device; it is kept in the device's
    // `Wired`, which is dropped only after every vCPU thread has been joined.
    unsafe { t.vm.set_user_memory_region(mr) }
        .map_err(kvm_err(name, "cannot map a device region into the guest"))?;
    Ok(m)
}

/// A bus device covering the region's whole guest page(s).
fn trap_region(
    t: &mut Target,
    dev: &VfioPlatformDevice,
    p: &Placement,
    counters: &Arc<Counters>,
) -> Result<(), PassthroughError> {
    let r = region_info(dev, p.index);
    let trapped = TrappedRegion::new(
        dev.fd.clone(),
        r.offset,
        r.size,
        format!("{} region {}", dev.host.name, r.index),
        counters.clone(),
    );
    let span = r.size.div_ceil(t.page) * t.page;
    t.bus
        .insert(p.gpa, span, Arc::new(Mutex::new(trapped)))
        .map_err(|e| PassthroughError::Kvm {
            dev: dev.host.name.clone(),
            what: "cannot trap a device region",
            source: std::io::Error::other(e.to_string()),
        })
}

/// irqfd (+ resamplefd for level) and VFIO's trigger (+ unmask) eventfds.
fn wire_irq(
    vm: &VmFd,
    dev: &VfioPlatformDevice,
    r: &IrqRoute,
) -> Result<(EventFd, Option<EventFd>), PassthroughError> {
    let name = &dev.host.name;
    let efd = || {
        EventFd::new(libc::EFD_NONBLOCK).map_err(|e| PassthroughError::Kvm {
            dev: name.clone(),
            what: "eventfd",
            source: e,
        })
    };
    let trigger = efd()?;
    match r.trigger {
        Trigger::Level => {
            // The guest's EOI signals the resamplefd, which VFIO uses to unmask the host
            // line. Both ends live in the kernel.
            let resample = efd()?;
            vm.register_irqfd_with_resample(&trigger, &resample, r.spi)
                .map_err(kvm_err(name, "cannot register a level irqfd"))?;
            dev.irq_trigger(r.index, trigger.as_raw_fd())?;
            dev.irq_unmask_fd(r.index, resample.as_raw_fd())?;
            // An assertion before the guest driver was ready may have left it masked.
            dev.irq_unmask(r.index)?;
            Ok((trigger, Some(resample)))
        }
        Trigger::Edge => {
            vm.register_irqfd(&trigger, r.spi)
                .map_err(kvm_err(name, "cannot register an irqfd"))?;
            dev.irq_trigger(r.index, trigger.as_raw_fd())?;
            Ok((trigger, None))
        }
    }
}
