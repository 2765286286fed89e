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

use crate::arch::aarch64::fdt::{self, DeviceNode, FdtConfig, FixedClock, RawNode};
use crate::arch::aarch64::layout::{self, MIB};
use crate::arch::aarch64::{gic, regs};
use crate::passthrough::{self, Passthrough, AMBA_CLOCK_PHANDLE};
use crate::terminal::RawTerminal;
use crate::vcpu::{self, ExitCounters, ExitSignal};
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

/// Terminating signals end the VM cleanly; SIGUSR1 prints the counters.
const SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];

/// Blocks [`SIGNALS`] in this thread (and the threads it starts) and returns a signalfd for
/// them.
fn signal_fd() -> std::io::Result<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for these libc calls.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
    }
    // SAFETY: `set` is initialised; the old mask is not needed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    // SAFETY: creates a new fd from an initialised mask.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// What the stats printer reads.
pub struct StatsSources {
    pub exits: Arc<ExitCounters>,
    pub devices: Vec<(String, Arc<devices::vfio::region::Counters>)>,
}

impl StatsSources {
    /// Prints one line for the VM's exits and one per device to stderr.
    pub fn print(&self) {
        let fmt = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        eprintln!("platvmm stats: vm exits {}", fmt(&self.exits.snapshot()));
        for (name, c) in &self.devices {
            eprintln!("platvmm stats: device {name} {}", fmt(&c.snapshot()));
        }
    }
}

struct SignalWatcher {
    fd: File,
    exit: Arc<ExitSignal>,
    stats: Arc<StatsSources>,
}

impl MutEventSubscriber for SignalWatcher {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        use std::io::Read;
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        while let Ok(n) = self.fd.read(&mut buf) {
            if n != buf.len() {
                break;
            }
            let signo = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as i32;
            if signo == libc::SIGUSR1 {
                self.stats.print();
            } else {
                info!("signal {signo}: stopping the VM");
                self.exit.set(GuestExit::Signal(signo));
            }
        }
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.fd, EventSet::IN)) {
            log::error!("cannot watch signals: {e:?}");
        }
    }
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

/// (guest address, size, host address) of each RAM region.
fn ram_regions(mem: &GuestMemoryMmap) -> Vec<(u64, u64, u64)> {
    mem.iter()
        .map(|r| {
            let host = mem.get_host_address(r.start_addr()).map_or(0, |h| h as u64);
            (r.start_addr().0, r.len(), host)
        })
        .collect()
}

/// Guest RAM and where the boot images go.
struct Ram {
    mem: GuestMemoryMmap,
    /// (base, size) of each region, sorted.
    regions: Vec<(u64, u64)>,
    /// The region the kernel, initramfs and DTB go into.
    boot: (u64, u64),
    /// Guest address of the passthrough MMIO window.
    window: u64,
}

/// Guest memory, its (base, size) regions and the passthrough window base.
type MemoryParts = (GuestMemoryMmap, Vec<(u64, u64)>, u64);

/// Identity-mapped RAM: hugepages at their host physical addresses.
fn identity_memory(size: u64) -> Result<MemoryParts, Error> {
    use vm_memory::{GuestRegionMmap, MmapRegion};
    let id = crate::identity::allocate(size)?;
    let gm_err = |reason: String| Error::GuestMemory {
        mib: size / MIB,
        reason,
    };
    let mut regions = Vec::new();
    for r in &id.runs {
        // SAFETY: `r.host..r.host + r.size` lies inside the hugetlb mapping identity::allocate
        // made with exactly these prot/flags bits and never unmaps.
        let raw = unsafe {
            MmapRegion::build_raw(
                r.host as *mut u8,
                r.size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
            )
        }
        .map_err(|e| gm_err(e.to_string()))?;
        regions.push(
            GuestRegionMmap::new(raw, GuestAddress(r.gpa))
                .ok_or_else(|| gm_err(format!("bad region at {:#x}", r.gpa)))?,
        );
    }
    let mem = GuestMemoryMmap::from_regions(regions).map_err(|e| gm_err(e.to_string()))?;
    let window = crate::identity::pick_window(&id.runs, layout::PASSTHROUGH_MMIO_SIZE)?;
    info!(
        "identity-mapped RAM: {} KiB pages in {} memslot(s), guest RAM {}; passthrough window at {window:#x}",
        id.page_size / 1024,
        id.runs.len(),
        id.ranges
            .iter()
            .map(|r| format!("{:#x}+{:#x}", r.0, r.1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((mem, id.ranges, window))
}

fn create_memory(vm: &VmFd, size: u64, identity: bool) -> Result<Ram, Error> {
    let (mem, regions, window) = if identity {
        identity_memory(size)?
    } else {
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(layout::RAM_BASE), size as usize)])
                .map_err(|e| Error::GuestMemory {
                    mib: size / MIB,
                    reason: e.to_string(),
                })?;
        (
            mem,
            vec![(layout::RAM_BASE, size)],
            layout::PASSTHROUGH_MMIO_BASE,
        )
    };
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
    let boot = *regions
        .iter()
        .max_by_key(|r| r.1)
        .expect("at least one region");
    Ok(Ram {
        mem,
        regions,
        boot,
        window,
    })
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
        Some(GuestAddress(p.plan.kernel_load - p.header.text_offset)),
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
    // The most vCPUs any vGIC we may get can address, checked before creating any of them.
    layout::check_cpus(p.cfg.cpus, crate::arch::aarch64::GicVersion::V3)?;
    let vm = kvm.create_vm().map_err(kvm_err("cannot create a VM"))?;
    let ram = create_memory(&vm, p.cfg.mem_size, p.cfg.identity_ram)?;
    if ram.boot.0 != layout::RAM_BASE || ram.boot.1 != p.cfg.mem_size {
        p.plan = crate::arch::aarch64::image::plan(
            ram.boot.0,
            ram.boot.1,
            &p.header,
            p.kernel_size,
            p.initramfs.as_ref().map(|i| i.1),
        )?;
    }
    let mem = &ram.mem;
    load_images(&mut p, mem)?;

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

    // Passthrough after the vGIC is initialised (its IRQs become irqfds); RAM is slot 0.
    let ram_map = ram_regions(mem);
    let mut pt: Passthrough = passthrough::setup(
        &vm,
        &ram_map,
        &mut bus,
        &p.cfg.vfio,
        ram_map.len() as u32,
        ram.window,
        p.cfg.identity_ram,
    )?;
    let clock = FixedClock {
        name: "apb-pclk",
        phandle: AMBA_CLOCK_PHANDLE,
        hz: 24_000_000,
    };
    let overlays = p
        .cfg
        .dt_overlays
        .iter()
        .map(|o| passthrough::read_overlay(o))
        .collect::<Result<Vec<_>, _>>()?;
    // The SEC controller: emulated page on the bus, node written by crate::sec.
    let rings: Vec<crate::sec::JobRing> = pt
        .devices
        .iter()
        .filter_map(|d| d.sec_ring.clone())
        .collect();
    let sec_node = if p.cfg.sec_controller || !rings.is_empty() {
        let ctrl = devices::caam::CaamController::new();
        bus.insert(
            crate::sec::SEC_CTRL_BASE,
            devices::caam::CAAM_WINDOW,
            Arc::new(Mutex::new(ctrl)),
        )?;
        Some(crate::sec::controller_node(&rings, pt.sec_block))
    } else {
        None
    };
    let mut raw_nodes: Vec<RawNode> = pt
        .devices
        .iter()
        .filter(|d| d.sec_ring.is_none())
        .map(|d| RawNode(&d.node))
        .collect();
    raw_nodes.extend(sec_node.iter().map(RawNode));
    // The children of each overlay's root become root nodes of the guest tree.
    raw_nodes.extend(overlays.iter().flat_map(|o| o.children.iter().map(RawNode)));
    let mut dev_nodes: Vec<&dyn DeviceNode> = Vec::new();
    if pt.needs_fixed_clock() {
        dev_nodes.push(&clock);
    }
    dev_nodes.extend(raw_nodes.iter().map(|n| n as &dyn DeviceNode));

    let dtb = fdt::create_fdt(&FdtConfig {
        mpidrs: &mpidrs,
        gic: gic.version,
        memory: &ram.regions,
        cmdline: &p.cfg.cmdline,
        initrd: p.plan.initrd,
        devices: &dev_nodes,
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
    let exits = Arc::new(ExitCounters::default());
    let stats = Arc::new(StatsSources {
        exits: exits.clone(),
        devices: pt
            .devices
            .iter()
            .map(|d| (d.dev.host.name.clone(), d.counters.clone()))
            .collect(),
    });
    // Before any vCPU thread exists, so they inherit the blocked mask.
    let sigfd = signal_fd().map_err(host_err("cannot set up signal handling"))?;
    em.add_subscriber(Arc::new(Mutex::new(SignalWatcher {
        fd: sigfd,
        exit: exit.clone(),
        stats: stats.clone(),
    })));
    let stdin = dup_file(std::io::stdin().as_fd(), "cannot duplicate stdin")?;
    let _raw = RawTerminal::enter(stdin.as_raw_fd());
    em.add_subscriber(Arc::new(Mutex::new(SerialInput::new(stdin, room, console))));

    let bus = Arc::new(bus);
    for (id, vcpu) in vcpus.into_iter().enumerate() {
        let (bus, exit, exits) = (bus.clone(), exit.clone(), exits.clone());
        std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || vcpu::run(vcpu, id, bus, exit, exits))
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
    pt.release();
    if p.cfg.stats {
        stats.print();
    }
    // `mem`, `vm` and the vCPU fds stay alive until the process exits: vCPU threads may still
    // be inside KVM_RUN and must never see their memory unmapped.
    std::mem::forget(ram);
    std::mem::forget(vm);
    std::mem::forget(pt);
    Ok(outcome)
}
