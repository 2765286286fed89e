//! virtio devices on the virtio-mmio transport (virtio 1.x, modern only).
//!
//! - [`mmio`]: the transport's register page; queue notifies arrive on KVM ioeventfds (one
//!   eventfd per queue) and interrupts leave through one irqfd per device.
//! - [`worker`]: the thread that runs the userspace data paths (block, entropy, the network
//!   fallback), off the vCPU threads.
//! - [`block`], [`rng`]: userspace devices; [`net`]: vhost-net or userspace over a tap
//!   ([`tap`]); [`vsock`]: vhost-vsock. The vhost paths never come back to userspace: the
//!   ioeventfds are the vhost kick fds and the irqfd is the vhost call fd.

pub mod block;
pub mod mmio;
pub mod net;
pub mod ratelimit;
pub mod rng;
pub mod tap;
pub mod vhost;
pub mod vsock;
pub mod worker;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

pub use virtio_queue::{Queue, QueueOwnedT, QueueT};

/// The mask of feature bit `bit` in a 64-bit feature word (virtio-bindings numbers the
/// feature bits: `VIRTIO_F_*`, `VIRTIO_RING_F_*`, `VIRTIO_BLK_F_*`, `VIRTIO_NET_F_*`).
pub const fn feature(bit: u32) -> u64 {
    1 << bit
}

/// The device's interrupt: an irqfd on its SPI plus the transport's InterruptStatus bits.
pub struct Interrupt {
    irqfd: EventFd,
    status: AtomicU32,
    /// The vhost kernel backend signals the irqfd itself, without touching `status`, so
    /// InterruptStatus always reports a used buffer (the driver then checks its rings).
    kernel_signalled: std::sync::atomic::AtomicBool,
    counters: Arc<Counters>,
}

impl Interrupt {
    pub fn new(irqfd: EventFd, counters: Arc<Counters>) -> Self {
        Self {
            irqfd,
            status: AtomicU32::new(0),
            kernel_signalled: false.into(),
            counters,
        }
    }

    /// Raises the used-buffer interrupt.
    pub fn signal_used(&self) {
        self.status
            .fetch_or(VIRTIO_MMIO_INT_VRING, Ordering::SeqCst);
        self.counters.interrupts.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.irqfd.write(1) {
            log::warn!("virtio: cannot signal the interrupt: {e}");
        }
    }

    /// The irqfd (for vhost's call fd).
    pub fn irqfd(&self) -> &EventFd {
        &self.irqfd
    }

    pub fn set_kernel_signalled(&self, on: bool) {
        self.kernel_signalled.store(on, Ordering::SeqCst);
    }

    fn status(&self) -> u32 {
        let k = self.kernel_signalled.load(Ordering::SeqCst);
        self.status.load(Ordering::SeqCst) | if k { VIRTIO_MMIO_INT_VRING } else { 0 }
    }

    fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }
}

crate::counter_set! {
    /// Per-device counters, printed by `--stats` and SIGUSR1.
    pub struct Counters {
        /// Requests completed (block requests, entropy requests, packets).
        pub requests,
        /// Bytes the device read from its backend into the guest (disk reads, entropy, packets
        /// received by the guest).
        pub read_bytes,
        /// Bytes the guest gave the device (disk writes, packets sent by the guest).
        pub write_bytes,
        /// Queue notifies handled in userspace (the worker woken by an ioeventfd, or a notify
        /// that trapped): 0 for the vhost paths.
        pub notifies => "userspace_notifies",
        /// Interrupts raised from userspace.
        pub interrupts,
    }
}

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
    run: std::sync::Mutex<Option<Running>>,
    kick: EventFd,
    pub counters: Arc<Counters>,
}

impl OneQueue {
    pub fn new(kick: EventFd, counters: Arc<Counters>) -> Self {
        Self {
            run: std::sync::Mutex::new(None),
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

    /// Device reset: the queue is given back.
    pub fn reset(&self) {
        *self.run.lock().expect("queue lock") = None;
    }

    /// On a kick: every available chain through `serve`, which returns the bytes it wrote.
    pub fn serve(&self, mut serve: impl FnMut(&GuestMemoryMmap, &mut Chain<'_>) -> u32) {
        if !take_kick(&self.kick, &self.counters) {
            return;
        }
        let mut run = self.run.lock().expect("queue lock");
        let Some(r) = run.as_mut() else { return };
        let mem = r.mem.clone();
        r.drain(0, |chain| Some(serve(&mem, chain)));
    }
}

/// What the transport hands a device when the driver sets DRIVER_OK.
pub struct Activation {
    pub mem: GuestMemoryMmap,
    pub queues: Vec<Queue>,
    /// The features both sides agreed on.
    pub features: u64,
    pub interrupt: Arc<Interrupt>,
}

/// A device could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("vhost: {0}")]
    Vhost(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("queue {0} is not valid (size or addresses)")]
    BadQueue(usize),
    #[error("queue {queue}: the {ring} at guest {addr:#x} ({len} bytes) is not inside one guest memory region: the kernel backend cannot use it")]
    RingAcrossRegions {
        queue: usize,
        ring: &'static str,
        addr: u64,
        len: u64,
    },
}

/// A virtio device behind the MMIO transport.
pub trait VirtioDevice: Send {
    /// `VIRTIO_ID_*`.
    fn device_type(&self) -> u32;
    /// The maximum size of each queue (their number is the slice's length).
    fn queue_max_sizes(&self) -> &[u16];
    /// The features offered (VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    /// Reads the device configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver set DRIVER_OK: start the data path.
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError>;
    /// The driver reset the device: stop the data path.
    fn reset(&mut self);
    /// Queues the kernel backend serves (vhost) rather than userspace.
    fn kernel_queues(&self) -> bool {
        false
    }
}

/// Reads `data.len()` bytes of `config` at `offset` (zeros past its end).
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| config.get(o))
            .copied()
            .unwrap_or(0);
    }
}

/// A chain popped from a queue, as the userspace devices see it.
pub type Chain<'a> = virtio_queue::DescriptorChain<&'a GuestMemoryMmap>;

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

    /// Serves every available chain of queue `q` with `serve` (which returns the bytes it
    /// wrote into the chain, or `None` to stop and leave the chain for later), then raises
    /// the interrupt if the driver wants one. A driver whose available index claims chains
    /// that cannot be popped (more than the queue size ahead, an unreadable ring) gets a
    /// warning and nothing more until its next notify: the worker must never spin on it.
    pub fn drain(&mut self, q: usize, mut serve: impl FnMut(&mut Chain<'_>) -> Option<u32>) {
        let Some(queue) = self.queues.get_mut(q).filter(|q| q.ready()) else {
            return;
        };
        let mem = &self.mem;
        let mut used = false;
        let mut stalled = false;
        loop {
            if let Err(e) = queue.disable_notification(mem) {
                log::warn!("virtio: queue {q}: {e}");
                return;
            }
            let mut progress = false;
            while let Some(mut chain) = queue.pop_descriptor_chain(mem) {
                progress = true;
                let Some(len) = serve(&mut chain) else {
                    queue.go_to_previous_position();
                    stalled = true;
                    break;
                };
                if let Err(e) = queue.add_used(mem, chain.head_index(), len) {
                    log::warn!("virtio: queue {q}: {e}");
                }
                used = true;
            }
            match queue.enable_notification(mem) {
                // The backend has nothing for the chains left: wait for it, not the driver.
                _ if stalled => break,
                Ok(true) if progress => continue,
                Ok(true) => {
                    if !self.broken {
                        self.broken = true;
                        log::warn!(
                            "virtio: queue {q}: the driver's available index ({}) is not one \
                             the device can serve: ignoring the queue until the next notify",
                            queue.avail_idx(mem, Ordering::Acquire).map_or(0, |i| i.0)
                        );
                    }
                    break;
                }
                Ok(false) => break,
                Err(e) => {
                    log::warn!("virtio: queue {q}: {e}");
                    break;
                }
            }
        }
        if used && queue.needs_notification(mem).unwrap_or(true) {
            self.interrupt.signal_used();
        }
    }
}

/// The descriptors of a chain split into the buffers the device reads and those it writes.
pub struct Buffers {
    pub readable: Vec<(vm_memory::GuestAddress, u32)>,
    pub writable: Vec<(vm_memory::GuestAddress, u32)>,
}

impl Buffers {
    pub fn of(chain: &mut Chain<'_>) -> Self {
        let mut b = Buffers {
            readable: Vec::new(),
            writable: Vec::new(),
        };
        for d in chain {
            if d.is_write_only() {
                b.writable.push((d.addr(), d.len()));
            } else {
                b.readable.push((d.addr(), d.len()));
            }
        }
        b
    }
}

/// Host iovecs for guest buffers (each split where guest memory regions split); `None` if a
/// buffer is outside guest RAM.
pub fn iovecs(
    mem: &GuestMemoryMmap,
    bufs: &[(vm_memory::GuestAddress, u32)],
) -> Option<Vec<libc::iovec>> {
    use vm_memory::GuestMemoryBackend;
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
