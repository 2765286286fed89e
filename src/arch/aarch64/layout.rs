//! The guest physical memory map and interrupt map (documented in docs/ARCHITECTURE.md).
//!
//! ```text
//!   0x0000_0000 ..0x0800_0000  unused (128 MiB)
//!   0x0800_0000 ..0x0801_0000  GIC distributor (64 KiB)
//!   0x0801_0000 ..0x0801_2000  GICv2 CPU interface (8 KiB, GICv2 guests only)
//!   0x080A_0000 ..0x0900_0000  GICv3 redistributors, 128 KiB per vCPU (123 vCPUs max)
//!   0x0900_0000 ..0x0900_1000  16550 console UART, SPI 0
//!   0x0901_0000 ..0x1000_0000  reserved for platvmm's own emulated devices
//!   0x1000_0000 ..0x4000_0000  unused
//!   0x4000_0000 ..0x8000_0000  passthrough MMIO window (1 GiB): host device regions
//!   0x8000_0000 ..RAM end      guest RAM (64 MiB .. 1022 GiB, ends below 1 TiB = 40-bit IPA)
//! ```
//!
//! SPIs (interrupt IDs 32..): SPI 0 console, SPIs 1..15 reserved for platvmm devices,
//! SPIs 16..223 for passthrough device interrupts.

use super::GicVersion;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// GIC distributor (both versions).
pub const GIC_DIST_BASE: u64 = 0x0800_0000;
pub const GIC_DIST_SIZE: u64 = 0x1_0000;
/// GICv2 CPU interface (KVM_VGIC_V2_CPU_SIZE).
pub const GICV2_CPU_BASE: u64 = 0x0801_0000;
pub const GICV2_CPU_SIZE: u64 = 0x2000;
/// KVM_VGIC_V2_DIST_SIZE: the GICv2 distributor KVM emulates is 4 KiB.
pub const GICV2_DIST_SIZE: u64 = 0x1000;
/// GICv3 redistributor region: one 128 KiB frame pair (RD + SGI) per vCPU.
pub const GICV3_REDIST_BASE: u64 = 0x080A_0000;
pub const GICV3_REDIST_SIZE_PER_CPU: u64 = 0x2_0000;
pub const GICV3_REDIST_LIMIT: u64 = 0x0900_0000;
/// vCPUs the GICv3 redistributor region has room for.
pub const MAX_VCPUS_GICV3: u32 =
    ((GICV3_REDIST_LIMIT - GICV3_REDIST_BASE) / GICV3_REDIST_SIZE_PER_CPU) as u32;
/// GICv2 architectural limit.
pub const MAX_VCPUS_GICV2: u32 = 8;

/// 16550 console UART.
pub const UART_BASE: u64 = 0x0900_0000;
pub const UART_SIZE: u64 = 0x1000;
pub const UART_SPI: u32 = 0;
/// Input clock of the UART as told to the guest (the classic 1.8432 MHz crystal).
pub const UART_CLOCK_HZ: u32 = 1_843_200;

/// Range reserved for platvmm's own emulated devices (after the UART).
pub const EMULATED_MMIO_BASE: u64 = 0x0901_0000;
pub const EMULATED_MMIO_END: u64 = 0x1000_0000;

/// Window from which passthrough device regions get their guest addresses.
pub const PASSTHROUGH_MMIO_BASE: u64 = 0x4000_0000;
pub const PASSTHROUGH_MMIO_SIZE: u64 = GIB;

/// Guest RAM starts here (2 MiB aligned, as the arm64 boot protocol wants the kernel base).
pub const RAM_BASE: u64 = 0x8000_0000;
/// Default start of the high passthrough window, for regions the low one cannot hold (a
/// 4 GiB flash window): 256 GiB, above guest RAM up to 254 GiB; with more RAM it starts above
/// it (`Resources::with_high_base`).
pub const HIGH_MMIO_BASE: u64 = 256 * GIB;
/// End of the high window: the guest address limit.
pub const HIGH_MMIO_END: u64 = 1 << IPA_BITS;
/// IPA size of a default KVM VM on arm64 (KVM_VM_TYPE_ARM_IPA_SIZE 0 → 40 bits).
pub const IPA_BITS: u32 = 40;
/// Smallest guest RAM we accept: a stock arm64 kernel needs tens of MiB to reach init.
pub const MIN_RAM: u64 = 64 * MIB;
/// Largest guest RAM the map holds: RAM must end below the 40-bit IPA limit.
pub const MAX_RAM: u64 = (1 << IPA_BITS) - RAM_BASE;

/// Total interrupt lines of the vGIC (32 private + SPIs); a multiple of 32.
pub const NR_IRQS: u32 = 256;
/// First SPI handed to passthrough devices, and how many there are.
pub const PASSTHROUGH_SPI_BASE: u32 = 16;
pub const PASSTHROUGH_SPI_COUNT: u32 = NR_IRQS - 32 - PASSTHROUGH_SPI_BASE;

// Invariants of the map, checked at build time.
const _: () = assert!(
    RAM_BASE % (2 * MIB) == 0,
    "arm64 Image base must be 2 MiB aligned"
);
const _: () = assert!(PASSTHROUGH_MMIO_BASE % (64 * KIB) == 0);
const _: () = assert!(GICV3_REDIST_BASE % (64 * KIB) == 0);
const _: () = assert!(
    PASSTHROUGH_MMIO_SIZE >= GIB,
    "passthrough window of at least 1 GiB"
);
const _: () = assert!(NR_IRQS % 32 == 0 && NR_IRQS <= 1024);

/// Errors about guest sizes that do not fit the map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// Memory below the minimum.
    #[error("guest memory {0} MiB is too small: platvmm needs at least {min} MiB (--memory)", min = MIN_RAM / MIB)]
    MemoryTooSmall(u64),
    /// Memory beyond the map.
    #[error("guest memory {0} MiB is too large: the memory map holds at most {max} MiB (--memory)", max = MAX_RAM / MIB)]
    MemoryTooLarge(u64),
    /// Memory not a whole number of pages.
    #[error("guest memory must be a multiple of 4 KiB (--memory)")]
    MemoryUnaligned,
    /// Zero vCPUs.
    #[error("--cpus must be at least 1")]
    NoCpus,
    /// More vCPUs than the interrupt controller can address.
    #[error("--cpus {requested} is more than the {gic:?} interrupt controller supports ({max})")]
    TooManyCpusForGic {
        requested: u32,
        max: u32,
        gic: GicVersion,
    },
}

/// Checks a guest RAM size against the map.
pub fn check_memory(size: u64) -> Result<(), LayoutError> {
    if size % (4 * KIB) != 0 {
        return Err(LayoutError::MemoryUnaligned);
    }
    if size < MIN_RAM {
        return Err(LayoutError::MemoryTooSmall(size / MIB));
    }
    if size > MAX_RAM {
        return Err(LayoutError::MemoryTooLarge(size / MIB));
    }
    Ok(())
}

/// Checks a vCPU count against the interrupt controller's limit.
pub fn check_cpus(cpus: u32, gic: GicVersion) -> Result<(), LayoutError> {
    let max = match gic {
        GicVersion::V2 => MAX_VCPUS_GICV2,
        GicVersion::V3 => MAX_VCPUS_GICV3,
    };
    match cpus {
        0 => Err(LayoutError::NoCpus),
        n if n > max => Err(LayoutError::TooManyCpusForGic {
            requested: n,
            max,
            gic,
        }),
        _ => Ok(()),
    }
}

/// Size of the GICv3 redistributor region for `vcpus` vCPUs.
pub fn gicv3_redist_size(vcpus: u32) -> u64 {
    u64::from(vcpus) * GICV3_REDIST_SIZE_PER_CPU
}

/// Interrupt ID (INTID) of an SPI.
pub const fn spi_intid(spi: u32) -> u32 {
    spi + 32
}

/// The fixed regions of the map, for overlap checks and documentation.
pub fn fixed_regions(vcpus: u32, ram_size: u64) -> Vec<(&'static str, u64, u64)> {
    vec![
        ("gic-dist", GIC_DIST_BASE, GIC_DIST_SIZE),
        ("gicv2-cpu", GICV2_CPU_BASE, GICV2_CPU_SIZE),
        ("gicv3-redist", GICV3_REDIST_BASE, gicv3_redist_size(vcpus)),
        ("uart", UART_BASE, UART_SIZE),
        (
            "emulated-mmio",
            EMULATED_MMIO_BASE,
            EMULATED_MMIO_END - EMULATED_MMIO_BASE,
        ),
        (
            "passthrough-mmio",
            PASSTHROUGH_MMIO_BASE,
            PASSTHROUGH_MMIO_SIZE,
        ),
        ("ram", RAM_BASE, ram_size),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap_at_the_limits() {
        let mut r = fixed_regions(MAX_VCPUS_GICV3, MAX_RAM);
        r.sort_by_key(|x| x.1);
        for w in r.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(a.1 + a.2 <= b.1, "{} overlaps {}", a.0, b.0);
        }
        let last = r.last().unwrap();
        assert_eq!(
            last.1 + last.2,
            1 << IPA_BITS,
            "RAM ends exactly at the IPA limit"
        );
        assert!(GICV3_REDIST_BASE + gicv3_redist_size(MAX_VCPUS_GICV3) <= GICV3_REDIST_LIMIT);
        assert!(GICV3_REDIST_BASE + gicv3_redist_size(MAX_VCPUS_GICV3 + 1) > GICV3_REDIST_LIMIT);
        assert_eq!(MAX_VCPUS_GICV3, 123);
    }

    #[test]
    fn memory_limits() {
        assert_eq!(check_memory(MIN_RAM), Ok(()));
        assert_eq!(check_memory(MAX_RAM), Ok(()));
        assert_eq!(
            check_memory(MIN_RAM - 4 * KIB),
            Err(LayoutError::MemoryTooSmall(63))
        );
        assert_eq!(
            check_memory(MAX_RAM + 4 * KIB),
            Err(LayoutError::MemoryTooLarge(MAX_RAM / MIB))
        );
        assert_eq!(check_memory(MIN_RAM + 1), Err(LayoutError::MemoryUnaligned));
    }

    #[test]
    fn cpu_limits() {
        assert_eq!(check_cpus(0, GicVersion::V3), Err(LayoutError::NoCpus));
        assert!(check_cpus(8, GicVersion::V2).is_ok());
        assert!(check_cpus(9, GicVersion::V2).is_err());
        assert!(check_cpus(123, GicVersion::V3).is_ok());
        assert!(check_cpus(124, GicVersion::V3).is_err());
    }

    #[test]
    fn spi_numbering() {
        assert_eq!(spi_intid(UART_SPI), 32);
        assert_eq!(PASSTHROUGH_SPI_BASE + PASSTHROUGH_SPI_COUNT + 32, NR_IRQS);
    }
}
