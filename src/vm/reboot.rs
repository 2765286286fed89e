//! Rebooting the guest in place (`--on-reboot restart`): when the guest's PSCI SYSTEM_RESET
//! restarts it inside the same platvmm, and when it ends the VM instead.
//!
//! The procedure is `vm::builder::reboot_in_place` (aarch64): every vCPU parked at its gate
//! (the one that saw the reset parks itself), the devices readied for a new boot
//! (`Passthrough::reboot`: DMA stopped, VFIO reset where offered, level interrupts unmasked,
//! the interrupt wiring kept; `Bus::reset_all`: virtio transports reset as by a status 0
//! write, the power button's PL061 cleared), guest RAM zeroed, the kernel, initramfs and the
//! same device tree loaded again, then the gate opened into a new epoch: each vCPU
//! re-initialises itself (`KVM_ARM_VCPU_INIT`, vCPU 0's boot registers) before running. The
//! VFIO groups, container, DMA maps, memslots, irqfds and the vGIC stay: a booting Linux
//! reprograms its GIC from scratch.
//!
//! [`RebootGuard`] (pure, tested on every host) refuses a reboot loop: a guest that resets
//! before writing anything to the console since its last boot (a kernel that fails that early
//! would loop for ever), or [`MAX_REBOOTS`] times within [`WINDOW`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Reboots in place allowed within [`WINDOW`]; one more ends the VM (status 3).
pub const MAX_REBOOTS: usize = 5;
/// The window [`MAX_REBOOTS`] counts in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Why a reboot ends the VM instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing was written to the console since the last boot.
    Silent,
    /// Too many reboots within [`WINDOW`].
    Loop,
}

impl Refusal {
    /// The line platvmm logs.
    pub fn message(self) -> String {
        match self {
            Refusal::Silent => "the guest rebooted before writing to the console: not restarting it (check the kernel and give console=ttyS0 earlycon on --cmdline)".into(),
            Refusal::Loop => format!(
                "the guest rebooted {MAX_REBOOTS} times within {} s: not restarting it again",
                WINDOW.as_secs()
            ),
        }
    }
}

/// The reboots so far and the console's byte count at the last boot.
#[derive(Debug, Default)]
pub struct RebootGuard {
    recent: VecDeque<Instant>,
    console_at_boot: u64,
    /// Reboots done in place.
    pub done: u64,
}

impl RebootGuard {
    /// Whether the reboot asked for at `now`, with `console` bytes written by then, may
    /// restart the guest; a yes is recorded as a new boot.
    pub fn allow(&mut self, now: Instant, console: u64) -> Result<(), Refusal> {
        if console == self.console_at_boot {
            return Err(Refusal::Silent);
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_REBOOTS {
            return Err(Refusal::Loop);
        }
        self.record(now, console);
        Ok(())
    }

    /// Records a reboot done at `now` (the host's, which the guard does not refuse).
    pub fn record(&mut self, now: Instant, console: u64) {
        self.recent.push_back(now);
        self.console_at_boot = console;
        self.done += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_printed_since_its_boot_restarts() {
        let mut g = RebootGuard::default();
        let t = Instant::now();
        assert_eq!(g.allow(t, 100), Ok(()));
        assert_eq!(g.allow(t + Duration::from_secs(1), 250), Ok(()));
        assert_eq!(g.done, 2);
    }

    #[test]
    fn a_silent_boot_is_not_restarted() {
        let mut g = RebootGuard::default();
        let t = Instant::now();
        assert_eq!(
            g.allow(t, 0),
            Err(Refusal::Silent),
            "nothing printed at all"
        );
        assert_eq!(g.allow(t, 10), Ok(()));
        assert_eq!(
            g.allow(t, 10),
            Err(Refusal::Silent),
            "nothing since the reboot"
        );
        assert!(Refusal::Silent.message().contains("earlycon"));
    }

    #[test]
    fn a_reboot_loop_is_cut_and_old_reboots_age_out() {
        let mut g = RebootGuard::default();
        let t = Instant::now();
        for i in 0..MAX_REBOOTS as u64 {
            assert_eq!(g.allow(t + Duration::from_secs(i), 10 + i), Ok(()));
        }
        let next = t + Duration::from_secs(10);
        assert_eq!(g.allow(next, 100), Err(Refusal::Loop));
        // A minute after the first, one has aged out.
        assert_eq!(g.allow(t + WINDOW, 101), Ok(()));
        assert_eq!(g.done, MAX_REBOOTS as u64 + 1);
        // The host's reboots are recorded, never refused.
        g.record(t + WINDOW, 101);
        assert_eq!(g.done, MAX_REBOOTS as u64 + 2);
        assert_eq!(g.allow(t + WINDOW, 101), Err(Refusal::Silent));
    }
}
