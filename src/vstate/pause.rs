//! Pausing the vCPUs: a gate each vCPU thread passes before every `KVM_RUN`. Pausing closes
//! the gate and kicks the threads out of `KVM_RUN` (the caller does that: the gate knows no
//! threads); each parks at the gate, the pauser waits until all have. Resuming opens it.
//! Interrupts raised meanwhile (irqfds) stay pending in the in-kernel vGIC and reach the guest
//! when its vCPUs run again. Teardown [`close`](PauseGate::close)s the gate for good, so a
//! parked thread returns to see its stop flag.
//!
//! Pure (no KVM): the vCPU loop and the API's control use it; unit-tested with threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    paused: bool,
    closed: bool,
    parked: usize,
    /// Shut for a reboot in place: pause and resume are refused until it reopens.
    rebooting: bool,
    /// The controller had paused the VM before the reboot: it stays paused after it.
    hold_after_reboot: bool,
}

/// What the gate is doing, for the API's `vm.info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Running,
    Paused,
    Rebooting,
}

/// Why the gate could not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateError {
    AlreadyPaused,
    NotPaused,
    /// A reboot in place holds the gate.
    Rebooting,
    Closed,
    /// Only `parked` of the threads parked in time (the gate was opened again).
    Timeout {
        parked: usize,
    },
}

/// The gate (shared by the vCPU threads and the controller).
#[derive(Debug, Default)]
pub struct PauseGate {
    state: Mutex<State>,
    cv: Condvar,
    /// Bumped by [`PauseGate::open_rebooted`]: a vCPU that sees it change re-initialises
    /// itself before its next `KVM_RUN`.
    epoch: AtomicU64,
}

impl PauseGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// vCPU side: returns at once while the gate is open, else parks until it opens (or is
    /// closed for good); true when it parked.
    pub fn pass(&self) -> bool {
        let mut s = self.lock();
        if !s.paused || s.closed {
            return false;
        }
        s.parked += 1;
        self.cv.notify_all();
        while s.paused && !s.closed {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.parked -= 1;
        self.cv.notify_all();
        true
    }

    /// Controller side, step 1: shuts the gate (then kick the threads out of `KVM_RUN`).
    pub fn shut(&self) -> Result<(), GateError> {
        let mut s = self.lock();
        if s.closed {
            return Err(GateError::Closed);
        }
        if s.rebooting {
            return Err(GateError::Rebooting);
        }
        if s.paused {
            return Err(GateError::AlreadyPaused);
        }
        s.paused = true;
        Ok(())
    }

    /// Controller side, step 2: waits until `threads` have parked; on timeout opens the gate
    /// again and says how many had.
    pub fn wait_parked(&self, threads: usize, timeout: Duration) -> Result<(), GateError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.parked < threads && !s.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let parked = s.parked;
                s.paused = false;
                s.rebooting = false;
                self.cv.notify_all();
                return Err(GateError::Timeout { parked });
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if s.closed {
            return Err(GateError::Closed);
        }
        Ok(())
    }

    /// A reboot: shuts the gate whether or not it is already shut (the vCPU that asked and the
    /// main thread both shut it; a VM the controller paused stays paused after the reboot),
    /// and holds it against pause and resume until [`open_rebooted`](Self::open_rebooted).
    pub fn shut_for_reboot(&self) -> Result<(), GateError> {
        let mut s = self.lock();
        if s.closed {
            return Err(GateError::Closed);
        }
        if !s.rebooting {
            s.hold_after_reboot = s.paused;
            s.rebooting = true;
        }
        s.paused = true;
        Ok(())
    }

    /// The reboot's epoch: each vCPU compares it with the one it last ran in.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Ends a reboot: a new epoch (the threads re-initialise before they run), and the gate
    /// opens unless the VM was paused before the reboot. True when it stays paused.
    pub fn open_rebooted(&self) -> Result<bool, GateError> {
        let mut s = self.lock();
        if !s.rebooting {
            return Err(GateError::NotPaused);
        }
        s.rebooting = false;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if std::mem::take(&mut s.hold_after_reboot) {
            return Ok(true);
        }
        s.paused = false;
        self.cv.notify_all();
        Ok(false)
    }

    /// Opens the gate: parked threads run again.
    pub fn open(&self) -> Result<(), GateError> {
        let mut s = self.lock();
        if s.rebooting {
            return Err(GateError::Rebooting);
        }
        if !s.paused {
            return Err(GateError::NotPaused);
        }
        s.paused = false;
        self.cv.notify_all();
        Ok(())
    }

    /// Running, paused by the controller, or held by a reboot in place.
    pub fn state(&self) -> GateState {
        let s = self.lock();
        match (s.rebooting, s.paused) {
            (true, _) => GateState::Rebooting,
            (false, true) => GateState::Paused,
            (false, false) => GateState::Running,
        }
    }

    /// For good (teardown): every parked thread returns and none parks again.
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// `n` threads counting laps through the gate until `stop`.
    fn runners(
        gate: &Arc<PauseGate>,
        n: usize,
    ) -> (
        Arc<AtomicU64>,
        Arc<std::sync::atomic::AtomicBool>,
        Vec<std::thread::JoinHandle<()>>,
    ) {
        let laps = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let (g, l, s) = (gate.clone(), laps.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !s.load(Ordering::SeqCst) {
                        g.pass();
                        l.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                    }
                })
            })
            .collect();
        (laps, stop, threads)
    }

    #[test]
    fn paused_threads_make_no_progress_until_resumed() {
        let gate = Arc::new(PauseGate::default());
        let (laps, stop, threads) = runners(&gate, 3);
        std::thread::sleep(Duration::from_millis(20));
        gate.shut().unwrap();
        assert_eq!(gate.shut(), Err(GateError::AlreadyPaused));
        gate.wait_parked(3, Duration::from_secs(10)).unwrap();
        let before = laps.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(laps.load(Ordering::SeqCst), before, "no lap while paused");
        gate.open().unwrap();
        assert_eq!(gate.open(), Err(GateError::NotPaused));
        let t0 = Instant::now();
        while laps.load(Ordering::SeqCst) == before {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no lap after resume"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::SeqCst);
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    #[test]
    fn a_thread_that_never_parks_times_the_pause_out_and_reopens() {
        let gate = Arc::new(PauseGate::default());
        let (_laps, stop, threads) = runners(&gate, 1);
        gate.shut().unwrap();
        // Two threads expected, one exists: the wait gives up and the gate is open again.
        let e = gate.wait_parked(2, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, GateError::Timeout { parked: 0 | 1 }), "{e:?}");
        assert_eq!(gate.state(), GateState::Running);
        stop.store(true, Ordering::SeqCst);
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    #[test]
    fn a_reboot_opens_the_gate_into_a_new_epoch() {
        let gate = Arc::new(PauseGate::default());
        let (_laps, stop, threads) = runners(&gate, 2);
        gate.shut_for_reboot().unwrap();
        // The vCPU that saw the reset and the controller both shut it.
        gate.shut_for_reboot().unwrap();
        gate.wait_parked(2, Duration::from_secs(10)).unwrap();
        assert_eq!(gate.epoch(), 0);
        // A controller's pause or resume while the reboot holds the gate is refused, and
        // the reboot then opens it as it would have.
        assert_eq!(gate.state(), GateState::Rebooting);
        assert_eq!(gate.shut(), Err(GateError::Rebooting));
        assert_eq!(gate.open(), Err(GateError::Rebooting));
        assert_eq!(gate.open_rebooted(), Ok(false));
        assert_eq!(gate.epoch(), 1);
        assert_eq!(gate.state(), GateState::Running);
        assert_eq!(gate.open_rebooted(), Err(GateError::NotPaused));
        assert_eq!(gate.epoch(), 1, "a refused reopen leaves the epoch");
        stop.store(true, Ordering::SeqCst);
        gate.close();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(gate.shut_for_reboot(), Err(GateError::Closed));
    }

    #[test]
    fn a_vm_paused_before_its_reboot_stays_paused_after_it() {
        let gate = Arc::new(PauseGate::default());
        let (laps, stop, threads) = runners(&gate, 2);
        gate.shut().unwrap();
        gate.wait_parked(2, Duration::from_secs(10)).unwrap();
        gate.shut_for_reboot().unwrap();
        assert_eq!(gate.open_rebooted(), Ok(true));
        assert_eq!(gate.epoch(), 1);
        assert_eq!(gate.state(), GateState::Paused);
        let before = laps.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(laps.load(Ordering::SeqCst), before, "still parked");
        gate.open().unwrap();
        let t0 = Instant::now();
        while laps.load(Ordering::SeqCst) == before && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            laps.load(Ordering::SeqCst) > before,
            "running after the resume"
        );
        stop.store(true, Ordering::SeqCst);
        gate.close();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    #[test]
    fn closing_releases_parked_threads_for_good() {
        let gate = Arc::new(PauseGate::default());
        let (_laps, stop, threads) = runners(&gate, 2);
        gate.shut().unwrap();
        gate.wait_parked(2, Duration::from_secs(10)).unwrap();
        stop.store(true, Ordering::SeqCst);
        gate.close();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(gate.shut(), Err(GateError::Closed));
        assert!(!gate.pass());
    }
}
