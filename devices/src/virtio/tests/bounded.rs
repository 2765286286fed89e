//! Guest-driven work is bounded: a guest that never lets its queue run dry cannot keep the
//! worker from stopping, a vCPU's reset from returning or another device from being served;
//! a chain larger than its device takes is cut or refused before its buffer list is built.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_INDIRECT_DESC, VRING_DESC_F_INDIRECT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::alloc::allocated_by;
use super::guest::{eventfds, indirect, start, transport, wait_for, within, Ring};
use super::{w32, NEXT, WRITE};
use crate::virtio::mmio::MmioTransport;
use crate::virtio::net::Net;
use crate::virtio::rng::Rng;
use crate::virtio::tap::Tap;
use crate::virtio::worker::{Handler, Work, WorkerSet};
use crate::virtio::{feature, ActivateError, Activation, Counters, OneQueue, VirtioDevice};

const VERSION_1: u64 = feature(VIRTIO_F_VERSION_1);
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
}

/// A device whose driver re-posts each chain the moment the device takes it (a driver on
/// another vCPU that never lets the queue run dry, made deterministic), until `giving_up`.
struct Flood {
    q: OneQueue,
    ring: Ring,
    giving_up: AtomicBool,
}

impl Handler for Flood {
    fn handle(&self, _token: u32, again: bool) -> Work {
        self.q.serve(again, |_mem, chain| {
            if !self.giving_up.load(Ordering::SeqCst) {
                self.ring.post(chain.head_index());
            }
            0
        })
    }
}

struct FloodDevice(Arc<Flood>);

impl VirtioDevice for FloodDevice {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[32]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        self.0.q.activate(a);
        Ok(())
    }
    fn reset(&mut self) {
        self.0.q.reset();
    }
}

/// The flooding device started, one chain (a 16-byte buffer) posted; its kick eventfd.
fn flood() -> (MmioTransport, Arc<Flood>, EventFd) {
    let mem = memory();
    let (kicks, counters) = (eventfds(1), Arc::new(Counters::default()));
    let ring = Ring::new(&mem, 0x1000, 32);
    let f = Arc::new(Flood {
        q: OneQueue::new(kicks[0].try_clone().unwrap(), counters.clone()),
        ring: ring.clone(),
        giving_up: AtomicBool::new(false),
    });
    let mut t = transport(Box::new(FloodDevice(f.clone())), &mem, &counters, &kicks);
    ring.set_desc(0, 0x8000, 16, WRITE, 0);
    start(&mut t, VERSION_1, &[&ring]);
    ring.post(0);
    let kick = kicks.into_iter().next().unwrap();
    (t, f, kick)
}

/// The flood's worker, once the flood is on.
fn flooded_worker(f: &Arc<Flood>, kick: &EventFd, set: WorkerSet) -> crate::virtio::worker::Worker {
    let mut set = set;
    set.add(kick.as_raw_fd(), false, f.clone(), 0);
    let w = set.start(|| Ok(())).unwrap();
    wait_for("the flood", || f.ring.used_idx() > 1000);
    w
}

#[test]
fn the_worker_stops_while_a_guest_keeps_its_queue_full() {
    let (_t, f, kick) = flood();
    let mut w = flooded_worker(&f, &kick, WorkerSet::default());
    let stopped = within(10, move || w.stop());
    f.giving_up.store(true, Ordering::SeqCst);
    assert!(
        stopped,
        "stop() did not return within 10 s of a flooded queue"
    );
}

#[test]
fn a_reset_returns_while_the_worker_drains_a_flooded_queue() {
    let (t, f, kick) = flood();
    let _w = flooded_worker(&f, &kick, WorkerSet::default());
    let t = Arc::new(Mutex::new(t));
    let t2 = t.clone();
    let reset = within(10, move || {
        w32(&mut t2.lock().unwrap(), VIRTIO_MMIO_STATUS, 0)
    });
    f.giving_up.store(true, Ordering::SeqCst);
    assert!(
        reset,
        "status=0 did not return within 10 s of a flooded queue"
    );
    let used = f.ring.used_idx();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(f.ring.used_idx(), used, "served after the reset");
}

#[test]
fn a_flooded_queue_does_not_starve_another_device() {
    let (_t, f, kick) = flood();
    let mem = memory();
    let (kicks, counters) = (eventfds(1), Arc::new(Counters::default()));
    let rng = Rng::new(kicks[0].try_clone().unwrap(), counters.clone());
    let mut set = WorkerSet::default();
    set.add(kicks[0].as_raw_fd(), false, rng.handler(), 0);
    let mut t = transport(Box::new(rng), &mem, &counters, &kicks);
    let ring = Ring::new(&mem, 0x1000, 8);
    start(&mut t, VERSION_1, &[&ring]);
    let _w = flooded_worker(&f, &kick, set);
    ring.set_desc(0, 0x8000, 16, WRITE, 0);
    ring.post(0);
    kicks[0].write(1).unwrap();
    let served = within(10, move || wait_for("rng", || ring.used_idx() == 1));
    f.giving_up.store(true, Ordering::SeqCst);
    assert!(
        served,
        "the rng was not served within 10 s of another device's flood"
    );
}

/// Descriptors in the indirect tables of the cap tests.
const MANY: u16 = 16384;

#[test]
fn an_entropy_request_is_cut_before_its_buffer_list_is_built() {
    let mem = memory();
    let (kicks, counters) = (eventfds(1), Arc::new(Counters::default()));
    let rng = Rng::new(kicks[0].try_clone().unwrap(), counters.clone());
    let h = rng.handler();
    let mut t = transport(Box::new(rng), &mem, &counters, &kicks);
    let ring = Ring::new(&mem, 0x1000, 8);
    // 16384 buffers of 4 KiB (64 MiB, all on one page) through an indirect table.
    indirect(&mem, 0x10000, MANY, 0x80000, 4096, WRITE);
    ring.set_desc(0, 0x10000, 16 * u32::from(MANY), INDIRECT, 0);
    let features = VERSION_1 | feature(VIRTIO_RING_F_INDIRECT_DESC);
    start(&mut t, features, &[&ring]);
    ring.post(0);
    let bytes = allocated_by(|| {
        h.handle(0, false);
    });
    assert_eq!(ring.used_idx(), 1);
    assert_eq!(ring.used_elem(0), (0, 64 << 10), "64 KiB served");
    assert!(
        bytes < 32 << 10,
        "{bytes} bytes allocated to serve 64 KiB of entropy"
    );
}

#[test]
fn an_oversized_frame_is_dropped_before_its_buffer_list_is_built() {
    let mem = memory();
    let (kicks, counters) = (eventfds(2), Arc::new(Counters::default()));
    let out = super::scratch(&[]);
    let tap = Tap::from_file("tap-test", out.try_clone().unwrap());
    let clones = kicks.iter().map(|k| k.try_clone().unwrap()).collect();
    let net = Net::new(tap, [2, 0, 0, 0, 0, 1], None, clones, counters.clone()).unwrap();
    let h = net.user_handler();
    let mut t = transport(Box::new(net), &mem, &counters, &kicks);
    let (rx, tx) = (Ring::new(&mem, 0x1000, 16), Ring::new(&mem, 0x2000, 16));
    start(
        &mut t,
        VERSION_1 | feature(VIRTIO_RING_F_INDIRECT_DESC),
        &[&rx, &tx],
    );
    let send = |head: u16| {
        tx.post(head);
        kicks[1].write(1).unwrap();
        allocated_by(|| {
            h.handle(1, false);
        })
    };
    let written = || out.metadata().unwrap().len();
    // The virtio-net header and 70000 bytes: past the largest frame.
    tx.set_desc(0, 0x10000, 12, NEXT, 1);
    tx.set_desc(1, 0x20000, 70_000, 0, 0);
    send(0);
    assert_eq!(written(), 0, "an oversized frame reached the tap");
    assert_eq!(tx.used_idx(), 1, "the chain is given back");
    assert_eq!(
        counters.dropped.load(Ordering::Relaxed),
        1,
        "the drop is counted"
    );
    // A 1500-byte frame goes through.
    tx.set_desc(2, 0x10000, 12, NEXT, 3);
    tx.set_desc(3, 0x20000, 1500, 0, 0);
    send(2);
    assert_eq!(written(), 1512);
    // 16384 buffers of 8 bytes (128 KiB): dropped, little allocated.
    indirect(&mem, 0x40000, MANY, 0x20000, 8, 0);
    tx.set_desc(4, 0x40000, 16 * u32::from(MANY), INDIRECT, 0);
    let bytes = send(4);
    assert_eq!(written(), 1512, "an oversized frame reached the tap");
    assert!(bytes < 64 << 10, "{bytes} bytes allocated to drop a frame");
}
