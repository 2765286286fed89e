//! The virtio worker thread: one epoll loop over the queue eventfds (and taps) of every
//! userspace device, so no data path runs on a vCPU thread.
//!
//! The work a guest can ask for is served in rounds: each handler call serves at most a
//! budget ([`super::CHAINS_PER_ROUND`] chains a queue) and says whether it left work behind;
//! such a handler is called again in the next round, after every other ready one, so one
//! flooded queue cannot starve the other devices. The stop request is checked before each
//! call, so [`Worker::stop`] returns within one budget whatever the guest does.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// What a handler call left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing: wait for the next event.
    Done,
    /// Its budget ran out with work left: call it again after the others.
    More,
}

/// Something the worker runs when one of its fds is ready.
pub trait Handler: Send + Sync {
    /// `token` is what the fd was registered with; `again`: called for work it left behind
    /// ([`Work::More`]), whether or not its fd is ready.
    fn handle(&self, token: u32, again: bool) -> Work;
}

struct Source {
    handler: Arc<dyn Handler>,
    token: u32,
}

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// epoll, the stop eventfd or the thread.
    #[error("cannot start the virtio worker thread: {0}")]
    Host(#[from] std::io::Error),
    /// The thread's own setup (`on_start`: its seccomp filter) failed: it serves nothing.
    #[error("the virtio worker thread could not set itself up: {0}")]
    Setup(std::io::Error),
}

/// The fds and handlers, before the thread starts.
#[derive(Default)]
pub struct WorkerSet {
    fds: Vec<(RawFd, EventSet)>,
    sources: Vec<Source>,
}

impl WorkerSet {
    /// Runs `handler.handle(token, false)` whenever `fd` is readable (edge-triggered with
    /// `edge`).
    pub fn add(&mut self, fd: RawFd, edge: bool, handler: Arc<dyn Handler>, token: u32) {
        let mut set = EventSet::IN;
        if edge {
            set |= EventSet::EDGE_TRIGGERED;
        }
        self.fds.push((fd, set));
        self.sources.push(Source { handler, token });
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Starts the thread; `on_start` runs first in it (the seccomp filter), and this returns
    /// only once it has: its error is this one's, and the thread has ended.
    pub fn start(
        self,
        on_start: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) -> Result<Worker, WorkerError> {
        let epoll = Epoll::new()?;
        let stop = EventFd::new(libc::EFD_NONBLOCK)?;
        // The stop eventfd's token: past the sources'.
        let stop_token = self.sources.len() as u64;
        for (i, (fd, set)) in self.fds.iter().enumerate() {
            epoll.ctl(ControlOperation::Add, *fd, EpollEvent::new(*set, i as u64))?;
        }
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, stop_token),
        )?;
        let stopping = Arc::new(AtomicBool::new(false));
        let (ready, started) = sync_channel(1);
        let sources = self.sources;
        let flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("virtio".into())
            .stack_size(crate::THREAD_STACK)
            .spawn(move || {
                let setup = on_start();
                let ok = setup.is_ok();
                let _ = ready.send(setup);
                if ok {
                    run(&epoll, &sources, &flag);
                }
            })?;
        let setup = started
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the thread ended at once")));
        if let Err(e) = setup {
            let _ = thread.join();
            return Err(WorkerError::Setup(e));
        }
        Ok(Worker {
            stop,
            stopping,
            thread: Some(thread),
        })
    }
}

/// Rounds until stopped: the ready sources and those that left work behind, each called once
/// a round, in registration order.
fn run(epoll: &Epoll, sources: &[Source], stopping: &AtomicBool) {
    let mut events = vec![EpollEvent::default(); sources.len() + 1];
    let mut ready = vec![false; sources.len()];
    let mut more = vec![false; sources.len()];
    loop {
        // Work left behind: only look at the fds, then serve it.
        let timeout = if more.contains(&true) { 0 } else { -1 };
        let n = match epoll.wait(timeout, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("virtio worker: epoll: {e}");
                return;
            }
        };
        for ev in &events[..n] {
            match ready.get_mut(ev.data() as usize) {
                Some(r) => *r = true,
                None => return, // The stop eventfd.
            }
        }
        for (i, s) in sources.iter().enumerate() {
            if !(ready[i] || more[i]) {
                continue;
            }
            if stopping.load(Ordering::Acquire) {
                return;
            }
            ready[i] = false;
            more[i] = s.handler.handle(s.token, more[i]) == Work::More;
        }
    }
}

/// The running worker thread; stopped and joined by [`Worker::stop`] (or on drop).
pub struct Worker {
    stop: EventFd,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Stops the thread (within one handler call's budget) and joins it.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stopping.store(true, Ordering::Release);
            let _ = self.stop.write(1);
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_setup_is_the_caller_s_error_and_nothing_runs() {
        struct Never;
        impl Handler for Never {
            fn handle(&self, _token: u32, _again: bool) -> Work {
                panic!("a worker whose setup failed served a kick");
            }
        }
        let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        kick.write(1).unwrap();
        let mut set = WorkerSet::default();
        set.add(kick.as_raw_fd(), false, Arc::new(Never), 0);
        let r = set.start(|| Err(std::io::Error::other("no seccomp filter")));
        let e = r.err().expect("the setup error reached the caller");
        assert!(matches!(e, WorkerError::Setup(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the virtio worker thread could not set itself up: no seccomp filter"
        );
    }

    #[test]
    fn start_returns_once_the_setup_ran() {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut w = WorkerSet::default()
            .start(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                r.store(true, Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
        assert!(
            ran.load(Ordering::SeqCst),
            "start() returned before on_start ran"
        );
        w.stop();
    }
}
