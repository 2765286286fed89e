//! Builds the VM on an aarch64 KVM host and runs it.
//!
//! Order (each step depends on the previous): KVM → VM → guest RAM + memslots → kernel and
//! initramfs loaded → vCPUs created and initialised (PSCI 0.2; secondaries powered off) →
//! vGIC created and initialised → boot registers → console UART + irqfd → device tree
//! written to RAM → vCPU threads → event loop until a vCPU reports the end.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex};

use devices::serial::{SerialConsole, SerialInput};
use devices::Bus;
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use kvm_bindings::{
    kvm_userspace_memory_region, kvm_vcpu_init, KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use linux_loader::loader::pe::PE;
use linux_loader::loader::KernelLoader;
use log::{debug, info};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::arch::aarch64::fdt::{self, FdtConfig};
use crate::arch::aarch64::layout::{self, MIB};
use crate::arch::aarch64::{gic, regs};
use crate::terminal::RawTerminal;
use crate::vcpu::{self, ExitSignal};
use crate::vmm::{Error, GuestExit, Prepared};

fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> Error {
    move |e| Error::Kvm {
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

fn host_err(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Host { what, source }
}

/// Wakes the event loop when a vCPU reports the end of the guest.
struct ExitWatcher(Arc<ExitSignal>);

impl MutEventSubscriber for ExitWatcher {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.0.evt.read();
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.0.evt, EventSet::IN)) {
            log::error!("cannot watch the VM exit event: {e:?}");
        }
    }
}

fn create_memory(vm: &VmFd, size: u64) -> Result<GuestMemoryMmap, Error> {
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(layout::RAM_BASE), size as usize)])
            .map_err(|e| Error::GuestMemory {
                mib: size / MIB,
                reason: e.to_string(),
            })?;
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|e| Error::GuestMemory {
                mib: size / MIB,
                reason: e.to_string(),
            })?;
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping owned by `mem` of exactly `memory_size` bytes,
        // and `mem` outlives the VM: it is kept until the process exits.
        unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("cannot map guest RAM"))?;
    }
    Ok(mem)
}

fn create_vcpus(vm: &VmFd, n: u32) -> Result<(Vec<VcpuFd>, Vec<u64>), Error> {
    let mut kvi = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut kvi)
        .map_err(kvm_err("KVM has no preferred vCPU target"))?;
    kvi.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let mut vcpus = Vec::with_capacity(n as usize);
    let mut mpidrs = Vec::with_capacity(n as usize);
    for id in 0..n {
        let vcpu = vm
            .create_vcpu(u64::from(id))
            .map_err(kvm_err("cannot create vCPU"))?;
        let mut init = kvi;
        if id > 0 {
            // Secondaries wait for the guest's PSCI CPU_ON.
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        vcpu.vcpu_init(&init)
            .map_err(kvm_err("cannot initialise vCPU"))?;
        mpidrs.push(regs::read_mpidr(&vcpu).map_err(kvm_err("cannot read MPIDR"))?);
        vcpus.push(vcpu);
    }
    Ok((vcpus, mpidrs))
}

fn load_images(p: &mut Prepared, mem: &GuestMemoryMmap) -> Result<(), Error> {
    let load_err = |what, reason: String| Error::Load { what, reason };
    p.kernel
        .seek(SeekFrom::Start(0))
        .map_err(|e| load_err("the kernel", e.to_string()))?;
    let res = PE::load(
        mem,
        Some(GuestAddress(layout::RAM_BASE)),
        &mut p.kernel,
        None,
    )
    .map_err(|e| load_err("the kernel", e.to_string()))?;
    if res.kernel_load.0 != p.plan.kernel_load {
        return Err(load_err(
            "the kernel",
            format!(
                "loaded at {:#x}, planned {:#x}",
                res.kernel_load.0, p.plan.kernel_load
            ),
        ));
    }
    if let (Some((file, len)), Some((start, _))) = (p.initramfs.as_mut(), p.plan.initrd) {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| load_err("the initramfs", e.to_string()))?;
        mem.read_exact_volatile_from(GuestAddress(start), file, *len as usize)
            .map_err(|e| load_err("the initramfs", e.to_string()))?;
    }
    Ok(())
}

/// A host fd duplicated into a `File` (unbuffered: console bytes go out as they come).
fn dup_file(fd: std::os::fd::BorrowedFd<'_>, what: &'static str) -> Result<File, Error> {
    Ok(File::from(fd.try_clone_to_owned().map_err(host_err(what))?))
}

/// Builds and runs the VM described by `p`.
pub fn run(mut p: Prepared) -> Result<GuestExit, Error> {
    let kvm = Kvm::new().map_err(|e| Error::NoKvm(std::io::Error::from_raw_os_error(e.errno())))?;
    let max = kvm.get_max_vcpus() as u32;
    if p.cfg.cpus > max {
        return Err(Error::TooManyCpus {
            requested: p.cfg.cpus,
            max,
        });
    }
    let vm = kvm.create_vm().map_err(kvm_err("cannot create a VM"))?;
    let mem = create_memory(&vm, p.cfg.mem_size)?;
    load_images(&mut p, &mem)?;

    let (vcpus, mpidrs) = create_vcpus(&vm, p.cfg.cpus)?;
    let gic = gic::create(&vm, p.cfg.cpus)?;
    info!("vGIC {:?}, {} vCPUs", gic.version, p.cfg.cpus);
    regs::set_boot_regs(&vcpus[0], p.plan.kernel_load, p.plan.dtb)
        .map_err(kvm_err("cannot set boot registers"))?;

    // Console: output straight to stdout, interrupt through an irqfd (after vGIC init).
    let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?;
    vm.register_irqfd(&irq, layout::UART_SPI)
        .map_err(kvm_err("cannot wire the console interrupt (irqfd)"))?;
    let room = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?;
    let out = dup_file(std::io::stdout().as_fd(), "cannot duplicate stdout")?;
    let console = Arc::new(Mutex::new(SerialConsole::new(
        irq,
        room.try_clone().map_err(host_err("eventfd"))?,
        Box::new(out),
    )));
    let mut bus = Bus::new();
    bus.insert(layout::UART_BASE, layout::UART_SIZE, console.clone())?;

    let dtb = fdt::create_fdt(&FdtConfig {
        mpidrs: &mpidrs,
        gic: gic.version,
        mem_size: p.cfg.mem_size,
        cmdline: &p.cfg.cmdline,
        initrd: p.plan.initrd,
        devices: &[],
    })?;
    if let Some(path) = &p.cfg.dump_dtb {
        std::fs::write(path, &dtb).map_err(|source| Error::DumpDtb {
            path: path.clone(),
            source,
        })?;
    }
    mem.write_slice(&dtb, GuestAddress(p.plan.dtb))
        .map_err(|e| Error::Load {
            what: "the device tree",
            reason: e.to_string(),
        })?;
    debug!("boot plan {:x?}", p.plan);

    let mut em = EventManager::<Arc<Mutex<dyn MutEventSubscriber>>>::new().map_err(|e| {
        host_err("cannot create the event loop")(std::io::Error::other(format!("{e:?}")))
    })?;
    let exit = Arc::new(ExitSignal::new(
        EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?,
    ));
    em.add_subscriber(Arc::new(Mutex::new(ExitWatcher(exit.clone()))));
    let stdin = dup_file(std::io::stdin().as_fd(), "cannot duplicate stdin")?;
    let _raw = RawTerminal::enter(stdin.as_raw_fd());
    em.add_subscriber(Arc::new(Mutex::new(SerialInput::new(stdin, room, console))));

    let bus = Arc::new(bus);
    for (id, vcpu) in vcpus.into_iter().enumerate() {
        let (bus, exit) = (bus.clone(), exit.clone());
        std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || vcpu::run(vcpu, id, bus, exit))
            .map_err(host_err("cannot start a vCPU thread"))?;
    }

    let outcome = loop {
        if let Some(o) = exit.get() {
            break o;
        }
        if let Err(e) = em.run() {
            log::warn!("event loop: {e:?}");
        }
    };
    info!("guest ended: {outcome:?}");
    // `mem`, `vm` and the vCPU fds stay alive until the process exits: vCPU threads may still
    // be inside KVM_RUN and must never see their memory unmapped.
    std::mem::forget(mem);
    std::mem::forget(vm);
    Ok(outcome)
}
