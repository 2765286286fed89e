//! virtio-blk on a raw image: read, write, flush, get-id, discard and write-zeroes, served by
//! the worker thread with preadv/pwritev straight into guest memory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::{
    iovecs, read_config_bytes, ActivateError, Activation, Buffers, Chain, Counters, OneQueue,
    VirtioDevice, F_EVENT_IDX, F_INDIRECT_DESC,
};

const SECTOR: u64 = 512;
const QUEUE_SIZE: u16 = 256;
/// Data segments per request the driver may use (seg_max).
const SEG_MAX: u32 = 126;
/// Sectors per discard / write-zeroes segment.
const MAX_ZERO_SECTORS: u32 = 1 << 22;

const F_SEG_MAX: u64 = 1 << 2;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_DISCARD: u64 = 1 << 13;
const F_WRITE_ZEROES: u64 = 1 << 14;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const T_DISCARD: u32 = 11;
const T_WRITE_ZEROES: u32 = 13;

const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// The serial number's room in GET_ID.
pub const SERIAL_LEN: usize = 20;

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

fn config_space(sectors: u64) -> Vec<u8> {
    let mut c = vec![0u8; 60];
    c[0..8].copy_from_slice(&sectors.to_le_bytes());
    c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
    c[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes());
    c[34..36].copy_from_slice(&1u16.to_le_bytes()); // num_queues
    c[36..40].copy_from_slice(&MAX_ZERO_SECTORS.to_le_bytes()); // max_discard_sectors
    c[40..44].copy_from_slice(&1u32.to_le_bytes()); // max_discard_seg
    c[44..48].copy_from_slice(&1u32.to_le_bytes()); // discard_sector_alignment
    c[48..52].copy_from_slice(&MAX_ZERO_SECTORS.to_le_bytes()); // max_write_zeroes_sectors
    c[52..56].copy_from_slice(&1u32.to_le_bytes()); // max_write_zeroes_seg
    c[56] = 1; // write_zeroes_may_unmap
    c
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        2
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        let base = F_SEG_MAX | F_FLUSH | F_EVENT_IDX | F_INDIRECT_DESC;
        if self.inner.disk.readonly {
            base | F_RO
        } else {
            base | F_DISCARD | F_WRITE_ZEROES
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
    fn handle(&self, _token: u32) {
        self.q.serve(|mem, chain| self.request(mem, chain));
    }
}

/// The request header: type, reserved, sector.
struct Header {
    kind: u32,
    sector: u64,
}

impl Inner {
    /// Serves one request; returns the bytes written into the chain.
    fn request(&self, mem: &GuestMemoryMmap, chain: &mut Chain<'_>) -> u32 {
        let mut b = Buffers::of(chain);
        let Some((status_addr, _)) = b.writable.pop().filter(|w| w.1 >= 1) else {
            log::warn!("virtio-blk: request without a status byte");
            return 0;
        };
        let Some(h) = header(mem, &b.readable) else {
            let _ = mem.write_obj(S_IOERR, status_addr);
            return 1;
        };
        let data_in = &b.readable[1..];
        let (status, written) = match h.kind {
            T_IN => self.read(mem, h.sector, &b.writable),
            T_OUT if !self.disk.readonly => (self.write(mem, h.sector, data_in), 0),
            T_FLUSH => (self.flush(), 0),
            T_GET_ID => self.get_id(mem, &b.writable),
            T_DISCARD | T_WRITE_ZEROES if !self.disk.readonly => {
                (self.zero(mem, h.kind, data_in), 0)
            }
            T_OUT | T_DISCARD | T_WRITE_ZEROES => (S_IOERR, 0),
            _ => (S_UNSUPP, 0),
        };
        self.q.counters.requests.fetch_add(1, Ordering::Relaxed);
        let _ = mem.write_obj(status, status_addr);
        written + 1
    }

    fn in_range(&self, sector: u64, bytes: u64) -> bool {
        bytes % SECTOR == 0
            && sector
                .checked_add(bytes / SECTOR)
                .is_some_and(|end| end <= self.disk.sectors)
    }

    fn read(&self, mem: &GuestMemoryMmap, sector: u64, bufs: &[(GuestAddress, u32)]) -> (u8, u32) {
        let len: u64 = bufs.iter().map(|b| u64::from(b.1)).sum();
        if !self.in_range(sector, len) {
            return (S_IOERR, 0);
        }
        let Some(iov) = iovecs(mem, bufs) else {
            return (S_IOERR, 0);
        };
        match positional(&self.disk.file, &iov, sector * SECTOR, false) {
            Ok(()) => {
                self.q.counters.read_bytes.fetch_add(len, Ordering::Relaxed);
                (S_OK, len as u32)
            }
            Err(e) => {
                log::warn!("virtio-blk: read at sector {sector}: {e}");
                (S_IOERR, 0)
            }
        }
    }

    fn write(&self, mem: &GuestMemoryMmap, sector: u64, bufs: &[(GuestAddress, u32)]) -> u8 {
        let len: u64 = bufs.iter().map(|b| u64::from(b.1)).sum();
        if !self.in_range(sector, len) {
            return S_IOERR;
        }
        let Some(iov) = iovecs(mem, bufs) else {
            return S_IOERR;
        };
        match positional(&self.disk.file, &iov, sector * SECTOR, true) {
            Ok(()) => {
                self.q
                    .counters
                    .write_bytes
                    .fetch_add(len, Ordering::Relaxed);
                S_OK
            }
            Err(e) => {
                log::warn!("virtio-blk: write at sector {sector}: {e}");
                S_IOERR
            }
        }
    }

    fn flush(&self) -> u8 {
        match self.disk.file.sync_data() {
            Ok(()) => S_OK,
            Err(e) => {
                log::warn!("virtio-blk: flush: {e}");
                S_IOERR
            }
        }
    }

    fn get_id(&self, mem: &GuestMemoryMmap, bufs: &[(GuestAddress, u32)]) -> (u8, u32) {
        let Some(&(addr, len)) = bufs.first() else {
            return (S_IOERR, 0);
        };
        let mut id = [0u8; SERIAL_LEN];
        let n = self.disk.serial.len().min(SERIAL_LEN);
        id[..n].copy_from_slice(&self.disk.serial[..n]);
        let n = (len as usize).min(SERIAL_LEN);
        match mem.write_slice(&id[..n], addr) {
            Ok(()) => (S_OK, n as u32),
            Err(_) => (S_IOERR, 0),
        }
    }

    /// DISCARD punches a hole; WRITE_ZEROES zeroes the range (a hole if allowed to unmap).
    fn zero(&self, mem: &GuestMemoryMmap, kind: u32, bufs: &[(GuestAddress, u32)]) -> u8 {
        let Some(&(addr, len)) = bufs.first().filter(|b| b.1 >= 16) else {
            return S_IOERR;
        };
        let _ = len;
        let (Ok(sector), Ok(count), Ok(flags)) = (
            mem.read_obj::<u64>(addr),
            mem.read_obj::<u32>(addr.unchecked_add(8)),
            mem.read_obj::<u32>(addr.unchecked_add(12)),
        ) else {
            return S_IOERR;
        };
        if !self.in_range(sector, u64::from(count) * SECTOR) || count > MAX_ZERO_SECTORS {
            return S_IOERR;
        }
        let unmap = kind == T_DISCARD || flags & 1 != 0;
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
            S_OK
        } else {
            let e = std::io::Error::last_os_error();
            log::warn!("virtio-blk: fallocate at sector {sector}: {e}");
            if kind == T_DISCARD {
                S_OK // Discard is a hint.
            } else {
                S_IOERR
            }
        }
    }
}

fn header(mem: &GuestMemoryMmap, readable: &[(GuestAddress, u32)]) -> Option<Header> {
    let &(addr, _) = readable.first().filter(|r| r.1 >= 16)?;
    Some(Header {
        kind: mem.read_obj::<u32>(addr).ok()?,
        sector: mem.read_obj::<u64>(addr.unchecked_add(8)).ok()?,
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
