//! The virtio worker thread: one epoll loop over the queue eventfds (and taps) of every
//! userspace device, so no data path runs on a vCPU thread.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// Something the worker runs when one of its fds is ready.
pub trait Handler: Send + Sync {
    /// `token` is what the fd was registered with.
    fn handle(&self, token: u32);
}

struct Source {
    handler: Arc<dyn Handler>,
    token: u32,
}

/// The fds and handlers, before the thread starts.
#[derive(Default)]
pub struct WorkerSet {
    fds: Vec<(RawFd, EventSet)>,
    sources: Vec<Source>,
}

impl WorkerSet {
    /// Runs `handler.handle(token)` whenever `fd` is readable (edge-triggered with `edge`).
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

    /// Starts the thread; `on_start` runs first in it (the seccomp filter).
    pub fn start(
        self,
        on_start: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<Worker> {
        let epoll = Epoll::new()?;
        let stop = EventFd::new(libc::EFD_NONBLOCK)?;
        let stop_token = self.sources.len() as u64;
        for (i, (fd, set)) in self.fds.iter().enumerate() {
            epoll.ctl(ControlOperation::Add, *fd, EpollEvent::new(*set, i as u64))?;
        }
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, stop_token),
        )?;
        let stop2 = stop.try_clone()?;
        let sources = self.sources;
        let thread = std::thread::Builder::new()
            .name("virtio".into())
            .stack_size(crate::THREAD_STACK)
            .spawn(move || {
                if let Err(e) = on_start() {
                    log::error!("virtio worker: {e}");
                    return;
                }
                run(&epoll, &sources, stop_token);
                drop(stop2);
            })?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }
}

fn run(epoll: &Epoll, sources: &[Source], stop_token: u64) {
    let mut events = vec![EpollEvent::default(); 16];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("virtio worker: epoll: {e}");
                return;
            }
        };
        for ev in &events[..n] {
            let i = ev.data();
            if i == stop_token {
                return;
            }
            if let Some(s) = sources.get(i as usize) {
                s.handler.handle(s.token);
            }
        }
    }
}

/// The running worker thread; stopped and joined by [`Worker::stop`] (or on drop).
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
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
