//! The arm64 `Image` header check and the boot plan made from it.
//!
//! Input: [`CTL`] control bytes, then the head of a kernel file (what `vmm::prepare` reads:
//! its first `HEAD_READ` bytes). `ImageHeader::parse` gets it with any file size, then with
//! the size a real file of that head would have; a header it accepts is planned into guest
//! RAM of a size `check_memory` accepts, at `RAM_BASE` or at a 2 MiB-aligned identity-mapped
//! base, with or without an initramfs. A plan must place everything inside RAM without
//! overlap. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use platvmm::arch::aarch64::image::{self, ImageHeader, DTB_MAX_SIZE, HEAD_READ};
use platvmm::arch::aarch64::layout::{self, MIB};

/// Control bytes: file size beyond the head (8), RAM size (8), RAM base (8), initramfs (8).
const CTL: usize = 32;

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < CTL {
        return;
    }
    let (ctl, rest) = data.split_at(CTL);
    let head = &rest[..rest.len().min(HEAD_READ)];
    // Any size at all (the API takes one).
    let _ = ImageHeader::parse(head, u64_at(ctl, 0));
    // A real file: the head is all of it, or its first HEAD_READ bytes. File sizes fit an
    // i64 (off_t).
    let file_size = if head.len() < HEAD_READ {
        head.len() as u64
    } else {
        (HEAD_READ as u64).saturating_add(u64_at(ctl, 0) % (i64::MAX as u64))
    };
    let Ok(h) = ImageHeader::parse(head, file_size) else {
        return;
    };
    // RAM as --memory allows it.
    let span = (layout::MAX_RAM - layout::MIN_RAM) / 4096 + 1;
    let ram_size = layout::MIN_RAM + (u64_at(ctl, 8) % span) * 4096;
    assert!(layout::check_memory(ram_size).is_ok());
    // RAM_BASE, or an identity-mapped run: 2 MiB-aligned host-physical addresses below 2^48.
    let b = u64_at(ctl, 16);
    let ram_base = if b & 1 == 0 {
        layout::RAM_BASE
    } else {
        ((b >> 1) % (1 << 27)) * 2 * MIB
    };
    let i = u64_at(ctl, 24);
    let initrd = (i & 1 != 0).then_some((i >> 1) % (i64::MAX as u64));
    let Ok(p) = image::plan(ram_base, ram_size, &h, file_size, initrd) else {
        return;
    };
    let ram_end = ram_base + ram_size;
    assert!(p.kernel_load >= ram_base, "{p:?}");
    assert_eq!(p.kernel_load, ram_base + h.text_offset, "{p:?}");
    assert!(
        p.kernel_end >= p.kernel_load + h.image_size.max(file_size),
        "{p:?}"
    );
    assert!(p.kernel_end <= p.dtb, "{p:?}");
    assert_eq!(p.dtb % (2 * MIB), 0, "{p:?}");
    assert!(p.dtb + DTB_MAX_SIZE <= ram_end, "{p:?}");
    if let Some((start, len)) = p.initrd {
        assert_eq!(Some(len), initrd);
        assert_eq!(start % 4096, 0, "{p:?}");
        assert!(start >= p.kernel_end && start + len <= p.dtb, "{p:?}");
    }
});
