//! Pinning identity-mapped guest RAM where it is. Without an IOMMU a passed-through device
//! DMAs to the physical addresses the guest was given; the kernel may still migrate hugetlb
//! pages (memory offlining, CMA and contiguous allocations), after which the device would
//! write into pages that belong to someone else. A long-term pin (`FOLL_LONGTERM`) stops
//! that: the pages are registered as io_uring fixed buffers, which pins them (first moving
//! any out of movable zones, before platvmm reads their physical addresses) for as long as
//! the ring's fd is open. The kernel counts them in `VmPin` of /proc/PID/status, which the
//! `dma` e2e scenario checks.

use std::os::fd::{FromRawFd, OwnedFd};

/// io_uring fixed buffers are at most 1 GiB each.
const MAX_BUFFER: u64 = 1 << 30;
/// `IORING_REGISTER_BUFFERS`.
const IORING_REGISTER_BUFFERS: libc::c_uint = 0;
/// Size of `struct io_uring_params` (include/uapi/linux/io_uring.h).
const PARAMS_SIZE: usize = 120;

/// Pages could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// io_uring missing or refused (`kernel.io_uring_disabled`, a seccomp policy).
    #[error("cannot pin identity-mapped RAM: io_uring_setup: {0} (platvmm pins the pages through io_uring: allow it, e.g. sysctl kernel.io_uring_disabled=0)")]
    Setup(std::io::Error),
    /// The registration failed (RLIMIT_MEMLOCK without CAP_IPC_LOCK, ENOMEM).
    #[error("cannot pin {mib} MiB of identity-mapped RAM: {source} (run as root, or raise RLIMIT_MEMLOCK)")]
    Register { mib: u64, source: std::io::Error },
}

/// Pinned pages; unpinned when dropped (the ring fd closes; the kernel then unpins them
/// from a worker, shortly after).
#[derive(Debug)]
pub struct PinnedPages {
    _ring: OwnedFd,
    pub bytes: u64,
}

/// Pins `len` bytes at host address `addr` (a live mapping owned by the caller, which must
/// outlive the returned value).
pub fn pin(addr: u64, len: u64) -> Result<PinnedPages, PinError> {
    let mut params = [0u8; PARAMS_SIZE];
    // SAFETY: io_uring_setup writes at most sizeof(struct io_uring_params) bytes into
    // `params`, which is that size; the fd it returns is ours.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(PinError::Setup(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is the io_uring fd just created, owned by nobody else.
    let ring = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let iovecs: Vec<libc::iovec> = (0..len.div_ceil(MAX_BUFFER))
        .map(|i| libc::iovec {
            iov_base: (addr + i * MAX_BUFFER) as *mut libc::c_void,
            iov_len: (len - i * MAX_BUFFER).min(MAX_BUFFER) as usize,
        })
        .collect();
    // SAFETY: the kernel reads `iovecs.len()` iovecs from `iovecs`, each describing part of
    // the caller's live mapping; it pins those pages and keeps no pointer into `iovecs`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd as libc::c_int,
            IORING_REGISTER_BUFFERS,
            iovecs.as_ptr(),
            iovecs.len() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(PinError::Register {
            mib: len >> 20,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(PinnedPages {
        _ring: ring,
        bytes: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's pinned memory (VmPin, kB).
    fn vm_pin_kb() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = s.lines().find(|l| l.starts_with("VmPin:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    // qemu-user (the aarch64 unit-test stage) has no io_uring; the dma e2e scenario checks
    // VmPin on the aarch64 board instead.
    #[test]
    #[cfg_attr(target_arch = "aarch64", ignore = "qemu-user has no io_uring")]
    fn pinned_pages_count_in_vmpin_until_dropped() {
        let len = 4 << 20;
        // SAFETY: a fresh anonymous mapping, unmapped below after the pin is gone.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let before = vm_pin_kb();
        let pinned = pin(p as u64, len as u64).unwrap();
        assert_eq!(vm_pin_kb() - before, 4096, "4 MiB pinned");
        drop(pinned);
        // The kernel tears the ring down (and unpins) in a worker after the close.
        let t0 = std::time::Instant::now();
        while vm_pin_kb() != before && t0.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(vm_pin_kb(), before, "unpinned once the ring is gone");
        // SAFETY: the mapping made above, no longer pinned or used.
        unsafe { libc::munmap(p, len) };
    }
}
