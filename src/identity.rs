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

/// Host physical address of each `page`-sized page of the mapping at `addr`.
fn physical_pages(addr: u64, len: u64, page: u64) -> Result<Vec<(u64, u64)>, IdentityError> {
    let pm = File::open("/proc/self/pagemap").map_err(|e| IdentityError::Pagemap(e.to_string()))?;
    let mut v = Vec::new();
    let mut off = 0;
    while off < len {
        let va = addr + off;
        let mut e = [0u8; 8];
        pm.read_exact_at(&mut e, (va / 4096) * 8)
            .map_err(|e| IdentityError::Pagemap(e.to_string()))?;
        let entry = u64::from_le_bytes(e);
        let pfn = entry & ((1 << 55) - 1);
        if entry >> 63 == 0 || pfn == 0 {
            return Err(IdentityError::Pagemap(
                "page frame numbers are hidden".into(),
            ));
        }
        v.push((pfn * 4096, va));
        off += page;
    }
    Ok(v)
}

/// Hugetlb memory that stays mapped for the life of the process.
pub struct IdentityRam {
    /// Contiguous in both address spaces: one memslot each.
    pub runs: Vec<Run>,
    /// Physically contiguous guest RAM ranges.
    pub ranges: Vec<(u64, u64)>,
    pub page_size: u64,
}

/// Allocates `size` bytes of hugepages and returns their runs.
pub fn allocate(size: u64) -> Result<IdentityRam, IdentityError> {
    let pool = choose_pool(&pools(Path::new("/sys/kernel/mm/hugepages")), size)?;
    let shift = pool.page_size.trailing_zeros() as i32;
    // SAFETY: a fresh anonymous mapping; MAP_POPULATE faults every page in so pagemap can
    // report it. It is never unmapped: guest RAM lives as long as platvmm.
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
    let pages = physical_pages(ptr as u64, size, pool.page_size)?;
    let runs = merge_runs(pages, pool.page_size);
    check_runs(&runs)?;
    Ok(IdentityRam {
        ranges: merge_ranges(&runs),
        runs,
        page_size: pool.page_size,
    })
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
}
