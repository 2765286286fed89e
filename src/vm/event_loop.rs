//! The main thread's event loop (event-manager): host stdin → console, the VM exit event,
//! signals (SIGINT/SIGHUP end the VM; SIGTERM presses the guest's power button when the guest
//! listens to it and ends the VM if it has not powered off within `--shutdown-timeout`, else
//! ends it at once; SIGUSR1 prints the stats) and the console drain timer. SIGUSR1 prints
//! through the stats printer ([`crate::stats::StatsSources`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use log::info;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::timerfd::TimerFd;

use crate::stats::{ExitCounters, StatsSources};
use crate::vm::console::Console;
use crate::vm::error::{host_err, Error};
use crate::vm::power_button::{PowerButton, ReleaseWatcher};
use crate::vstate::exit::{ExitSignal, GuestExit, RebootBy};

/// Terminating signals end the VM cleanly; SIGUSR1 prints the counters.
const SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];

/// Blocks [`SIGNALS`] in this thread (and the threads it starts afterwards) and returns a
/// signalfd for them.
pub fn signal_fd() -> std::io::Result<File> {
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

/// What a terminating signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTerminate {
    /// The VM ends now.
    Stop,
    /// The power button is pressed; the VM ends if the guest has not powered off by then.
    PressAndWait(Duration),
}

/// SIGTERM presses the button once, if the guest listens to it and a timeout is given; any
/// other terminating signal, a second SIGTERM, or a guest that does not listen stops at once.
pub fn on_terminate(signo: i32, listening: bool, pressed: bool, timeout: Duration) -> OnTerminate {
    if signo == libc::SIGTERM && listening && !pressed && !timeout.is_zero() {
        OnTerminate::PressAndWait(timeout)
    } else {
        OnTerminate::Stop
    }
}

/// SIGTERM's graceful path: the button and how long the guest gets.
pub struct GracefulStop {
    pub button: Arc<PowerButton>,
    /// `--shutdown-timeout` (zero: SIGTERM stops at once).
    pub timeout: Duration,
}

struct SignalWatcher {
    fd: File,
    exit: Arc<ExitSignal>,
    stats: Arc<StatsSources>,
    /// `--test-denied-syscall`: SIGUSR1 also makes a syscall the sandbox denies.
    test_denied: bool,
    graceful: Option<GracefulStop>,
    /// Fires `--shutdown-timeout` after SIGTERM pressed the button.
    deadline: TimerFd,
    pressed: bool,
}

impl SignalWatcher {
    fn terminate(&mut self, signo: i32) {
        let listening = self.graceful.as_ref().is_some_and(|g| g.button.listening());
        let timeout = self.graceful.as_ref().map_or(Duration::ZERO, |g| g.timeout);
        match (
            on_terminate(signo, listening, self.pressed, timeout),
            &self.graceful,
        ) {
            (OnTerminate::PressAndWait(t), Some(g)) => {
                self.pressed = true;
                info!("signal {signo}: power button pressed; the VM stops in {t:?} if the guest has not powered off");
                let armed = g
                    .button
                    .press()
                    .and_then(|()| self.deadline.reset(t, None).map_err(std::io::Error::from));
                if let Err(e) = armed {
                    log::warn!("power button: {e}: stopping the VM now");
                    self.exit.set(GuestExit::Signal(signo));
                }
            }
            _ => {
                info!("signal {signo}: stopping the VM");
                self.exit.set(GuestExit::Signal(signo));
            }
        }
    }
}

impl MutEventSubscriber for SignalWatcher {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        use std::io::Read;
        if events.fd() == self.deadline.as_raw_fd() {
            let _ = self.deadline.wait();
            info!("the guest did not power off within --shutdown-timeout: stopping the VM");
            self.exit.set(GuestExit::Signal(libc::SIGTERM));
            return;
        }
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        while let Ok(n) = self.fd.read(&mut buf) {
            if n != buf.len() {
                break;
            }
            let signo = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as i32;
            if signo == libc::SIGUSR1 {
                self.stats.print();
                if self.test_denied {
                    let r = crate::sandbox::seccomp::call_denied_syscall();
                    info!("--test-denied-syscall: socket() returned {r}");
                }
            } else {
                self.terminate(signo);
            }
        }
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.fd, EventSet::IN)) {
            log::error!("cannot watch signals: {e:?}");
        }
        if let Err(e) = ops.add(Events::new(&self.deadline, EventSet::IN)) {
            log::error!("cannot watch the shutdown timer: {e:?}");
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

/// Drains the console's coalesced transmit bytes when its timer fires.
struct DrainWatcher {
    console: Arc<Console>,
    exits: Arc<ExitCounters>,
}

impl MutEventSubscriber for DrainWatcher {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        self.console.timer().acknowledge();
        self.console.drain(&self.exits);
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.console.timer().file(), EventSet::IN)) {
            log::error!("cannot watch the console drain timer: {e:?}");
        }
    }
}

type Subscriber = Arc<Mutex<dyn MutEventSubscriber>>;

/// Why [`EventLoop::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The VM ends this way.
    Exit(GuestExit),
    /// The guest (with `--on-reboot restart`) or the host (the API) asked for a reboot in
    /// place.
    Reboot(RebootBy),
}

/// The main thread's loop.
pub struct EventLoop {
    em: EventManager<Subscriber>,
    exit: Arc<ExitSignal>,
}

impl EventLoop {
    /// The loop with the exit, signal and console-drain subscribers. Call it before any vCPU
    /// thread exists, so they inherit the blocked signal mask.
    pub fn new(
        exit: Arc<ExitSignal>,
        stats: Arc<StatsSources>,
        console: Arc<Console>,
        test_denied: bool,
        graceful: Option<GracefulStop>,
    ) -> Result<Self, Error> {
        let mut em = EventManager::<Subscriber>::new().map_err(|e| {
            host_err("cannot create the event loop")(std::io::Error::other(format!("{e:?}")))
        })?;
        em.add_subscriber(Arc::new(Mutex::new(ExitWatcher(exit.clone()))));
        let fd = signal_fd().map_err(host_err("cannot set up signal handling"))?;
        let exits = stats.exits.clone();
        let deadline = TimerFd::new()
            .map_err(|e| host_err("cannot create the shutdown timer")(std::io::Error::from(e)))?;
        if let Some(g) = &graceful {
            em.add_subscriber(Arc::new(Mutex::new(ReleaseWatcher(g.button.clone()))));
        }
        em.add_subscriber(Arc::new(Mutex::new(SignalWatcher {
            fd,
            exit: exit.clone(),
            stats,
            test_denied,
            graceful,
            deadline,
            pressed: false,
        })));
        if console.coalesced() {
            em.add_subscriber(Arc::new(Mutex::new(DrainWatcher { console, exits })));
        }
        Ok(Self { em, exit })
    }

    /// Adds another subscriber (e.g. the console input).
    pub fn add(&mut self, s: Subscriber) {
        self.em.add_subscriber(s);
    }

    /// Runs until the guest ends, a terminating signal arrives or the sandbox denies a
    /// syscall (its SIGSYS handler wakes the loop through the exit event) — or a vCPU asks for
    /// a reboot in place, which the caller carries out before running the loop again.
    pub fn run(&mut self) -> Wake {
        loop {
            if let Some(nr) = crate::sandbox::seccomp::denied() {
                return Wake::Exit(GuestExit::SeccompDenied(nr));
            }
            if let Some(o) = self.exit.get() {
                return Wake::Exit(o);
            }
            if let Some(by) = self.exit.take_reboot() {
                return Wake::Reboot(by);
            }
            if let Err(e) = self.em.run() {
                log::warn!("event loop: {e:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigterm_presses_the_button_once_when_the_guest_listens() {
        let t = Duration::from_secs(10);
        let term = libc::SIGTERM;
        assert_eq!(
            on_terminate(term, true, false, t),
            OnTerminate::PressAndWait(t)
        );
        // A second SIGTERM, a guest that does not listen, no timeout, another signal: now.
        assert_eq!(on_terminate(term, true, true, t), OnTerminate::Stop);
        assert_eq!(on_terminate(term, false, false, t), OnTerminate::Stop);
        assert_eq!(
            on_terminate(term, true, false, Duration::ZERO),
            OnTerminate::Stop
        );
        assert_eq!(
            on_terminate(libc::SIGINT, true, false, t),
            OnTerminate::Stop
        );
        assert_eq!(
            on_terminate(libc::SIGHUP, true, false, t),
            OnTerminate::Stop
        );
    }
}
