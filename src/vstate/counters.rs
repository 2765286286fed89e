//! VM exits by reason, summed over the vCPU threads and read by the stats printer.

use std::sync::atomic::{AtomicU64, Ordering};

/// VM exits by reason, summed over vCPUs.
#[derive(Debug, Default)]
pub struct ExitCounters {
    pub mmio_read: AtomicU64,
    pub mmio_write: AtomicU64,
    /// MMIO exits to the console UART (part of mmio_read/mmio_write): the guest's printing,
    /// kept apart so the other exits can be reasoned about.
    pub mmio_console: AtomicU64,
    pub mmio_unclaimed: AtomicU64,
    /// Console transmit bytes that reached platvmm through the coalesced-MMIO ring (no exit).
    pub console_coalesced: AtomicU64,
    pub system_event: AtomicU64,
    pub interrupted: AtomicU64,
    pub other: AtomicU64,
}

impl ExitCounters {
    pub fn snapshot(&self) -> [(&'static str, u64); 8] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("mmio_read", g(&self.mmio_read)),
            ("mmio_write", g(&self.mmio_write)),
            ("mmio_console", g(&self.mmio_console)),
            ("mmio_unclaimed", g(&self.mmio_unclaimed)),
            ("console_coalesced", g(&self.console_coalesced)),
            ("system_event", g(&self.system_event)),
            ("interrupted", g(&self.interrupted)),
            ("other", g(&self.other)),
        ]
    }
}

/// Adds one to `c`.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
