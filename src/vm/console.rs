//! The console UART as the VMM wires it: the 16550 model on the MMIO bus, and — where KVM has
//! coalesced MMIO — its transmit register behind a coalesced zone.
//!
//! Without coalescing each console byte costs two exits (LSR read, THR write). With it, THR
//! writes land in KVM's ring page instead of exiting, and reach the UART (in order) when:
//! - any vCPU exits to platvmm, before that exit is handled (the vCPU loop calls
//!   [`Console::drain`]): the guest's polled console (printk) reads LSR before every byte, so
//!   its output drains at once, and no access is reordered against a queued byte;
//! - the drain timer fires, armed only while the guest has the transmit-empty interrupt
//!   enabled (IER.ETBEI): interrupt-driven transmit waits for that interrupt, which the UART
//!   raises only when it sees the bytes;
//! - platvmm ends, after the vCPU threads have stopped.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::coalesced::CoalescedRing;
use devices::serial::SerialConsole;
use devices::MmioDevice;
use log::warn;

use crate::stats::ExitCounters;
use crate::vstate::handle::{ConsoleRange, VcpuConsole};

/// The console's host output, counting the bytes that reach it (so platvmm can say when a
/// guest ended without printing anything).
pub struct CountedOutput<W> {
    inner: W,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl<W> CountedOutput<W> {
    /// `inner`, and the counter its writes add to.
    pub fn new(inner: W) -> (Self, Arc<std::sync::atomic::AtomicU64>) {
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        (
            Self {
                inner,
                bytes: bytes.clone(),
            },
            bytes,
        )
    }
}

impl<W: std::io::Write> std::io::Write for CountedOutput<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// How often the ring is drained while interrupt-driven transmit is on.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(1);

/// The console: the UART model, its coalesced ring (if any) and the drain timer.
pub struct Console {
    base: u64,
    size: u64,
    uart: Arc<Mutex<SerialConsole>>,
    ring: Option<CoalescedRing>,
    timer: DrainTimer,
    /// IER.ETBEI as last seen, i.e. whether the timer is armed.
    tx_irq: AtomicBool,
}

impl Console {
    /// The UART at `base..base + size`; `ring` holds its coalesced THR writes, if KVM has them.
    pub fn new(
        base: u64,
        size: u64,
        uart: Arc<Mutex<SerialConsole>>,
        ring: Option<CoalescedRing>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            base,
            size,
            uart,
            ring,
            timer: DrainTimer::new()?,
            tx_irq: AtomicBool::new(false),
        })
    }

    pub fn uart(&self) -> &Arc<Mutex<SerialConsole>> {
        &self.uart
    }

    /// Whether transmit writes are coalesced.
    pub fn coalesced(&self) -> bool {
        self.ring.is_some()
    }

    /// The drain timer's fd, for the event loop.
    pub fn timer(&self) -> &DrainTimer {
        &self.timer
    }

    /// Whether `addr` is a console register.
    pub fn contains(&self, addr: u64) -> bool {
        (self.base..self.base + self.size).contains(&addr)
    }

    /// Hands queued transmit bytes to the UART, in order.
    pub fn drain(&self, counters: &ExitCounters) {
        let Some(ring) = &self.ring else { return };
        let mut uart = None;
        let n = ring.drain(|addr, data| {
            let u = uart.get_or_insert_with(|| lock(&self.uart));
            u.write(addr.wrapping_sub(self.base), data);
        });
        drop(uart);
        if n > 0 {
            counters
                .console_coalesced
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// After a guest write: arms the drain timer while ETBEI is set, disarms it otherwise.
    fn follow_tx_irq(&self, enabled: bool) {
        if self.ring.is_none() || self.tx_irq.swap(enabled, Ordering::SeqCst) == enabled {
            return;
        }
        let r = if enabled {
            self.timer.arm(DRAIN_INTERVAL)
        } else {
            self.timer.disarm()
        };
        if let Err(e) = r {
            warn!("console: drain timer: {e}");
        }
    }
}

impl ConsoleRange for Console {
    fn contains(&self, addr: u64) -> bool {
        Console::contains(self, addr)
    }
}

impl VcpuConsole for Console {
    fn drain(&self, counters: &ExitCounters) {
        Console::drain(self, counters)
    }
}

fn lock(m: &Mutex<SerialConsole>) -> std::sync::MutexGuard<'_, SerialConsole> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The console's bus device: UART accesses, and the drain timer following IER.
pub struct ConsoleMmio(pub Arc<Console>);

impl MmioDevice for ConsoleMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        lock(&self.0.uart).read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let enabled = {
            let mut u = lock(&self.0.uart);
            u.write(offset, data);
            u.tx_interrupt_enabled()
        };
        self.0.follow_tx_irq(enabled);
    }
}

/// A periodic timerfd.
pub struct DrainTimer(File);

impl DrainTimer {
    fn new() -> std::io::Result<Self> {
        // SAFETY: timerfd_create has no memory arguments.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        Ok(Self(unsafe { File::from_raw_fd(fd) }))
    }

    fn set(&self, every: Duration) -> std::io::Result<()> {
        let ts = libc::timespec {
            tv_sec: every.as_secs() as libc::time_t,
            tv_nsec: every.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not wanted.
        let r =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn arm(&self, every: Duration) -> std::io::Result<()> {
        self.set(every)
    }

    fn disarm(&self) -> std::io::Result<()> {
        self.set(Duration::ZERO)
    }

    /// Consumes the expirations (after the event loop saw the fd readable).
    pub fn acknowledge(&self) {
        let mut buf = [0u8; 8];
        let _ = std::io::Read::read(&mut &self.0, &mut buf);
    }

    pub fn file(&self) -> &File {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counted_output_counts_what_reaches_it() {
        let (mut out, n) = CountedOutput::new(Vec::new());
        out.write_all(b"hello").unwrap();
        assert_eq!(n.load(Ordering::Relaxed), 5);
        assert_eq!(out.inner, b"hello");
    }
}
