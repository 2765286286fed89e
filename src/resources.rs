//! The guest resources platvmm hands out: addresses in the passthrough window and in the
//! emulated-device area, SPIs, KVM memslots and device-tree phandles. A leaf module: the device
//! manager owns one [`Resources`]; `inspect` and `preview-dt` make their own to plan as `setup`
//! does.

use crate::arch::aarch64::fdt::GIC_PHANDLE;
use crate::arch::aarch64::layout;

/// What ran out. Each message names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    /// Neither passthrough window has room.
    #[error(
        "the {} MiB passthrough MMIO window is full and the high window above guest RAM (up to \
         the {}-bit guest address limit) has no room either",
        layout::PASSTHROUGH_MMIO_SIZE >> 20,
        layout::IPA_BITS
    )]
    Window,
    /// The emulated-device area is full.
    #[error("platvmm's emulated-device area is full")]
    EmulatedArea,
    /// No SPI left.
    #[error(
        "out of guest interrupt lines ({} available to passthrough devices)",
        layout::PASSTHROUGH_SPI_COUNT
    )]
    Spi,
    /// No memslot left.
    #[error("out of KVM memory slots")]
    Memslot,
    /// No phandle left below the user's range.
    #[error(
        "out of guest phandles (platvmm uses those below {:#x})",
        USER_PHANDLE_BASE
    )]
    Phandle,
}

/// Bump allocator over an address range.
#[derive(Debug, Clone)]
pub struct AddressAllocator {
    next: u64,
    end: u64,
}

impl AddressAllocator {
    pub fn new(base: u64, size: u64) -> Self {
        Self {
            next: base,
            end: base + size,
        }
    }

    /// `size` bytes rounded up to `align` (a power of two), aligned to `align`.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let start = self.next.checked_add(align - 1)? & !(align - 1);
        let len = size.checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(len)?;
        (end <= self.end).then(|| {
            self.next = end;
            start
        })
    }
}

/// Bump allocator over a range of small integers (SPIs, memslots, phandles).
#[derive(Debug, Clone)]
pub struct IdAllocator {
    next: u32,
    end: u32,
}

impl IdAllocator {
    pub fn new(first: u32, end: u32) -> Self {
        Self { next: first, end }
    }

    pub fn alloc(&mut self) -> Option<u32> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

/// Phandles from here up are the user's (`--dt-overlay`, `overlay=`).
pub const USER_PHANDLE_BASE: u32 = 0x100;

/// KVM's memslot limit on arm64 is far higher; this bounds what platvmm asks for.
pub const MAX_MEMSLOTS: u32 = 512;

/// Every allocator of one VM.
#[derive(Debug, Clone)]
pub struct Resources {
    window: AddressAllocator,
    /// Above guest RAM: regions the low window cannot hold (4 GiB flash windows).
    high: AddressAllocator,
    emulated: AddressAllocator,
    spis: IdAllocator,
    emulated_spis: IdAllocator,
    slots: IdAllocator,
    phandles: IdAllocator,
}

impl Resources {
    /// Resources of a VM whose passthrough window starts at `window_base`.
    pub fn new(window_base: u64) -> Self {
        let spi_end = layout::PASSTHROUGH_SPI_BASE + layout::PASSTHROUGH_SPI_COUNT;
        Self {
            window: AddressAllocator::new(window_base, layout::PASSTHROUGH_MMIO_SIZE),
            high: AddressAllocator::new(
                layout::HIGH_MMIO_BASE,
                layout::HIGH_MMIO_END - layout::HIGH_MMIO_BASE,
            ),
            emulated: AddressAllocator::new(
                layout::EMULATED_MMIO_BASE,
                layout::EMULATED_MMIO_END - layout::EMULATED_MMIO_BASE,
            ),
            spis: IdAllocator::new(layout::PASSTHROUGH_SPI_BASE, spi_end),
            emulated_spis: IdAllocator::new(layout::UART_SPI + 1, layout::PASSTHROUGH_SPI_BASE),
            slots: IdAllocator::new(0, MAX_MEMSLOTS),
            phandles: IdAllocator::new(GIC_PHANDLE + 1, USER_PHANDLE_BASE),
        }
    }

    /// The high window starts at `base` (above guest RAM that ends there) instead of
    /// [`layout::HIGH_MMIO_BASE`]: none when that leaves no room below the address limit.
    pub fn with_high_base(mut self, base: u64) -> Self {
        let base = base.max(layout::HIGH_MMIO_BASE);
        let base = base
            .checked_add(layout::GIB - 1)
            .map_or(u64::MAX, |b| b & !(layout::GIB - 1));
        let end = layout::HIGH_MMIO_END.max(base);
        self.high = AddressAllocator::new(base, end - base);
        self
    }

    /// Guest address of `size` bytes for a passed-through region, aligned to `align`: in the
    /// low passthrough window, else (a region larger than it, or once it is full) in the high
    /// window above guest RAM.
    pub fn window(&mut self, size: u64, align: u64) -> Result<u64, Exhausted> {
        self.window
            .alloc(size, align)
            .or_else(|| {
                let natural = size.checked_next_power_of_two().unwrap_or(u64::MAX);
                self.high.alloc(size, align.max(natural.min(layout::GIB)))
            })
            .ok_or(Exhausted::Window)
    }

    /// Guest address of `size` bytes in the emulated-device area, aligned to `align`.
    pub fn emulated(&mut self, size: u64, align: u64) -> Result<u64, Exhausted> {
        self.emulated
            .alloc(size, align)
            .ok_or(Exhausted::EmulatedArea)
    }

    /// An SPI for a passed-through device interrupt.
    pub fn spi(&mut self) -> Result<u32, Exhausted> {
        self.spis.alloc().ok_or(Exhausted::Spi)
    }

    /// An SPI for one of platvmm's emulated devices.
    pub fn emulated_spi(&mut self) -> Result<u32, Exhausted> {
        self.emulated_spis.alloc().ok_or(Exhausted::Spi)
    }

    /// A KVM memslot number.
    pub fn memslot(&mut self) -> Result<u32, Exhausted> {
        self.slots.alloc().ok_or(Exhausted::Memslot)
    }

    /// A guest phandle (the GIC's is fixed; the user's start at [`USER_PHANDLE_BASE`]).
    pub fn phandle(&mut self) -> Result<u32, Exhausted> {
        self.phandles.alloc().ok_or(Exhausted::Phandle)
    }
}

/// The host page size (mmap granularity; 4 KiB or 64 KiB on arm64).
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_allocation_is_aligned_and_bounded() {
        let mut w = AddressAllocator::new(0x4000_0000, 0x10_0000);
        assert_eq!(w.alloc(0x18, 0x1000), Some(0x4000_0000));
        assert_eq!(w.alloc(0x1000, 0x1000), Some(0x4000_1000));
        assert_eq!(w.alloc(0x200, 0x10000), Some(0x4001_0000), "64 KiB pages");
        assert_eq!(w.alloc(0x10_0000, 0x1000), None, "does not fit");
        assert_eq!(w.alloc(0xd_0000, 0x1000), Some(0x4002_0000));
        assert_eq!(
            w.alloc(0x1_0000, 0x1000),
            Some(0x400f_0000),
            "fills the window"
        );
        assert_eq!(w.alloc(1, 0x1000), None);
    }

    #[test]
    fn ids_run_out_with_a_named_error() {
        let mut r = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        assert_eq!(r.phandle(), Ok(2), "the GIC has 1");
        assert_eq!(r.spi(), Ok(layout::PASSTHROUGH_SPI_BASE));
        assert_eq!(r.emulated_spi(), Ok(1), "the console has SPI 0");
        assert_eq!(r.memslot(), Ok(0));
        for _ in 1..layout::PASSTHROUGH_SPI_COUNT {
            r.spi().unwrap();
        }
        assert_eq!(r.spi(), Err(Exhausted::Spi));
        assert!(Exhausted::Spi.to_string().contains("208 available"));
        while r.phandle().is_ok() {}
        assert_eq!(r.phandle(), Err(Exhausted::Phandle));
    }

    #[test]
    fn regions_the_low_window_cannot_hold_go_above_ram() {
        let mut r = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        // TI AM625's OSPI flash window: 4 GiB.
        let flash = r.window(4 * layout::GIB, 0x1000).unwrap();
        assert_eq!(flash, layout::HIGH_MMIO_BASE);
        assert_eq!(r.window(0x1000, 0x1000), Ok(layout::PASSTHROUGH_MMIO_BASE));
        // A region the rest of the low window cannot hold follows the flash, 1 GiB-aligned.
        let next = r.window(layout::GIB, 0x1000).unwrap();
        assert_eq!(next, flash + 4 * layout::GIB);
        // RAM reaching past the default base moves the high window above it.
        let top = layout::HIGH_MMIO_BASE + 3 * layout::GIB + 5;
        let mut r = Resources::new(layout::PASSTHROUGH_MMIO_BASE).with_high_base(top);
        assert_eq!(
            r.window(2 * layout::GIB, 0x1000),
            Ok(layout::HIGH_MMIO_BASE + 4 * layout::GIB)
        );
        // RAM up to the address limit: no high window, a named error.
        let mut r =
            Resources::new(layout::PASSTHROUGH_MMIO_BASE).with_high_base(layout::HIGH_MMIO_END);
        assert_eq!(r.window(2 * layout::GIB, 0x1000), Err(Exhausted::Window));
        assert!(Exhausted::Window.to_string().contains("high window"));
        // A hostile size (a host reg of 2^64 - 1) fits nowhere: an error, no overflow.
        let mut r = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        assert_eq!(r.window(u64::MAX, 0x1000), Err(Exhausted::Window));
        assert_eq!(r.window((1 << 63) + 1, 0x1000), Err(Exhausted::Window));
    }

    #[test]
    fn emulated_area_keeps_to_its_bounds() {
        let mut r = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let a = r.emulated(0x1_0000, layout::MIB).unwrap();
        assert_eq!(a, 0x0910_0000, "first 1 MiB boundary of the area");
        assert_eq!(
            r.emulated(layout::GIB, 0x1000),
            Err(Exhausted::EmulatedArea)
        );
    }
}
