//! What one vCPU exit does: MMIO to the [`Bus`], counted; PSCI system events mapped to how
//! the guest ended. A pure function of the exit, the bus, the counters and the console's
//! register range, with no KVM in it, so it compiles and is tested on every host; the vCPU
//! thread (`vstate::vcpu`, aarch64) turns each `kvm_ioctls::VcpuExit` into a [`VmExit`] and
//! calls [`handle_exit`].
//!
//! Accesses no device claims read as zero and are logged (rate-limited).

use std::sync::atomic::{AtomicU64, Ordering};

use devices::Bus;
use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use log::{error, warn};

use super::exit::GuestExit;
use crate::stats::{bump, ExitCounters};

/// One vCPU exit, as exit handling needs it (no `VcpuFd` behind it).
#[derive(Debug)]
pub enum VmExit<'a> {
    /// A guest read at `addr`: `data` (its width) is filled with what the guest reads.
    MmioRead { addr: u64, data: &'a mut [u8] },
    /// A guest write of `data` at `addr`.
    MmioWrite { addr: u64, data: &'a [u8] },
    /// A system event (`KVM_SYSTEM_EVENT_*`): PSCI SYSTEM_OFF, SYSTEM_RESET, a crash report.
    SystemEvent { kind: u32 },
    /// An SMCCC call KVM's filter forwarded (`KVM_EXIT_HYPERCALL`): `function` is the
    /// guest's x0; `x0` receives the result to put back in it.
    Smccc { function: u64, x0: &'a mut u64 },
    /// Any other exit: platvmm cannot continue from it. The text says which (for the log).
    Unexpected(String),
}

/// SMCCC's result for a function it does not know (-1).
pub const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;

/// An SMCCC function ID that rings a doorbell: KVM forwards the guest's call, and the exit
/// writes 1 (32 bits) at `addr` on the bus, then returns SMCCC success (0) in x0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmcDoorbell {
    pub function: u32,
    pub addr: u64,
}

/// The console UART as exit handling sees it: which guest addresses are its registers (its
/// accesses are counted apart, as `mmio_console`).
pub trait ConsoleRange {
    /// Whether `addr` is a console register.
    fn contains(&self, addr: u64) -> bool;
}

/// The console as a vCPU thread sees it (`vm::console::Console`): its registers, and the
/// transmit bytes queued in KVM's coalesced-MMIO ring, which the thread hands to the UART
/// before it handles an exit (they were written before it).
pub trait VcpuConsole: ConsoleRange + Send + Sync {
    /// Hands queued transmit bytes to the UART, in order, counting them.
    fn drain(&self, counters: &ExitCounters);
}

/// Handles one exit of vCPU `id` (`smc`: the SMCCC functions that ring doorbells); `Some`
/// when the guest has stopped.
pub fn handle_exit<C: ConsoleRange + ?Sized>(
    exit: VmExit<'_>,
    id: usize,
    bus: &Bus,
    counters: &ExitCounters,
    console: &C,
    smc: &[SmcDoorbell],
) -> Option<GuestExit> {
    let c = counters;
    match exit {
        VmExit::MmioRead { addr, data } => {
            count_mmio(c, &c.mmio_read, addr, console);
            if !bus.read(addr, data) {
                bump(&c.mmio_unclaimed);
                data.fill(0);
                unclaimed("read", addr, data.len());
            }
            None
        }
        VmExit::MmioWrite { addr, data } => {
            count_mmio(c, &c.mmio_write, addr, console);
            if !bus.write(addr, data) {
                bump(&c.mmio_unclaimed);
                unclaimed("write", addr, data.len());
            }
            None
        }
        VmExit::SystemEvent { kind } => {
            bump(&c.system_event);
            Some(match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => GuestExit::PowerOff,
                KVM_SYSTEM_EVENT_RESET => GuestExit::Reset,
                KVM_SYSTEM_EVENT_CRASH => GuestExit::Crash,
                other => {
                    error!("vcpu{id}: unknown system event {other}");
                    GuestExit::Crash
                }
            })
        }
        VmExit::Smccc { function, x0 } => {
            bump(&c.smccc);
            *x0 = match smc.iter().find(|d| u64::from(d.function) == function) {
                Some(d) if bus.write(d.addr, &1u32.to_le_bytes()) => 0,
                _ => {
                    warn!("vcpu{id}: SMCCC function {function:#x} has no doorbell: NOT_SUPPORTED");
                    SMCCC_NOT_SUPPORTED
                }
            };
            None
        }
        VmExit::Unexpected(what) => {
            bump(&c.other);
            error!("vcpu{id}: unexpected exit {what}");
            Some(GuestExit::Crash)
        }
    }
}

fn count_mmio<C: ConsoleRange + ?Sized>(
    c: &ExitCounters,
    kind: &AtomicU64,
    addr: u64,
    console: &C,
) {
    bump(kind);
    if console.contains(addr) {
        bump(&c.mmio_console);
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use devices::MmioDevice;

    use super::*;

    /// Where the test device sits, and the console double's range.
    const DEV: u64 = 0x1000;
    const DEV_LEN: u64 = 0x100;
    const UART: u64 = 0x9000;
    const UART_LEN: u64 = 8;

    /// Reads return `0xa0 + offset` in each byte; writes are recorded.
    #[derive(Default)]
    struct Probe {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl MmioDevice for Probe {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(0xa0 + offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    /// The console double: registers at `UART..UART + UART_LEN`.
    struct FakeConsole;

    impl ConsoleRange for FakeConsole {
        fn contains(&self, addr: u64) -> bool {
            (UART..UART + UART_LEN).contains(&addr)
        }
    }

    /// A bus with the probe at `DEV` and another one on the console's registers.
    fn rig() -> (Bus, Arc<Mutex<Probe>>, ExitCounters) {
        let probe = Arc::new(Mutex::new(Probe::default()));
        let mut bus = Bus::new();
        bus.insert(DEV, DEV_LEN, probe.clone()).unwrap();
        let uart = Arc::new(Mutex::new(Probe::default()));
        bus.insert(UART, UART_LEN, uart).unwrap();
        (bus, probe, ExitCounters::default())
    }

    fn handle(bus: &Bus, c: &ExitCounters, exit: VmExit<'_>) -> Option<GuestExit> {
        handle_exit(exit, 0, bus, c, &FakeConsole, &[])
    }

    /// The counters that are not zero, by name: any other counter bumped fails the compare.
    fn bumped(c: &ExitCounters) -> Vec<(&'static str, u64)> {
        c.snapshot().into_iter().filter(|&(_, n)| n != 0).collect()
    }

    #[test]
    fn a_claimed_read_returns_the_device_data_and_counts_mmio_read() {
        let (bus, _, c) = rig();
        let mut data = [0x55u8; 4];
        let addr = DEV + 0x10;
        let r = handle(
            &bus,
            &c,
            VmExit::MmioRead {
                addr,
                data: &mut data,
            },
        );
        assert_eq!(r, None);
        assert_eq!(data, [0xb0; 4], "the device's bytes at offset 0x10");
        assert_eq!(bumped(&c), [("mmio_read", 1)]);
    }

    #[test]
    fn an_unclaimed_read_reads_as_zeros_and_counts_mmio_unclaimed() {
        let (bus, _, c) = rig();
        let mut data = [0x55u8; 8];
        let addr = DEV + DEV_LEN;
        let r = handle(
            &bus,
            &c,
            VmExit::MmioRead {
                addr,
                data: &mut data,
            },
        );
        assert_eq!(r, None);
        assert_eq!(data, [0; 8]);
        assert_eq!(bumped(&c), [("mmio_read", 1), ("mmio_unclaimed", 1)]);
    }

    #[test]
    fn a_forwarded_smc_rings_its_doorbell_and_returns_success() {
        let (bus, probe, c) = rig();
        let smc = [SmcDoorbell {
            function: 0x8200_0010,
            addr: DEV + 0x20,
        }];
        let mut x0 = 7;
        let exit = VmExit::Smccc {
            function: 0x8200_0010,
            x0: &mut x0,
        };
        assert_eq!(handle_exit(exit, 0, &bus, &c, &FakeConsole, &smc), None);
        assert_eq!(x0, 0, "SMCCC success");
        assert_eq!(probe.lock().unwrap().writes, [(0x20, vec![1, 0, 0, 0])]);
        let mut x0 = 7;
        let other = VmExit::Smccc {
            function: 0xc200_0010,
            x0: &mut x0,
        };
        assert_eq!(handle_exit(other, 0, &bus, &c, &FakeConsole, &smc), None);
        assert_eq!(x0, SMCCC_NOT_SUPPORTED, "a function without a doorbell");
        assert_eq!(probe.lock().unwrap().writes.len(), 1, "rang nothing");
        assert_eq!(bumped(&c), [("smccc", 2)]);
    }

    #[test]
    fn a_claimed_write_reaches_the_device() {
        let (bus, probe, c) = rig();
        let r = handle(
            &bus,
            &c,
            VmExit::MmioWrite {
                addr: DEV + 4,
                data: &[1, 2],
            },
        );
        assert_eq!(r, None);
        assert_eq!(probe.lock().unwrap().writes, [(4, vec![1, 2])]);
        assert_eq!(bumped(&c), [("mmio_write", 1)]);
    }

    #[test]
    fn an_unclaimed_write_is_dropped_and_counts_mmio_unclaimed() {
        let (bus, probe, c) = rig();
        let addr = DEV - 4;
        let r = handle(
            &bus,
            &c,
            VmExit::MmioWrite {
                addr,
                data: &[7; 4],
            },
        );
        assert_eq!(r, None);
        assert!(probe.lock().unwrap().writes.is_empty());
        assert_eq!(bumped(&c), [("mmio_write", 1), ("mmio_unclaimed", 1)]);
    }

    #[test]
    fn console_accesses_count_mmio_console_too() {
        let (bus, _, c) = rig();
        let mut data = [0u8; 1];
        let read = VmExit::MmioRead {
            addr: UART + 5,
            data: &mut data,
        };
        assert_eq!(handle(&bus, &c, read), None);
        assert_eq!(data, [0xa5], "the console's register was read");
        let write = VmExit::MmioWrite {
            addr: UART,
            data: b"x",
        };
        assert_eq!(handle(&bus, &c, write), None);
        let beyond = VmExit::MmioWrite {
            addr: UART + UART_LEN,
            data: b"x",
        };
        assert_eq!(handle(&bus, &c, beyond), None);
        assert_eq!(
            bumped(&c),
            [
                ("mmio_read", 1),
                ("mmio_write", 2),
                ("mmio_console", 2),
                ("mmio_unclaimed", 1)
            ]
        );
    }

    #[test]
    fn system_events_map_to_how_the_guest_ended() {
        let (bus, _, c) = rig();
        let ended = |kind| handle(&bus, &c, VmExit::SystemEvent { kind });
        assert_eq!(ended(KVM_SYSTEM_EVENT_SHUTDOWN), Some(GuestExit::PowerOff));
        assert_eq!(ended(KVM_SYSTEM_EVENT_RESET), Some(GuestExit::Reset));
        assert_eq!(ended(KVM_SYSTEM_EVENT_CRASH), Some(GuestExit::Crash));
        assert_eq!(bumped(&c), [("system_event", 3)]);
    }

    #[test]
    fn an_unknown_system_event_is_a_crash() {
        let (bus, _, c) = rig();
        let r = handle(&bus, &c, VmExit::SystemEvent { kind: 0x7777 });
        assert_eq!(r, Some(GuestExit::Crash));
        assert_eq!(bumped(&c), [("system_event", 1)]);
    }

    #[test]
    fn an_unexpected_exit_is_a_crash_and_counts_other() {
        let (bus, _, c) = rig();
        let r = handle(&bus, &c, VmExit::Unexpected("Hlt".into()));
        assert_eq!(r, Some(GuestExit::Crash));
        assert_eq!(bumped(&c), [("other", 1)]);
    }
}
