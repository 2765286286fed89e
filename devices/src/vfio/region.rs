//! Device regions in the guest: trapped ones forwarded with pread/pwrite, mapped ones mmap'ed.
//!
//! A trapped region occupies whole guest pages on the MMIO bus (the guest cannot be given
//! less than a page), but only bytes inside the VFIO region ever reach the device: an access
//! that does not fit reads as zero / is dropped, counted and logged (rate-limited).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::bus::MmioDevice;

crate::counter_set! {
    /// Per-device counters, readable while the VM runs.
    pub struct Counters {
        /// Guest reads forwarded to the device (pread).
        pub trapped_reads,
        /// Guest writes forwarded to the device (pwrite).
        pub trapped_writes,
        /// Accesses outside the region, not forwarded.
        pub out_of_bounds => "out_of_bounds_dropped",
        /// pread/pwrite failures.
        pub io_errors,
    }
}

/// Source of the bytes behind a trapped region (the VFIO device fd; a test double in tests).
pub trait RegionIo: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize>;
}

impl RegionIo for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        FileExt::write_at(self, buf, offset)
    }
}

/// Warnings logged per region before going quiet (then one every `LOG_EVERY`).
const LOG_FIRST: u64 = 5;
const LOG_EVERY: u64 = 10_000;

/// A region whose guest accesses are forwarded to the device one by one.
pub struct TrappedRegion {
    io: Arc<dyn RegionIo>,
    /// Offset of the region in the device fd.
    fd_offset: u64,
    size: u64,
    name: String,
    counters: Arc<Counters>,
}

impl TrappedRegion {
    pub fn new(
        io: Arc<dyn RegionIo>,
        fd_offset: u64,
        size: u64,
        name: String,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            io,
            fd_offset,
            size,
            name,
            counters,
        }
    }

    fn inside(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.size)
    }

    fn out_of_bounds(&self, kind: &str, offset: u64, len: usize) {
        let n = self.counters.out_of_bounds.fetch_add(1, Ordering::Relaxed);
        if n < LOG_FIRST || n % LOG_EVERY == 0 {
            log::warn!(
                "{}: guest {kind} of {len} bytes at offset {offset:#x} is outside the {:#x}-byte region: {} ({} so far)",
                self.name,
                self.size,
                if kind == "read" { "returned 0" } else { "dropped" },
                n + 1
            );
        }
    }

    fn io_error(&self, kind: &str, offset: u64, e: std::io::Error) {
        let n = self.counters.io_errors.fetch_add(1, Ordering::Relaxed);
        if n < LOG_FIRST || n % LOG_EVERY == 0 {
            log::warn!("{}: {kind} at offset {offset:#x} failed: {e}", self.name);
        }
    }
}

impl MmioDevice for TrappedRegion {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if !self.inside(offset, data.len()) {
            data.fill(0);
            self.out_of_bounds("read", offset, data.len());
            return;
        }
        self.counters.trapped_reads.fetch_add(1, Ordering::Relaxed);
        match self.io.read_at(data, self.fd_offset + offset) {
            Ok(n) if n == data.len() => {}
            Ok(n) => {
                data[n..].fill(0);
                self.io_error(
                    "read",
                    offset,
                    std::io::Error::other(format!("short read {n}")),
                );
            }
            Err(e) => {
                data.fill(0);
                self.io_error("read", offset, e);
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if !self.inside(offset, data.len()) {
            self.out_of_bounds("write", offset, data.len());
            return;
        }
        self.counters.trapped_writes.fetch_add(1, Ordering::Relaxed);
        match self.io.write_at(data, self.fd_offset + offset) {
            Ok(n) if n == data.len() => {}
            Ok(n) => self.io_error(
                "write",
                offset,
                std::io::Error::other(format!("short write {n}")),
            ),
            Err(e) => self.io_error("write", offset, e),
        }
    }
}

/// A region mmap'ed from the device fd; unmapped on drop.
#[derive(Debug)]
pub struct MappedRegion {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain device memory owned by this value; moving the owner between
// threads does not change who may unmap it.
unsafe impl Send for MappedRegion {}
// SAFETY: the value only hands out the address; all accesses go through the guest.
unsafe impl Sync for MappedRegion {}

impl MappedRegion {
    /// Maps `len` bytes at `offset` of `fd` (shared, read-only unless `writable`).
    pub fn map(fd: &File, offset: u64, len: u64, writable: bool) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping of the device fd; the kernel (vfio-platform) checks
        // offset and length against the region and the fd stays open while mapped.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            ptr,
            len: len as usize,
        })
    }

    pub fn host_addr(&self) -> u64 {
        self.ptr as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Device double: a byte array with a log of (offset, len) accesses.
    struct FakeIo {
        mem: Mutex<Vec<u8>>,
        log: Mutex<Vec<(char, u64, usize)>>,
    }
    impl RegionIo for FakeIo {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.log.lock().unwrap().push(('r', offset, buf.len()));
            let m = self.mem.lock().unwrap();
            buf.copy_from_slice(&m[offset as usize..offset as usize + buf.len()]);
            Ok(buf.len())
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
            self.log.lock().unwrap().push(('w', offset, buf.len()));
            self.mem.lock().unwrap()[offset as usize..offset as usize + buf.len()]
                .copy_from_slice(buf);
            Ok(buf.len())
        }
    }

    fn fw_cfg_like() -> (TrappedRegion, Arc<FakeIo>, Arc<Counters>) {
        // A 0x18-byte region at fd offset 0x1000 inside a larger fake fd.
        let io = Arc::new(FakeIo {
            mem: Mutex::new((0..0x2000u32).map(|i| i as u8).collect()),
            log: Mutex::new(Vec::new()),
        });
        let c = Arc::new(Counters::default());
        let r = TrappedRegion::new(io.clone(), 0x1000, 0x18, "fw-cfg".into(), c.clone());
        (r, io, c)
    }

    #[test]
    fn forwards_exact_offset_and_width() {
        let (mut r, io, c) = fw_cfg_like();
        let mut d4 = [0u8; 4];
        r.read(0x10, &mut d4);
        assert_eq!(d4, [0x10, 0x11, 0x12, 0x13]);
        let mut d1 = [0u8; 1];
        r.read(0x17, &mut d1);
        r.write(0x8, &[0xaa, 0xbb]);
        assert_eq!(
            *io.log.lock().unwrap(),
            vec![('r', 0x1010, 4), ('r', 0x1017, 1), ('w', 0x1008, 2)]
        );
        assert_eq!(c.trapped_reads.load(Ordering::Relaxed), 2);
        assert_eq!(c.trapped_writes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn never_touches_bytes_outside_the_region() {
        let (mut r, io, c) = fw_cfg_like();
        let mut d4 = [0xffu8; 4];
        r.read(0x18, &mut d4); // just past the end
        assert_eq!(d4, [0; 4]);
        r.read(0x16, &mut d4); // straddles the end
        assert_eq!(d4, [0; 4]);
        r.write(0xffc, &[1, 2, 3, 4]); // elsewhere in the guest page
        r.write(u64::MAX - 1, &[1, 2, 3, 4]); // offset overflow
        assert!(io.log.lock().unwrap().is_empty(), "the device saw nothing");
        assert_eq!(c.out_of_bounds.load(Ordering::Relaxed), 4);
        assert_eq!(c.trapped_reads.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn maps_and_unmaps_a_file() {
        let p = std::env::temp_dir().join(format!("platvmm-map-{}", std::process::id()));
        std::fs::write(&p, vec![0x5au8; 8192]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let m = MappedRegion::map(&f, 4096, 4096, true).unwrap();
        // SAFETY: the mapping is 4096 readable bytes.
        assert_eq!(unsafe { *(m.host_addr() as *const u8) }, 0x5a);
        assert_eq!(m.len(), 4096);
        drop(m);
        assert!(
            MappedRegion::map(&f, 1, 4096, false).is_err(),
            "unaligned offset refused"
        );
        std::fs::remove_file(&p).unwrap();
    }
}
