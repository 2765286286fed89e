//! Passed-through devices made real on a VM, top-down: VFIO opened → KVM-VFIO device →
//! plan → each device's regions (mapped regions become memslots, trapped ones bus devices)
//! and interrupts (irqfds; level ones with a resamplefd that VFIO unmasks on) → the emulated
//! SEC controller page. The vGIC must be initialised before [`attach`] runs.

use std::sync::{Arc, Mutex};

use devices::vfio::container::IommuMode;
use devices::vfio::device::{RegionInfo, VfioDevice};
use devices::vfio::region::{MappedRegion, TrappedRegion};
use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use log::{info, warn};
use vmm_sys_util::eventfd::EventFd;

use super::plan::{Access, DevicePlan, IrqRoute, Placement, Planner, Trigger, VmPlan};
use super::{open, sysfs_root, IrqFds, PassDevice, Passthrough, PassthroughError, ProbedDevice};
use crate::config::ScmiMode;
use crate::hypervisor::{kvm_err, AttachContext, KvmError};

/// The user's choices that concern every passed-through device.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    /// Give the guest a SEC controller even without job rings (`--sec-controller`).
    pub sec_controller: bool,
    /// Guest RAM is identity-mapped (`--identity-map-ram`): DMA without an IOMMU works.
    pub identity_ram: bool,
    /// Whether the guest gets the SCMI system controller (`--scmi`).
    pub scmi: ScmiMode,
}

/// Opens, plans and wires the probed devices; adds the emulated SEC controller when job
/// rings are among them or the options ask for it.
pub fn attach(
    ctx: &mut AttachContext<'_>,
    probed: Vec<ProbedDevice>,
    opts: AttachOptions,
) -> Result<Passthrough, PassthroughError> {
    let mut pt = Passthrough::default();
    open::open_devices(&mut pt, &sysfs_root(), probed, ctx.ram)?;
    if let Some(c) = &pt.container {
        let first = pt.devices.first().map_or("", |d| d.dev.name());
        pt.kvm_vfio = Some(open::attach_kvm(ctx.vm, c, first)?);
    }
    pt.plan = plan(ctx, &pt.devices, opts)?;
    let mode = pt.container.as_ref().map(|c| c.mode);
    for (d, dp) in pt.devices.iter_mut().zip(&pt.plan.devices) {
        warn_dma(dp, mode, opts.identity_ram);
        wire(ctx, d, dp)?;
    }
    attach_sec_controller(ctx, &pt.plan)?;
    if let Some(s) = &pt.plan.scmi {
        pt.scmi = Some(super::scmi::attach(ctx, s, &pt.devices)?);
    }
    Ok(pt)
}

/// Every device planned against the VM's allocators, in order.
fn plan(
    ctx: &mut AttachContext<'_>,
    devices: &[PassDevice],
    opts: AttachOptions,
) -> Result<VmPlan, PassthroughError> {
    let mut planner = Planner::new(ctx.res, ctx.page)?;
    let descs: Vec<_> = devices.iter().map(|d| d.desc(ctx.page)).collect();
    planner.peers(&descs);
    if let Some(why) = planner.scmi(opts.scmi, &descs)? {
        info!("SCMI system controller: on ({why})");
        planner.scmi_transport(super::scmi::transport(ctx.vm)?);
    }
    for (d, desc) in devices.iter().zip(&descs) {
        planner.add(desc, &d.probed.options())?;
    }
    let plan = planner.finish(opts.sec_controller)?;
    plan.devices.iter().for_each(log_plan);
    Ok(plan)
}

/// Wires every region and interrupt of `d` as `plan` says.
pub fn wire(
    ctx: &mut AttachContext<'_>,
    d: &mut PassDevice,
    plan: &DevicePlan,
) -> Result<(), PassthroughError> {
    for p in &plan.placements {
        let r = region_info(d.dev.as_ref(), p.index);
        match p.access {
            Access::Mapped => d.maps.push(map_region(ctx, d.dev.as_ref(), r, p)?),
            Access::Trapped => trap_region(ctx, d, r, p)?,
        }
        let how = match p.access {
            Access::Mapped => "mapped",
            Access::Trapped => "trapped",
        };
        info!(
            "{}: region {} ({:#x} bytes, {}) at guest {:#x}, {how}",
            plan.name,
            p.index,
            p.size,
            r.flag_names(),
            p.gpa,
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
        d.irq_fds.push(wire_irq(ctx, d.dev.as_ref(), r)?);
        log_irq(d.dev.as_ref(), &plan.name, r);
    }
    Ok(())
}

fn region_info(dev: &dyn VfioDevice, index: u32) -> &RegionInfo {
    dev.regions()
        .iter()
        .find(|r| r.index == index)
        .expect("the plan places regions of this device")
}

/// mmap + a memslot (read-only if the region is).
fn map_region(
    ctx: &mut AttachContext<'_>,
    dev: &dyn VfioDevice,
    r: &RegionInfo,
    p: &Placement,
) -> Result<MappedRegion, PassthroughError> {
    let name = dev.name();
    let m = dev.map_region(r).map_err(|source| PassthroughError::Mmap {
        dev: name.to_string(),
        index: r.index,
        source,
    })?;
    let slot = ctx
        .res
        .memslot()
        .map_err(|source| PassthroughError::Resources {
            dev: name.to_string(),
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
    // `PassDevice`, which is dropped only after every vCPU thread has been joined.
    unsafe { ctx.vm.set_user_memory_region(mr) }
        .map_err(kvm_err("cannot map a device region into the guest"))
        .map_err(in_dev(name))?;
    Ok(m)
}

/// A bus device covering the region's whole guest page(s).
fn trap_region(
    ctx: &mut AttachContext<'_>,
    d: &PassDevice,
    r: &RegionInfo,
    p: &Placement,
) -> Result<(), PassthroughError> {
    let name = d.dev.name();
    let trapped = TrappedRegion::new(
        d.dev.region_io(),
        r.offset,
        r.size,
        format!("{name} region {}", r.index),
        d.counters.clone(),
    );
    let span = r.size.div_ceil(ctx.page) * ctx.page;
    ctx.bus
        .insert(p.gpa, span, Arc::new(Mutex::new(trapped)))
        .map_err(|source| PassthroughError::Bus {
            dev: name.to_string(),
            source,
        })
}

/// irqfd (+ resamplefd for level) and VFIO's trigger (+ unmask) eventfds.
fn wire_irq(
    ctx: &AttachContext<'_>,
    dev: &dyn VfioDevice,
    r: &IrqRoute,
) -> Result<IrqFds, PassthroughError> {
    use std::os::fd::AsRawFd;
    let name = dev.name();
    let efd = || {
        EventFd::new(libc::EFD_NONBLOCK).map_err(|source| PassthroughError::Host {
            dev: name.to_string(),
            what: "eventfd",
            source,
        })
    };
    let trigger = efd()?;
    let resample = match r.trigger {
        Trigger::Level => {
            // The guest's EOI signals the resamplefd, which VFIO uses to unmask the host
            // line. Both ends live in the kernel.
            let resample = efd()?;
            ctx.vm
                .register_irqfd_with_resample(&trigger, &resample, r.spi)
                .map_err(kvm_err("cannot register a level irqfd"))
                .map_err(in_dev(name))?;
            dev.irq_trigger(r.index, trigger.as_raw_fd())?;
            dev.irq_unmask_fd(r.index, resample.as_raw_fd())?;
            // An assertion before the guest driver was ready may have left it masked.
            dev.irq_unmask(r.index)?;
            Some(resample)
        }
        Trigger::Edge => {
            ctx.vm
                .register_irqfd(&trigger, r.spi)
                .map_err(kvm_err("cannot register an irqfd"))
                .map_err(in_dev(name))?;
            dev.irq_trigger(r.index, trigger.as_raw_fd())?;
            None
        }
    };
    Ok(IrqFds {
        _trigger: trigger,
        _resample: resample,
    })
}

fn in_dev(dev: &str) -> impl Fn(KvmError) -> PassthroughError + '_ {
    move |source| PassthroughError::Kvm {
        dev: dev.to_string(),
        source,
    }
}

/// The emulated SEC controller page, where the plan put it.
fn attach_sec_controller(
    ctx: &mut AttachContext<'_>,
    plan: &VmPlan,
) -> Result<(), PassthroughError> {
    let Some(base) = plan.sec_controller else {
        return Ok(());
    };
    let ctrl = devices::caam::CaamController::new();
    ctx.bus
        .insert(base, devices::caam::CAAM_WINDOW, Arc::new(Mutex::new(ctrl)))
        .map_err(|source| PassthroughError::Bus {
            dev: "SEC controller".into(),
            source,
        })?;
    info!("SEC controller page at guest {base:#x}");
    Ok(())
}

fn log_plan(d: &DevicePlan) {
    info!(
        "{}: guest node by the {} handler ({})",
        d.name, d.handler, d.why
    );
    for s in &d.synthesized {
        info!("{}: synthesized {s}", d.name);
    }
    for w in &d.warnings {
        warn!("{w}");
    }
}

fn log_irq(dev: &dyn VfioDevice, name: &str, r: &IrqRoute) {
    let flags = dev
        .irqs()
        .iter()
        .find(|i| i.index == r.index)
        .map(|i| i.flag_names())
        .unwrap_or_default();
    let how = match r.trigger {
        Trigger::Level => "level, resamplefd",
        Trigger::Edge => "edge",
    };
    info!("{name}: IRQ {} ({flags}) → SPI {} ({how})", r.index, r.spi);
}

fn warn_dma(d: &DevicePlan, mode: Option<IommuMode>, identity: bool) {
    if let (Some(why), Some(IommuMode::NoIommu), false) = (&d.dma, mode, identity) {
        warn!(
            "WARNING: {} looks DMA-capable ({why}) but VFIO runs without an IOMMU and guest \
             RAM is not identity-mapped: any DMA it does will hit the wrong host memory. Use \
             --identity-map-ram, or make sure the guest driver never starts DMA.",
            d.name
        );
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use devices::Bus;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    use super::*;
    use crate::arch::aarch64::layout::PASSTHROUGH_MMIO_BASE;
    use crate::hypervisor::fake::{Call, FakeVm};
    use crate::passthrough::test_support::{probed, FakeDevice, Log};
    use crate::resources::Resources;

    /// Runs `f` with a context on `vm`, a fresh bus and allocators; returns its result and
    /// the bus.
    fn with_context<R>(vm: &FakeVm, f: impl FnOnce(&mut AttachContext<'_>) -> R) -> (R, Bus) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0x8000_0000), 0x10000)]).unwrap();
        let (mut bus, mut res) = (Bus::new(), Resources::new(PASSTHROUGH_MMIO_BASE));
        let mut ctx = AttachContext {
            vm,
            bus: &mut bus,
            res: &mut res,
            mem: &mem,
            ram: &[],
            page: 4096,
        };
        let r = f(&mut ctx);
        (r, bus)
    }

    /// A device with a mapped page, a trapped 0x18-byte region, a level and an edge IRQ,
    /// planned alone and wired against `vm`.
    fn wire_one(vm: &FakeVm, log: &Log) -> (Result<(), PassthroughError>, Bus, DevicePlan) {
        let dev = FakeDevice::new(
            "d",
            &[(4096, true), (0x18, false)],
            &[true, false],
            log.clone(),
        );
        dev.file
            .write_all_at(b"QEMU", dev.regions[1].offset)
            .unwrap();
        let mut d = PassDevice::new(probed("d"), Box::new(dev));
        let ((r, dp), bus) = with_context(vm, |ctx| {
            let plan = plan(ctx, std::slice::from_ref(&d), AttachOptions::default()).unwrap();
            let dp = plan.devices[0].clone();
            (wire(ctx, &mut d, &dp), dp)
        });
        (r, bus, dp)
    }

    #[test]
    fn regions_become_a_memslot_and_a_bus_range_irqs_irqfds() {
        let (vm, log) = (FakeVm::default(), Log::default());
        let (r, bus, plan) = wire_one(&vm, &log);
        r.unwrap();
        let [mapped, trapped] = [plan.placements[0], plan.placements[1]];
        assert_eq!(
            (mapped.access, trapped.access),
            (Access::Mapped, Access::Trapped)
        );
        let [level, edge] = [plan.irqs[0].spi, plan.irqs[1].spi];
        assert_eq!(
            vm.calls(),
            [
                Call::Memslot {
                    slot: 0,
                    gpa: mapped.gpa,
                    size: 4096,
                    readonly: false
                },
                Call::IrqfdResample { gsi: level },
                Call::Irqfd { gsi: edge },
            ]
        );
        // The trapped range reads the device (its fd at the region's offset).
        let mut buf = [0u8; 4];
        assert!(bus.read(trapped.gpa, &mut buf));
        assert_eq!(&buf, b"QEMU");
        // The whole guest page is claimed, nothing past it.
        assert!(bus.read(trapped.gpa + 4092, &mut buf));
        assert!(!bus.read(trapped.gpa + 4096, &mut buf));
        assert_eq!(
            *log.lock().unwrap(),
            ["d trigger 0", "d unmask-fd 0", "d unmask 0", "d trigger 1"]
        );
    }

    #[test]
    fn a_refused_irqfd_names_the_device_and_the_step() {
        let vm = FakeVm {
            fail_irqfd: true,
            ..Default::default()
        };
        let (r, _, _) = wire_one(&vm, &Log::default());
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with("--vfio-platform: d: cannot register a level irqfd: "),
            "{e}"
        );
    }

    #[test]
    fn the_scmi_transport_is_smc_where_kvm_forwards_the_call() {
        use super::super::plan::scmi::{ScmiTransport, SMC_FUNCTION};
        let old = FakeVm::default();
        assert_eq!(
            super::super::scmi::transport(&old).unwrap(),
            ScmiTransport::Mailbox
        );
        assert!(old.calls().is_empty());
        let new = FakeVm {
            smccc_filter: true,
            ..Default::default()
        };
        assert_eq!(
            super::super::scmi::transport(&new).unwrap(),
            ScmiTransport::Smc {
                function: SMC_FUNCTION
            }
        );
        assert_eq!(
            new.calls(),
            [Call::SmcccFilter {
                function: SMC_FUNCTION
            }]
        );
    }

    #[test]
    fn a_trapped_region_over_another_device_is_a_bus_error() {
        let (vm, log) = (FakeVm::default(), Log::default());
        let dev = FakeDevice::new("d", &[(0x18, false)], &[], log);
        let mut d = PassDevice::new(probed("d"), Box::new(dev));
        let (e, _) = with_context(&vm, |ctx| {
            let plan = plan(ctx, std::slice::from_ref(&d), AttachOptions::default()).unwrap();
            let other = Arc::new(Mutex::new(devices::caam::CaamController::new()));
            let gpa = plan.devices[0].placements[0].gpa;
            ctx.bus.insert(gpa, 4096, other).unwrap();
            wire(ctx, &mut d, &plan.devices[0]).unwrap_err()
        });
        assert!(matches!(e, PassthroughError::Bus { .. }), "{e:?}");
        assert!(e.to_string().contains("cannot trap a device region"), "{e}");
    }

    #[test]
    fn a_sec_controller_alone_gets_its_page_on_the_bus() {
        let vm = FakeVm::default();
        let (plan, bus) = with_context(&vm, |ctx| {
            let sec = AttachOptions {
                sec_controller: true,
                ..AttachOptions::default()
            };
            let plan = plan(ctx, &[], sec).unwrap();
            attach_sec_controller(ctx, &plan).unwrap();
            plan
        });
        let base = plan.sec_controller.expect("asked for");
        let mut buf = [0u8; 4];
        assert!(bus.read(base, &mut buf));
        assert!(vm.calls().is_empty());
    }
}
