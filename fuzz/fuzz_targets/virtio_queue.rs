//! A guest driving platvmm's userspace virtio devices (virtio-blk, virtio-rng) with rings and
//! buffers of its choosing: the transport started the way Linux starts it, then guest memory
//! from the input, two kicks served by the worker's handler, a reset, a kick after it.
//!
//! Input: one control byte (bit 0 read-only disk, bit 1 EVENT_IDX, bit 2 INDIRECT_DESC, bits
//! 3-5 the queue size's log2, bit 6 virtio-rng instead of virtio-blk, bit 7 queue size 256), then the first bytes of
//! guest memory (64 KiB at guest address 0): the descriptor table at 0, the available ring at
//! 0x1000, the used ring at 0x2000, buffers anywhere (or outside memory).
//! Checked: nothing panics or hangs; the disk never changes size, a read-only disk never
//! changes; each available chain is served at most once; after the reset nothing is served.

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
use devices::virtio::{Counters, Interrupt, VirtioDevice};
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const MEM: usize = 64 << 10;
const DISK: u64 = 16 << 10;
const DESC: u32 = 0;
const AVAIL: u32 = 0x1000;
const USED: u32 = 0x2000;

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

/// ACKNOWLEDGE, DRIVER, the features offered ∩ `want`, FEATURES_OK, queue 0, DRIVER_OK.
fn start(t: &mut MmioTransport, want: u64, size: u32) {
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
    for (reg, addr) in [(0x80, DESC), (0x90, AVAIL), (0xa0, USED)] {
        w32(t, reg, addr);
        w32(t, reg + 4, 0);
    }
    w32(t, 0x44, 1);
    w32(t, 0x70, 3 | 8 | 4);
}

/// A kick, served as the worker serves it: rounds until the handler has no work left, 16 at
/// most (a full queue takes a few; rings that overlap so that the device's own writes post
/// more chains never run dry, and each round is bounded all the same).
fn kick(k: &EventFd, h: &dyn Handler) {
    k.write(1).unwrap();
    let mut again = false;
    for _ in 0..16 {
        if h.handle(0, again) == Work::Done {
            return;
        }
        again = true;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, image_bytes)) = data.split_first() else {
        return;
    };
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

    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
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
    start(&mut t, want, size);
    kick(&kickfd, handler.as_ref());
    kick(&kickfd, handler.as_ref());
    let served = counters.requests.load(Ordering::Relaxed);
    assert!(
        served <= u64::from(size),
        "{served} requests from a queue of {size}"
    );
    w32(&mut t, 0x70, 0);
    // The driver posts more after the reset: nothing may be served.
    let idx: u16 = mem.read_obj(GuestAddress(u64::from(AVAIL) + 2)).unwrap();
    mem.write_obj(idx.wrapping_add(1), GuestAddress(u64::from(AVAIL) + 2))
        .unwrap();
    kick(&kickfd, handler.as_ref());
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
