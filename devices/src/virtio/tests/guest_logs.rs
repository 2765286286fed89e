//! A guest cannot flood the host's log: every line its register writes, rings and requests
//! can trigger is rate-limited, and the virtio-queue crate's own lines are never reached.

use std::cell::Cell;
use std::sync::Once;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
};
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS,
};
use virtio_bindings::virtio_ring::VRING_DESC_F_NEXT;
use vm_memory::{Bytes, GuestAddress};

use super::guest::Ring;
use super::{disk, rig, start, w32, AVAIL, BUF, DESC, FEATURES, USED};
use crate::bus::MmioDevice;
use crate::virtio::ratelimit::{EVERY, FIRST};

thread_local! {
    /// Records logged by this thread, at any level, from any crate.
    static RECORDS: Cell<u64> = const { Cell::new(0) };
}

struct Counter;

impl log::Log for Counter {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _record: &log::Record<'_>) {
        RECORDS.with(|r| r.set(r.get() + 1));
    }
    fn flush(&self) {}
}

static COUNTER: Counter = Counter;

/// The records this thread logged while `f` ran.
fn logged_by(f: impl FnOnce()) -> u64 {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&COUNTER).expect("no other logger in the test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
    let before = RECORDS.with(Cell::get);
    f();
    RECORDS.with(Cell::get) - before
}

/// Times each guest action is repeated.
const N: u64 = 2000;
/// The guest actions below (each at most its own few lines).
const ACTIONS: u64 = 12;

#[test]
fn a_guest_repeating_what_the_host_logs_does_not_flood_the_log() {
    let mut r = rig(disk(&[0u8; 4096], false));
    let t = &mut r.t;
    let lines = logged_by(|| {
        for _ in 0..N {
            t.write(0x70, &[0, 0]); // a 2-byte write
            t.read(0x70, &mut [0u8; 2]); // a 2-byte read
            w32(t, VIRTIO_MMIO_MAGIC_VALUE, 1); // a read-only register
            w32(t, VIRTIO_MMIO_QUEUE_SEL, 0);
            w32(t, VIRTIO_MMIO_QUEUE_NUM, 3); // not a power of two
            w32(t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1001); // misaligned rings
            w32(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x2001);
            w32(t, VIRTIO_MMIO_QUEUE_USED_LOW, 0x3001);
            // DRIVER_OK before FEATURES_OK.
            let ack = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
            w32(t, VIRTIO_MMIO_STATUS, ack | VIRTIO_CONFIG_S_DRIVER_OK);
            w32(t, VIRTIO_MMIO_STATUS, 0);
        }
    });
    assert!(
        lines <= ACTIONS * (FIRST + N / EVERY),
        "{lines} log lines from {N} rounds of bad register accesses"
    );
}

#[test]
fn a_guest_restarting_with_broken_rings_does_not_flood_the_log() {
    let mut r = rig(disk(&[0u8; 4096], false));
    let ring = Ring {
        mem: r.mem.clone(),
        desc: DESC,
        avail: AVAIL,
        used: USED,
        size: 32,
    };
    let lines = logged_by(|| {
        for i in 0..N {
            // Started (an info line each time), then: a request without a status byte, a
            // descriptor index past the queue size, an available index past the queue size.
            start(&mut r, FEATURES);
            ring.set_desc(0, BUF, 16, VRING_DESC_F_NEXT as u16, 1);
            ring.set_desc(1, BUF + 0x100, 16, 0, 0);
            ring.post(0);
            ring.post(40);
            r.handler.handle(0, true);
            r.mem.write_obj(100u16, GuestAddress(AVAIL + 2)).unwrap();
            r.handler.handle(0, true);
            w32(&mut r.t, VIRTIO_MMIO_STATUS, 0);
            assert_eq!(ring.used_idx(), 1, "round {i}");
            // Then a descriptor table outside guest RAM: not valid, not started.
            let mut far = ring.clone();
            far.desc = 1 << 40;
            super::guest::start(&mut r.t, FEATURES, &[&far]);
            w32(&mut r.t, VIRTIO_MMIO_STATUS, 0);
            r.mem.write_obj(0u16, GuestAddress(AVAIL + 2)).unwrap();
        }
    });
    assert!(
        lines <= ACTIONS * (FIRST + N / EVERY),
        "{lines} log lines from {N} restarts with broken rings"
    );
}
