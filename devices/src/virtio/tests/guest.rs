//! The guest's side in tests: split rings written into guest memory the way a driver writes
//! them, and the transport started the way Linux starts it.

use std::sync::Arc;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
};
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL,
    VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS,
};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::{r32, w32, NEXT};
use crate::virtio::mmio::MmioTransport;
use crate::virtio::{Counters, Interrupt, VirtioDevice};

/// One split queue as its driver sees it.
#[derive(Clone)]
pub struct Ring {
    pub mem: GuestMemoryMmap,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
}

impl Ring {
    /// The descriptor table at `base`, the available ring right after it, the used ring at
    /// the next 4-byte boundary after that.
    pub fn new(mem: &GuestMemoryMmap, base: u64, size: u16) -> Self {
        let avail = base + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
        Self {
            mem: mem.clone(),
            desc: base,
            avail,
            used,
            size,
        }
    }

    pub fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        set_desc(&self.mem, self.desc, i, (addr, len, flags, next));
    }

    /// Makes chain `head` available.
    pub fn post(&self, head: u16) {
        let idx = self.avail_idx();
        let slot = self.avail + 4 + 2 * u64::from(idx % self.size);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.set_avail_idx(idx.wrapping_add(1));
    }

    pub fn avail_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.avail + 2)).unwrap()
    }

    pub fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx, GuestAddress(self.avail + 2))
            .unwrap();
    }

    pub fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// The `n`th used element: (head, length written).
    pub fn used_elem(&self, n: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(n % self.size);
        (
            self.mem.read_obj(GuestAddress(at)).unwrap(),
            self.mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }
}

/// Descriptor `i` of the table at `table`: (address, length, flags, next).
pub fn set_desc(mem: &GuestMemoryMmap, table: u64, i: u16, d: (u64, u32, u16, u16)) {
    let at = table + 16 * u64::from(i);
    mem.write_obj(d.0, GuestAddress(at)).unwrap();
    mem.write_obj(d.1, GuestAddress(at + 8)).unwrap();
    mem.write_obj(d.2, GuestAddress(at + 12)).unwrap();
    mem.write_obj(d.3, GuestAddress(at + 14)).unwrap();
}

/// An indirect table at `table` of `n` descriptors chained in order, each `(addr, len)` with
/// `flags` (NEXT added but on the last).
pub fn indirect(mem: &GuestMemoryMmap, table: u64, n: u16, addr: u64, len: u32, flags: u16) {
    for i in 0..n {
        let next = if i + 1 < n { NEXT } else { 0 };
        set_desc(mem, table, i, (addr, len, flags | next, i.wrapping_add(1)));
    }
}

/// A transport over `dev`, its interrupt on a fresh eventfd.
pub fn transport(
    dev: Box<dyn VirtioDevice>,
    mem: &GuestMemoryMmap,
    counters: &Arc<Counters>,
    kicks: &[EventFd],
) -> MmioTransport {
    let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    MmioTransport::new(
        "test".into(),
        dev,
        mem.clone(),
        Arc::new(Interrupt::new(irq, counters.clone())),
        counters.clone(),
        kicks.iter().map(|k| k.try_clone().unwrap()).collect(),
    )
}

pub fn eventfds(n: usize) -> Vec<EventFd> {
    (0..n)
        .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
        .collect()
}

/// Runs `f` on a thread of its own: whether it returned within `secs` seconds (if not, it
/// is left running).
pub fn within(secs: u64, f: impl FnOnce() + Send + 'static) -> bool {
    let (done, returned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    returned
        .recv_timeout(std::time::Duration::from_secs(secs))
        .is_ok()
}

/// Waits up to 10 s for `cond`.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(t0.elapsed().as_secs() < 10, "{what}: not within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// ACKNOWLEDGE, DRIVER, `features`, FEATURES_OK, each ring programmed and ready, DRIVER_OK;
/// returns the status read back.
pub fn start(t: &mut MmioTransport, features: u64, rings: &[&Ring]) -> u32 {
    let ack = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    w32(t, VIRTIO_MMIO_STATUS, ack);
    for (sel, half) in [(0, features as u32), (1, (features >> 32) as u32)] {
        w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        w32(t, VIRTIO_MMIO_DRIVER_FEATURES, half);
    }
    w32(t, VIRTIO_MMIO_STATUS, ack | VIRTIO_CONFIG_S_FEATURES_OK);
    for (i, r) in (0u32..).zip(rings) {
        w32(t, VIRTIO_MMIO_QUEUE_SEL, i);
        w32(t, VIRTIO_MMIO_QUEUE_NUM, u32::from(r.size));
        for (lo, hi, addr) in [
            (
                VIRTIO_MMIO_QUEUE_DESC_LOW,
                VIRTIO_MMIO_QUEUE_DESC_HIGH,
                r.desc,
            ),
            (
                VIRTIO_MMIO_QUEUE_AVAIL_LOW,
                VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
                r.avail,
            ),
            (
                VIRTIO_MMIO_QUEUE_USED_LOW,
                VIRTIO_MMIO_QUEUE_USED_HIGH,
                r.used,
            ),
        ] {
            w32(t, lo, addr as u32);
            w32(t, hi, (addr >> 32) as u32);
        }
        w32(t, VIRTIO_MMIO_QUEUE_READY, 1);
    }
    let all = ack | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
    w32(t, VIRTIO_MMIO_STATUS, all);
    r32(t, VIRTIO_MMIO_STATUS)
}
