//! virtio-net over a tap: the vhost-net kernel backend when /dev/vhost-net exists (the data
//! path never leaves the kernel), else a userspace path on the worker thread.

use std::fs::File;
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vhost::net::VhostNet;
use vhost::VhostBackend;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    virtio_net_config, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC,
    VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use vmm_sys_util::eventfd::EventFd;

use super::ratelimit::limited;
use super::tap::{Tap, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, VNET_HDR_LEN};
use super::vhost::{err, Mem};
use super::worker::Work;
use super::{
    feature, iovecs, read_config_bytes, ActivateError, Activation, Buffers, Counters, Limits,
    Running, VirtioDevice,
};

const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;

/// The largest frame the userspace path takes from the guest, virtio-net header included: it
/// offers no MTU, so a driver may set its MTU up to 65535 (Linux's ETH_MAX_MTU); then the
/// Ethernet header and a VLAN tag. A larger TX chain is dropped (and counted) before its
/// buffer list is built; an RX buffer list stops there.
pub const MAX_FRAME: u64 = VNET_HDR_LEN as u64 + 14 + 4 + 65535;
/// Buffers per frame at most: writev/readv take 1024 iovecs, and a buffer that crosses a
/// guest memory region boundary is two.
pub const MAX_FRAME_BUFFERS: usize = 512;
const FRAME: Limits = Limits {
    descriptors: MAX_FRAME_BUFFERS,
    bytes: MAX_FRAME,
};

/// Worker tokens of the userspace path.
const TOKEN_RX_KICK: u32 = 0;
const TOKEN_TX_KICK: u32 = 1;
const TOKEN_TAP: u32 = 2;

/// What the device asks of vhost-net: the kernel's (any [`VhostNet`]), or a double in tests.
pub trait KernelNet: Send {
    /// The memory table and both rings (see [`super::vhost::start`]).
    fn start_rings(
        &self,
        a: &Activation,
        kicks: &[EventFd],
        kernel_features: u64,
    ) -> Result<(), ActivateError>;
    /// Attaches the tap to ring `queue` (`None` detaches it).
    fn set_backend(&self, queue: usize, tap: Option<&File>) -> Result<(), vhost::Error>;
}

impl<T: VhostNet + Send> KernelNet for T {
    fn start_rings(
        &self,
        a: &Activation,
        kicks: &[EventFd],
        kernel_features: u64,
    ) -> Result<(), ActivateError> {
        super::vhost::start(self, a, kicks, 2, kernel_features)
    }
    fn set_backend(&self, queue: usize, tap: Option<&File>) -> Result<(), vhost::Error> {
        VhostNet::set_backend(self, queue, tap)
    }
}

/// The vhost-net backend: opened and owned at setup, rings given at DRIVER_OK.
pub struct VhostNetBackend {
    vhost: Box<dyn KernelNet>,
    kernel_features: u64,
}

impl VhostNetBackend {
    /// Opens /dev/vhost-net and takes ownership (this process).
    pub fn open(mem: Mem) -> Result<Self, vhost::Error> {
        let vhost = vhost::vhost_kern::net::Net::new(mem)?;
        vhost.set_owner()?;
        let kernel_features = vhost.get_features()?;
        Ok(Self::with(Box::new(vhost), kernel_features))
    }

    /// A backend already open (the kernel's, or a double) that knows `kernel_features`.
    pub fn with(vhost: Box<dyn KernelNet>, kernel_features: u64) -> Self {
        Self {
            vhost,
            kernel_features,
        }
    }
}

enum Backend {
    Vhost(VhostNetBackend),
    User(Arc<UserNet>),
}

/// A virtio-net device.
pub struct Net {
    tap: Arc<Tap>,
    backend: Backend,
    kicks: Vec<EventFd>,
    config: Vec<u8>,
}

impl Net {
    /// `vhost`: the kernel backend, or `None` for the userspace path.
    pub fn new(
        tap: Tap,
        mac: [u8; 6],
        vhost: Option<VhostNetBackend>,
        kicks: Vec<EventFd>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Self> {
        let tap = Arc::new(tap);
        let backend = match vhost {
            Some(v) => Backend::Vhost(v),
            None => Backend::User(Arc::new(UserNet {
                tap: tap.clone(),
                run: Mutex::new(None),
                cancel: AtomicBool::new(false),
                kicks: [kicks[RX].try_clone()?, kicks[TX].try_clone()?],
                counters,
            })),
        };
        Ok(Self {
            tap,
            backend,
            kicks,
            config: config_space(mac),
        })
    }

    /// Gives the userspace path's fds (both queue eventfds, the tap) to the worker.
    pub fn add_to(&self, set: &mut super::worker::WorkerSet) {
        let Backend::User(u) = &self.backend else {
            return;
        };
        set.add(u.kicks[RX].as_raw_fd(), false, u.clone(), TOKEN_RX_KICK);
        set.add(u.kicks[TX].as_raw_fd(), false, u.clone(), TOKEN_TX_KICK);
        set.add(self.tap.raw_fd(), true, u.clone(), TOKEN_TAP);
    }

    /// The userspace path's handler (what the worker runs on its fds), for tests.
    #[cfg(test)]
    pub(crate) fn user_handler(&self) -> Arc<dyn super::worker::Handler> {
        match &self.backend {
            Backend::User(u) => u.clone(),
            Backend::Vhost(_) => panic!("vhost-net has no userspace path"),
        }
    }

    fn start_vhost(&self, v: &VhostNetBackend, a: &Activation) -> Result<(), ActivateError> {
        v.vhost.start_rings(a, &self.kicks, v.kernel_features)?;
        self.tap
            .set_offload(tap_offloads(a.features))
            .map_err(|e| ActivateError::Vhost(e.to_string()))?;
        let rings = [RX, TX];
        for (n, &q) in rings.iter().enumerate() {
            if let Err(e) = v.vhost.set_backend(q, Some(&self.tap.file)) {
                // Undone: no ring may stay attached to a device that did not start.
                for &attached in &rings[..n] {
                    let _ = v.vhost.set_backend(attached, None);
                }
                return Err(err("cannot attach the tap")(e));
            }
        }
        Ok(())
    }
}

/// The configuration space: the MAC, status (unused: VIRTIO_NET_F_STATUS is not offered) and
/// max_virtqueue_pairs 1.
fn config_space(mac: [u8; 6]) -> Vec<u8> {
    use virtio_net_config as C;
    let mut c = vec![0u8; offset_of!(C, mtu)];
    let mut put = |at: usize, v: &[u8]| c[at..at + v.len()].copy_from_slice(v);
    put(offset_of!(C, mac), &mac);
    put(offset_of!(C, max_virtqueue_pairs), &1u16.to_le_bytes());
    c
}

/// Offloads the tap may use towards the guest: those the guest driver accepted.
fn tap_offloads(features: u64) -> u32 {
    let accepted = |bit| features & feature(bit) != 0;
    let mut f = 0;
    if accepted(VIRTIO_NET_F_GUEST_CSUM) {
        f |= TUN_F_CSUM;
        if accepted(VIRTIO_NET_F_GUEST_TSO4) {
            f |= TUN_F_TSO4;
        }
        if accepted(VIRTIO_NET_F_GUEST_TSO6) {
            f |= TUN_F_TSO6;
        }
    }
    f
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        let ring = feature(VIRTIO_RING_F_EVENT_IDX) | feature(VIRTIO_RING_F_INDIRECT_DESC);
        match &self.backend {
            Backend::Vhost(v) => {
                let offloads = feature(VIRTIO_NET_F_CSUM)
                    | feature(VIRTIO_NET_F_GUEST_CSUM)
                    | feature(VIRTIO_NET_F_GUEST_TSO4)
                    | feature(VIRTIO_NET_F_GUEST_TSO6);
                feature(VIRTIO_NET_F_MAC)
                    | offloads
                    | feature(VIRTIO_NET_F_HOST_TSO4)
                    | feature(VIRTIO_NET_F_HOST_TSO6)
                    | (v.kernel_features & (feature(VIRTIO_NET_F_MRG_RXBUF) | ring))
            }
            Backend::User(_) => feature(VIRTIO_NET_F_MAC) | ring,
        }
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        match &self.backend {
            Backend::Vhost(v) => self.start_vhost(v, &a),
            Backend::User(u) => {
                *u.run.lock().expect("net lock") = Some(Running::new(a));
                let _ = u.kicks[RX].write(1);
                let _ = u.kicks[TX].write(1);
                Ok(())
            }
        }
    }
    fn reset(&mut self) {
        match &self.backend {
            Backend::Vhost(v) => {
                for q in [RX, TX] {
                    let _ = v.vhost.set_backend(q, None);
                }
            }
            Backend::User(u) => u.reset(),
        }
    }
    fn kernel_queues(&self) -> bool {
        matches!(self.backend, Backend::Vhost(_))
    }
}

/// The userspace path: frames copied between the rings and the tap by the worker.
struct UserNet {
    tap: Arc<Tap>,
    run: Mutex<Option<Running>>,
    /// Raised while a reset waits for `run`: the round in progress stops at its next chain.
    cancel: AtomicBool,
    kicks: [EventFd; 2],
    /// Its counters; `dropped` counts TX chains larger than [`MAX_FRAME`] or in more than
    /// [`MAX_FRAME_BUFFERS`] buffers.
    counters: Arc<Counters>,
}

impl super::worker::Handler for UserNet {
    fn handle(&self, token: u32, again: bool) -> Work {
        let kicked =
            token == TOKEN_TAP || super::take_kick(&self.kicks[token as usize], &self.counters);
        if !kicked && !again {
            return Work::Done;
        }
        let mut run = self.run.lock().expect("net lock");
        let Some(r) = run.as_mut() else {
            return Work::Done;
        };
        let tx = if token == TOKEN_TX_KICK {
            self.transmit(r)
        } else {
            Work::Done
        };
        match (tx, self.receive(r)) {
            (Work::Done, Work::Done) => Work::Done,
            _ => Work::More,
        }
    }
}

impl UserNet {
    /// Device reset: the queues given back after the chain being served, not the round.
    fn reset(&self) {
        self.cancel.store(true, Ordering::Release);
        *self.run.lock().expect("net lock") = None;
        self.cancel.store(false, Ordering::Release);
    }

    /// Guest → tap, one frame (virtio-net header first) per chain; a chain larger than the
    /// largest frame is dropped before its buffer list is built.
    fn transmit(&self, r: &mut Running) -> Work {
        let mem = r.mem.clone();
        let fd = self.tap.raw_fd();
        r.drain(TX, &self.cancel, |chain| {
            let Ok(b) = Buffers::collect(chain, FRAME) else {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                limited!(
                    warn,
                    "virtio-net: a guest frame larger than {MAX_FRAME} bytes or in more than \
                     {MAX_FRAME_BUFFERS} buffers dropped ({n} so far on this device)"
                );
                return Some(0);
            };
            let Some(iov) = iovecs(&mem, &b.readable) else {
                return Some(0);
            };
            // SAFETY: the iovecs point into mapped guest RAM; writev only reads them.
            let n = unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) };
            if n > 0 {
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .write_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Some(0)
        })
    }

    /// Tap → guest while both a frame and a buffer are there (each buffer list cut at the
    /// largest frame).
    fn receive(&self, r: &mut Running) -> Work {
        let mem = r.mem.clone();
        let fd = self.tap.raw_fd();
        r.drain(RX, &self.cancel, |chain| {
            let iov = iovecs(&mem, &Buffers::writable_upto(chain, FRAME))?;
            // SAFETY: the iovecs point into mapped guest RAM the driver gave the device to
            // write; readv writes at most their lengths.
            let n = unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) };
            if n < 0 {
                return None; // EAGAIN: no frame; the chain stays for the next one.
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.counters
                .read_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            Some(n as u32)
        })
    }
}
