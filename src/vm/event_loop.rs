//! The main thread's event loop (event-manager): host stdin → console, the VM exit event,
//! signals (SIGTERM/SIGINT/SIGHUP end the VM, SIGUSR1 prints the stats) and the console drain
//! timer. SIGUSR1 prints through the stats printer ([`crate::stats::StatsSources`]).

use std::fs::File;
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use log::info;
use vmm_sys_util::epoll::EventSet;

use crate::stats::{ExitCounters, StatsSources};
use crate::vm::console::Console;
use crate::vm::error::{host_err, Error};
use crate::vstate::exit::{ExitSignal, GuestExit};

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

struct SignalWatcher {
    fd: File,
    exit: Arc<ExitSignal>,
    stats: Arc<StatsSources>,
    /// `--test-denied-syscall`: SIGUSR1 also makes a syscall the sandbox denies.
    test_denied: bool,
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
                if self.test_denied {
                    let r = crate::sandbox::seccomp::call_denied_syscall();
                    info!("--test-denied-syscall: socket() returned {r}");
                }
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
    ) -> Result<Self, Error> {
        let mut em = EventManager::<Subscriber>::new().map_err(|e| {
            host_err("cannot create the event loop")(std::io::Error::other(format!("{e:?}")))
        })?;
        em.add_subscriber(Arc::new(Mutex::new(ExitWatcher(exit.clone()))));
        let fd = signal_fd().map_err(host_err("cannot set up signal handling"))?;
        let exits = stats.exits.clone();
        em.add_subscriber(Arc::new(Mutex::new(SignalWatcher {
            fd,
            exit: exit.clone(),
            stats,
            test_denied,
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
    /// syscall (its SIGSYS handler wakes the loop through the exit event).
    pub fn run(&mut self) -> GuestExit {
        loop {
            if let Some(nr) = crate::sandbox::seccomp::denied() {
                return GuestExit::SeccompDenied(nr);
            }
            if let Some(o) = self.exit.get() {
                return o;
            }
            if let Err(e) = self.em.run() {
                log::warn!("event loop: {e:?}");
            }
        }
    }
}
