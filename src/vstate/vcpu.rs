//! vCPU threads: one per vCPU, `KVM_RUN` until the guest stops or platvmm stops the thread.
//!
//! Each exit becomes a [`VmExit`] for [`handle_exit`] (MMIO to the [`Bus`], PSCI
//! SYSTEM_OFF/RESET as system events that end the VM). Console transmit bytes queued in KVM's
//! coalesced-MMIO ring are handed to the UART before any exit is handled, so no byte is
//! reordered against the guest's other accesses.
//!
//! Stopping: [`stop_all`] sets each thread's stop flag and kicks it with [`KICK_SIGNAL`],
//! whose handler sets `immediate_exit` in the thread's own `kvm_run`, so `KVM_RUN` returns
//! `EINTR` at once even if the signal landed just before the thread entered it; the thread
//! sees the flag and returns; [`stop_all`] joins it.
//!
//! Pausing (the API's `vm.pause`): the [`PauseGate`](super::pause::PauseGate) is shut and
//! every thread kicked ([`kicker`]); each parks at the gate at the top of its loop, outside
//! `KVM_RUN`, until the gate opens (resume) or closes (teardown, before [`stop_all`]).

use std::cell::Cell;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use devices::Bus;
use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use log::{error, warn};

use super::exit::{ExitSignal, GuestExit, RebootBy};
use super::handle::{handle_exit, SmcDoorbell, VcpuConsole, VmExit};
use crate::sandbox::seccomp::{Filters, ThreadKind};
use crate::stats::Startup;
use crate::stats::{bump, ExitCounters};

/// What every vCPU thread shares.
pub struct VcpuContext {
    pub bus: Arc<Bus>,
    pub exit: Arc<ExitSignal>,
    pub counters: Arc<ExitCounters>,
    /// The console, whose coalesced transmit bytes are drained before each exit.
    pub console: Arc<dyn VcpuConsole>,
    pub startup: Arc<Startup>,
    /// The sandbox each vCPU thread installs on itself before its first `KVM_RUN`.
    pub seccomp: Arc<Filters>,
    /// The SMCCC functions KVM forwards, each ringing a doorbell on the bus.
    pub smc: Vec<SmcDoorbell>,
    /// The host CPUs and real-time policy each vCPU thread gives itself before anything else.
    pub placement: crate::config::CpuPlacement,
    /// Passed before every `KVM_RUN`: shut while the VM is paused or rebooting in place.
    pub gate: Arc<super::pause::PauseGate>,
    /// How each vCPU re-initialises itself after a reboot in place.
    pub reset: VcpuReset,
    /// `--on-reboot restart`: a PSCI SYSTEM_RESET reboots in place (else it ends the VM).
    pub restart_on_reset: bool,
}

/// What a vCPU needs to start over after a reboot in place: its KVM init (PSCI 0.2;
/// secondaries powered off until the guest's CPU_ON) and, for vCPU 0, the boot registers.
#[derive(Debug, Clone, Copy)]
pub struct VcpuReset {
    pub init: kvm_bindings::kvm_vcpu_init,
    pub kernel_load: u64,
    pub dtb: u64,
}

impl VcpuReset {
    /// Re-initialises `vcpu` (`id`) as at creation: registers reset, vCPU 0 at the kernel's
    /// entry with the DTB in x0, the others powered off.
    fn apply(&self, vcpu: &VcpuFd, id: usize) -> Result<(), kvm_ioctls::Error> {
        let mut init = self.init;
        if id > 0 {
            init.features[0] |= 1 << kvm_bindings::KVM_ARM_VCPU_POWER_OFF;
        }
        vcpu.vcpu_init(&init)?;
        if id == 0 {
            crate::arch::aarch64::regs::set_boot_regs(vcpu, self.kernel_load, self.dtb)?;
        }
        Ok(())
    }
}

/// A running vCPU thread.
pub struct VcpuHandle {
    id: usize,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The signal that kicks a vCPU thread out of `KVM_RUN` (not blocked in vCPU threads).
pub fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

thread_local! {
    /// This thread's `kvm_run`, for the kick handler (null outside vCPU threads).
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_signo: libc::c_int) {
    KVM_RUN.with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY: `run` is this thread's kvm_run mapping, set by the thread itself before
            // its first KVM_RUN and cleared before the VcpuFd (and the mapping) is dropped; a
            // byte store is async-signal-safe.
            unsafe { std::ptr::write_volatile(&mut (*run).immediate_exit, 1) };
        }
    });
}

/// Installs the kick handler (once per process, before any vCPU thread starts).
pub fn install_kick_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value, filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
    // No SA_RESTART: KVM_RUN must return EINTR.
    sa.sa_flags = 0;
    // SAFETY: `sa` is initialised; on_kick only does an async-signal-safe store.
    let r = unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(kick_signal(), &sa, std::ptr::null_mut())
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Starts vCPU `id` on its own thread.
pub fn spawn(vcpu: VcpuFd, id: usize, ctx: Arc<VcpuContext>) -> std::io::Result<VcpuHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("vcpu{id}"))
        .stack_size(devices::THREAD_STACK)
        .spawn(move || thread_main(vcpu, id, &ctx, &flag))?;
    Ok(VcpuHandle { id, stop, thread })
}

impl VcpuHandle {
    fn kick(&self) {
        kick_thread(self.id, self.thread.as_pthread_t());
    }
}

/// Sends vCPU thread `id` the kick signal; `thread` must not be joined yet.
fn kick_thread(id: usize, thread: libc::pthread_t) {
    // SAFETY: the caller's thread is not joined yet, so its pthread_t is valid.
    let r = unsafe { libc::pthread_kill(thread, kick_signal()) };
    if r != 0 && r != libc::ESRCH {
        warn!("vcpu{id}: cannot kick: errno {r}");
    }
}

/// A function that kicks every thread of `handles` out of `KVM_RUN` (pausing: each then parks
/// at its gate). Valid until the threads are joined, which only teardown does, on the thread
/// that runs the API server too.
pub fn kicker(handles: &[VcpuHandle]) -> impl Fn() + Send {
    let threads: Vec<(usize, libc::pthread_t)> = handles
        .iter()
        .map(|h| (h.id, h.thread.as_pthread_t()))
        .collect();
    move || threads.iter().for_each(|(id, t)| kick_thread(*id, *t))
}

/// Stops every vCPU thread and joins it: none is inside `KVM_RUN` when this returns.
pub fn stop_all(handles: Vec<VcpuHandle>) {
    for h in &handles {
        h.stop.store(true, Ordering::SeqCst);
        h.kick();
    }
    for h in handles {
        // immediate_exit makes one kick enough; kick again anyway while waiting.
        while !h.thread.is_finished() {
            std::thread::sleep(Duration::from_millis(2));
            h.kick();
        }
        if h.thread.join().is_err() {
            error!("vcpu{}: thread panicked", h.id);
        }
    }
}

fn thread_main(mut vcpu: VcpuFd, id: usize, ctx: &VcpuContext, stop: &AtomicBool) {
    if let Err(e) = super::placement::apply_vcpu(&ctx.placement, id) {
        eprintln!("platvmm: error: vcpu{id}: {e}");
        ctx.exit.set(GuestExit::Crash);
        return;
    }
    if let Err(e) = ctx.seccomp.apply(ThreadKind::Vcpu) {
        eprintln!("platvmm: error: vcpu{id}: {e}");
        ctx.exit.set(GuestExit::Crash);
        return;
    }
    unblock_kick_signal();
    KVM_RUN.with(|p| p.set(vcpu.get_kvm_run() as *mut kvm_run));
    let outcome = run_loop(&mut vcpu, id, ctx, stop);
    KVM_RUN.with(|p| p.set(std::ptr::null_mut()));
    if let Some(o) = outcome {
        ctx.exit.set(o);
    }
}

fn unblock_kick_signal() {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs until the guest stops (its outcome) or the thread is told to stop (`None`).
fn run_loop(
    vcpu: &mut VcpuFd,
    id: usize,
    ctx: &VcpuContext,
    stop: &AtomicBool,
) -> Option<GuestExit> {
    if id == 0 {
        ctx.startup.first_kvm_run();
    }
    let mut epoch = ctx.gate.epoch();
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        // Paused: parked here, outside KVM_RUN, until resumed (or torn down).
        if ctx.gate.pass() {
            continue;
        }
        // The VM rebooted in place while this thread was parked: start over.
        if ctx.gate.epoch() != epoch {
            epoch = ctx.gate.epoch();
            if let Err(e) = ctx.reset.apply(vcpu, id) {
                error!("vcpu{id}: cannot re-initialise after the reboot: {e}");
                return Some(GuestExit::Crash);
            }
        }
        let r = vcpu.run();
        // Coalesced console bytes were written before this exit: hand them over first.
        ctx.console.drain(&ctx.counters);
        // A forwarded SMCCC call: its result goes into x0, which needs the vCPU back.
        if let Ok(VcpuExit::Hypercall(h)) = &r {
            let function = h.nr;
            if let Some(o) = smccc(vcpu, id, ctx, function) {
                return Some(o);
            }
            continue;
        }
        match r {
            Ok(exit) => {
                let exit = VmExit::from(exit);
                match handle_exit(exit, id, &ctx.bus, &ctx.counters, &*ctx.console, &ctx.smc) {
                    // Rebooted in place by the main thread: this thread parks at the gate.
                    Some(GuestExit::Reset)
                        if ctx.restart_on_reset && ctx.gate.shut_for_reboot().is_ok() =>
                    {
                        ctx.exit.request_reboot(RebootBy::Guest);
                    }
                    Some(o) => return Some(o),
                    None => {}
                }
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                bump(&ctx.counters.interrupted);
                vcpu.set_kvm_immediate_exit(0);
            }
            Err(e) => {
                error!("vcpu{id}: KVM_RUN failed: {e}");
                return Some(GuestExit::Crash);
            }
        }
    }
}

/// Serves forwarded SMCCC call `function` and puts its result in x0; `Some` on failure.
fn smccc(vcpu: &mut VcpuFd, id: usize, ctx: &VcpuContext, function: u64) -> Option<GuestExit> {
    let mut x0 = 0;
    let exit = VmExit::Smccc {
        function,
        x0: &mut x0,
    };
    let c = &*ctx.console;
    if let Some(o) = handle_exit(exit, id, &ctx.bus, &ctx.counters, c, &ctx.smc) {
        return Some(o);
    }
    if let Err(e) = crate::arch::aarch64::regs::set_x0(vcpu, x0) {
        error!("vcpu{id}: cannot return the SMCCC result: {e}");
        return Some(GuestExit::Crash);
    }
    None
}

impl<'a> From<VcpuExit<'a>> for VmExit<'a> {
    fn from(exit: VcpuExit<'a>) -> Self {
        match exit {
            VcpuExit::MmioRead(addr, data) => VmExit::MmioRead { addr, data },
            VcpuExit::MmioWrite(addr, data) => VmExit::MmioWrite { addr, data },
            VcpuExit::SystemEvent(kind, _) => VmExit::SystemEvent { kind },
            other => VmExit::Unexpected(format!("{other:?}")),
        }
    }
}
