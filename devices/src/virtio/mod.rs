//! virtio devices on the virtio-mmio transport (virtio 1.x, modern only).
//!
//! - [`mmio`]: the transport's register page; queue notifies arrive on KVM ioeventfds (one
//!   eventfd per queue) and interrupts leave through one irqfd per device.
//! - [`worker`]: the thread that runs the userspace data paths (block, entropy, the network
//!   fallback), off the vCPU threads, in bounded rounds ([`queue`]).
//! - [`block`], [`rng`]: userspace devices; [`net`]: vhost-net or userspace over a tap
//!   ([`tap`]); [`vsock`]: vhost-vsock. The vhost paths never come back to userspace: the
//!   ioeventfds are the vhost kick fds and the irqfd is the vhost call fd.

pub mod block;
pub mod mmio;
pub mod net;
pub mod queue;
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

pub use queue::{
    iovecs, take_kick, Buffers, Chain, Limits, OneQueue, Oversize, Running, CHAINS_PER_ROUND,
};
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
            ratelimit::limited!(warn, "virtio: cannot signal the interrupt: {e}");
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
        /// Requests refused whole for their size: a transmit chain larger than the largest
        /// frame (virtio-net's userspace path).
        pub dropped,
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
