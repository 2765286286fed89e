//! virtio-rng: each buffer the driver offers is filled from the host's getrandom(2).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
use vmm_sys_util::eventfd::EventFd;

use super::worker::Work;
use super::{
    feature, iovecs, ActivateError, Activation, Buffers, Counters, Limits, OneQueue, VirtioDevice,
};

const QUEUE_SIZE: u16 = 64;
/// Bytes served per request at most (the Linux driver asks for up to 64 at a time), in at
/// most 1024 buffers: a request is cut there while its buffer list is built.
const LIMITS: Limits = Limits {
    descriptors: 1024,
    bytes: 64 * 1024,
};

/// A virtio-rng device.
pub struct Rng {
    inner: Arc<Inner>,
}

struct Inner {
    q: OneQueue,
}

impl Rng {
    pub fn new(kick: EventFd, counters: Arc<Counters>) -> Self {
        Self {
            inner: Arc::new(Inner {
                q: OneQueue::new(kick, counters),
            }),
        }
    }

    pub fn handler(&self) -> Arc<dyn super::worker::Handler> {
        self.inner.clone()
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        feature(VIRTIO_RING_F_INDIRECT_DESC)
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        self.inner.q.activate(a);
        Ok(())
    }
    fn reset(&mut self) {
        self.inner.q.reset();
    }
}

impl super::worker::Handler for Inner {
    fn handle(&self, _token: u32, again: bool) -> Work {
        let c = &self.q.counters;
        self.q.serve(again, |mem, chain| {
            let bufs = Buffers::writable_upto(chain, LIMITS);
            let n = iovecs(mem, &bufs).map_or(0, |iov| fill(&iov));
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
            n as u32
        })
    }
}

/// Fills the buffers with random bytes; returns how many.
fn fill(iov: &[libc::iovec]) -> usize {
    let mut done = 0;
    for v in iov {
        let want = v.iov_len;
        // SAFETY: the iovec points into mapped guest RAM of at least `iov_len` bytes.
        let n = unsafe { libc::getrandom(v.iov_base, want, 0) };
        if n <= 0 {
            break;
        }
        done += n as usize;
        if (n as usize) < want {
            break;
        }
    }
    done
}
