//! Consumer side of the KVM coalesced MMIO ring.
//!
//! Guest writes to a zone registered with `KVM_REGISTER_COALESCED_MMIO` do not exit to
//! userspace: the kernel appends them to a ring in a page shared by the whole VM, which
//! userspace maps from any vCPU fd at page `KVM_COALESCED_MMIO_PAGE_OFFSET` (the value of
//! `KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO)`). The page holds
//!
//! ```text
//! struct kvm_coalesced_mmio_ring { u32 first; u32 last; struct kvm_coalesced_mmio entries[]; }
//! struct kvm_coalesced_mmio { u64 phys_addr; u32 len; u32 pad_or_pio; u8 data[8]; }
//! ```
//!
//! with `(page_size - 8) / 24` entries. The kernel produces at `last` and publishes it after
//! the entry; userspace consumes from `first`. When the ring is full the kernel stops
//! coalescing and the write exits to userspace as an ordinary MMIO exit, so a consumer must
//! drain the ring before handling any exit to keep the guest's writes in order.
//!
//! [`CoalescedRing`] reads `last` with Acquire, copies each entry out of the page and hands
//! the slot back with a Release store of `first`. Consumers are serialized by a mutex, so
//! several threads (vCPUs, the event loop) may drain the same ring: every entry is handed out
//! exactly once, in ring order.

use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use log::warn;

/// Largest access the kernel records in one ring entry, in bytes.
pub const MAX_DATA_LEN: usize = 8;

/// `struct kvm_coalesced_mmio`, as the kernel lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawEntry {
    phys_addr: u64,
    len: u32,
    pad_or_pio: u32,
    data: [u8; MAX_DATA_LEN],
}

/// Size of one ring entry.
const ENTRY_SIZE: usize = size_of::<RawEntry>();
/// Size of the ring header (`first`, `last`); the entries start right after it.
const HEADER_SIZE: usize = 2 * size_of::<u32>();
/// Offset of `last` in the header.
const LAST_OFFSET: usize = size_of::<u32>();
/// Alignment the ring page needs (that of `u64 phys_addr`).
const RING_ALIGN: usize = 8;

const _: () = assert!(ENTRY_SIZE == 24);
const _: () = assert!(HEADER_SIZE % RING_ALIGN == 0 && ENTRY_SIZE % RING_ALIGN == 0);

/// Why a [`CoalescedRing`] cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CoalescedError {
    /// The page cannot hold a ring of at least two entries.
    #[error("a {0}-byte page cannot hold a coalesced MMIO ring")]
    PageSize(usize),
    /// A kernel ring page must be exactly one host page.
    #[error("ring page size {given} is not the host page size {host}")]
    NotHostPageSize {
        /// The page size asked for.
        given: usize,
        /// The host's page size.
        host: usize,
    },
    /// The ring pointer is null or not 8-byte aligned.
    #[error("coalesced MMIO ring pointer {0:#x} is null or misaligned")]
    BadPointer(usize),
    /// The page offset is 0 (the capability is unsupported; page 0 is `kvm_run`) or the
    /// byte offset overflows.
    #[error("invalid coalesced MMIO page offset {0}")]
    PageOffset(u64),
    /// `sysconf(_SC_PAGESIZE)` failed.
    #[error("cannot query the host page size: {0}")]
    HostPageSize(#[source] io::Error),
    /// `mmap` of the vCPU fd failed.
    #[error("cannot map the coalesced MMIO ring: {0}")]
    Map(#[source] io::Error),
}

impl From<CoalescedError> for io::Error {
    fn from(e: CoalescedError) -> Self {
        let kind = match &e {
            CoalescedError::HostPageSize(err) | CoalescedError::Map(err) => err.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// The host's page size (`sysconf(_SC_PAGESIZE)`), which is the size of the ring page.
pub fn host_page_size() -> Result<usize, CoalescedError> {
    // SAFETY: sysconf takes no pointers and has no side effects.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(ps).map_err(|_| CoalescedError::HostPageSize(io::Error::last_os_error()))
}

/// A coalesced MMIO ring page, drained by one or more threads.
#[derive(Debug)]
pub struct CoalescedRing {
    /// Start of the ring page: valid for `page_size` bytes, aligned to [`RING_ALIGN`].
    base: NonNull<u8>,
    page_size: usize,
    /// Number of entries in the ring (at least 2).
    entries: u32,
    /// Whether `base` is our own mapping, unmapped on drop.
    mapped: bool,
    /// Serializes consumers, so entries are handed out once and in order.
    consumer: Mutex<()>,
    /// Whether a corrupt header has been reported already (it is reported once).
    warned: AtomicBool,
}

// SAFETY: The ring owns no thread-bound state: `base` points to memory that stays valid for
// the ring's lifetime (our own mapping, or the `from_raw` contract), the header words are
// only accessed atomically and entries are read only under the `consumer` mutex, so the
// ring may move to and be used from any thread.
unsafe impl Send for CoalescedRing {}
// SAFETY: See `Send`: every access through `&self` is an atomic header access or an entry
// read serialized by the `consumer` mutex.
unsafe impl Sync for CoalescedRing {}

impl CoalescedRing {
    /// A ring over the `page_size` bytes at `ptr`, which is not unmapped on drop.
    ///
    /// Fails if `ptr` is null or not 8-byte aligned, or if the page holds fewer than two
    /// entries.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `page_size` bytes for the whole lifetime of
    /// the returned ring, and nothing but a producer following the ring protocol (writing free
    /// entries, then publishing `last` with release semantics; reading `first` atomically) may
    /// access it meanwhile.
    pub unsafe fn from_raw(ptr: *mut u8, page_size: usize) -> Result<Self, CoalescedError> {
        let base = NonNull::new(ptr)
            .filter(|p| p.as_ptr() as usize % RING_ALIGN == 0)
            .ok_or(CoalescedError::BadPointer(ptr as usize))?;
        let entries = page_size
            .checked_sub(HEADER_SIZE)
            .map(|room| room / ENTRY_SIZE)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n >= 2)
            .ok_or(CoalescedError::PageSize(page_size))?;
        Ok(Self {
            base,
            page_size,
            entries,
            mapped: false,
            consumer: Mutex::new(()),
            warned: AtomicBool::new(false),
        })
    }

    /// Maps the ring page of the VM that `vcpu_fd` (a KVM vCPU fd) belongs to.
    ///
    /// `page_size` must be the host page size and `page_offset` the value of
    /// `KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO)` (0 means unsupported and is refused).
    /// The page is mapped shared, read-write, and unmapped when the ring is dropped.
    pub fn map<F: AsRawFd>(
        vcpu_fd: &F,
        page_size: usize,
        page_offset: u64,
    ) -> Result<Self, CoalescedError> {
        let host = host_page_size()?;
        if page_size != host {
            return Err(CoalescedError::NotHostPageSize {
                given: page_size,
                host,
            });
        }
        let offset = Some(page_offset)
            .filter(|&po| po != 0)
            .and_then(|po| po.checked_mul(u64::try_from(page_size).ok()?))
            .and_then(|off| libc::off_t::try_from(off).ok())
            .ok_or(CoalescedError::PageOffset(page_offset))?;
        // SAFETY: A fresh shared mapping chosen by the kernel (no address hint, no MAP_FIXED)
        // cannot alias any Rust object; the result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu_fd.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(CoalescedError::Map(io::Error::last_os_error()));
        }
        // SAFETY: `addr` is a live page-aligned mapping of `page_size` bytes that only this
        // ring (and the kernel, as producer) uses until the ring unmaps it on drop.
        match unsafe { Self::from_raw(addr.cast(), page_size) } {
            Ok(mut ring) => {
                ring.mapped = true;
                Ok(ring)
            }
            Err(e) => {
                // SAFETY: The mapping was made above and nothing refers to it.
                unsafe { libc::munmap(addr, page_size) };
                Err(e)
            }
        }
    }

    /// Number of entries in the ring (it holds at most one less).
    pub fn entries(&self) -> usize {
        self.entries as usize
    }

    /// Hands every entry published so far to `f` as (guest physical address, data), in
    /// order, and returns how many it consumed. Data longer than [`MAX_DATA_LEN`] is clamped.
    ///
    /// Consumers are serialized: when `drain` returns, every entry published before the call
    /// has been handed out, by this call or by a concurrent one. `f` runs with the consumer
    /// lock held, so it must not drain this ring itself, and `drain` must not be called while
    /// holding a lock that `f` takes.
    ///
    /// A corrupt header never causes an out-of-bounds access: `first` out of range is
    /// reduced modulo the entry count; `last` out of range stops the drain (the kernel
    /// refuses to produce into such a ring, so writes exit to userspace instead).
    pub fn drain(&self, mut f: impl FnMut(u64, &[u8])) -> usize {
        let _consumer = self.consumer.lock().unwrap_or_else(PoisonError::into_inner);
        let last = self.last().load(Ordering::Acquire);
        let mut first = self.first().load(Ordering::Relaxed);
        if last >= self.entries {
            self.warn_corrupt(first, last);
            return 0;
        }
        if first >= self.entries {
            self.warn_corrupt(first, last);
            first %= self.entries;
            self.first().store(first, Ordering::Release);
        }
        let mut consumed = 0;
        while first != last {
            let Some(entry) = self.entry(first) else {
                break;
            };
            first = (first + 1) % self.entries;
            // The entry is copied out: hand its slot back to the producer.
            self.first().store(first, Ordering::Release);
            let len = (entry.len as usize).min(MAX_DATA_LEN);
            f(entry.phys_addr, &entry.data[..len]);
            consumed += 1;
        }
        consumed
    }

    fn warn_corrupt(&self, first: u32, last: u32) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            warn!(
                "coalesced MMIO ring corrupt: first {first}, last {last}, {} entries",
                self.entries
            );
        }
    }

    /// The ring's `first` word (the consumer index).
    fn first(&self) -> &AtomicU32 {
        // SAFETY: `base` is valid for `page_size` (> HEADER_SIZE) bytes for as long as `self`
        // lives and is 8-byte aligned; the header words are only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().cast()) }
    }

    /// The ring's `last` word (the producer index).
    fn last(&self) -> &AtomicU32 {
        // SAFETY: As for `first`: offset 4 is inside the header and 4-byte aligned.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(LAST_OFFSET).cast()) }
    }

    /// A copy of entry `idx`, or `None` if there is no such entry.
    fn entry(&self, idx: u32) -> Option<RawEntry> {
        if idx >= self.entries {
            return None;
        }
        let offset = HEADER_SIZE + idx as usize * ENTRY_SIZE;
        // SAFETY: `idx < entries` and `entries * ENTRY_SIZE <= page_size - HEADER_SIZE`, so
        // the entry lies inside the page; `base` and `offset` are 8-byte aligned, so the read
        // is aligned. The producer wrote the entry before publishing the `last` we acquired,
        // and does not reuse the slot until we release it through `first`.
        let entry = unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<RawEntry>()
                .read_volatile()
        };
        Some(entry)
    }
}

impl Drop for CoalescedRing {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: `base` is the mapping of `page_size` bytes made by `map`; the ring is
            // going away and no reference into the page outlives it.
            if unsafe { libc::munmap(self.base.as_ptr().cast(), self.page_size) } != 0 {
                warn!(
                    "cannot unmap the coalesced MMIO ring: {}",
                    io::Error::last_os_error()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::thread;

    const PAGE: usize = 4096;
    /// Entries in a 4 KiB ring.
    const N: u32 = ((PAGE - HEADER_SIZE) / ENTRY_SIZE) as u32;

    #[repr(C, align(4096))]
    struct Page([u8; PAGE]);

    /// A heap page playing the kernel's ring page; the test plays the producer.
    struct FakeKernel {
        page: NonNull<Page>,
    }

    // SAFETY: The page is heap memory owned by `FakeKernel`; the threads sharing it follow the
    // ring protocol (header words atomic, entries published through `last`).
    unsafe impl Send for FakeKernel {}
    // SAFETY: As for `Send`.
    unsafe impl Sync for FakeKernel {}

    impl FakeKernel {
        fn new() -> Self {
            let page = Box::into_raw(Box::new(Page([0; PAGE])));
            Self {
                page: NonNull::new(page).expect("Box pointers are never null"),
            }
        }

        fn base(&self) -> *mut u8 {
            self.page.as_ptr().cast()
        }

        fn ring(&self) -> CoalescedRing {
            // SAFETY: The page is valid for PAGE bytes until `self` drops, which each test
            // does after the ring (declared later); only the ring protocol touches it.
            unsafe { CoalescedRing::from_raw(self.base(), PAGE) }.unwrap()
        }

        fn word(&self, offset: usize) -> &AtomicU32 {
            // SAFETY: `offset` is 0 or 4: an aligned header word of the live page, which is
            // only accessed atomically.
            unsafe { AtomicU32::from_ptr(self.base().add(offset).cast()) }
        }

        fn first(&self) -> u32 {
            self.word(0).load(Ordering::Acquire)
        }

        fn last(&self) -> u32 {
            self.word(LAST_OFFSET).load(Ordering::Acquire)
        }

        /// Sets both indices (an empty ring starting at `idx`).
        fn reset(&self, first: u32, last: u32) {
            self.word(0).store(first, Ordering::Release);
            self.word(LAST_OFFSET).store(last, Ordering::Release);
        }

        /// Produces one entry of `len` bytes of `data`, as the kernel does; false if full.
        fn push_raw(&self, addr: u64, len: u32, data: [u8; 8]) -> bool {
            let last = self.last();
            if (last + 1) % N == self.first() {
                return false;
            }
            let entry = RawEntry {
                phys_addr: addr,
                len,
                pad_or_pio: 0,
                data,
            };
            // SAFETY: `last < N`, so the entry lies inside the page and is 8-byte aligned;
            // the slot is free (between `last` and `first`), so no consumer reads it.
            unsafe {
                self.base()
                    .add(HEADER_SIZE + last as usize * ENTRY_SIZE)
                    .cast::<RawEntry>()
                    .write_volatile(entry)
            };
            self.word(LAST_OFFSET)
                .store((last + 1) % N, Ordering::Release);
            true
        }

        fn push(&self, addr: u64, bytes: &[u8]) -> bool {
            let mut data = [0; 8];
            data[..bytes.len()].copy_from_slice(bytes);
            self.push_raw(addr, bytes.len() as u32, data)
        }
    }

    impl Drop for FakeKernel {
        fn drop(&mut self) {
            // SAFETY: The page came from `Box::into_raw` in `new` and is freed only here.
            drop(unsafe { Box::from_raw(self.page.as_ptr()) });
        }
    }

    fn collect(ring: &CoalescedRing) -> (usize, Vec<(u64, Vec<u8>)>) {
        let mut got = Vec::new();
        let n = ring.drain(|addr, data| got.push((addr, data.to_vec())));
        (n, got)
    }

    #[test]
    fn ring_geometry() {
        let k = FakeKernel::new();
        let ring = k.ring();
        assert_eq!(ring.entries(), 170);
        assert_eq!(N, 170);
    }

    #[test]
    fn empty_ring_drains_nothing() {
        let k = FakeKernel::new();
        let ring = k.ring();
        assert_eq!(collect(&ring), (0, vec![]));
        k.reset(57, 57);
        assert_eq!(collect(&ring), (0, vec![]));
        assert_eq!((k.first(), k.last()), (57, 57));
    }

    #[test]
    fn drains_in_order_and_advances_first() {
        let k = FakeKernel::new();
        let ring = k.ring();
        assert!(k.push(0x900_0000, b"h"));
        assert!(k.push(0x900_0000, b"i"));
        assert!(k.push(0x900_0004, &[1, 2, 3, 4]));
        let (n, got) = collect(&ring);
        assert_eq!(n, 3);
        assert_eq!(
            got,
            vec![
                (0x900_0000, b"h".to_vec()),
                (0x900_0000, b"i".to_vec()),
                (0x900_0004, vec![1, 2, 3, 4]),
            ]
        );
        assert_eq!((k.first(), k.last()), (3, 3));
        assert_eq!(collect(&ring), (0, vec![]));
        // Entries produced after a drain come out on the next one.
        assert!(k.push(0x10, b"!"));
        assert_eq!(collect(&ring), (1, vec![(0x10, b"!".to_vec())]));
        assert_eq!(k.first(), 4);
    }

    #[test]
    fn wraps_around_the_end_of_the_ring() {
        let k = FakeKernel::new();
        let ring = k.ring();
        k.reset(N - 2, N - 2);
        for b in 0..5u8 {
            assert!(k.push(u64::from(b), &[b]));
        }
        assert_eq!(k.last(), 3);
        let (n, got) = collect(&ring);
        assert_eq!(n, 5);
        let want: Vec<_> = (0..5u8).map(|b| (u64::from(b), vec![b])).collect();
        assert_eq!(got, want);
        assert_eq!(k.first(), 3);
    }

    #[test]
    fn full_ring_drains_completely() {
        let k = FakeKernel::new();
        let ring = k.ring();
        k.reset(100, 100);
        let mut produced = 0u64;
        while k.push(produced, &produced.to_le_bytes()) {
            produced += 1;
        }
        assert_eq!(
            produced,
            u64::from(N - 1),
            "a ring holds one entry less than its size"
        );
        let mut next = 0u64;
        let n = ring.drain(|addr, data| {
            assert_eq!(addr, next);
            assert_eq!(data, next.to_le_bytes());
            next += 1;
        });
        assert_eq!(n, N as usize - 1);
        assert_eq!(k.first(), 99);
    }

    #[test]
    fn oversized_len_is_clamped() {
        let k = FakeKernel::new();
        let ring = k.ring();
        assert!(k.push_raw(0x40, u32::MAX, *b"abcdefgh"));
        assert!(k.push_raw(0x41, 0, *b"ignored!"));
        let (n, got) = collect(&ring);
        assert_eq!(n, 2);
        assert_eq!(got, vec![(0x40, b"abcdefgh".to_vec()), (0x41, vec![])]);
    }

    #[test]
    fn corrupt_last_stops_the_drain() {
        let k = FakeKernel::new();
        let ring = k.ring();
        k.reset(0, N);
        assert_eq!(collect(&ring), (0, vec![]));
        k.reset(0, u32::MAX);
        assert_eq!(collect(&ring), (0, vec![]));
        assert_eq!(k.first(), 0, "first untouched");
    }

    #[test]
    fn corrupt_first_is_reduced_modulo_the_ring() {
        let k = FakeKernel::new();
        let ring = k.ring();
        k.reset(5, 5);
        assert!(k.push(0x1, b"a"));
        assert!(k.push(0x2, b"b"));
        k.reset(N + 5, 7); // first out of range; N + 5 ≡ 5
        let (n, got) = collect(&ring);
        assert_eq!(n, 2);
        assert_eq!(got, vec![(0x1, b"a".to_vec()), (0x2, b"b".to_vec())]);
        assert_eq!(k.first(), 7);
        // Reduced even when that leaves nothing to drain.
        k.reset(u32::MAX, u32::MAX % N);
        assert_eq!(collect(&ring), (0, vec![]));
        assert_eq!(k.first(), u32::MAX % N);
    }

    #[test]
    fn concurrent_drains_hand_out_each_entry_once_in_order() {
        const TOTAL: u64 = 20_000;
        let k = Arc::new(FakeKernel::new());
        let ring = Arc::new(k.ring());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let producer = {
            let k = Arc::clone(&k);
            thread::spawn(move || {
                for seq in 0..TOTAL {
                    while !k.push(seq, &seq.to_le_bytes()) {
                        thread::yield_now();
                    }
                }
            })
        };
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let (ring, seen, count) =
                    (Arc::clone(&ring), Arc::clone(&seen), Arc::clone(&count));
                thread::spawn(move || {
                    while count.load(Ordering::Relaxed) < TOTAL as usize {
                        let n = ring.drain(|addr, data| {
                            assert_eq!(data, addr.to_le_bytes());
                            seen.lock().unwrap().push(addr);
                        });
                        count.fetch_add(n, Ordering::Relaxed);
                        if n == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        producer.join().unwrap();
        for c in consumers {
            c.join().unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(*seen, (0..TOTAL).collect::<Vec<_>>());
        assert_eq!(ring.drain(|_, _| panic!("nothing left")), 0);
        drop(ring);
    }

    #[test]
    fn ring_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CoalescedRing>();
    }

    #[test]
    fn from_raw_rejects_bad_pages() {
        let k = FakeKernel::new();
        let small = HEADER_SIZE + 2 * ENTRY_SIZE - 1;
        // SAFETY: Each call either fails or gets a valid page prefix of the given size.
        unsafe {
            assert!(matches!(
                CoalescedRing::from_raw(k.base(), small),
                Err(CoalescedError::PageSize(s)) if s == small
            ));
            assert!(matches!(
                CoalescedRing::from_raw(k.base(), 0),
                Err(CoalescedError::PageSize(0))
            ));
            assert!(matches!(
                CoalescedRing::from_raw(std::ptr::null_mut(), PAGE),
                Err(CoalescedError::BadPointer(0))
            ));
            assert!(matches!(
                CoalescedRing::from_raw(k.base().add(4), PAGE - 8),
                Err(CoalescedError::BadPointer(_))
            ));
            let tiny = CoalescedRing::from_raw(k.base(), small + 1).unwrap();
            assert_eq!(tiny.entries(), 2);
        }
    }

    #[test]
    fn map_rejects_bad_arguments() {
        let ps = host_page_size().unwrap();
        let null = File::open("/dev/null").unwrap();
        assert!(matches!(
            CoalescedRing::map(&null, ps, 0),
            Err(CoalescedError::PageOffset(0))
        ));
        assert!(matches!(
            CoalescedRing::map(&null, ps, u64::MAX),
            Err(CoalescedError::PageOffset(u64::MAX))
        ));
        assert!(matches!(
            CoalescedRing::map(&null, ps * 2, 1),
            Err(CoalescedError::NotHostPageSize { .. })
        ));
        // /dev/null cannot be mapped: a typed error, convertible to io::Error.
        let err = CoalescedRing::map(&null, ps, 1).unwrap_err();
        assert!(matches!(err, CoalescedError::Map(_)), "{err:?}");
        let io: io::Error = err.into();
        assert!(io.to_string().contains("cannot map"), "{io}");
        let io: io::Error = CoalescedError::PageOffset(0).into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
    }

    /// A VM fd, a vCPU fd and the coalesced MMIO page offset, if this host has usable KVM.
    fn kvm_vcpu() -> Option<(OwnedFd, OwnedFd, u64)> {
        const KVM_CREATE_VM: u64 = 0xae01;
        const KVM_CHECK_EXTENSION: u64 = 0xae03;
        const KVM_CREATE_VCPU: u64 = 0xae41;
        const KVM_CAP_COALESCED_MMIO: libc::c_ulong = 15;
        let kvm = File::options()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .ok()?;
        // SAFETY: KVM_CREATE_VM takes an integer (the VM type) and returns a new fd or -1.
        let vm = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM as _, 0 as libc::c_ulong) };
        if vm < 0 {
            return None;
        }
        // SAFETY: `vm` is a fresh fd that nothing else owns.
        let vm = unsafe { OwnedFd::from_raw_fd(vm) };
        // SAFETY: KVM_CHECK_EXTENSION takes an integer and returns one.
        let offset = unsafe {
            libc::ioctl(
                vm.as_raw_fd(),
                KVM_CHECK_EXTENSION as _,
                KVM_CAP_COALESCED_MMIO,
            )
        };
        // SAFETY: KVM_CREATE_VCPU takes an integer (the vCPU id) and returns a new fd or -1.
        let vcpu = unsafe { libc::ioctl(vm.as_raw_fd(), KVM_CREATE_VCPU as _, 0 as libc::c_ulong) };
        if offset <= 0 || vcpu < 0 {
            return None;
        }
        // SAFETY: `vcpu` is a fresh fd that nothing else owns.
        let vcpu = unsafe { OwnedFd::from_raw_fd(vcpu) };
        Some((vm, vcpu, offset as u64))
    }

    #[test]
    fn maps_the_kvm_ring_when_kvm_is_available() {
        let Some((_vm, vcpu, offset)) = kvm_vcpu() else {
            eprintln!("no usable /dev/kvm: skipped");
            return;
        };
        let ps = host_page_size().unwrap();
        let ring = CoalescedRing::map(&vcpu, ps, offset).unwrap();
        assert_eq!(ring.entries(), (ps - HEADER_SIZE) / ENTRY_SIZE);
        assert_eq!(ring.drain(|_, _| panic!("fresh VM, empty ring")), 0);
        // Every vCPU maps the same VM-wide page; a second mapping is independent.
        let again = CoalescedRing::map(&vcpu, ps, offset).unwrap();
        drop(ring);
        assert_eq!(again.drain(|_, _| ()), 0);
    }
}
