//! The arm64 Linux `Image` header and where the kernel, initramfs and DTB go in guest RAM.
//!
//! Header layout (Documentation/arch/arm64/booting.rst): code0/code1 (8 bytes), text_offset
//! (u64 LE), image_size (u64 LE, 0 on kernels before 3.17), flags (u64 LE), 3 reserved u64,
//! magic "ARM\x64" at byte 56.

use super::layout::MIB;

/// Size of the arm64 header proper.
pub const HEADER_SIZE: usize = 64;
/// How much of the file platvmm reads to check it: the arm64 header and, on EFI-stub kernels,
/// the PE/COFF headers and section table that follow it.
pub const HEAD_READ: usize = 4096;
/// Offset of the u32 holding the PE header's offset (EFI stub kernels, "MZ" at byte 0).
const PE_OFFSET_AT: usize = 0x3c;
const ARM64_MAGIC: u32 = 0x644d_5241;
/// text_offset of kernels whose header has image_size == 0.
const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// The arm64 kernel's COMMAND_LINE_SIZE: the longest `bootargs`, terminating NUL included.
pub const CMDLINE_MAX: usize = 2048;
/// Size reserved for the device tree blob (the boot protocol's maximum).
pub const DTB_MAX_SIZE: u64 = 2 * MIB;

/// Why a file is not a bootable arm64 Image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the header.
    #[error("file is too short to be an arm64 Image ({0} bytes)")]
    TooShort(u64),
    /// gzip-compressed (Debian/Ubuntu `vmlinuz` on some releases).
    #[error("kernel is gzip-compressed: decompress it first (zcat vmlinuz > Image)")]
    Gzip,
    /// An ELF file such as `vmlinux`.
    #[error("kernel is an ELF file (vmlinux?): pass the arm64 `Image` from arch/arm64/boot/")]
    Elf,
    /// Anything else.
    #[error("not an arm64 Image (no \"ARM\\x64\" magic at byte 56)")]
    BadMagic,
    /// The PE/COFF section table places data past the end of the file.
    #[error("kernel is truncated: its PE sections end at byte {need} but the file has {have} bytes (copy or download it again)")]
    TruncatedSections { need: u64, have: u64 },
    /// No PE headers, and the file is far below the size the header gives.
    #[error("kernel is truncated: its header gives an image size of {image_size} bytes but the file has only {have} (copy or download it again)")]
    TruncatedImage { image_size: u64, have: u64 },
}

/// The fields of an arm64 Image header platvmm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the kernel from the 2 MiB-aligned base it is loaded at.
    pub text_offset: u64,
    /// Memory the kernel occupies from its load address (bss included); 0 if unknown.
    pub image_size: u64,
}

impl ImageHeader {
    /// Parses the first bytes of a kernel file of `file_size` bytes.
    pub fn parse(head: &[u8], file_size: u64) -> Result<Self, ImageError> {
        if head.len() >= 2 && head[..2] == [0x1f, 0x8b] {
            return Err(ImageError::Gzip);
        }
        if head.len() >= 4 && head[..4] == *b"\x7fELF" {
            return Err(ImageError::Elf);
        }
        if head.len() < HEADER_SIZE || file_size < HEADER_SIZE as u64 {
            return Err(ImageError::TooShort(file_size));
        }
        let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap());
        let magic = u32::from_le_bytes(head[56..60].try_into().unwrap());
        if magic != ARM64_MAGIC {
            return Err(ImageError::BadMagic);
        }
        let image_size = u64_at(16);
        check_complete(head, file_size, image_size)?;
        // Mirrors linux-loader's PE loader, which does the actual load.
        let text_offset = if image_size == 0 {
            LEGACY_TEXT_OFFSET
        } else {
            u64_at(8)
        };
        Ok(Self {
            text_offset,
            image_size,
        })
    }
}

/// Refuses a file shorter than its own headers say. With PE/COFF headers (every EFI-stub
/// kernel) the section table is exact; without them, a file below half the header's image
/// size (which adds only the BSS to the file: 2% on Debian's 6.1) cannot be whole.
fn check_complete(head: &[u8], file_size: u64, image_size: u64) -> Result<(), ImageError> {
    if let Some(need) = pe_sections_end(head) {
        if need > file_size {
            return Err(ImageError::TruncatedSections {
                need,
                have: file_size,
            });
        }
        return Ok(());
    }
    if file_size < image_size / 2 {
        return Err(ImageError::TruncatedImage {
            image_size,
            have: file_size,
        });
    }
    Ok(())
}

/// The end of the last PE section's file data, if `head` holds a PE header and its whole
/// section table.
fn pe_sections_end(head: &[u8]) -> Option<u64> {
    const COFF_HEADER: usize = 20;
    const SECTION: usize = 40;
    let u16_at = |o: usize| Some(u16::from_le_bytes(head.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(head.get(o..o + 4)?.try_into().ok()?));
    if head.get(..2)? != b"MZ" {
        return None;
    }
    let pe = u32_at(PE_OFFSET_AT)? as usize;
    if head.get(pe..pe.checked_add(4)?)? != b"PE\0\0" {
        return None;
    }
    let coff = pe + 4;
    let sections = u16_at(coff + 2)? as usize;
    let table = coff + COFF_HEADER + u16_at(coff + 16)? as usize;
    (0..sections)
        .map(|i| {
            let s = table + i * SECTION;
            let size = u32_at(s + 16)?;
            let ptr = u32_at(s + 20)?;
            Some(u64::from(ptr) + u64::from(size))
        })
        .try_fold(0u64, |end, e| Some(end.max(e?)))
}

/// Where everything goes in guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPlan {
    pub kernel_load: u64,
    /// First byte past the kernel's memory footprint.
    pub kernel_end: u64,
    /// Initramfs start and size.
    pub initrd: Option<(u64, u64)>,
    /// Start of the 2 MiB DTB slot.
    pub dtb: u64,
}

/// The guest RAM cannot hold what must be loaded into it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("guest memory is too small for the kernel, initramfs and device tree: {need_mib} MiB needed at least (--memory)")]
pub struct PlanError {
    pub need_mib: u64,
}

fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

fn align_up(x: u128, a: u64) -> u128 {
    x.div_ceil(u128::from(a)) * u128::from(a)
}

/// Places the kernel at the bottom of RAM, the DTB in the last 2 MiB, and the initramfs
/// right below the DTB (page aligned), keeping the middle of RAM free for the kernel.
///
/// The header's `text_offset` and `image_size` are the kernel file's, any u64 (a corrupt
/// file's too): what they need is summed in u128, so that no value wraps into a plan that
/// looks as if it fitted. RAM must end inside the address space (`ram_base + ram_size`).
pub fn plan(
    ram_base: u64,
    ram_size: u64,
    header: &ImageHeader,
    kernel_file_size: u64,
    initrd_size: Option<u64>,
) -> Result<BootPlan, PlanError> {
    let kernel_load = u128::from(ram_base) + u128::from(header.text_offset);
    let footprint = header.image_size.max(kernel_file_size);
    let kernel_end = align_up(kernel_load + u128::from(footprint), 2 * MIB);
    let initrd_len = initrd_size.unwrap_or(0);
    let need = (kernel_end - u128::from(ram_base))
        + align_up(u128::from(initrd_len), 2 * MIB)
        + u128::from(DTB_MAX_SIZE);
    if need > u128::from(ram_size) {
        return Err(PlanError {
            need_mib: u64::try_from(need.div_ceil(u128::from(MIB))).unwrap_or(u64::MAX),
        });
    }
    // Everything below ends inside RAM, so it fits a u64.
    let (kernel_load, kernel_end) = (kernel_load as u64, kernel_end as u64);
    let ram_end = ram_base + ram_size;
    let dtb = align_down(ram_end - DTB_MAX_SIZE, 2 * MIB);
    let initrd = initrd_size.map(|len| (align_down(dtb - len, 4096), len));
    if let Some((start, _)) = initrd {
        debug_assert!(start >= kernel_end);
    }
    Ok(BootPlan {
        kernel_load,
        kernel_end,
        initrd,
        dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[56..60].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn parses_modern_and_legacy_headers() {
        let h = ImageHeader::parse(&header(0, 0x2a0_0000), 0x200_0000).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x2a0_0000);
        let legacy = ImageHeader::parse(&header(0x1234, 0), 0x100_0000).unwrap();
        assert_eq!(legacy.text_offset, 0x8_0000);
    }

    #[test]
    fn rejects_non_images_with_a_reason() {
        assert_eq!(
            ImageHeader::parse(&[0x1f, 0x8b, 8, 0], 4),
            Err(ImageError::Gzip)
        );
        assert_eq!(ImageHeader::parse(b"\x7fELF\x02", 5), Err(ImageError::Elf));
        assert_eq!(
            ImageHeader::parse(&[0u8; 10], 10),
            Err(ImageError::TooShort(10))
        );
        let mut h = header(0, 1);
        h[59] = 0;
        assert_eq!(ImageHeader::parse(&h, 64), Err(ImageError::BadMagic));
    }

    /// An EFI-stub header: "MZ", PE at 0x40, two sections whose data ends at `end`.
    fn pe_header(image_size: u64, end: u32) -> Vec<u8> {
        let mut h = header(0, image_size).to_vec();
        h[..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        h.extend_from_slice(b"PE\0\0");
        let mut coff = [0u8; 20];
        coff[2..4].copy_from_slice(&2u16.to_le_bytes());
        coff[16..18].copy_from_slice(&8u16.to_le_bytes());
        h.extend_from_slice(&coff);
        h.extend_from_slice(&[0u8; 8]);
        for (ptr, size) in [(0x1000u32, 0x1000u32), (0x2000, end - 0x2000)] {
            let mut sec = [0u8; 40];
            sec[16..20].copy_from_slice(&size.to_le_bytes());
            sec[20..24].copy_from_slice(&ptr.to_le_bytes());
            h.extend_from_slice(&sec);
        }
        h
    }

    #[test]
    fn truncated_kernels_are_refused() {
        let h = pe_header(0x8000, 0x8000);
        assert!(ImageHeader::parse(&h, 0x8000).is_ok());
        assert_eq!(
            ImageHeader::parse(&h, 0x7fff),
            Err(ImageError::TruncatedSections {
                need: 0x8000,
                have: 0x7fff
            })
        );
        // A section table cut off by the head read: only the image-size rule applies.
        assert!(ImageHeader::parse(&h[..h.len() - 20], 0x7fff).is_ok());
        let plain = header(0, 0x200_0000);
        assert!(ImageHeader::parse(&plain, 0x100_0000).is_ok());
        let e = ImageHeader::parse(&plain, 0xff_ffff).unwrap_err();
        assert!(e.to_string().starts_with("kernel is truncated"), "{e}");
    }

    #[test]
    fn plan_places_kernel_initrd_dtb_without_overlap() {
        let base = 0x8000_0000;
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x2a1_0000,
        };
        let p = plan(base, 256 * MIB, &h, 0x200_0000, Some(5 * MIB + 123)).unwrap();
        assert_eq!(p.kernel_load, base);
        assert_eq!(
            p.kernel_end,
            base + 0x2c0_0000,
            "image_size rounded to 2 MiB"
        );
        assert_eq!(p.dtb, base + 254 * MIB);
        assert_eq!(p.dtb % (2 * MIB), 0);
        let (start, len) = p.initrd.unwrap();
        assert_eq!(start % 4096, 0);
        assert!(start >= p.kernel_end);
        assert!(start + len <= p.dtb);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/image_header.rs): header fields near u64::MAX
    /// overflowed the sums (a panic in debug builds, a wrapped plan in release ones).
    #[test]
    fn plan_refuses_headers_whose_sizes_overflow() {
        let base = 0x8000_0000;
        for (text_offset, image_size) in [(u64::MAX - 0x7fff_ffff, 0x100_0000), (0, u64::MAX)] {
            let h = ImageHeader {
                text_offset,
                image_size,
            };
            let e = plan(base, 256 * MIB, &h, 0x100_0000, Some(MIB)).unwrap_err();
            assert!(e.need_mib > 256, "{e:?}");
        }
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x100_0000,
        };
        let e = plan(base, 256 * MIB, &h, 0x100_0000, Some(u64::MAX)).unwrap_err();
        assert!(e.need_mib > 256, "{e:?}");
        // The fuzz input's header: Debian's 6.1 Image with text_offset bytes 3..8 set.
        let h = ImageHeader::parse(&header(0xffff_ffff_ff00_0000, 0x2ea_ffff), 0x200_0000).unwrap();
        assert!(plan(base, 256 * MIB, &h, 0x200_0000, None).is_err());
    }

    #[test]
    fn plan_reports_how_much_is_needed() {
        let h = ImageHeader {
            text_offset: 0,
            image_size: 60 * MIB,
        };
        let e = plan(0x8000_0000, 64 * MIB, &h, 30 * MIB, Some(10 * MIB)).unwrap_err();
        assert_eq!(e.need_mib, 60 + 10 + 2);
        assert!(plan(0x8000_0000, 72 * MIB, &h, 30 * MIB, Some(10 * MIB)).is_ok());
    }
}
