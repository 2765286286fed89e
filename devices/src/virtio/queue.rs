//! The userspace devices' side of their queues: chains served in bounded rounds, buffer lists
//! built under size caps, host iovecs for guest buffers.
//!
//! A round serves at most [`CHAINS_PER_ROUND`] chains of a queue, then says [`Work::More`]:
//! the worker serves the other devices before coming back. A reset (a vCPU writing status 0)
//! does not wait for the round: it raises the queue's `cancel` flag, which the round checks
//! before each chain, then takes the queue's lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::ratelimit::limited;
use super::worker::Work;
use super::{Activation, Counters, Interrupt, Queue, QueueOwnedT, QueueT};

/// Chains a queue serves per handler call at most (a pass that finds the ring refilled with
/// notifications back on counts as one too): then the worker serves the other devices, and
/// checks whether it must stop, before coming back.
pub const CHAINS_PER_ROUND: u32 = 64;

/// A chain popped from a queue, as the userspace devices see it.
pub type Chain<'a> = virtio_queue::DescriptorChain<&'a GuestMemoryMmap>;

/// Reads a queue's eventfd on behalf of the worker: false if it was not signalled (nothing to
/// do), else counts one notify handled in userspace.
pub fn take_kick(kick: &EventFd, counters: &Counters) -> bool {
    if kick.read().is_err() {
        return false;
    }
    counters.notifies.fetch_add(1, Ordering::Relaxed);
    true
}

/// What a single-queue userspace device (blk, rng) shares with the worker: its queue once
/// the driver started it, the queue's kick eventfd and its counters.
pub struct OneQueue {
    run: Mutex<Option<Running>>,
    /// Raised while a reset waits for `run`: the round in progress stops at its next chain.
    cancel: AtomicBool,
    kick: EventFd,
    pub counters: Arc<Counters>,
}

impl OneQueue {
    pub fn new(kick: EventFd, counters: Arc<Counters>) -> Self {
        Self {
            run: Mutex::new(None),
            cancel: AtomicBool::new(false),
            kick,
            counters,
        }
    }

    /// DRIVER_OK: the queue runs, and a kick is posted for requests the driver queued before
    /// the worker watched the eventfd.
    pub fn activate(&self, a: Activation) {
        *self.run.lock().expect("queue lock") = Some(Running::new(a));
        let _ = self.kick.write(1);
    }

    /// Device reset: the queue is given back, after the chain being served (if any), not
    /// after the whole round.
    pub fn reset(&self) {
        self.cancel.store(true, Ordering::Release);
        *self.run.lock().expect("queue lock") = None;
        self.cancel.store(false, Ordering::Release);
    }

    /// On a kick, or `again` for work left behind: a round of the available chains through
    /// `serve`, which returns the bytes it wrote.
    pub fn serve(
        &self,
        again: bool,
        mut serve: impl FnMut(&GuestMemoryMmap, &mut Chain<'_>) -> u32,
    ) -> Work {
        if !take_kick(&self.kick, &self.counters) && !again {
            return Work::Done;
        }
        let mut run = self.run.lock().expect("queue lock");
        let Some(r) = run.as_mut() else {
            return Work::Done;
        };
        let mem = r.mem.clone();
        r.drain(0, &self.cancel, |chain| Some(serve(&mem, chain)))
    }
}

/// A userspace device's queues once the driver started it.
pub struct Running {
    pub mem: GuestMemoryMmap,
    pub queues: Vec<Queue>,
    pub interrupt: Arc<Interrupt>,
    /// A queue's driver was warned about (once per activation).
    broken: bool,
}

impl Running {
    pub fn new(a: Activation) -> Self {
        Self {
            mem: a.mem,
            queues: a.queues,
            interrupt: a.interrupt,
            broken: false,
        }
    }

    /// One round of queue `q`: its available chains through `serve` (which returns the bytes
    /// it wrote into the chain, or `None` to stop and leave the chain for later), at most
    /// [`CHAINS_PER_ROUND`] of them, stopping early when `cancel` is raised; then the
    /// interrupt if the driver wants one. A driver whose available index claims chains that
    /// cannot be popped (more than the queue size ahead, an unreadable ring) gets a warning
    /// and nothing more until its next notify.
    pub fn drain(
        &mut self,
        q: usize,
        cancel: &AtomicBool,
        mut serve: impl FnMut(&mut Chain<'_>) -> Option<u32>,
    ) -> Work {
        let Some(queue) = self.queues.get_mut(q).filter(|q| q.ready()) else {
            return Work::Done;
        };
        let mut round = Round {
            q,
            left: CHAINS_PER_ROUND,
            used: false,
            cancel,
        };
        let work = round.run(queue, &self.mem, &mut self.broken, &mut serve);
        if round.used && queue.needs_notification(&self.mem).unwrap_or(true) {
            self.interrupt.signal_used();
        }
        work
    }
}

/// A chain's server, as a round calls it.
type Serve<'s> = dyn FnMut(&mut Chain<'_>) -> Option<u32> + 's;

/// One round of one queue.
struct Round<'a> {
    q: usize,
    /// Chains (and passes) left in the budget.
    left: u32,
    /// A chain went back to the driver.
    used: bool,
    cancel: &'a AtomicBool,
}

enum Popped<'m> {
    Chain(Chain<'m>),
    Empty,
    Broken(virtio_queue::Error),
}

/// The next available chain (the crate's `pop_descriptor_chain`, which logs each error).
fn pop<'m>(queue: &mut Queue, mem: &'m GuestMemoryMmap) -> Popped<'m> {
    match queue.iter(mem) {
        Ok(mut avail) => avail.next().map_or(Popped::Empty, Popped::Chain),
        Err(e) => Popped::Broken(e),
    }
}

impl Round<'_> {
    /// Passes over the ring until it is empty with notifications back on, the budget is
    /// spent, the backend stalls, the driver broke the ring or a reset cancels.
    fn run(
        &mut self,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
        broken: &mut bool,
        serve: &mut Serve<'_>,
    ) -> Work {
        loop {
            if let Err(e) = queue.disable_notification(mem) {
                limited!(warn, "virtio: queue {}: {e}", self.q);
                return Work::Done;
            }
            if let Some(w) = self.serve_chains(queue, mem, broken, serve) {
                return w;
            }
            match queue.enable_notification(mem) {
                // Chains came while notifications were off: another pass, on the budget (a
                // driver moving its index back and forth cannot keep the round going).
                Ok(true) if self.spend() => continue,
                Ok(true) => return Work::More,
                Ok(false) => return Work::Done,
                Err(e) => {
                    limited!(warn, "virtio: queue {}: {e}", self.q);
                    return Work::Done;
                }
            }
        }
    }

    fn spend(&mut self) -> bool {
        let ok = self.left > 0;
        self.left = self.left.saturating_sub(1);
        ok
    }

    /// Serves chains until the ring is empty (`None`) or the round ends (its outcome).
    fn serve_chains(
        &mut self,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
        broken: &mut bool,
        serve: &mut Serve<'_>,
    ) -> Option<Work> {
        loop {
            if self.cancel.load(Ordering::Acquire) {
                return Some(Work::Done);
            }
            if !self.spend() {
                return Some(Work::More);
            }
            let mut chain = match pop(queue, mem) {
                Popped::Chain(c) => c,
                Popped::Empty => return None,
                Popped::Broken(e) => {
                    self.broken(queue, mem, broken, e);
                    return Some(Work::Done);
                }
            };
            let head = chain.head_index();
            let Some(len) = serve(&mut chain) else {
                // The backend has nothing for the chains left: wait for it, not the driver.
                queue.go_to_previous_position();
                let _ = queue.enable_notification(mem);
                return Some(Work::Done);
            };
            self.give_back(queue, mem, head, len);
        }
    }

    /// The driver's available index is past what can be popped: warned about once per
    /// activation, the queue left alone until the next notify (the worker must never spin
    /// on it).
    fn broken(
        &self,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
        broken: &mut bool,
        e: virtio_queue::Error,
    ) {
        if !*broken {
            *broken = true;
            limited!(
                warn,
                "virtio: queue {}: the driver's available index ({}) is not one the device \
                 can serve ({e}): ignoring the queue until the next notify",
                self.q,
                queue.avail_idx(mem, Ordering::Acquire).map_or(0, |i| i.0)
            );
        }
        let _ = queue.enable_notification(mem);
    }

    /// The chain back to the driver with the bytes written into it.
    fn give_back(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, head: u16, len: u32) {
        if head >= queue.size() {
            limited!(
                warn,
                "virtio: queue {}: the driver made descriptor {head} available, past the \
                 queue size ({})",
                self.q,
                queue.size()
            );
            return;
        }
        match queue.add_used(mem, head, len) {
            Ok(()) => self.used = true,
            Err(e) => limited!(warn, "virtio: queue {}: {e}", self.q),
        }
    }
}

/// What one chain may carry, checked while its descriptors are walked: no buffer list grows
/// past it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub descriptors: usize,
    pub bytes: u64,
}

/// A chain past its [`Limits`]; the descriptor that went past them (the rest of the chain is
/// still in the iterator).
#[derive(Debug, Clone, Copy)]
pub struct Oversize {
    pub addr: GuestAddress,
    pub len: u32,
    pub write_only: bool,
}

/// The descriptors of a chain split into the buffers the device reads and those it writes.
#[derive(Debug, Default)]
pub struct Buffers {
    pub readable: Vec<(GuestAddress, u32)>,
    pub writable: Vec<(GuestAddress, u32)>,
}

impl Buffers {
    /// Every buffer of the chain, or [`Oversize`] at the first descriptor past `limits`
    /// (nothing more read or collected).
    pub fn collect(chain: &mut Chain<'_>, limits: Limits) -> Result<Self, Oversize> {
        let mut b = Buffers::default();
        let (mut n, mut bytes) = (0usize, 0u64);
        for d in chain {
            n += 1;
            bytes = bytes.saturating_add(u64::from(d.len()));
            if n > limits.descriptors || bytes > limits.bytes {
                return Err(Oversize {
                    addr: d.addr(),
                    len: d.len(),
                    write_only: d.is_write_only(),
                });
            }
            if d.is_write_only() {
                b.writable.push((d.addr(), d.len()));
            } else {
                b.readable.push((d.addr(), d.len()));
            }
        }
        Ok(b)
    }

    /// The chain's device-writable buffers up to `limits` (for devices that fill what fits:
    /// entropy, received frames): the one that crosses `limits.bytes` cut short, nothing read
    /// past it or past `limits.descriptors` descriptors.
    pub fn writable_upto(chain: &mut Chain<'_>, limits: Limits) -> Vec<(GuestAddress, u32)> {
        let mut v = Vec::new();
        let mut room = limits.bytes;
        for d in chain.take(limits.descriptors) {
            if room == 0 {
                break;
            }
            if d.is_write_only() {
                let len = u64::from(d.len()).min(room);
                room -= len;
                // At most d.len(), a u32.
                v.push((d.addr(), len as u32));
            }
        }
        v
    }
}

/// Host iovecs for guest buffers (each split where guest memory regions split); `None` if a
/// buffer is outside guest RAM.
pub fn iovecs(mem: &GuestMemoryMmap, bufs: &[(GuestAddress, u32)]) -> Option<Vec<libc::iovec>> {
    let mut v = Vec::with_capacity(bufs.len());
    for &(addr, len) in bufs {
        for s in mem.get_slices(addr, len as usize) {
            let s = s.ok()?;
            if s.is_empty() {
                continue;
            }
            v.push(libc::iovec {
                iov_base: s.ptr_guard_mut().as_ptr().cast(),
                iov_len: s.len(),
            });
        }
    }
    Some(v)
}
