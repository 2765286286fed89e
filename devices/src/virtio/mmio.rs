//! The virtio-mmio transport, version 2 (virtio 1.x): the register page a guest driver
//! programs, its queues, feature negotiation and device status.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_DEVICE_FEATURES,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
    VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY,
    VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW,
    VIRTIO_MMIO_STATUS, VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION,
};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::ratelimit::limited;
use super::{feature, Activation, Counters, Interrupt, Queue, QueueT, VirtioDevice};
use crate::bus::MmioDevice;

/// Bytes of the register page a device needs (registers, then its configuration space).
pub const MMIO_SIZE: u64 = 0x200;
/// Offset of QueueNotify, where the KVM ioeventfds sit.
pub const QUEUE_NOTIFY: u64 = VIRTIO_MMIO_QUEUE_NOTIFY as u64;
/// InterruptACK. The VMM may let a KVM ioeventfd absorb its writes (no exit): the interrupt is
/// an edge on an irqfd, so there is no line to lower, and InterruptStatus then keeps
/// reporting a used buffer, which only makes the driver look at its rings.
pub const INTERRUPT_ACK: u64 = VIRTIO_MMIO_INTERRUPT_ACK as u64;

/// MagicValue, "virt" (virtio-bindings has no constant for it).
const MAGIC: u32 = 0x7472_6976;
/// The transport's Version: 2, virtio 1.x (virtio-bindings has no constant for it).
const VERSION: u32 = 2;
/// "PLAT": platvmm's vendor id.
const VENDOR: u32 = 0x5441_4c50;
/// Where the device configuration space starts.
const CONFIG: u64 = VIRTIO_MMIO_CONFIG as u64;

/// A device's register page.
pub struct MmioTransport {
    name: String,
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    counters: Arc<Counters>,
    /// One eventfd per queue: KVM signals it on a QueueNotify write with that queue's index.
    kicks: Vec<EventFd>,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    config_generation: u32,
    active: bool,
}

impl MmioTransport {
    pub fn new(
        name: String,
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
        counters: Arc<Counters>,
        kicks: Vec<EventFd>,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&s| Queue::new(s).expect("queue sizes are powers of two"))
            .collect();
        if device.kernel_queues() {
            interrupt.set_kernel_signalled(true);
        }
        Self {
            name,
            device,
            mem,
            interrupt,
            counters,
            kicks,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            active: false,
        }
    }

    /// The device's features, and VERSION_1: the only mode the transport offers.
    fn offered(&self) -> u64 {
        self.device.features() | feature(VIRTIO_F_VERSION_1)
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A register (`offset` below the configuration space).
    fn read_reg(&self, offset: u32) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match offset {
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered() as u32,
                1 => (self.offered() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => q.map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_READY => q.map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            VIRTIO_MMIO_STATUS => self.status,
            VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    /// A register write (`offset` below the configuration space).
    fn write_reg(&mut self, offset: u32, v: u32) {
        // Queue registers only count before DRIVER_OK.
        let setup = self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0;
        match offset {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => self.set_driver_features(v),
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM if setup => self.set_queue_size(v),
            VIRTIO_MMIO_QUEUE_READY if setup => self.queue().map_or((), |q| q.set_ready(v == 1)),
            VIRTIO_MMIO_QUEUE_NOTIFY => self.trapped_notify(v),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(v),
            VIRTIO_MMIO_STATUS => self.set_status(v),
            VIRTIO_MMIO_QUEUE_DESC_LOW
            | VIRTIO_MMIO_QUEUE_DESC_HIGH
            | VIRTIO_MMIO_QUEUE_AVAIL_LOW
            | VIRTIO_MMIO_QUEUE_AVAIL_HIGH
            | VIRTIO_MMIO_QUEUE_USED_LOW
            | VIRTIO_MMIO_QUEUE_USED_HIGH
                if setup =>
            {
                self.set_ring_address(offset, v)
            }
            _ => limited!(
                warn,
                "{}: write of {v:#x} to register {offset:#x} ignored",
                self.name
            ),
        }
    }

    /// QueueNum: a power of two up to QueueNumMax, else ignored (the queue keeps its size).
    fn set_queue_size(&mut self, v: u32) {
        let name = self.name.clone();
        let Some(q) = self.queue() else { return };
        // try_set_size: the crate's set_size logs each refusal itself.
        if u16::try_from(v).map_or(true, |v| q.try_set_size(v).is_err()) {
            limited!(
                warn,
                "{name}: queue size {v} ignored (not a power of two up to {})",
                q.max_size()
            );
        }
    }

    /// QueueDesc, QueueDriver (available ring), QueueDevice (used ring): each a Low register
    /// and its High 4 bytes above. A misaligned address is ignored (the ring keeps its own).
    fn set_ring_address(&mut self, offset: u32, v: u32) {
        let name = self.name.clone();
        let Some(q) = self.queue() else { return };
        let ring = offset & !4;
        let old = match ring {
            VIRTIO_MMIO_QUEUE_DESC_LOW => q.desc_table(),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => q.avail_ring(),
            _ => q.used_ring(),
        };
        let new = if offset & 4 == 0 {
            (old & !0xffff_ffff) | u64::from(v)
        } else {
            (old & 0xffff_ffff) | u64::from(v) << 32
        };
        // try_set_*: the crate's set_*_address log each refusal themselves.
        let r = match ring {
            VIRTIO_MMIO_QUEUE_DESC_LOW => q.try_set_desc_table_address(GuestAddress(new)),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => q.try_set_avail_ring_address(GuestAddress(new)),
            _ => q.try_set_used_ring_address(GuestAddress(new)),
        };
        if r.is_err() {
            limited!(
                warn,
                "{name}: misaligned ring address {new:#x} (register {offset:#x}) ignored"
            );
        }
    }

    fn set_driver_features(&mut self, v: u32) {
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | u64::from(v) << 32,
            _ => {}
        }
    }

    /// A notify KVM did not catch (no ioeventfd for it): passed on to the queue's eventfd.
    fn trapped_notify(&mut self, v: u32) {
        self.counters.notifies.fetch_add(1, Ordering::Relaxed);
        if let Some(k) = self.kicks.get(v as usize) {
            let _ = k.write(1);
        }
    }

    fn set_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let added = v & !self.status;
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 && !self.features_acceptable() {
            limited!(
                warn,
                "{}: the driver asked for features {:#x}, beyond those offered ({:#x}) or without VERSION_1",
                self.name, self.driver_features, self.offered()
            );
            self.status = v & !VIRTIO_CONFIG_S_FEATURES_OK;
            return;
        }
        self.status = v;
        if added & VIRTIO_CONFIG_S_DRIVER_OK != 0 && !self.active {
            self.activate();
        }
    }

    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.offered() == 0
            && self.driver_features & feature(VIRTIO_F_VERSION_1) != 0
    }

    fn activate(&mut self) {
        let want =
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
        if self.status & want != want {
            limited!(warn, "{}: DRIVER_OK before FEATURES_OK", self.name);
            self.status |= VIRTIO_CONFIG_S_FAILED;
            return;
        }
        let event_idx = self.driver_features & feature(VIRTIO_RING_F_EVENT_IDX) != 0;
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, q) in self.queues.iter_mut().enumerate() {
            q.set_event_idx(event_idx);
            if q.ready() && !rings_in_memory(&self.mem, q) {
                limited!(
                    warn,
                    "{}: queue {i} is not valid: a ring is outside guest RAM",
                    self.name
                );
                self.status |= VIRTIO_CONFIG_S_FAILED;
                return;
            }
            let mut fresh = Queue::new(q.max_size()).expect("valid size");
            std::mem::swap(q, &mut fresh);
            queues.push(fresh);
        }
        let a = Activation {
            mem: self.mem.clone(),
            queues,
            features: self.driver_features,
            interrupt: self.interrupt.clone(),
        };
        match self.device.activate(a) {
            Ok(()) => {
                self.active = true;
                limited!(
                    info,
                    "{}: started (features {:#x})",
                    self.name,
                    self.driver_features
                );
            }
            Err(e) => {
                limited!(warn, "{}: cannot start: {e}", self.name);
                self.status |= VIRTIO_CONFIG_S_FAILED;
            }
        }
    }

    fn reset(&mut self) {
        if self.active {
            self.device.reset();
            self.active = false;
        }
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt.ack(!0);
    }
}

/// The queue's rings inside guest RAM: what `Queue::is_valid` checks, without its log lines.
fn rings_in_memory(mem: &GuestMemoryMmap, q: &Queue) -> bool {
    let n = usize::from(q.size());
    [
        (q.desc_table(), 16 * n),
        (q.avail_ring(), 6 + 2 * n),
        (q.used_ring(), 6 + 8 * n),
    ]
    .into_iter()
    .all(|(addr, len)| mem.check_range(GuestAddress(addr), len))
}

impl MmioDevice for MmioTransport {
    /// As a guest's status write of 0: the device stopped (vhost backends detached, the
    /// worker's queues taken back), queues and negotiation cleared.
    fn reset(&mut self) {
        MmioTransport::reset(self);
    }

    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG {
            self.device.read_config(offset - CONFIG, data);
            return;
        }
        if data.len() != 4 || offset % 4 != 0 {
            limited!(
                warn,
                "{}: {}-byte read at {offset:#x} ignored",
                self.name,
                data.len()
            );
            data.fill(0);
            return;
        }
        // Below CONFIG: the offset fits in 32 bits.
        data.copy_from_slice(&self.read_reg(offset as u32).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG {
            return; // No device here has a writable configuration.
        }
        let Ok(b) = <[u8; 4]>::try_from(data) else {
            limited!(
                warn,
                "{}: {}-byte write at {offset:#x} ignored",
                self.name,
                data.len()
            );
            return;
        };
        if offset % 4 == 0 {
            // Below CONFIG: the offset fits in 32 bits.
            self.write_reg(offset as u32, u32::from_le_bytes(b));
        }
    }
}
