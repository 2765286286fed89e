//! Guest RAM: anonymous memory whose host address is 2 MiB aligned (so KVM can map its
//! transparent hugepages as 2 MiB stage-2 blocks), or identity-mapped hugepages
//! (`--identity-map-ram`). [`Ram`] owns the mapping and unmaps it when dropped, last.

pub mod identity;
pub mod pin;

use log::info;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MmapRegion,
};

use crate::arch::aarch64::layout::{self, MIB};
use identity::IdentityError;

/// Guest RAM could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The mapping or the guest memory regions could not be made.
    #[error("cannot allocate {mib} MiB of guest memory: {reason}")]
    GuestMemory { mib: u64, reason: String },
    /// Identity-mapped RAM could not be set up.
    #[error("{0}")]
    Identity(#[from] IdentityError),
}

/// A guest RAM region: where it is in platvmm (`host`) and in the guest (`gpa`), as KVM
/// memslots and VFIO DMA maps take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamMapping {
    pub host: u64,
    pub gpa: u64,
    pub size: u64,
}

/// The transparent hugepage size of arm64 with 4 KiB pages (and of x86_64). KVM maps a
/// hugepage as a stage-2 block only if its host and guest addresses share their offset in
/// such a block; guest RAM starts 2 MiB aligned, so its host address must too.
pub const THP_ALIGN: usize = 2 << 20;

/// Guest RAM and where the boot images go.
pub struct Ram {
    pub mem: GuestMemoryMmap,
    /// (base, size) of each guest RAM range, sorted: what the DT memory node lists.
    pub ranges: Vec<(u64, u64)>,
    /// The range the kernel, initramfs and DTB go into.
    pub boot: (u64, u64),
    /// Guest address of the passthrough MMIO window.
    pub window: u64,
    /// The memory behind `mem` (unmapped last: fields drop in order).
    _backing: Backing,
}

impl Ram {
    /// The first guest address above every RAM range.
    pub fn top(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(base, size)| base.saturating_add(size))
            .max()
            .unwrap_or(0)
    }

    /// Zeroes all of guest RAM (a reboot in place: nothing of the old guest reaches the new
    /// one). Anonymous RAM is given back to the kernel (`MADV_DONTNEED`: it reads as zeroes
    /// and no longer counts in platvmm's memory until touched); identity-mapped RAM, pinned
    /// for DMA, is written with zeroes in place.
    pub fn clear(&self) -> std::io::Result<()> {
        for r in self.mappings() {
            let (addr, len) = (r.host as *mut libc::c_void, r.size as usize);
            match self._backing {
                Backing::Anon { .. } => {
                    // SAFETY: [addr, addr + len) is one of guest RAM's regions, a private
                    // anonymous mapping platvmm owns; its contents become zeroes.
                    if unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) } != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // SAFETY: as above, a mapping of `len` writable bytes; no vCPU runs.
                Backing::Identity { .. } => unsafe {
                    std::ptr::write_bytes(addr.cast::<u8>(), 0, len)
                },
            }
        }
        Ok(())
    }

    /// Each memory region, for memslots and VFIO DMA mapping.
    pub fn mappings(&self) -> Vec<RamMapping> {
        self.mem
            .iter()
            .map(|r| RamMapping {
                host: self
                    .mem
                    .get_host_address(r.start_addr())
                    .map_or(0, |h| h as u64),
                gpa: r.start_addr().0,
                size: r.len(),
            })
            .collect()
    }
}

/// What guest RAM's memory comes from (unmapped when [`Ram`] is dropped).
enum Backing {
    Anon {
        _map: AnonMapping,
    },
    /// The hugetlb mapping behind identity-mapped RAM.
    Identity {
        _id: crate::memory::identity::IdentityRam,
    },
}

/// An anonymous private mapping at a [`THP_ALIGN`]-aligned address, inside a reservation
/// 2 MiB larger whose unaligned head and tail stay mapped `PROT_NONE` (no memory, no
/// commit charge). Were they unmapped, the next mapping below guest RAM (a thread's 2 MiB
/// stack) would end on a 2 MiB boundary and get a transparent hugepage of its own.
struct AnonMapping {
    addr: usize,
    size: usize,
    reservation: (usize, usize),
}

impl AnonMapping {
    /// Reserves `size` + 2 MiB, then maps the aligned `size` bytes inside read-write.
    /// Transparent hugepages are asked for (`MADV_HUGEPAGE`: hosts whose THP setting is
    /// `madvise` give them too; `never` still wins).
    fn new(size: usize) -> std::io::Result<Self> {
        let len = size + THP_ALIGN;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh inaccessible mapping at an address the kernel picks; no existing
        // memory is affected.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let addr = (base as usize).next_multiple_of(THP_ALIGN);
        // SAFETY: [addr, addr + size) lies inside the reservation just made, which nothing
        // refers to; MAP_FIXED replaces that part of it.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        let map = Self {
            addr,
            size,
            reservation: (base as usize, len),
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: advice on the mapping just made. A host without THP refuses it (EINVAL)
        // and stays correct.
        unsafe { libc::madvise(p, size, libc::MADV_HUGEPAGE) };
        Ok(map)
    }
}

impl Drop for AnonMapping {
    fn drop(&mut self) {
        // SAFETY: the reservation `new` made (guest RAM inside it); its owner drops it after
        // the guest memory regions that point into it, once no vCPU runs.
        unsafe { libc::munmap(self.reservation.0 as *mut libc::c_void, self.reservation.1) };
    }
}

impl Ram {
    /// RAM at `RAM_BASE`, anonymous memory, 2 MiB aligned on the host.
    pub fn plain(size: u64) -> Result<Self, MemoryError> {
        let gm_err = |reason: String| MemoryError::GuestMemory {
            mib: size / MIB,
            reason,
        };
        let map = AnonMapping::new(size as usize).map_err(|e| gm_err(e.to_string()))?;
        // SAFETY: [map.addr, map.addr + size) is the private anonymous mapping just made with
        // exactly these prot/flags bits; `map` owns it and is dropped after `mem`.
        let raw = unsafe {
            MmapRegion::build_raw(
                map.addr as *mut u8,
                map.size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            )
        }
        .map_err(|e| gm_err(e.to_string()))?;
        let region = GuestRegionMmap::new(raw, GuestAddress(layout::RAM_BASE))
            .ok_or_else(|| gm_err("guest RAM overflows the address space".into()))?;
        let mem = GuestMemoryMmap::from_regions(vec![region]).map_err(|e| gm_err(e.to_string()))?;
        Ok(Ram {
            mem,
            ranges: vec![(layout::RAM_BASE, size)],
            boot: (layout::RAM_BASE, size),
            window: layout::PASSTHROUGH_MMIO_BASE,
            _backing: Backing::Anon { _map: map },
        })
    }

    /// Identity-mapped RAM: hugepages at their host physical addresses.
    pub fn identity(size: u64) -> Result<Self, MemoryError> {
        let id = crate::memory::identity::allocate(size)?;
        let gm_err = |reason: String| MemoryError::GuestMemory {
            mib: size / MIB,
            reason,
        };
        let mut regions = Vec::new();
        for r in &id.runs {
            // SAFETY: `r.host..r.host + r.size` lies inside the hugetlb mapping identity::allocate
            // made with exactly these prot/flags bits; `id` owns it and is dropped after `mem`.
            let raw = unsafe {
                MmapRegion::build_raw(
                    r.host as *mut u8,
                    r.size as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                )
            }
            .map_err(|e| gm_err(e.to_string()))?;
            regions.push(
                GuestRegionMmap::new(raw, GuestAddress(r.gpa))
                    .ok_or_else(|| gm_err(format!("bad region at {:#x}", r.gpa)))?,
            );
        }
        let mem = GuestMemoryMmap::from_regions(regions).map_err(|e| gm_err(e.to_string()))?;
        let window = crate::memory::identity::pick_window(&id.runs, layout::PASSTHROUGH_MMIO_SIZE)?;
        info!(
            "identity-mapped RAM: {} KiB pages in {} memslot(s), guest RAM {}; passthrough window at {window:#x}",
            id.page_size / 1024,
            id.runs.len(),
            id.ranges
                .iter()
                .map(|r| format!("{:#x}+{:#x}", r.0, r.1))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let boot = *id
            .ranges
            .iter()
            .max_by_key(|r| r.1)
            .expect("at least one range");
        Ok(Ram {
            mem,
            ranges: id.ranges.clone(),
            boot,
            window,
            _backing: Backing::Identity { _id: id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Address, Bytes};

    #[test]
    fn plain_ram_is_thp_aligned_on_the_host_and_usable() {
        for mib in [64, 66, 255] {
            let ram = Ram::plain(mib * MIB).unwrap();
            let host = ram
                .mem
                .get_host_address(GuestAddress(layout::RAM_BASE))
                .unwrap();
            assert_eq!(host as usize % THP_ALIGN, 0, "{mib} MiB at {host:p}");
            let last = GuestAddress(layout::RAM_BASE + mib * MIB - 8);
            ram.mem.write_obj(0x1234_5678u64, last).unwrap();
            assert_eq!(ram.mem.read_obj::<u64>(last).unwrap(), 0x1234_5678);
            assert!(ram.mem.write_obj(0u8, last.unchecked_add(8)).is_err());
            assert_eq!(ram.mappings()[0].size, mib * MIB);
        }
    }

    #[test]
    fn a_cleared_ram_reads_zeroes_and_stays_usable() {
        let ram = Ram::plain(64 * MIB).unwrap();
        let at = [0, 12345, 64 * MIB - 8].map(|o| GuestAddress(layout::RAM_BASE + o));
        for a in at {
            ram.mem.write_obj(0xdead_beef_u64, a).unwrap();
        }
        ram.clear().unwrap();
        for a in at {
            assert_eq!(ram.mem.read_obj::<u64>(a).unwrap(), 0, "{a:?}");
        }
        ram.mem.write_obj(7u64, at[1]).unwrap();
        assert_eq!(ram.mem.read_obj::<u64>(at[1]).unwrap(), 7);
    }
}
