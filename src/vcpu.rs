//! The vCPU run loop: one thread per vCPU, KVM_RUN until the guest stops.
//!
//! MMIO exits go to the [`Bus`]; accesses no device claims read as zero and are logged
//! (rate-limited). PSCI SYSTEM_OFF/RESET arrive as system events and end the VM.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use devices::Bus;
use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};
use log::{error, warn};
use vmm_sys_util::eventfd::EventFd;

use crate::vmm::GuestExit;

/// Where vCPU threads report how the guest ended; the main loop watches `evt`.
pub struct ExitSignal {
    pub evt: EventFd,
    outcome: Mutex<Option<GuestExit>>,
}

impl ExitSignal {
    pub fn new(evt: EventFd) -> Self {
        Self {
            evt,
            outcome: Mutex::new(None),
        }
    }

    /// Records the first outcome and wakes the main loop.
    pub fn set(&self, e: GuestExit) {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        o.get_or_insert(e);
        drop(o);
        if let Err(err) = self.evt.write(1) {
            error!("cannot signal VM exit: {err}");
        }
    }

    pub fn get(&self) -> Option<GuestExit> {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// VM exits by reason, summed over vCPUs.
#[derive(Debug, Default)]
pub struct ExitCounters {
    pub mmio_read: AtomicU64,
    pub mmio_write: AtomicU64,
    /// MMIO exits to the console UART (part of mmio_read/mmio_write): the guest's printing,
    /// kept apart so the other exits can be reasoned about.
    pub mmio_console: AtomicU64,
    pub mmio_unclaimed: AtomicU64,
    pub system_event: AtomicU64,
    pub interrupted: AtomicU64,
    pub other: AtomicU64,
}

impl ExitCounters {
    pub fn snapshot(&self) -> [(&'static str, u64); 7] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("mmio_read", g(&self.mmio_read)),
            ("mmio_write", g(&self.mmio_write)),
            ("mmio_console", g(&self.mmio_console)),
            ("mmio_unclaimed", g(&self.mmio_unclaimed)),
            ("system_event", g(&self.system_event)),
            ("interrupted", g(&self.interrupted)),
            ("other", g(&self.other)),
        ]
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn is_console(addr: u64) -> bool {
    use crate::arch::aarch64::layout::{UART_BASE, UART_SIZE};
    (UART_BASE..UART_BASE + UART_SIZE).contains(&addr)
}

/// Unclaimed MMIO accesses logged so far (the first few are logged, the rest counted).
static UNCLAIMED: AtomicU64 = AtomicU64::new(0);
const UNCLAIMED_LOG_LIMIT: u64 = 10;

fn unclaimed(kind: &str, addr: u64, len: usize) {
    let n = UNCLAIMED.fetch_add(1, Ordering::Relaxed);
    if n < UNCLAIMED_LOG_LIMIT {
        warn!("guest {kind} of {len} bytes at {addr:#x}: no device there (reads as 0)");
    } else if n == UNCLAIMED_LOG_LIMIT {
        warn!("more unclaimed MMIO accesses: no longer logging them");
    }
}

/// Runs `vcpu` until the guest stops, then reports through `exit`.
pub fn run(
    mut vcpu: VcpuFd,
    id: usize,
    bus: Arc<Bus>,
    exit: Arc<ExitSignal>,
    stats: Arc<ExitCounters>,
) {
    let outcome = loop {
        match vcpu.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => {
                bump(&stats.mmio_read);
                if is_console(addr) {
                    bump(&stats.mmio_console);
                }
                if !bus.read(addr, data) {
                    bump(&stats.mmio_unclaimed);
                    data.fill(0);
                    unclaimed("read", addr, data.len());
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                bump(&stats.mmio_write);
                if is_console(addr) {
                    bump(&stats.mmio_console);
                }
                if !bus.write(addr, data) {
                    bump(&stats.mmio_unclaimed);
                    unclaimed("write", addr, data.len());
                }
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                bump(&stats.system_event);
                match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => break GuestExit::PowerOff,
                    KVM_SYSTEM_EVENT_RESET => break GuestExit::Reset,
                    KVM_SYSTEM_EVENT_CRASH => break GuestExit::Crash,
                    other => {
                        error!("vcpu{id}: unknown system event {other}");
                        break GuestExit::Crash;
                    }
                }
            }
            Ok(other) => {
                bump(&stats.other);
                error!("vcpu{id}: unexpected exit {other:?}");
                break GuestExit::Crash;
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                bump(&stats.interrupted)
            }
            Err(e) => {
                error!("vcpu{id}: KVM_RUN failed: {e}");
                break GuestExit::Crash;
            }
        }
    };
    exit.set(outcome);
}
