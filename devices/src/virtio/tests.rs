//! The transport and the block device driven the way a guest driver drives them: registers
//! programmed through the bus interface, rings written into guest memory, the worker's
//! handler run on the kick.

use std::io::Write;
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::block::{Block, Disk};
use super::mmio::MmioTransport;
use super::{Counters, Interrupt};
use crate::bus::MmioDevice;

const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const BUF: u64 = 0x10000;

fn w32(t: &mut MmioTransport, off: u64, v: u32) {
    t.write(off, &v.to_le_bytes());
}

fn r32(t: &mut MmioTransport, off: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(off, &mut b);
    u32::from_le_bytes(b)
}

struct Rig {
    mem: GuestMemoryMmap,
    t: MmioTransport,
    kick: EventFd,
    handler: Arc<dyn super::worker::Handler>,
    counters: Arc<Counters>,
    irq: EventFd,
}

fn disk(contents: &[u8], readonly: bool) -> Disk {
    // One file per call: the tests run in parallel.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("platvmm-blk-{}-{n}", std::process::id()));
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
    Disk {
        file,
        readonly,
        serial: b"serial-42".to_vec(),
        sectors: contents.len() as u64 / 512,
    }
}

fn rig(d: Disk) -> Rig {
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
    assert_eq!(r32(t, 0), 0x7472_6976);
    assert_eq!(r32(t, 4), 2);
    assert_eq!(r32(t, 8), 2, "block device");
    w32(t, 0x70, 3);
    w32(t, 0x24, 0);
    w32(t, 0x20, features as u32);
    w32(t, 0x24, 1);
    w32(t, 0x20, (features >> 32) as u32);
    w32(t, 0x70, 3 | 8);
    if r32(t, 0x70) & 8 == 0 {
        return r32(t, 0x70);
    }
    w32(t, 0x30, 0);
    assert_eq!(r32(t, 0x34), 256);
    w32(t, 0x38, 32);
    w32(t, 0x80, DESC as u32);
    w32(t, 0x90, AVAIL as u32);
    w32(t, 0xa0, USED as u32);
    w32(t, 0x44, 1);
    w32(t, 0x70, 3 | 8 | 4);
    r32(t, 0x70)
}

/// Posts a request (header, one data buffer, status) as chain `n` and runs the worker.
fn request(
    r: &Rig,
    n: u16,
    kind: u32,
    sector: u64,
    data_len: u32,
    data_write_only: bool,
) -> (u8, u32) {
    let m = &r.mem;
    let hdr = BUF + u64::from(n) * 0x1000;
    let data = hdr + 0x100;
    let status = hdr + 0xf00;
    m.write_obj(kind, GuestAddress(hdr)).unwrap();
    m.write_obj(sector, GuestAddress(hdr + 8)).unwrap();
    m.write_obj(0xffu8, GuestAddress(status)).unwrap();
    let d0 = 3 * n;
    let descs = [
        (hdr, 16u32, 1u16, d0 + 1),
        (
            data,
            data_len,
            1 | if data_write_only { 2 } else { 0 },
            d0 + 2,
        ),
        (status, 1, 2, 0),
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
    r.handler.handle(0);
    assert_eq!(
        m.read_obj::<u16>(GuestAddress(USED + 2)).unwrap(),
        n + 1,
        "used idx"
    );
    let len = m
        .read_obj::<u32>(GuestAddress(USED + 4 + 8 * u64::from(n) + 4))
        .unwrap();
    (m.read_obj::<u8>(GuestAddress(status)).unwrap(), len)
}

const FEATURES: u64 = super::F_VERSION_1 | (1 << 9); // VERSION_1 | FLUSH

#[test]
fn a_driver_reads_writes_flushes_and_gets_the_serial() {
    let mut contents = vec![0u8; 8192];
    contents[512..1024].fill(0xab);
    let mut r = rig(disk(&contents, false));
    assert_eq!(start(&mut r, FEATURES) & 0xf, 0xf, "DRIVER_OK accepted");
    let data = |n: u64| GuestAddress(BUF + n * 0x1000 + 0x100);

    assert_eq!(request(&r, 0, 0, 1, 512, true), (0, 513), "read sector 1");
    let mut got = [0u8; 512];
    r.mem.read_slice(&mut got, data(0)).unwrap();
    assert!(got.iter().all(|&b| b == 0xab));

    r.mem.write_slice(&[0x5a; 512], data(1)).unwrap();
    assert_eq!(request(&r, 1, 1, 3, 512, false), (0, 1), "write sector 3");
    assert_eq!(request(&r, 2, 4, 0, 0, false).0, 0, "flush");
    assert_eq!(request(&r, 3, 0, 3, 512, true).0, 0, "read back");
    r.mem.read_slice(&mut got, data(3)).unwrap();
    assert!(got.iter().all(|&b| b == 0x5a));

    assert_eq!(request(&r, 4, 8, 0, 20, true), (0, 21), "get id");
    let mut id = [0u8; 9];
    r.mem.read_slice(&mut id, data(4)).unwrap();
    assert_eq!(&id, b"serial-42");

    assert_eq!(request(&r, 5, 0, 16, 512, true).0, 1, "past the end: IOERR");
    assert_eq!(
        request(&r, 6, 99, 0, 512, true).0,
        2,
        "unknown type: UNSUPP"
    );
    let c = r.counters.snapshot();
    assert_eq!(c[0], ("requests", 7));
    assert_eq!(c[1], ("read_bytes", 1024));
    assert_eq!(c[2], ("write_bytes", 512));
    assert_eq!(c[3], ("userspace_notifies", 7));
    assert!(r.irq.read().unwrap() >= 1, "the irqfd was signalled");
    assert_eq!(r32(&mut r.t, 0x60) & 1, 1, "InterruptStatus: used buffer");
    w32(&mut r.t, 0x64, 1);
    assert_eq!(r32(&mut r.t, 0x60), 0, "acknowledged");
}

#[test]
fn a_readonly_disk_refuses_writes_and_says_so_in_its_features() {
    let mut r = rig(disk(&[0u8; 4096], true));
    let mut b = [0u8; 4];
    r.t.read(0x10, &mut b);
    assert_ne!(
        u32::from_le_bytes(b) & (1 << 5),
        0,
        "VIRTIO_BLK_F_RO offered"
    );
    start(&mut r, FEATURES);
    assert_eq!(request(&r, 0, 1, 0, 512, false).0, 1, "write: IOERR");
    assert_eq!(r.counters.snapshot()[2], ("write_bytes", 0));
}

#[test]
fn features_beyond_the_offer_or_without_version_1_are_refused() {
    let mut r = rig(disk(&[0u8; 4096], false));
    assert_eq!(start(&mut r, FEATURES | (1 << 40)) & 8, 0, "unknown bit");
    w32(&mut r.t, 0x70, 0);
    assert_eq!(r32(&mut r.t, 0x70), 0, "reset");
    assert_eq!(start(&mut r, 1 << 9) & 8, 0, "legacy driver");
    w32(&mut r.t, 0x70, 0);
    assert_eq!(
        start(&mut r, FEATURES) & 4,
        4,
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
        h.handle(0);
        let _ = done.send(());
    });
    returned
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the handler did not return within 10 s: it spins on the bad index");
    assert_eq!(r.counters.snapshot()[0], ("requests", 0));
    assert_eq!(r.mem.read_obj::<u16>(GuestAddress(USED + 2)).unwrap(), 0);
}
