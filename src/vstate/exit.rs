//! How a guest ended, the process exit status it maps to, and the signal through which vCPU
//! threads and signal handling report it to the event loop.

use std::sync::Mutex;

use log::error;
use vmm_sys_util::eventfd::EventFd;

/// How the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// PSCI SYSTEM_OFF.
    PowerOff,
    /// PSCI SYSTEM_RESET.
    Reset,
    /// The guest reported a crash, or a vCPU hit an exit platvmm cannot continue from.
    Crash,
    /// platvmm received a terminating signal (SIGTERM, SIGINT, SIGHUP).
    Signal(i32),
    /// The seccomp sandbox denied this syscall (the SIGSYS handler has said so on stderr).
    SeccompDenied(i64),
    /// A client of the API socket asked for the VM to stop (`vm.stop`).
    Stopped,
}

impl GuestExit {
    /// Process exit status (documented in `--help`).
    pub fn exit_code(self) -> i32 {
        match self {
            GuestExit::PowerOff | GuestExit::Stopped => 0,
            GuestExit::Reset => 3,
            GuestExit::Crash => 4,
            GuestExit::Signal(s) => 128 + s,
            GuestExit::SeccompDenied(_) => 128 + libc::SIGSYS,
        }
    }
}

impl GuestExit {
    /// The one line platvmm prints when the guest ended this way before writing a single
    /// console byte (nothing, for a stop platvmm was asked for).
    pub fn silent_end_note(self) -> Option<&'static str> {
        match self {
            GuestExit::PowerOff => Some("the guest powered off before writing anything to the console"),
            GuestExit::Reset => Some("the guest reset before writing anything to the console (a kernel that fails this early: check it is an arm64 Image for this machine, and give console=ttyS0 earlycon on --cmdline)"),
            GuestExit::Crash => Some("the guest crashed before writing anything to the console (check the kernel Image, and give console=ttyS0 earlycon on --cmdline)"),
            GuestExit::Signal(_) | GuestExit::SeccompDenied(_) | GuestExit::Stopped => None,
        }
    }
}

/// Where vCPU threads report how the guest ended (or that it asked for a reboot in place);
/// the main loop watches `evt`.
pub struct ExitSignal {
    pub evt: EventFd,
    outcome: Mutex<Option<GuestExit>>,
    /// 0: none; else a [`RebootBy`] as 1 + its index.
    reboot: std::sync::atomic::AtomicU8,
}

/// Who asked for a reboot in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootBy {
    /// The guest (PSCI SYSTEM_RESET), with `--on-reboot restart`.
    Guest,
    /// The host, through the API (`vm.reboot`).
    Host,
}

impl ExitSignal {
    pub fn new(evt: EventFd) -> Self {
        Self {
            evt,
            outcome: Mutex::new(None),
            reboot: 0.into(),
        }
    }

    /// A reboot in place, asked `by` the guest (a vCPU saw PSCI SYSTEM_RESET) or the host:
    /// wakes the main loop.
    pub fn request_reboot(&self, by: RebootBy) {
        let v = match by {
            RebootBy::Guest => 1,
            RebootBy::Host => 2,
        };
        self.reboot.store(v, std::sync::atomic::Ordering::SeqCst);
        if let Err(err) = self.evt.write(1) {
            error!("cannot signal the reboot: {err}");
        }
    }

    /// The reboot asked for since the last call, if any.
    pub fn take_reboot(&self) -> Option<RebootBy> {
        match self.reboot.swap(0, std::sync::atomic::Ordering::SeqCst) {
            1 => Some(RebootBy::Guest),
            2 => Some(RebootBy::Host),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            GuestExit::PowerOff,
            GuestExit::Reset,
            GuestExit::Crash,
            GuestExit::Signal(libc::SIGTERM),
            GuestExit::SeccompDenied(libc::SYS_socket),
        ]
        .map(|e| e.exit_code());
        assert_eq!(codes, [0, 3, 4, 143, 159]);
    }

    #[test]
    fn a_reboot_request_is_taken_once_with_who_asked() {
        let s = ExitSignal::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        assert_eq!(s.take_reboot(), None);
        s.request_reboot(RebootBy::Host);
        assert_eq!(s.take_reboot(), Some(RebootBy::Host));
        assert_eq!(s.take_reboot(), None);
        s.request_reboot(RebootBy::Guest);
        assert_eq!(s.take_reboot(), Some(RebootBy::Guest));
        assert_eq!(s.get(), None, "a reboot is not an outcome");
        assert_eq!(s.evt.read().unwrap(), 2);
    }

    #[test]
    fn first_outcome_wins() {
        let s = ExitSignal::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        assert_eq!(s.get(), None);
        s.set(GuestExit::PowerOff);
        s.set(GuestExit::Crash);
        assert_eq!(s.get(), Some(GuestExit::PowerOff));
        assert_eq!(s.evt.read().unwrap(), 2);
    }
}
