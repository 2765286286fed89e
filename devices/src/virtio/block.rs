//! virtio-blk on a raw image: read, write, flush, get-id, discard and write-zeroes, served by
//! the worker thread with preadv/pwritev straight into guest memory.

use std::fs::File;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    virtio_blk_config, virtio_blk_discard_write_zeroes, virtio_blk_outhdr, VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::ratelimit::limited;
use super::worker::Work;
use super::{
    feature, iovecs, read_config_bytes, ActivateError, Activation, Buffers, Chain, Counters,
    Limits, OneQueue, Oversize, VirtioDevice,
};

/// virtio-blk's sector, whatever the image's block size (virtio-bindings has no constant for
/// it).
const SECTOR: u64 = 512;
const QUEUE_SIZE: u16 = 256;
/// Data segments per request the driver may use (seg_max).
const SEG_MAX: u32 = 126;
/// Descriptors per request at most: well above seg_max + 2 (header and status), what a driver
/// that honours seg_max uses. A longer chain gets IOERR before its buffer list is built.
const MAX_DESCRIPTORS: usize = 1024;
const LIMITS: Limits = Limits {
    descriptors: MAX_DESCRIPTORS,
    bytes: u64::MAX,
};
/// Segments one discard / write-zeroes request may carry. The device advertises one
/// (max_discard_seg, max_write_zeroes_seg: what Linux then sends); a driver that sends more
/// gets every one served all the same, up to Linux's own cap (MAX_DISCARD_SEGMENTS), past
/// which the request is UNSUPP.
const MAX_ZERO_SEGS: usize = 256;
/// Sectors per discard / write-zeroes segment.
const MAX_ZERO_SECTORS: u32 = 1 << 22;

/// The serial number's room in GET_ID.
pub const SERIAL_LEN: usize = VIRTIO_BLK_ID_BYTES as usize;

/// The image behind a disk.
#[derive(Debug)]
pub struct Disk {
    pub file: File,
    pub readonly: bool,
    pub serial: Vec<u8>,
    pub sectors: u64,
}

struct Inner {
    disk: Disk,
    q: OneQueue,
}

/// A virtio-blk device.
pub struct Block {
    inner: Arc<Inner>,
    config: Vec<u8>,
}

impl Block {
    /// The device, and the handler the worker runs on `kick` (the queue's eventfd).
    pub fn new(disk: Disk, kick: EventFd, counters: Arc<Counters>) -> Self {
        let config = config_space(disk.sectors);
        Self {
            inner: Arc::new(Inner {
                disk,
                q: OneQueue::new(kick, counters),
            }),
            config,
        }
    }

    pub fn handler(&self) -> Arc<dyn super::worker::Handler> {
        self.inner.clone()
    }
}

/// The configuration space up to write_zeroes_may_unmap and its padding (the secure-erase and
/// zoned fields are not offered: reads there give zeros).
fn config_space(sectors: u64) -> Vec<u8> {
    use virtio_blk_config as C;
    let mut c = vec![0u8; offset_of!(C, max_secure_erase_sectors)];
    let mut put = |at: usize, v: &[u8]| c[at..at + v.len()].copy_from_slice(v);
    put(offset_of!(C, capacity), &sectors.to_le_bytes());
    put(offset_of!(C, seg_max), &SEG_MAX.to_le_bytes());
    put(offset_of!(C, blk_size), &(SECTOR as u32).to_le_bytes());
    put(offset_of!(C, num_queues), &1u16.to_le_bytes());
    put(
        offset_of!(C, max_discard_sectors),
        &MAX_ZERO_SECTORS.to_le_bytes(),
    );
    put(offset_of!(C, max_discard_seg), &1u32.to_le_bytes());
    put(offset_of!(C, discard_sector_alignment), &1u32.to_le_bytes());
    put(
        offset_of!(C, max_write_zeroes_sectors),
        &MAX_ZERO_SECTORS.to_le_bytes(),
    );
    put(offset_of!(C, max_write_zeroes_seg), &1u32.to_le_bytes());
    put(offset_of!(C, write_zeroes_may_unmap), &[1]);
    c
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        let base = feature(VIRTIO_BLK_F_SEG_MAX)
            | feature(VIRTIO_BLK_F_FLUSH)
            | feature(VIRTIO_RING_F_EVENT_IDX)
            | feature(VIRTIO_RING_F_INDIRECT_DESC);
        if self.inner.disk.readonly {
            base | feature(VIRTIO_BLK_F_RO)
        } else {
            base | feature(VIRTIO_BLK_F_DISCARD) | feature(VIRTIO_BLK_F_WRITE_ZEROES)
        }
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        self.inner.q.activate(a);
        Ok(())
    }
    fn reset(&mut self) {
        self.inner.q.reset();
    }
}

impl super::worker::Handler for Inner {
    fn handle(&self, _token: u32, again: bool) -> Work {
        self.q.serve(again, |mem, chain| self.request(mem, chain))
    }
}

/// The request header (`virtio_blk_outhdr`): type, ioprio (ignored), sector.
struct Header {
    kind: u32,
    sector: u64,
}

impl Inner {
    /// Serves one request; returns the bytes written into the chain.
    fn request(&self, mem: &GuestMemoryMmap, chain: &mut Chain<'_>) -> u32 {
        let mut b = match Buffers::collect(chain, LIMITS) {
            Ok(b) => b,
            Err(over) => return refuse(mem, chain, over),
        };
        let Some((status_addr, _)) = b.writable.pop().filter(|w| w.1 >= 1) else {
            limited!(warn, "virtio-blk: request without a status byte");
            return 0;
        };
        let Some(h) = header(mem, &b.readable) else {
            let _ = mem.write_obj(VIRTIO_BLK_S_IOERR as u8, status_addr);
            return 1;
        };
        let data_in = &b.readable[1..];
        let (status, written) = match h.kind {
            VIRTIO_BLK_T_IN => self.read(mem, h.sector, &b.writable),
            VIRTIO_BLK_T_OUT if !self.disk.readonly => (self.write(mem, h.sector, data_in), 0),
            VIRTIO_BLK_T_FLUSH => (self.flush(), 0),
            VIRTIO_BLK_T_GET_ID => self.get_id(mem, &b.writable),
            VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES if !self.disk.readonly => {
                (self.zero(mem, h.kind, data_in), 0)
            }
            VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
                (VIRTIO_BLK_S_IOERR, 0)
            }
            _ => (VIRTIO_BLK_S_UNSUPP, 0),
        };
        self.q.counters.requests.fetch_add(1, Ordering::Relaxed);
        // The status is one byte (VIRTIO_BLK_S_*).
        let _ = mem.write_obj(status as u8, status_addr);
        written + 1
    }

    fn in_range(&self, sector: u64, bytes: u64) -> bool {
        bytes % SECTOR == 0
            && sector
                .checked_add(bytes / SECTOR)
                .is_some_and(|end| end <= self.disk.sectors)
    }

    fn read(&self, mem: &GuestMemoryMmap, sector: u64, bufs: &[(GuestAddress, u32)]) -> (u32, u32) {
        let len: u64 = bufs.iter().map(|b| u64::from(b.1)).sum();
        if !self.in_range(sector, len) {
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        let Some(iov) = iovecs(mem, bufs) else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        match positional(&self.disk.file, &iov, sector * SECTOR, false) {
            Ok(()) => {
                self.q.counters.read_bytes.fetch_add(len, Ordering::Relaxed);
                (VIRTIO_BLK_S_OK, len as u32)
            }
            Err(e) => {
                limited!(warn, "virtio-blk: read at sector {sector}: {e}");
                (VIRTIO_BLK_S_IOERR, 0)
            }
        }
    }

    fn write(&self, mem: &GuestMemoryMmap, sector: u64, bufs: &[(GuestAddress, u32)]) -> u32 {
        let len: u64 = bufs.iter().map(|b| u64::from(b.1)).sum();
        if !self.in_range(sector, len) {
            return VIRTIO_BLK_S_IOERR;
        }
        let Some(iov) = iovecs(mem, bufs) else {
            return VIRTIO_BLK_S_IOERR;
        };
        match positional(&self.disk.file, &iov, sector * SECTOR, true) {
            Ok(()) => {
                self.q
                    .counters
                    .write_bytes
                    .fetch_add(len, Ordering::Relaxed);
                VIRTIO_BLK_S_OK
            }
            Err(e) => {
                limited!(warn, "virtio-blk: write at sector {sector}: {e}");
                VIRTIO_BLK_S_IOERR
            }
        }
    }

    fn flush(&self) -> u32 {
        match self.disk.file.sync_data() {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(e) => {
                limited!(warn, "virtio-blk: flush: {e}");
                VIRTIO_BLK_S_IOERR
            }
        }
    }

    fn get_id(&self, mem: &GuestMemoryMmap, bufs: &[(GuestAddress, u32)]) -> (u32, u32) {
        let Some(&(addr, len)) = bufs.first() else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        let mut id = [0u8; SERIAL_LEN];
        let n = self.disk.serial.len().min(SERIAL_LEN);
        id[..n].copy_from_slice(&self.disk.serial[..n]);
        let n = (len as usize).min(SERIAL_LEN);
        match mem.write_slice(&id[..n], addr) {
            Ok(()) => (VIRTIO_BLK_S_OK, n as u32),
            Err(_) => (VIRTIO_BLK_S_IOERR, 0),
        }
    }

    /// DISCARD punches holes; WRITE_ZEROES zeroes the ranges (holes if allowed to unmap).
    /// Every segment is checked before any is served: a request is refused whole.
    fn zero(&self, mem: &GuestMemoryMmap, kind: u32, bufs: &[(GuestAddress, u32)]) -> u32 {
        let segs = match segments(mem, bufs) {
            Ok(segs) => segs,
            Err(status) => return status,
        };
        if let Some(status) = segs.iter().find_map(|s| self.refused(kind, s)) {
            return status;
        }
        for s in segs.iter().filter(|s| s.count > 0) {
            let status = self.fallocate(kind, s);
            if status != VIRTIO_BLK_S_OK {
                return status;
            }
        }
        VIRTIO_BLK_S_OK
    }

    /// Why segment `s` of a `kind` request cannot be served (the spec's UNSUPP for unknown
    /// flags and for a discard that asks to unmap, IOERR past the image or the advertised
    /// sector count), if it cannot.
    fn refused(&self, kind: u32, s: &Segment) -> Option<u32> {
        let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        if s.flags & !unmap != 0 || (kind == VIRTIO_BLK_T_DISCARD && s.flags & unmap != 0) {
            return Some(VIRTIO_BLK_S_UNSUPP);
        }
        if s.count > MAX_ZERO_SECTORS || !self.in_range(s.sector, u64::from(s.count) * SECTOR) {
            return Some(VIRTIO_BLK_S_IOERR);
        }
        None
    }

    /// One checked segment: a hole (discard, or write-zeroes allowed to unmap) or zeroes.
    fn fallocate(&self, kind: u32, s: &Segment) -> u32 {
        let unmap =
            kind == VIRTIO_BLK_T_DISCARD || s.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0;
        let mode = if unmap {
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
        } else {
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE
        };
        // SAFETY: fallocate on an fd this device owns, within the image's size (checked).
        let r = unsafe {
            libc::fallocate(
                self.disk.file.as_raw_fd(),
                mode,
                (s.sector * SECTOR) as libc::off_t,
                (u64::from(s.count) * SECTOR) as libc::off_t,
            )
        };
        if r == 0 {
            return VIRTIO_BLK_S_OK;
        }
        let e = std::io::Error::last_os_error();
        limited!(warn, "virtio-blk: fallocate at sector {}: {e}", s.sector);
        if kind == VIRTIO_BLK_T_DISCARD {
            VIRTIO_BLK_S_OK // Discard is a hint.
        } else {
            VIRTIO_BLK_S_IOERR
        }
    }
}

/// A discard / write-zeroes segment (`virtio_blk_discard_write_zeroes`).
struct Segment {
    sector: u64,
    count: u32,
    flags: u32,
}

/// A request's segments: its data read as one byte stream, however the descriptors split it
/// (a segment may straddle two). `Err`: the status to answer (IOERR for data that is not
/// whole segments or outside guest RAM, UNSUPP past [`MAX_ZERO_SEGS`]).
fn segments(mem: &GuestMemoryMmap, bufs: &[(GuestAddress, u32)]) -> Result<Vec<Segment>, u32> {
    use virtio_blk_discard_write_zeroes as Seg;
    const LEN: usize = size_of::<Seg>();
    let total: u64 = bufs.iter().map(|b| u64::from(b.1)).sum();
    if total == 0 || total % LEN as u64 != 0 {
        return Err(VIRTIO_BLK_S_IOERR);
    }
    if total > (MAX_ZERO_SEGS * LEN) as u64 {
        return Err(VIRTIO_BLK_S_UNSUPP);
    }
    // At most MAX_ZERO_SEGS segments: a few KiB.
    let mut data = vec![0u8; total as usize];
    let mut at = 0;
    for &(addr, len) in bufs {
        let end = at + len as usize;
        mem.read_slice(&mut data[at..end], addr)
            .map_err(|_| VIRTIO_BLK_S_IOERR)?;
        at = end;
    }
    Ok(data
        .chunks_exact(LEN)
        .map(|c| Segment {
            sector: u64::from_le_bytes(field(c, offset_of!(Seg, sector))),
            count: u32::from_le_bytes(field(c, offset_of!(Seg, num_sectors))),
            flags: u32::from_le_bytes(field(c, offset_of!(Seg, flags))),
        })
        .collect())
}

/// The `N` bytes of a little-endian field at `at` of `bytes`.
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut f = [0u8; N];
    f.copy_from_slice(&bytes[at..at + N]);
    f
}

/// A request in more than [`MAX_DESCRIPTORS`] descriptors: IOERR in its status byte (its
/// last descriptor, found without collecting the others).
fn refuse(mem: &GuestMemoryMmap, chain: &mut Chain<'_>, over: Oversize) -> u32 {
    limited!(
        warn,
        "virtio-blk: a request in more than {MAX_DESCRIPTORS} descriptors refused"
    );
    let last = chain
        .last()
        .map_or((over.addr, over.len, over.write_only), |d| {
            (d.addr(), d.len(), d.is_write_only())
        });
    match last {
        (addr, len, true) if len >= 1 => {
            let _ = mem.write_obj(VIRTIO_BLK_S_IOERR as u8, addr);
            1
        }
        _ => 0,
    }
}

/// The header, from the first readable buffer (which must hold it whole); `None` if it is
/// shorter or outside guest RAM.
fn header(mem: &GuestMemoryMmap, readable: &[(GuestAddress, u32)]) -> Option<Header> {
    use virtio_blk_outhdr as H;
    let &(addr, _) = readable
        .first()
        .filter(|r| r.1 as usize >= size_of::<H>())?;
    let mut h = [0u8; size_of::<H>()];
    mem.read_slice(&mut h, addr).ok()?;
    Some(Header {
        kind: u32::from_le_bytes(field(&h, offset_of!(H, type_))),
        sector: u64::from_le_bytes(field(&h, offset_of!(H, sector))),
    })
}

/// preadv/pwritev of all of `iov` at `offset`, repeated over short transfers.
fn positional(file: &File, iov: &[libc::iovec], offset: u64, write: bool) -> std::io::Result<()> {
    let mut iov = iov.to_vec();
    let mut offset = offset;
    let mut start = 0;
    while start < iov.len() {
        let cnt = (iov.len() - start).min(1024) as libc::c_int;
        let p = iov[start..].as_ptr();
        // SAFETY: every iovec points into guest RAM that stays mapped while the worker runs
        // (it is unmapped only after the worker is joined); the kernel checks the ranges.
        let n = unsafe {
            if write {
                libc::pwritev(file.as_raw_fd(), p, cnt, offset as libc::off_t)
            } else {
                libc::preadv(file.as_raw_fd(), p, cnt, offset as libc::off_t)
            }
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        offset += n as u64;
        let mut left = n as usize;
        while left > 0 && start < iov.len() {
            let l = iov[start].iov_len;
            if left >= l {
                left -= l;
                start += 1;
            } else {
                // SAFETY: advancing inside the same buffer, `left` < its length.
                iov[start].iov_base = unsafe { iov[start].iov_base.cast::<u8>().add(left) }.cast();
                iov[start].iov_len -= left;
                left = 0;
            }
        }
    }
    Ok(())
}
