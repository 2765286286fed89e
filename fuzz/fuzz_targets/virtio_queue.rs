//! A guest driving platvmm's userspace virtio devices (virtio-blk, virtio-rng) with rings and
//! buffers of its choosing: the transport started the way Linux starts it, then guest memory
//! from the input, two kicks served by the worker's handler (in bounded rounds), a reset, a
//! kick after it.
//!
//! Input: one control byte (bit 0 read-only disk, bit 1 EVENT_IDX, bit 2 INDIRECT_DESC, bits
//! 3-5 the queue size's log2, bit 6 virtio-rng instead of virtio-blk, bit 7 queue size 256),
//! the rings' guest addresses (three little-endian u16s in units of 4 bytes: descriptor
//! table, available ring, used ring; up to 256 KiB, so past guest memory too), then the first
//! bytes of guest memory: 64 KiB at guest address 0 in two regions (0x8000 bytes each,
//! separate mappings: guest-adjacent, not host-adjacent), buffers anywhere (or outside
//! memory).
//! Checked: nothing panics or hangs (arithmetic on guest addresses included: the target is
//! built with overflow checks); the disk never changes size, a read-only disk never changes;
//! each available chain is served at most once; after the reset nothing is served; the vhost
//! rule (each ring inside one region) agrees with the regions as laid out.

#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use devices::bus::MmioDevice;
use devices::virtio::block::{Block, Disk};
use devices::virtio::mmio::MmioTransport;
use devices::virtio::rng::Rng;
use devices::virtio::worker::{Handler, Work};
use devices::virtio::{vhost, Counters, Interrupt, Queue, QueueT, VirtioDevice, CHAINS_PER_ROUND};
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const MEM: usize = 64 << 10;
/// Where the second guest memory region starts.
const SPLIT: u64 = 0x8000;
const DISK: u64 = 16 << 10;

/// The disk image, created once per process and unlinked at once.
fn image() -> &'static File {
    static F: OnceLock<File> = OnceLock::new();
    F.get_or_init(|| scratch::unlinked_file("platvmm-fuzz-disk"))
}

fn w32(t: &mut MmioTransport, off: u64, v: u32) {
    t.write(off, &v.to_le_bytes());
}

fn r32(t: &mut MmioTransport, off: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(off, &mut b);
    u32::from_le_bytes(b)
}

/// ACKNOWLEDGE, DRIVER, the features offered ∩ `want`, FEATURES_OK, queue 0 on `rings`,
/// DRIVER_OK.
fn start(t: &mut MmioTransport, want: u64, size: u32, rings: [u32; 3]) {
    w32(t, 0x70, 3);
    w32(t, 0x14, 0);
    let lo = r32(t, 0x10);
    w32(t, 0x14, 1);
    let offered = u64::from(lo) | u64::from(r32(t, 0x10)) << 32;
    let f = offered & want;
    for (sel, half) in [(0, f as u32), (1, (f >> 32) as u32)] {
        w32(t, 0x24, sel);
        w32(t, 0x20, half);
    }
    w32(t, 0x70, 3 | 8);
    w32(t, 0x30, 0);
    w32(t, 0x38, size);
    for (reg, addr) in [(0x80, rings[0]), (0x90, rings[1]), (0xa0, rings[2])] {
        w32(t, reg, addr);
        w32(t, reg + 4, 0);
    }
    w32(t, 0x44, 1);
    w32(t, 0x70, 3 | 8 | 4);
}

/// A kick, served as the worker serves it: rounds until the handler has no work left, 16 at
/// most (a full queue takes a few; rings that overlap so that the device's own writes post
/// more chains never run dry, and each round is bounded all the same).
/// Each call serves one round: at most CHAINS_PER_ROUND requests.
fn kick(k: &EventFd, h: &dyn Handler, counters: &Counters) {
    k.write(1).unwrap();
    let mut again = false;
    for _ in 0..16 {
        let before = counters.requests.load(Ordering::Relaxed);
        let work = h.handle(0, again);
        let served = counters.requests.load(Ordering::Relaxed) - before;
        assert!(
            served <= u64::from(CHAINS_PER_ROUND),
            "{served} requests in one round"
        );
        if work == Work::Done {
            return;
        }
        again = true;
    }
}

/// The available ring's bytes (flags, index, entries), to tell whether the device wrote
/// into it (a buffer or another ring on top of it).
fn avail_ring(mem: &GuestMemoryMmap, at: u32, size: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4 + 2 * size as usize];
    let _ = mem.read_slice(&mut b, GuestAddress(at.into()));
    b
}

/// The vhost rule on the rings as the transport took them (misaligned addresses refused,
/// as the transport refuses them) against the two regions' layout.
fn check_vhost_rule(mem: &GuestMemoryMmap, size: u32, rings: [u32; 3]) {
    let mut q = Queue::new(256).unwrap();
    let ok = q.try_set_size(size as u16).is_ok()
        && q.try_set_desc_table_address(GuestAddress(rings[0].into()))
            .is_ok()
        && q.try_set_avail_ring_address(GuestAddress(rings[1].into()))
            .is_ok()
        && q.try_set_used_ring_address(GuestAddress(rings[2].into()))
            .is_ok();
    if !ok {
        return;
    }
    let n = u64::from(size);
    let lens = [16 * n, 6 + 2 * n, 6 + 8 * n];
    let inside = |a: u64, len: u64| {
        let end = a + len;
        (a < SPLIT && end <= SPLIT) || (a >= SPLIT && end <= MEM as u64)
    };
    let want = rings
        .iter()
        .zip(lens)
        .all(|(&a, len)| inside(a.into(), len));
    let got = vhost::check_rings(mem, 0, &q);
    assert_eq!(
        got.is_ok(),
        want,
        "vhost rule for rings {rings:x?} of {size}: {got:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let (ctl, (ring_bytes, image_bytes)) = (data[0], data[1..].split_at(6));
    let rings =
        [0, 2, 4].map(|i| u32::from(u16::from_le_bytes([ring_bytes[i], ring_bytes[i + 1]])) * 4);
    let readonly = ctl & 1 != 0;
    let mut want = 1u64 << 32 | 1 << 9 | 1 << 13 | 1 << 14 | 1 << 2; // VERSION_1, FLUSH, DISCARD, WRITE_ZEROES, SEG_MAX
    if ctl & 2 != 0 {
        want |= 1 << 29;
    }
    if ctl & 4 != 0 {
        want |= 1 << 28;
    }
    let size = if ctl & 0x80 != 0 {
        256
    } else {
        1u32 << ((ctl >> 3) & 7)
    };
    let rng = ctl & 0x40 != 0;

    let half = MEM / 2;
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), half), (GuestAddress(SPLIT), half)])
            .unwrap();
    let n = image_bytes.len().min(MEM);
    mem.write_slice(&image_bytes[..n], GuestAddress(0)).unwrap();
    let disk: Vec<u8> = (0..DISK).map(|i| (i * 13 + 5) as u8).collect();
    let f = image();
    f.set_len(0).unwrap();
    f.write_all_at(&disk, 0).unwrap();

    let kickfd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    let counters = Arc::new(Counters::default());
    let (dev, handler): (Box<dyn VirtioDevice>, Arc<dyn Handler>) = if rng {
        let d = Rng::new(kickfd.try_clone().unwrap(), counters.clone());
        let h = d.handler();
        (Box::new(d), h)
    } else {
        let d = Block::new(
            Disk {
                file: f.try_clone().unwrap(),
                readonly,
                serial: b"fuzz".to_vec(),
                sectors: DISK / 512,
            },
            kickfd.try_clone().unwrap(),
            counters.clone(),
        );
        let h = d.handler();
        (Box::new(d), h)
    };
    let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    let interrupt = Arc::new(Interrupt::new(irq, counters.clone()));
    let mut t = MmioTransport::new(
        "fuzz".into(),
        dev,
        mem.clone(),
        interrupt,
        counters.clone(),
        vec![kickfd.try_clone().unwrap()],
    );
    check_vhost_rule(&mem, size, rings);
    start(&mut t, want, size, rings);
    let posted = avail_ring(&mem, rings[1], size);
    kick(&kickfd, handler.as_ref(), &counters);
    kick(&kickfd, handler.as_ref(), &counters);
    let served = counters.requests.load(Ordering::Relaxed);
    // Unless the device's own writes posted more (its buffers or rings on the available
    // ring), each chain was served once at most.
    if avail_ring(&mem, rings[1], size) == posted {
        assert!(
            served <= u64::from(size),
            "{served} requests from a queue of {size}"
        );
    }
    w32(&mut t, 0x70, 0);
    // The driver posts more after the reset: nothing may be served.
    let avail_idx = GuestAddress(u64::from(rings[1]) + 2);
    if let Ok(idx) = mem.read_obj::<u16>(avail_idx) {
        let _ = mem.write_obj(idx.wrapping_add(1), avail_idx);
    }
    kick(&kickfd, handler.as_ref(), &counters);
    assert_eq!(
        counters.requests.load(Ordering::Relaxed),
        served,
        "served after reset"
    );

    assert_eq!(f.metadata().unwrap().len(), DISK, "the disk changed size");
    if readonly || rng {
        let mut now = vec![0u8; DISK as usize];
        f.read_exact_at(&mut now, 0).unwrap();
        assert!(now == disk, "a read-only disk changed");
    }
});
