//! Guest accesses to a trapped (sub-page) region: `devices::vfio::region::TrappedRegion`'s
//! bounds check and its exact-width pread/pwrite, on a real file standing in for the VFIO
//! device fd.
//!
//! Input: region size (2 bytes), where the region starts in the fd (1), then accesses of 10
//! bytes each: kind and width (1: write or read, 0 to 16 bytes), offset (8: near the region
//! or anywhere), a data seed (1). The file holds guard bytes before and after the region.
//! Checked after every access: the fd is only touched inside the region (the I/O double
//! asserts each pread/pwrite range), a read inside returns the region's bytes and one outside
//! returns zeros, a write outside changes nothing; at the end the whole file equals a model
//! of it and the counters add up. Nothing may panic.

#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use devices::bus::MmioDevice;
use devices::vfio::region::{Counters, RegionIo, TrappedRegion};
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

/// Bytes after the region in the file.
const GUARD: u64 = 64;
/// Where the region may start in the fd (bytes before it are guard too).
const FD_OFFSETS: [u64; 4] = [0, 64, 4096, 8192];
const MAX_REGION: u64 = 8192;
const OP: usize = 10;

/// The backing file, created once per process and unlinked at once.
fn file() -> &'static File {
    static F: OnceLock<File> = OnceLock::new();
    F.get_or_init(|| scratch::unlinked_file("platvmm-fuzz-region"))
}

/// The device fd as the region sees it: the file, with every access range checked.
struct Checked {
    lo: u64,
    hi: u64,
}

impl Checked {
    fn check(&self, offset: u64, len: usize) {
        let end = offset.checked_add(len as u64);
        assert!(
            offset >= self.lo && end.is_some_and(|e| e <= self.hi),
            "fd access {offset:#x}+{len:#x} outside the region {:#x}..{:#x}",
            self.lo,
            self.hi
        );
    }
}

impl RegionIo for Checked {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.check(offset, buf.len());
        RegionIo::read_at(file(), buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        self.check(offset, buf.len());
        RegionIo::write_at(file(), buf, offset)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let size = u64::from(u16::from_le_bytes([data[0], data[1]])) % MAX_REGION + 1;
    let fd_offset = FD_OFFSETS[usize::from(data[2] % 4)];
    let total = fd_offset + size + GUARD;
    // The file: a pattern (guards included), and a model of it.
    let mut model: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
    let f = file();
    f.set_len(0).unwrap();
    f.write_all_at(&model, 0).unwrap();

    let counters = Arc::new(Counters::default());
    let io = Arc::new(Checked {
        lo: fd_offset,
        hi: fd_offset + size,
    });
    let mut r = TrappedRegion::new(io, fd_offset, size, "fuzz".into(), counters.clone());
    let (mut inside, mut outside) = (0u64, 0u64);
    let mut ops = 0u64;
    for op in data[3..].chunks_exact(OP) {
        let write = op[0] & 1 != 0;
        let width = usize::from(op[0] >> 1) % 17;
        let raw = u64::from_le_bytes(op[1..9].try_into().unwrap());
        // Mostly near the region (the guest page(s) it sits in, and past them), else anywhere.
        let offset = if op[0] & 0x80 != 0 {
            raw
        } else {
            raw % (size + 2 * 4096)
        };
        let fits = offset.checked_add(width as u64).is_some_and(|e| e <= size);
        if fits {
            inside += 1;
        } else {
            outside += 1;
        }
        ops += 1;
        if write {
            let buf: Vec<u8> = (0..width).map(|i| op[9].wrapping_add(i as u8)).collect();
            r.write(offset, &buf);
            if fits {
                let at = (fd_offset + offset) as usize;
                model[at..at + width].copy_from_slice(&buf);
            }
        } else {
            let mut buf = vec![0xeeu8; width];
            r.read(offset, &mut buf);
            if fits {
                let at = (fd_offset + offset) as usize;
                assert_eq!(buf, model[at..at + width], "read at {offset:#x}");
            } else {
                assert!(buf.iter().all(|&b| b == 0), "read outside at {offset:#x}");
            }
        }
    }
    let mut now = vec![0u8; total as usize];
    f.read_exact_at(&mut now, 0).unwrap();
    assert!(now == model, "the file differs from its model");
    let c = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
    assert_eq!(
        c(&counters.trapped_reads) + c(&counters.trapped_writes),
        inside
    );
    assert_eq!(c(&counters.out_of_bounds), outside);
    assert_eq!(c(&counters.io_errors), 0);
    assert_eq!(inside + outside, ops);
});
