//! Builds the VM on an aarch64 KVM host and runs it, one function per step.
//!
//! Setup order (each step depends on the previous): KVM → VM → guest RAM + memslots (device
//! manager) → kernel and initramfs loaded → vCPUs created and initialised (PSCI 0.2;
//! secondaries powered off) → vGIC created and initialised → boot registers → console UART
//! (irqfd, coalesced transmit) → passthrough devices (VFIO, plan, memslots, trapped ranges,
//! irqfds) → device tree written to RAM → event loop → vCPU threads.
//!
//! Teardown order, on every way out (power-off, reset, crash, SIGTERM/SIGINT/SIGHUP): vCPU
//! threads kicked out of KVM_RUN and joined → queued console bytes written → VFIO interrupts
//! disabled, DMA unmapped, device mappings and fds closed → guest memory released → vGIC and
//! VM fds closed.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex};

use devices::coalesced::CoalescedRing;
use devices::serial::SerialInput;
use kvm_bindings::{kvm_vcpu_init, KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VcpuFd, VmFd};
use linux_loader::loader::pe::PE;
use linux_loader::loader::KernelLoader;
use log::{debug, info, warn};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::api::server::ApiServer;
use crate::arch::aarch64::fdt::{self, FdtConfig};
use crate::arch::aarch64::layout;
use crate::arch::aarch64::{gic, regs};
use crate::config::CpuPlacement;
use crate::config::OnReboot;
use crate::host::terminal::RawTerminal;
use crate::hypervisor::kvm_err;
use crate::passthrough::attach::AttachOptions;
use crate::resources::page_size;
use crate::sandbox::seccomp::{Filters, ThreadKind};
use crate::stats::{ExitCounters, Startup, StatsSources};
use crate::vm::console::CountedOutput;
use crate::vm::control::Control;
use crate::vm::device_manager::DeviceManager;
use crate::vm::error::{host_err, Error};
use crate::vm::event_loop::{EventLoop, GracefulStop, Wake};
use crate::vm::power_button::PowerButton;
use crate::vm::prepare::Prepared;
use crate::vm::reboot::{RebootGuard, Refusal};
use crate::vstate::exit::{ExitSignal, GuestExit, RebootBy};
use crate::vstate::placement;
use crate::vstate::vcpu::{self, VcpuContext, VcpuHandle, VcpuReset};

/// Builds and runs the VM described by `p`.
pub fn run(mut p: Prepared) -> Result<GuestExit, Error> {
    let startup = Arc::new(Startup::new());
    startup.step("prepare");
    let (vm, coalesced_page) = create_vm(p.cfg.cpus)?;
    startup.step("kvm");
    let mut dm = DeviceManager::new(&vm, p.cfg.mem_size, p.cfg.identity_ram, page_size())?;
    startup.step("memory");
    load_images(&mut p, &dm)?;
    startup.step("images");
    let (vcpus, mpidrs, kvi) = create_vcpus(&vm, p.cfg.cpus)?;
    let gic = gic::create(&vm, p.cfg.cpus)?;
    info!("vGIC {:?}, {} vCPUs", gic.version, p.cfg.cpus);
    regs::set_boot_regs(&vcpus[0], p.plan.kernel_load, p.plan.dtb)
        .map_err(kvm_err("cannot set boot registers"))?;
    startup.step("vcpus+vgic");
    let out = dup_file(std::io::stdout().as_fd(), "cannot duplicate stdout")?;
    let (out, console_bytes) = CountedOutput::new(out);
    let ring = coalesce_console(coalesced_page, &vm, &vcpus[0]);
    let (console, room) = dm.attach_console(&vm, Box::new(out), ring)?;
    let button = attach_devices(&mut p, &vm, &mut dm, &startup)?;
    let dtb = write_dtb(&p, &dm, &mpidrs, gic.version)?;
    startup.step("dtb");

    let exit = Arc::new(ExitSignal::new(
        vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?,
    ));
    let exits = Arc::new(ExitCounters::default());
    let stats = stats_sources(&mut dm, &exits, &startup);
    let mut el = event_loop(&p.cfg, &exit, &stats, &console, &button)?;
    let _raw = attach_stdin(&mut el, room, &console)?;
    let seccomp = enter_sandbox(&p.cfg, &exit)?;
    start_worker(&mut dm, &seccomp, &p.cfg.placement)?;
    startup.step("sandbox");
    let ctx = Arc::new(VcpuContext {
        bus: dm.share_bus(),
        exit,
        counters: exits.clone(),
        console,
        startup,
        seccomp: seccomp.clone(),
        smc: dm.smc_doorbells(),
        placement: p.cfg.placement.clone(),
        gate: Arc::default(),
        reset: VcpuReset {
            init: kvi,
            kernel_load: p.plan.kernel_load,
            dtb: p.plan.dtb,
        },
        restart_on_reset: p.cfg.on_reboot == OnReboot::Restart,
    });
    let handles = start_vcpus(vcpus, &ctx)?;
    if let Some(listener) = p.api.take() {
        let vm = RunningVm {
            stats: &stats,
            ctx: &ctx,
            handles: &handles,
            button: &button,
        };
        serve_api(listener, &p.cfg, &mut el, &dm, vm);
    }
    if let Err(e) = confine_main(&p.cfg, &seccomp) {
        teardown(handles, ctx, dm, &exits);
        return Err(e);
    }
    let (dtb, console_bytes) = (&dtb, &console_bytes);
    let boot = Boot { dtb, console_bytes };
    let outcome = run_guest(&mut el, &mut p, &dm, &ctx, &handles, boot);
    info!("guest ended: {outcome:?}");
    teardown(handles, ctx, dm, &exits);
    let outcome = final_outcome(
        outcome,
        console_bytes.load(std::sync::atomic::Ordering::Relaxed),
    );
    drop(gic);
    drop(vm);
    if p.cfg.stats {
        stats.print();
    }
    Ok(outcome)
}

/// Every counter the stats printer and the API's `vm.stats` read.
fn stats_sources(
    dm: &mut DeviceManager,
    exits: &Arc<ExitCounters>,
    startup: &Arc<Startup>,
) -> Arc<StatsSources> {
    Arc::new(StatsSources {
        exits: exits.clone(),
        devices: dm.device_counters(),
        virtio: dm.take_virtio_stats(),
        scmi: dm.scmi_counters(),
        startup: startup.clone(),
    })
}

/// The main thread's loop, SIGTERM pressing `button` for up to `--shutdown-timeout`.
fn event_loop(
    cfg: &crate::config::VmConfig,
    exit: &Arc<ExitSignal>,
    stats: &Arc<StatsSources>,
    console: &Arc<crate::vm::console::Console>,
    button: &Arc<PowerButton>,
) -> Result<EventLoop, Error> {
    let graceful = GracefulStop {
        button: button.clone(),
        timeout: cfg.shutdown_timeout,
    };
    EventLoop::new(
        exit.clone(),
        stats.clone(),
        console.clone(),
        cfg.test_denied_syscall,
        Some(graceful),
    )
}

/// What the API acts on once the vCPUs run.
struct RunningVm<'a> {
    stats: &'a Arc<StatsSources>,
    ctx: &'a VcpuContext,
    handles: &'a [VcpuHandle],
    button: &'a Arc<PowerButton>,
}

/// The API socket (`--api-socket`, bound by prepare) served on the event loop, acting on the
/// running VM: its exit signal, stats, the vCPUs' pause gate and their kicker, the power
/// button.
fn serve_api(
    listener: std::os::unix::net::UnixListener,
    cfg: &crate::config::VmConfig,
    el: &mut EventLoop,
    dm: &DeviceManager,
    vm: RunningVm<'_>,
) {
    let control = Control {
        info: dm.vm_info(cfg),
        started: std::time::Instant::now(),
        exit: vm.ctx.exit.clone(),
        stats: vm.stats.clone(),
        gate: vm.ctx.gate.clone(),
        vcpus: vm.handles.len(),
        kick: Box::new(vcpu::kicker(vm.handles)),
        button: Some(vm.button.clone()),
    };
    let path = cfg.api_socket.clone().unwrap_or_default();
    info!("API socket: {}", path.display());
    el.add(Arc::new(Mutex::new(ApiServer::new(
        listener,
        path,
        Box::new(control),
    ))));
}

/// Passthrough devices, then the virtio ones, after the vGIC is initialised: their
/// interrupts become irqfds.
fn attach_devices(
    p: &mut Prepared,
    vm: &VmFd,
    dm: &mut DeviceManager,
    startup: &Startup,
) -> Result<Arc<PowerButton>, Error> {
    let devices = std::mem::take(&mut p.devices);
    let opts = AttachOptions {
        sec_controller: p.cfg.sec_controller,
        identity_ram: p.cfg.identity_ram,
        scmi: p.cfg.scmi,
    };
    dm.attach_passthrough(vm, devices, opts)?;
    startup.step("passthrough");
    dm.attach_virtio(vm, &p.cfg.virtio, std::mem::take(&mut p.disks))?;
    let button = dm.attach_power_button(vm)?;
    startup.step("virtio");
    Ok(button)
}

/// Host stdin → the console UART (raw mode while stdin is a terminal, restored on drop).
/// The event loop reads its own duplicate of stdin; fd 0 itself is pointed at /dev/null, so
/// that duplicate is the one descriptor platvmm keeps on the input side.
fn attach_stdin(
    el: &mut EventLoop,
    room: vmm_sys_util::eventfd::EventFd,
    console: &crate::vm::console::Console,
) -> Result<Option<RawTerminal>, Error> {
    let stdin = dup_file(std::io::stdin().as_fd(), "cannot duplicate stdin")?;
    stdin_to_dev_null()?;
    let raw = RawTerminal::enter(stdin.as_raw_fd());
    el.add(Arc::new(Mutex::new(SerialInput::new(
        stdin,
        room,
        console.uart().clone(),
    ))));
    Ok(raw)
}

/// Points fd 0 at /dev/null: nothing reads it once the console has its duplicate.
fn stdin_to_dev_null() -> Result<(), Error> {
    let null = File::open("/dev/null").map_err(host_err("cannot open /dev/null"))?;
    // SAFETY: dup2 only replaces descriptor 0, which nothing in platvmm uses any more;
    // `null` stays owned here and is closed on return (fd 0 keeps its own reference).
    if unsafe { libc::dup2(null.as_raw_fd(), libc::STDIN_FILENO) } < 0 {
        let e = std::io::Error::last_os_error();
        return Err(host_err("cannot point stdin at /dev/null")(e));
    }
    Ok(())
}

/// Every fd is open: drops privileges (`--user`/`--chroot`; RLIMIT_RTPRIO raised first for a
/// `--cpus policy=`, which the vCPU threads take after the drop), then compiles the per-thread
/// seccomp filters (each thread installs its own as it starts) and points the SIGSYS handler
/// at the exit event.
fn enter_sandbox(cfg: &crate::config::VmConfig, exit: &ExitSignal) -> Result<Arc<Filters>, Error> {
    if cfg.jail.active() {
        placement::keep_policy_after_drop(&cfg.placement)?;
    }
    crate::sandbox::jail::enter(&cfg.jail)?;
    if cfg.jail.active() {
        info!("privileges dropped ({:?})", cfg.jail);
    }
    let seccomp = Arc::new(Filters::build(cfg.seccomp, cfg.api_socket.is_some())?);
    crate::sandbox::seccomp::set_wake_fd(exit.evt.as_raw_fd());
    Ok(seccomp)
}

/// Starts the virtio worker (if there is one), which first pins itself (`--cpus vmm=`), then
/// installs its seccomp filter.
fn start_worker(
    dm: &mut DeviceManager,
    seccomp: &Arc<Filters>,
    cpus: &CpuPlacement,
) -> Result<(), Error> {
    let filters = seccomp.clone();
    let cpus = cpus.clone();
    dm.start_worker(move || {
        placement::apply_vmm(&cpus).map_err(std::io::Error::other)?;
        filters
            .apply(ThreadKind::Worker)
            .map_err(std::io::Error::other)
    })
}

/// The main thread, about to run the event loop, once the vCPU threads and the worker are
/// started (they do not inherit its CPUs): pins itself (`--cpus vmm=`), then installs its
/// seccomp filter.
fn confine_main(cfg: &crate::config::VmConfig, seccomp: &Filters) -> Result<(), Error> {
    placement::apply_vmm(&cfg.placement)?;
    seccomp.apply(ThreadKind::EventLoop)?;
    if seccomp.enabled() {
        info!("seccomp sandbox installed ({:?})", cfg.seccomp);
    }
    Ok(())
}

/// The outcome platvmm reports: a sandbox denial (even one during teardown) wins; a guest
/// that ended before its first console byte gets a note saying how.
fn final_outcome(outcome: GuestExit, console_bytes: u64) -> GuestExit {
    if let Some(nr) = crate::sandbox::seccomp::denied() {
        return GuestExit::SeccompDenied(nr);
    }
    if console_bytes == 0 {
        if let Some(note) = outcome.silent_end_note() {
            eprintln!("platvmm: {note}");
        }
    }
    outcome
}

/// What a reboot in place loads again and how it tells a guest that printed since its boot.
struct Boot<'a> {
    dtb: &'a [u8],
    console_bytes: &'a std::sync::atomic::AtomicU64,
}

/// Runs the event loop until the VM ends, rebooting the guest in place each time it asks
/// (`--on-reboot restart`) unless [`RebootGuard`] refuses.
fn run_guest(
    el: &mut EventLoop,
    p: &mut Prepared,
    dm: &DeviceManager,
    ctx: &VcpuContext,
    handles: &[VcpuHandle],
    boot: Boot<'_>,
) -> GuestExit {
    let kick = vcpu::kicker(handles);
    let mut guard = RebootGuard::default();
    loop {
        match el.run() {
            Wake::Exit(o) => return o,
            Wake::Reboot(by) => {
                let printed = boot
                    .console_bytes
                    .load(std::sync::atomic::Ordering::Relaxed);
                let now = std::time::Instant::now();
                // The host's reboot is done whatever the guard would say of the guest's.
                let allowed = match by {
                    RebootBy::Guest => guard.allow(now, printed),
                    RebootBy::Host => {
                        guard.record(now, printed);
                        Ok(())
                    }
                };
                if let Err(refusal) = allowed {
                    // A silent guest gets final_outcome's note; the loop needs its own line.
                    match refusal {
                        Refusal::Loop => warn!("{}", refusal.message()),
                        Refusal::Silent => info!("{}", refusal.message()),
                    }
                    return GuestExit::Reset;
                }
                match reboot_in_place(p, dm, ctx, &kick, handles.len(), boot.dtb) {
                    Ok(took) => info!(
                        "reboot in place #{}: the guest restarts ({took:?})",
                        guard.done
                    ),
                    Err(e) => {
                        log::error!("{e}: stopping the VM");
                        return GuestExit::Crash;
                    }
                }
            }
        }
    }
}

/// Every vCPU parked, the devices readied for a new boot, RAM zeroed, the kernel, initramfs
/// and `dtb` loaded again, then the vCPUs let go into a new epoch (each re-initialises
/// itself). How long it took. See [`crate::vm::reboot`].
fn reboot_in_place(
    p: &mut Prepared,
    dm: &DeviceManager,
    ctx: &VcpuContext,
    kick: &dyn Fn(),
    vcpus: usize,
    dtb: &[u8],
) -> Result<std::time::Duration, Error> {
    let t0 = std::time::Instant::now();
    let gate = |what: &'static str| move |e| Error::Reboot(format!("{what}: {e:?}"));
    ctx.gate
        .shut_for_reboot()
        .map_err(gate("cannot stop the vCPUs"))?;
    kick();
    ctx.gate
        .wait_parked(vcpus, crate::vm::control::PAUSE_TIMEOUT)
        .map_err(gate("the vCPUs did not stop"))?;
    dm.reboot_devices();
    dm.ram
        .clear()
        .map_err(|e| Error::Reboot(format!("cannot clear guest RAM: {e}")))?;
    load_images(p, dm)?;
    load_dtb(dtb, p, dm)?;
    let held = ctx
        .gate
        .open_rebooted()
        .map_err(gate("cannot restart the vCPUs"))?;
    if held {
        log::info!("rebooted in place; the VM stays paused, as it was before (vm.resume runs it)");
    }
    Ok(t0.elapsed())
}

/// vCPU threads stopped and joined, then the devices and memory released in order.
fn teardown(
    handles: Vec<VcpuHandle>,
    ctx: Arc<VcpuContext>,
    dm: DeviceManager,
    exits: &ExitCounters,
) {
    ctx.gate.close();
    vcpu::stop_all(handles);
    drop(ctx);
    dm.release(exits);
}

/// The VM, and KVM's coalesced-MMIO ring page offset (0: none). `/dev/kvm` is closed on
/// return: nothing after this needs it, and no thread can create another VM through it.
fn create_vm(cpus: u32) -> Result<(VmFd, i32), Error> {
    let kvm = open_kvm(cpus)?;
    let vm = kvm.create_vm().map_err(kvm_err("cannot create a VM"))?;
    Ok((vm, kvm.check_extension_int(Cap::CoalescedMmio)))
}

fn open_kvm(cpus: u32) -> Result<Kvm, Error> {
    let kvm = Kvm::new().map_err(|e| Error::NoKvm(std::io::Error::from_raw_os_error(e.errno())))?;
    let max = kvm.get_max_vcpus() as u32;
    if cpus > max {
        return Err(Error::TooManyCpus {
            requested: cpus,
            max,
        });
    }
    // The most vCPUs any vGIC we may get can address, checked before creating any of them.
    layout::check_cpus(cpus, crate::arch::aarch64::GicVersion::V3)?;
    Ok(kvm)
}

fn start_vcpus(vcpus: Vec<VcpuFd>, ctx: &Arc<VcpuContext>) -> Result<Vec<VcpuHandle>, Error> {
    vcpu::install_kick_handler().map_err(host_err("cannot install the vCPU kick handler"))?;
    let mut handles = Vec::with_capacity(vcpus.len());
    for (id, fd) in vcpus.into_iter().enumerate() {
        match vcpu::spawn(fd, id, ctx.clone()) {
            Ok(h) => handles.push(h),
            Err(e) => {
                vcpu::stop_all(handles);
                return Err(host_err("cannot start a vCPU thread")(e));
            }
        }
    }
    Ok(handles)
}

/// The console's transmit register behind a coalesced-MMIO zone, if KVM has them (`offset`,
/// the ring page's, > 0).
fn coalesce_console(offset: i32, vm: &VmFd, vcpu0: &VcpuFd) -> Option<CoalescedRing> {
    if offset <= 0 {
        info!("KVM has no coalesced MMIO: console output exits per access");
        return None;
    }
    let ring = CoalescedRing::map(vcpu0, page_size() as usize, offset as u64)
        .map_err(|e| warn!("console: cannot map the coalesced MMIO ring: {e}"))
        .ok()?;
    vm.register_coalesced_mmio(IoEventAddress::Mmio(layout::UART_BASE), 1)
        .map_err(|e| warn!("console: cannot register a coalesced MMIO zone: {e}"))
        .ok()?;
    info!("console transmit register coalesced (ring page offset {offset})");
    Some(ring)
}

/// The vCPUs (secondaries powered off), their MPIDRs, and the init they share (vCPU 0's),
/// which a reboot in place applies again.
fn create_vcpus(vm: &VmFd, n: u32) -> Result<(Vec<VcpuFd>, Vec<u64>, kvm_vcpu_init), Error> {
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
    Ok((vcpus, mpidrs, kvi))
}

/// Re-plans the boot images for the RAM range they go into, then loads them.
fn load_images(p: &mut Prepared, dm: &DeviceManager) -> Result<(), Error> {
    let boot = dm.ram.boot;
    if boot.0 != layout::RAM_BASE || boot.1 != p.cfg.mem_size {
        p.plan = crate::arch::aarch64::image::plan(
            boot.0,
            boot.1,
            &p.header,
            p.kernel_size,
            p.initramfs.as_ref().map(|i| i.1),
        )?;
    }
    let mem = &dm.ram.mem;
    load_kernel(p, mem)?;
    if let (Some((file, len)), Some((start, _))) = (p.initramfs.as_mut(), p.plan.initrd) {
        let err = |e: String| Error::Load {
            what: "the initramfs",
            reason: e,
        };
        file.seek(SeekFrom::Start(0))
            .map_err(|e| err(e.to_string()))?;
        mem.read_exact_volatile_from(GuestAddress(start), file, *len as usize)
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

fn load_kernel(p: &mut Prepared, mem: &GuestMemoryMmap) -> Result<(), Error> {
    let err = |reason: String| Error::Load {
        what: "the kernel",
        reason,
    };
    p.kernel
        .seek(SeekFrom::Start(0))
        .map_err(|e| err(e.to_string()))?;
    let res = PE::load(
        mem,
        Some(GuestAddress(p.plan.kernel_load - p.header.text_offset)),
        &mut p.kernel,
        None,
    )
    .map_err(|e| err(e.to_string()))?;
    if res.kernel_load.0 != p.plan.kernel_load {
        return Err(err(format!(
            "loaded at {:#x}, planned {:#x}",
            res.kernel_load.0, p.plan.kernel_load
        )));
    }
    Ok(())
}

/// Builds the DTB, writes it to RAM (and to `--dump-dtb`).
fn write_dtb(
    p: &Prepared,
    dm: &DeviceManager,
    mpidrs: &[u64],
    gic: crate::arch::aarch64::GicVersion,
) -> Result<Vec<u8>, Error> {
    let nodes = dm.guest_nodes(&p.dt_overlays);
    let dtb = fdt::create_fdt(&FdtConfig {
        mpidrs,
        gic,
        memory: &dm.ram.ranges,
        cmdline: &p.cfg.cmdline,
        initrd: p.plan.initrd,
        nodes: &nodes,
        aliases: &dm.passthrough_aliases(),
    })?;
    if let Some(path) = &p.cfg.dump_dtb {
        std::fs::write(path, &dtb).map_err(|source| Error::DumpDtb {
            path: path.clone(),
            source,
        })?;
    }
    load_dtb(&dtb, p, dm)?;
    debug!("boot plan {:x?}", p.plan);
    Ok(dtb)
}

/// The device tree blob into guest RAM at the boot plan's address.
fn load_dtb(dtb: &[u8], p: &Prepared, dm: &DeviceManager) -> Result<(), Error> {
    dm.ram
        .mem
        .write_slice(dtb, GuestAddress(p.plan.dtb))
        .map_err(|e| Error::Load {
            what: "the device tree",
            reason: e.to_string(),
        })
}

/// A host fd duplicated into a `File` (unbuffered: console bytes go out as they come).
fn dup_file(fd: std::os::fd::BorrowedFd<'_>, what: &'static str) -> Result<File, Error> {
    Ok(File::from(fd.try_clone_to_owned().map_err(host_err(what))?))
}
