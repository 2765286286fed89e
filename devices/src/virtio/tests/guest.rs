//! The guest's side in tests: split rings written into guest memory the way a driver writes
//! them, and the transport started the way Linux starts it.

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

use super::{r32, w32};
use crate::virtio::mmio::MmioTransport;

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
        let at = self.desc + 16 * u64::from(i);
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
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
