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
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
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
                log::warn!("virtio-blk: read at sector {sector}: {e}");
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
                log::warn!("virtio-blk: write at sector {sector}: {e}");
                VIRTIO_BLK_S_IOERR
            }
        }
    }

    fn flush(&self) -> u32 {
        match self.disk.file.sync_data() {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(e) => {
                log::warn!("virtio-blk: flush: {e}");
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

    /// DISCARD punches a hole; WRITE_ZEROES zeroes the range (a hole if allowed to unmap).
    fn zero(&self, mem: &GuestMemoryMmap, kind: u32, bufs: &[(GuestAddress, u32)]) -> u32 {
        use virtio_blk_discard_write_zeroes as Seg;
        let Some(&(addr, len)) = bufs.first().filter(|b| b.1 as usize >= size_of::<Seg>()) else {
            return VIRTIO_BLK_S_IOERR;
        };
        let _ = len;
        let at = |offset: usize| addr.unchecked_add(offset as u64);
        let (Ok(sector), Ok(count), Ok(flags)) = (
            mem.read_obj::<u64>(at(offset_of!(Seg, sector))),
            mem.read_obj::<u32>(at(offset_of!(Seg, num_sectors))),
            mem.read_obj::<u32>(at(offset_of!(Seg, flags))),
        ) else {
            return VIRTIO_BLK_S_IOERR;
        };
        if !self.in_range(sector, u64::from(count) * SECTOR) || count > MAX_ZERO_SECTORS {
            return VIRTIO_BLK_S_IOERR;
        }
        let unmap = kind == VIRTIO_BLK_T_DISCARD || flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0;
        let mode = if unmap {
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
        } else {
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE
        };
        // SAFETY: fallocate on an fd this device owns, within the image's size.
        let r = unsafe {
            libc::fallocate(
                self.disk.file.as_raw_fd(),
                mode,
                (sector * SECTOR) as libc::off_t,
                (u64::from(count) * SECTOR) as libc::off_t,
            )
        };
        if r == 0 {
            VIRTIO_BLK_S_OK
        } else {
            let e = std::io::Error::last_os_error();
            log::warn!("virtio-blk: fallocate at sector {sector}: {e}");
            if kind == VIRTIO_BLK_T_DISCARD {
                VIRTIO_BLK_S_OK // Discard is a hint.
            } else {
                VIRTIO_BLK_S_IOERR
            }
        }
    }
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

fn header(mem: &GuestMemoryMmap, readable: &[(GuestAddress, u32)]) -> Option<Header> {
    use virtio_blk_outhdr as H;
    let &(addr, _) = readable
        .first()
        .filter(|r| r.1 as usize >= size_of::<H>())?;
    let at = |offset: usize| addr.unchecked_add(offset as u64);
    Some(Header {
        kind: mem.read_obj::<u32>(at(offset_of!(H, type_))).ok()?,
        sector: mem.read_obj::<u64>(at(offset_of!(H, sector))).ok()?,
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
