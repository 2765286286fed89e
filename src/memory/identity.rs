//! Identity-mapped guest RAM for DMA without an IOMMU (`--identity-map-ram`).
//!
//! With VFIO in no-IOMMU mode a device DMAs to host physical addresses, and the guest driver
//! programs it with guest physical addresses: both agree only if guest-physical ==
//! host-physical. platvmm backs guest RAM with hugetlb pages (they never move), reads each
//! page's physical address from /proc/self/pagemap (root only), and places every physically
//! and virtually contiguous run at its own physical address with one memslot each. The kernel,
//! initramfs and DTB go into the largest run; the passthrough window moves to a hole none of
//! the runs covers.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::arch::aarch64::layout::{self, GIB, MIB};

/// Errors setting up identity-mapped RAM.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No hugepage pool has enough free pages.
    #[error("--identity-map-ram needs {need_mib} MiB of free hugepages, but the pools have {pools}: reserve them on the host kernel command line, e.g. hugepagesz=32M hugepages={suggest}")]
    NoHugepages {
        need_mib: u64,
        pools: String,
        suggest: u64,
    },
    /// mmap of the hugepages failed.
    #[error("cannot allocate {mib} MiB of {page_kib} KiB hugepages: {source}")]
    Mmap {
        mib: u64,
        page_kib: u64,
        source: std::io::Error,
    },
    /// pagemap unreadable or PFNs hidden.
    #[error("cannot read physical addresses from /proc/self/pagemap ({0}): --identity-map-ram needs root (CAP_SYS_ADMIN)")]
    Pagemap(String),
    /// A run overlaps platvmm's device area.
    #[error("host RAM at {base:#x}+{size:#x} overlaps platvmm's device area {dev_base:#x}..{dev_end:#x}: identity-mapped RAM cannot be used on this host")]
    DeviceAreaOverlap {
        base: u64,
        size: u64,
        dev_base: u64,
        dev_end: u64,
    },
    /// Runs beyond the guest's IPA space.
    #[error("host RAM at {0:#x} is beyond the guest's 40-bit address space")]
    BeyondIpa(u64),
    /// No hole for the passthrough window.
    #[error("no 1 GiB hole for the passthrough window outside identity-mapped RAM")]
    NoWindow,
    /// The pages could not be pinned where they are.
    #[error("{0}")]
    Pin(#[from] super::pin::PinError),
}

/// A hugepage pool: page size and free pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub page_size: u64,
    pub free: u64,
}

/// The hugepage pools under `root` (normally /sys/kernel/mm/hugepages).
pub fn pools(root: &Path) -> Vec<Pool> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return v;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kib) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let free = std::fs::read_to_string(e.path().join("free_hugepages"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        v.push(Pool {
            page_size: kib * 1024,
            free,
        });
    }
    v.sort_by_key(|p| p.page_size);
    v
}

/// The largest page size with enough free pages for `size` bytes (a multiple of it).
pub fn choose_pool(pools: &[Pool], size: u64) -> Result<Pool, IdentityError> {
    pools
        .iter()
        .rev()
        .find(|p| size % p.page_size == 0 && p.free * p.page_size >= size)
        .copied()
        .ok_or_else(|| IdentityError::NoHugepages {
            need_mib: size / MIB,
            pools: if pools.is_empty() {
                "none".into()
            } else {
                pools
                    .iter()
                    .map(|p| format!("{} x {} KiB free", p.free, p.page_size / 1024))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            suggest: size.div_ceil(32 * MIB),
        })
}

/// A run of guest RAM: guest-physical (= host-physical) base, size, host virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub gpa: u64,
    pub size: u64,
    pub host: u64,
}

/// Merges pages (physical address, host address), each `page` bytes, into runs contiguous in
/// both address spaces, sorted by physical address.
pub fn merge_runs(mut pages: Vec<(u64, u64)>, page: u64) -> Vec<Run> {
    pages.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    for (pa, va) in pages {
        match runs.last_mut() {
            Some(r) if r.gpa + r.size == pa && r.host + r.size == va => r.size += page,
            _ => runs.push(Run {
                gpa: pa,
                size: page,
                host: va,
            }),
        }
    }
    runs
}

/// Physically contiguous ranges (base, size) made of adjacent runs: what the guest sees as
/// RAM. A range may span several memslots whose host addresses are unrelated.
pub fn merge_ranges(runs: &[Run]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = Vec::new();
    for r in runs {
        match v.last_mut() {
            Some(last) if last.0 + last.1 == r.gpa => last.1 += r.size,
            _ => v.push((r.gpa, r.size)),
        }
    }
    v
}

/// Checks runs against the fixed device area and the IPA limit.
pub fn check_runs(runs: &[Run]) -> Result<(), IdentityError> {
    let (dev_base, dev_end) = (layout::GIC_DIST_BASE, layout::EMULATED_MMIO_END);
    for r in runs {
        if r.gpa < dev_end && dev_base < r.gpa + r.size {
            return Err(IdentityError::DeviceAreaOverlap {
                base: r.gpa,
                size: r.size,
                dev_base,
                dev_end,
            });
        }
        if r.gpa + r.size > 1 << layout::IPA_BITS {
            return Err(IdentityError::BeyondIpa(r.gpa));
        }
    }
    Ok(())
}

/// The first 1 GiB-aligned window of `size` bytes (from the usual 0x4000_0000 upwards) that
/// no RAM run overlaps.
pub fn pick_window(runs: &[Run], size: u64) -> Result<u64, IdentityError> {
    let mut base = layout::PASSTHROUGH_MMIO_BASE;
    while base + size <= 1 << layout::IPA_BITS {
        if runs
            .iter()
            .all(|r| r.gpa + r.size <= base || base + size <= r.gpa)
        {
            return Ok(base);
        }
        base += GIB;
    }
    Err(IdentityError::NoWindow)
}

/// Present bit of a pagemap entry.
const PM_PRESENT: u64 = 1 << 63;
/// Page frame number bits (0-54) of a pagemap entry.
const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// The host's base page size (`sysconf(_SC_PAGESIZE)`), 4096 if it cannot be read. pagemap
/// has one entry per base page; hugepages are a multiple of it.
fn host_base_page() -> u64 {
    // SAFETY: sysconf only reads a system constant; it has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// Byte offset in /proc/self/pagemap of the 8-byte entry for the base page holding `va`.
fn pagemap_offset(va: u64, base_page: u64) -> u64 {
    (va / base_page) * 8
}

/// Host physical address of `va` given the pagemap `entry` of its base page: the PFN (in
/// base-page units) times `base_page`, plus `va`'s offset within the base page. `None` if
/// the page is not present or the PFN is hidden (reads as 0 without CAP_SYS_ADMIN).
fn entry_to_phys(entry: u64, base_page: u64, va: u64) -> Option<u64> {
    let pfn = entry & PM_PFN_MASK;
    if entry & PM_PRESENT == 0 || pfn == 0 {
        return None;
    }
    pfn.checked_mul(base_page)?.checked_add(va % base_page)
}

/// Host physical address of each `page`-sized page of the mapping at `addr`, with
/// `read_entry` returning the pagemap entry at a byte offset of the file and `base_page` the
/// host's base page size.
fn physical_pages_with(
    mut read_entry: impl FnMut(u64) -> std::io::Result<u64>,
    addr: u64,
    len: u64,
    page: u64,
    base_page: u64,
) -> Result<Vec<(u64, u64)>, IdentityError> {
    debug_assert!(page >= base_page && base_page > 0);
    let mut v = Vec::new();
    let mut off = 0;
    while off < len {
        let va = addr + off;
        let entry = read_entry(pagemap_offset(va, base_page))
            .map_err(|e| IdentityError::Pagemap(e.to_string()))?;
        let pa = entry_to_phys(entry, base_page, va)
            .ok_or_else(|| IdentityError::Pagemap("page frame numbers are hidden".into()))?;
        v.push((pa, va));
        off += page;
    }
    Ok(v)
}

/// Host physical address of each `page`-sized page of the mapping at `addr`, from
/// /proc/self/pagemap.
fn physical_pages(addr: u64, len: u64, page: u64) -> Result<Vec<(u64, u64)>, IdentityError> {
    let pm = File::open("/proc/self/pagemap").map_err(|e| IdentityError::Pagemap(e.to_string()))?;
    let read_entry = |offset: u64| {
        let mut e = [0u8; 8];
        pm.read_exact_at(&mut e, offset)?;
        Ok(u64::from_le_bytes(e))
    };
    physical_pages_with(read_entry, addr, len, page, host_base_page())
}

/// Hugetlb memory, unmapped when dropped (the device manager drops it last, after every vCPU
/// thread has been joined).
pub struct IdentityRam {
    /// Contiguous in both address spaces: one memslot each.
    pub runs: Vec<Run>,
    /// Physically contiguous guest RAM ranges.
    pub ranges: Vec<(u64, u64)>,
    pub page_size: u64,
    /// The pin that keeps the pages at their physical addresses (released in `drop`,
    /// before the mapping goes).
    pinned: Option<super::pin::PinnedPages>,
    /// The mapping: host address and length.
    mapping: (u64, u64),
}

impl Drop for IdentityRam {
    fn drop(&mut self) {
        // Unpinned first (the ring closes), then unmapped.
        self.pinned = None;
        // SAFETY: `mapping` is the hugetlb mapping `allocate` made; nothing uses it any more
        // (its owner drops it after the vCPUs are joined and the guest memory is gone).
        unsafe { libc::munmap(self.mapping.0 as *mut libc::c_void, self.mapping.1 as usize) };
    }
}

/// Allocates `size` bytes of hugepages and returns their runs.
pub fn allocate(size: u64) -> Result<IdentityRam, IdentityError> {
    let pool = choose_pool(&pools(Path::new("/sys/kernel/mm/hugepages")), size)?;
    let shift = pool.page_size.trailing_zeros() as i32;
    // SAFETY: a fresh anonymous mapping; MAP_POPULATE faults every page in so pagemap can
    // report it. The returned IdentityRam owns it and unmaps it when dropped.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_HUGETLB
                | libc::MAP_POPULATE
                | (shift << libc::MAP_HUGE_SHIFT),
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(IdentityError::Mmap {
            mib: size / MIB,
            page_kib: pool.page_size / 1024,
            source: std::io::Error::last_os_error(),
        });
    }
    // Owned from here on: an error below unmaps it.
    let mut id = IdentityRam {
        runs: Vec::new(),
        ranges: Vec::new(),
        page_size: pool.page_size,
        pinned: None,
        mapping: (ptr as u64, size),
    };
    // Pinned before the physical addresses are read: pinning may first move pages out of a
    // movable zone; from then on they stay where pagemap says.
    id.pinned = Some(super::pin::pin(ptr as u64, size)?);
    let pages = physical_pages(ptr as u64, size, pool.page_size)?;
    id.runs = merge_runs(pages, pool.page_size);
    check_runs(&id.runs)?;
    id.ranges = merge_ranges(&id.runs);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_from_sysfs_and_choice() {
        let d = std::env::temp_dir().join(format!("platvmm-hp-{}", std::process::id()));
        for (kib, free) in [(2048, 0), (32768, 8), (1048576, 0)] {
            let p = d.join(format!("hugepages-{kib}kB"));
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("free_hugepages"), format!("{free}\n")).unwrap();
        }
        let ps = pools(&d);
        assert_eq!(ps.len(), 3);
        assert_eq!(choose_pool(&ps, 256 * MIB).unwrap().page_size, 32 * MIB);
        let e = choose_pool(&ps, 512 * MIB).unwrap_err().to_string();
        assert!(e.contains("needs 512 MiB"), "{e}");
        assert!(e.contains("8 x 32768 KiB free"), "{e}");
        assert!(e.contains("hugepagesz=32M hugepages=16"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn runs_merge_only_when_both_contiguous() {
        let p = 32 * MIB;
        let pages = vec![
            (0x8000_0000 + p, 0x7f00_0000 + p),
            (0x8000_0000, 0x7f00_0000),
            (0x9000_0000, 0x7f00_0000 + 2 * p),     // physical gap
            (0x9000_0000 + p, 0x7f00_0000 + 5 * p), // virtual gap
        ];
        let r = merge_runs(pages, p);
        assert_eq!(
            r,
            vec![
                Run {
                    gpa: 0x8000_0000,
                    size: 2 * p,
                    host: 0x7f00_0000
                },
                Run {
                    gpa: 0x9000_0000,
                    size: p,
                    host: 0x7f00_0000 + 2 * p
                },
                Run {
                    gpa: 0x9000_0000 + p,
                    size: p,
                    host: 0x7f00_0000 + 5 * p
                },
            ]
        );
    }

    #[test]
    fn ranges_join_runs_with_unrelated_host_addresses() {
        // The hugepage pool hands pages out last-in first-out: physically ascending pages
        // come at descending virtual addresses.
        let p = 32 * MIB;
        let pages: Vec<(u64, u64)> = (0..4)
            .map(|i| (0x4a00_0000 + i * p, 0x7f00_0000 - i * p))
            .collect();
        let runs = merge_runs(pages, p);
        assert_eq!(runs.len(), 4, "no run is contiguous in both spaces");
        assert_eq!(merge_ranges(&runs), vec![(0x4a00_0000, 4 * p)]);
    }

    #[test]
    fn window_avoids_ram_and_device_area_is_checked() {
        let run = |gpa, size| Run { gpa, size, host: 0 };
        // QEMU virt with 3 GiB: RAM 0x4000_0000..0x1_0000_0000.
        let runs = [run(0x8000_0000, 256 * MIB)];
        assert_eq!(pick_window(&runs, GIB).unwrap(), 0x4000_0000, "fits below");
        let runs = [run(0x4000_0000, 256 * MIB), run(0xb000_0000, 64 * MIB)];
        assert_eq!(
            pick_window(&runs, GIB).unwrap(),
            0xc000_0000,
            "first 1 GiB hole"
        );
        assert!(check_runs(&runs).is_ok());
        let low = [run(0, 2 * GIB)]; // zcu102-like RAM from 0
        assert!(matches!(
            check_runs(&low),
            Err(IdentityError::DeviceAreaOverlap { .. })
        ));
    }

    const PAGE: u64 = 32 * MIB;
    const VA: u64 = 0x7f00_0000_0000; // 32 MiB aligned

    #[test]
    fn pagemap_offset_per_base_page() {
        // 4 KiB: entry index va >> 12; 64 KiB: va >> 16; 8 bytes each.
        assert_eq!(pagemap_offset(VA, 4096), (VA >> 12) * 8);
        assert_eq!(pagemap_offset(VA, 4096), 0x3f_8000_0000);
        assert_eq!(pagemap_offset(VA, 64 * 1024), 0x3_f800_0000);
        assert_eq!(pagemap_offset(VA + 4095, 4096), pagemap_offset(VA, 4096));
        assert_eq!(
            pagemap_offset(VA + 4096, 4096),
            pagemap_offset(VA, 4096) + 8
        );
        assert_eq!(
            pagemap_offset(VA + 4096, 64 * 1024),
            pagemap_offset(VA, 64 * 1024),
            "same 64 KiB base page"
        );
    }

    #[test]
    fn entry_to_phys_uses_base_page_units() {
        let entry = PM_PRESENT | 0x12345;
        assert_eq!(entry_to_phys(entry, 4096, VA), Some(0x1234_5000));
        assert_eq!(entry_to_phys(entry, 64 * 1024, VA), Some(0x1_2345_0000));
        // Flag bits 55-62 (soft-dirty, exclusive, file/shared) are not part of the PFN.
        assert_eq!(
            entry_to_phys(entry | 0x7f << 55, 64 * 1024, VA),
            Some(0x1_2345_0000)
        );
        // The offset of va within its base page is kept.
        assert_eq!(entry_to_phys(entry, 4096, VA + 0x123), Some(0x1234_5123));
        assert_eq!(
            entry_to_phys(entry, 64 * 1024, VA + 0x1234),
            Some(0x1_2345_1234)
        );
    }

    #[test]
    fn entry_to_phys_rejects_hidden_pfns() {
        for base in [4096, 64 * 1024] {
            assert_eq!(entry_to_phys(0x12345, base, VA), None, "not present");
            assert_eq!(entry_to_phys(PM_PRESENT, base, VA), None, "PFN 0");
            assert_eq!(entry_to_phys(0, base, VA), None);
        }
    }

    /// Walks two hugepages with a fake pagemap whose entries are present with PFN
    /// `pfn_of(offset)`; returns the pages and the offsets read.
    fn walk(base: u64, pfn_of: impl Fn(u64) -> u64) -> (Vec<(u64, u64)>, Vec<u64>) {
        let mut asked = Vec::new();
        let r = physical_pages_with(
            |off| {
                asked.push(off);
                Ok(PM_PRESENT | pfn_of(off))
            },
            VA,
            2 * PAGE,
            PAGE,
            base,
        )
        .unwrap();
        (r, asked)
    }

    #[test]
    fn walk_two_hugepages_4k_base() {
        let base = 4096;
        let off0 = pagemap_offset(VA, base);
        // Second hugepage is physically below the first.
        let (r, asked) = walk(base, |off| if off == off0 { 0x8_2000 } else { 0x8_0000 });
        assert_eq!(asked, vec![off0, off0 + (PAGE / base) * 8]);
        assert_eq!(r, vec![(0x8200_0000, VA), (0x8000_0000, VA + PAGE)]);
    }

    #[test]
    fn walk_two_hugepages_64k_base() {
        let base = 64 * 1024;
        let off0 = pagemap_offset(VA, base);
        let (r, asked) = walk(base, |off| if off == off0 { 0x8000 } else { 0x8200 });
        assert_eq!(asked, vec![off0, off0 + (PAGE / base) * 8]);
        assert_eq!(asked[1] - asked[0], 512 * 8, "512 base pages per 32 MiB");
        assert_eq!(r, vec![(0x8000_0000, VA), (0x8200_0000, VA + PAGE)]);
    }

    #[test]
    fn walk_reports_hidden_pfns_and_read_errors() {
        for base in [4096, 64 * 1024] {
            for entry in [0x8000, PM_PRESENT] {
                let mut n = 0;
                let e = physical_pages_with(
                    |_| {
                        n += 1;
                        Ok(if n == 1 { PM_PRESENT | 0x8000 } else { entry })
                    },
                    VA,
                    2 * PAGE,
                    PAGE,
                    base,
                )
                .unwrap_err();
                assert!(matches!(e, IdentityError::Pagemap(_)));
                let msg = e.to_string();
                assert!(msg.contains("page frame numbers are hidden"), "{msg}");
                assert!(msg.contains("needs root"), "{msg}");
            }
            let e = physical_pages_with(
                |_| Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
                VA,
                PAGE,
                PAGE,
                base,
            )
            .unwrap_err();
            assert!(matches!(e, IdentityError::Pagemap(_)), "{e}");
        }
    }

    #[test]
    fn host_base_page_is_a_power_of_two() {
        let b = host_base_page();
        assert!(b >= 4096 && b.is_power_of_two(), "{b}");
    }
}
