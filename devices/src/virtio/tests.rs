//! The transport and the block device driven the way a guest driver drives them: registers
//! programmed through the bus interface, rings written into guest memory, the worker's
//! handler run on the kick.

use std::io::Write;
use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
    VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX,
    VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS,
    VIRTIO_MMIO_VERSION,
};
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::block::{Block, Disk};
use super::mmio::MmioTransport;
use super::{feature, Counters, Interrupt};
use crate::bus::MmioDevice;

mod alloc;
mod bounded;
mod discard;
mod double;
mod guest;
mod guest_logs;
mod vhost;

const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const BUF: u64 = 0x10000;

/// Device status: ACKNOWLEDGE | DRIVER.
const ACK_DRIVER: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
/// Descriptor flags.
const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;

fn w32(t: &mut MmioTransport, off: u32, v: u32) {
    t.write(u64::from(off), &v.to_le_bytes());
}

fn r32(t: &mut MmioTransport, off: u32) -> u32 {
    let mut b = [0u8; 4];
    t.read(u64::from(off), &mut b);
    u32::from_le_bytes(b)
}

struct Rig {
    mem: GuestMemoryMmap,
    /// The disk image (another fd of the device's file).
    disk: std::fs::File,
    t: MmioTransport,
    kick: EventFd,
    handler: Arc<dyn super::worker::Handler>,
    counters: Arc<Counters>,
    irq: EventFd,
}

/// A file holding `contents`, already unlinked.
fn scratch(contents: &[u8]) -> std::fs::File {
    // One file per call: the tests run in parallel.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("platvmm-virtio-{}-{n}", std::process::id()));
    std::fs::File::create(&p)
        .unwrap()
        .write_all(contents)
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    std::fs::remove_file(&p).unwrap();
    file
}

fn disk(contents: &[u8], readonly: bool) -> Disk {
    Disk {
        file: scratch(contents),
        readonly,
        serial: b"serial-42".to_vec(),
        sectors: contents.len() as u64 / 512,
    }
}

fn rig(d: Disk) -> Rig {
    let disk = d.file.try_clone().unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    let counters = Arc::new(Counters::default());
    let dev = Block::new(d, kick.try_clone().unwrap(), counters.clone());
    let handler = dev.handler();
    let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap(), counters.clone()));
    let t = MmioTransport::new(
        "vda".into(),
        Box::new(dev),
        mem.clone(),
        interrupt,
        counters.clone(),
        vec![kick.try_clone().unwrap()],
    );
    Rig {
        mem,
        disk,
        t,
        kick,
        handler,
        counters,
        irq,
    }
}

/// ACKNOWLEDGE, DRIVER, features, FEATURES_OK, one 32-entry queue, DRIVER_OK.
fn start(r: &mut Rig, features: u64) -> u32 {
    let t = &mut r.t;
    assert_eq!(r32(t, VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(r32(t, VIRTIO_MMIO_VERSION), 2);
    assert_eq!(
        r32(t, VIRTIO_MMIO_DEVICE_ID),
        VIRTIO_ID_BLOCK,
        "block device"
    );
    w32(t, VIRTIO_MMIO_STATUS, ACK_DRIVER);
    w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    w32(t, VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
    w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    w32(t, VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
    w32(
        t,
        VIRTIO_MMIO_STATUS,
        ACK_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
    );
    if r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
        return r32(t, VIRTIO_MMIO_STATUS);
    }
    w32(t, VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(r32(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    w32(t, VIRTIO_MMIO_QUEUE_NUM, 32);
    w32(t, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC as u32);
    w32(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL as u32);
    w32(t, VIRTIO_MMIO_QUEUE_USED_LOW, USED as u32);
    w32(t, VIRTIO_MMIO_QUEUE_READY, 1);
    w32(
        t,
        VIRTIO_MMIO_STATUS,
        ACK_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
    );
    r32(t, VIRTIO_MMIO_STATUS)
}

/// Posts a request (header, one data buffer, status) as chain `n` and runs the worker;
/// returns the status (`VIRTIO_BLK_S_*`) and the length the device wrote.
fn request(
    r: &Rig,
    n: u16,
    kind: u32,
    sector: u64,
    data_len: u32,
    data_write_only: bool,
) -> (u32, u32) {
    let m = &r.mem;
    let hdr = BUF + u64::from(n) * 0x1000;
    let data = hdr + 0x100;
    let status = hdr + 0xf00;
    m.write_obj(kind, GuestAddress(hdr)).unwrap();
    m.write_obj(sector, GuestAddress(hdr + 8)).unwrap();
    m.write_obj(0xffu8, GuestAddress(status)).unwrap();
    let d0 = 3 * n;
    let descs = [
        (hdr, 16u32, NEXT, d0 + 1),
        (
            data,
            data_len,
            NEXT | if data_write_only { WRITE } else { 0 },
            d0 + 2,
        ),
        (status, 1, WRITE, 0),
    ];
    for (i, (addr, len, flags, next)) in descs.iter().enumerate() {
        let at = DESC + 16 * (u64::from(d0) + i as u64);
        m.write_obj(*addr, GuestAddress(at)).unwrap();
        m.write_obj(*len, GuestAddress(at + 8)).unwrap();
        m.write_obj(*flags, GuestAddress(at + 12)).unwrap();
        m.write_obj(*next, GuestAddress(at + 14)).unwrap();
    }
    m.write_obj(d0, GuestAddress(AVAIL + 4 + 2 * u64::from(n)))
        .unwrap();
    m.write_obj(n + 1, GuestAddress(AVAIL + 2)).unwrap();
    r.kick.write(1).unwrap();
    r.handler.handle(0, false);
    assert_eq!(
        m.read_obj::<u16>(GuestAddress(USED + 2)).unwrap(),
        n + 1,
        "used idx"
    );
    let len = m
        .read_obj::<u32>(GuestAddress(USED + 4 + 8 * u64::from(n) + 4))
        .unwrap();
    let status = m.read_obj::<u8>(GuestAddress(status)).unwrap();
    (u32::from(status), len)
}

const FEATURES: u64 = feature(VIRTIO_F_VERSION_1) | feature(VIRTIO_BLK_F_FLUSH);

#[test]
fn a_driver_reads_writes_flushes_and_gets_the_serial() {
    let mut contents = vec![0u8; 8192];
    contents[512..1024].fill(0xab);
    let mut r = rig(disk(&contents, false));
    let all = ACK_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
    assert_eq!(start(&mut r, FEATURES) & all, all, "DRIVER_OK accepted");
    let data = |n: u64| GuestAddress(BUF + n * 0x1000 + 0x100);

    assert_eq!(
        request(&r, 0, VIRTIO_BLK_T_IN, 1, 512, true),
        (VIRTIO_BLK_S_OK, 513),
        "read sector 1"
    );
    let mut got = [0u8; 512];
    r.mem.read_slice(&mut got, data(0)).unwrap();
    assert!(got.iter().all(|&b| b == 0xab));

    r.mem.write_slice(&[0x5a; 512], data(1)).unwrap();
    assert_eq!(
        request(&r, 1, VIRTIO_BLK_T_OUT, 3, 512, false),
        (VIRTIO_BLK_S_OK, 1),
        "write sector 3"
    );
    assert_eq!(
        request(&r, 2, VIRTIO_BLK_T_FLUSH, 0, 0, false).0,
        VIRTIO_BLK_S_OK,
        "flush"
    );
    assert_eq!(
        request(&r, 3, VIRTIO_BLK_T_IN, 3, 512, true).0,
        VIRTIO_BLK_S_OK,
        "read back"
    );
    r.mem.read_slice(&mut got, data(3)).unwrap();
    assert!(got.iter().all(|&b| b == 0x5a));

    assert_eq!(
        request(&r, 4, VIRTIO_BLK_T_GET_ID, 0, 20, true),
        (VIRTIO_BLK_S_OK, 21),
        "get id"
    );
    let mut id = [0u8; 9];
    r.mem.read_slice(&mut id, data(4)).unwrap();
    assert_eq!(&id, b"serial-42");

    assert_eq!(
        request(&r, 5, VIRTIO_BLK_T_IN, 16, 512, true).0,
        VIRTIO_BLK_S_IOERR,
        "past the end: IOERR"
    );
    assert_eq!(
        request(&r, 6, 99, 0, 512, true).0,
        VIRTIO_BLK_S_UNSUPP,
        "unknown type: UNSUPP"
    );
    let c = r.counters.snapshot();
    assert_eq!(c[0], ("requests", 7));
    assert_eq!(c[1], ("read_bytes", 1024));
    assert_eq!(c[2], ("write_bytes", 512));
    assert_eq!(c[3], ("userspace_notifies", 7));
    assert!(r.irq.read().unwrap() >= 1, "the irqfd was signalled");
    assert_eq!(
        r32(&mut r.t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING,
        VIRTIO_MMIO_INT_VRING,
        "InterruptStatus: used buffer"
    );
    w32(&mut r.t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    assert_eq!(
        r32(&mut r.t, VIRTIO_MMIO_INTERRUPT_STATUS),
        0,
        "acknowledged"
    );
}

#[test]
fn a_readonly_disk_refuses_writes_and_says_so_in_its_features() {
    let mut r = rig(disk(&[0u8; 4096], true));
    let mut b = [0u8; 4];
    r.t.read(u64::from(VIRTIO_MMIO_DEVICE_FEATURES), &mut b);
    assert_ne!(
        u32::from_le_bytes(b) & (1 << VIRTIO_BLK_F_RO),
        0,
        "VIRTIO_BLK_F_RO offered"
    );
    start(&mut r, FEATURES);
    assert_eq!(
        request(&r, 0, VIRTIO_BLK_T_OUT, 0, 512, false).0,
        VIRTIO_BLK_S_IOERR,
        "write: IOERR"
    );
    assert_eq!(r.counters.snapshot()[2], ("write_bytes", 0));
}

#[test]
fn features_beyond_the_offer_or_without_version_1_are_refused() {
    let mut r = rig(disk(&[0u8; 4096], false));
    let ok = VIRTIO_CONFIG_S_FEATURES_OK;
    assert_eq!(start(&mut r, FEATURES | (1 << 40)) & ok, 0, "unknown bit");
    w32(&mut r.t, VIRTIO_MMIO_STATUS, 0);
    assert_eq!(r32(&mut r.t, VIRTIO_MMIO_STATUS), 0, "reset");
    let legacy = feature(VIRTIO_BLK_F_FLUSH);
    assert_eq!(start(&mut r, legacy) & ok, 0, "legacy driver");
    w32(&mut r.t, VIRTIO_MMIO_STATUS, 0);
    assert_eq!(
        start(&mut r, FEATURES) & VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_DRIVER_OK,
        "then a good driver starts it"
    );
}

#[test]
fn an_available_index_past_the_queue_size_cannot_make_the_worker_spin() {
    let mut r = rig(disk(&[0u8; 4096], false));
    start(&mut r, FEATURES);
    // 32-entry queue, the driver claims 100 chains: nothing can be popped, and the handler
    // must return (it used to loop for ever) without serving anything.
    r.mem.write_obj(100u16, GuestAddress(AVAIL + 2)).unwrap();
    r.kick.write(1).unwrap();
    let h = r.handler.clone();
    let (done, returned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        h.handle(0, false);
        let _ = done.send(());
    });
    returned
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the handler did not return within 10 s: it spins on the bad index");
    assert_eq!(r.counters.snapshot()[0], ("requests", 0));
    assert_eq!(r.mem.read_obj::<u16>(GuestAddress(USED + 2)).unwrap(), 0);
}
