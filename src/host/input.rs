//! Opening the files a user names (kernel, initramfs, overlays): only regular, non-empty files
//! are taken. A FIFO would block `open`, a character device such as /dev/zero would never end
//! a read, and a directory reads as an error far from its cause; each is refused by name here,
//! before KVM is opened.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a named file cannot be used; the caller says which option named it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened or examined.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory, device, FIFO or socket.
    #[error("it is {0}, not a regular file: give the path of the file itself")]
    NotRegular(&'static str),
    /// Zero bytes long.
    #[error("the file is empty")]
    Empty,
}

/// What kind of file `md` describes, for the message ("a directory", ...).
fn kind(md: &std::fs::Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` read-only if it is a regular, non-empty file; returns it with its size.
/// The open is non-blocking so a FIFO cannot hang it; the type is checked on the opened file,
/// so nothing can be swapped in between the check and the use.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(InputError::NotRegular(kind(&md)));
    }
    if md.len() == 0 {
        return Err(InputError::Empty);
    }
    Ok((f, md.len()))
}

/// Reads a whole regular, non-empty file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let (mut f, len) = open_regular(path)?;
    let mut v = Vec::with_capacity(len as usize);
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Nesting the device trees platvmm reads may have (real trees have under 10 levels).
pub const DTB_MAX_DEPTH: usize = 32;

use devices::dt::fdt_token::{FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP};

/// Checks that `blob` is a well-formed flattened device tree (version 17, as dtc writes):
/// the header's blocks inside it, a root node with an empty name, every node and property
/// inside the structure block with its name inside the strings block (UTF-8, and no `/` in
/// a property name), properties before child nodes, `#address-cells`/`#size-cells` of one
/// cell, `/aliases` values that are paths, at most [`DTB_MAX_DEPTH`] levels, then FDT_END.
///
/// The `fdt` crate that reads DTBs here trusts all of that and panics on a blob that breaks
/// it (an index out of range, a `.expect()`, unbounded recursion through aliases), so every
/// user-given DTB (host trees, overlays) goes through this first.
pub fn check_dtb(blob: &[u8]) -> Result<(), String> {
    let (st, strings) = dtb_blocks(blob)?;
    let nops = check_structure(st, strings)?;
    match nops.first() {
        Some(at) => Err(format!(
            "FDT_NOP at {at:#x}: read DTBs through strip_nops (a bootloader's deleted property)"
        )),
        None => Ok(()),
    }
}

/// A well-formed DTB (see [`check_dtb`]) without its FDT_NOP tokens, which bootloaders leave
/// where they delete a property or node (a host's own /sys/firmware/fdt has them) and which
/// the `fdt` crate does not skip everywhere: the structure block is rewritten without them
/// and the header's offsets and sizes follow. A blob without NOPs comes back as it is.
pub fn strip_nops(blob: &[u8]) -> Result<Vec<u8>, String> {
    let (st, strings) = dtb_blocks(blob)?;
    let nops = check_structure(st, strings)?;
    if nops.is_empty() {
        return Ok(blob.to_vec());
    }
    let be32 = |i: usize| u32::from_be_bytes(blob[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let rsv_start = be32(4) as usize;
    let rsv_len = reservation_len(&blob[rsv_start..be32(1) as usize])?;
    let mut structure = Vec::with_capacity(st.len());
    let mut from = 0;
    for at in nops {
        structure.extend_from_slice(&st[from..at]);
        from = at + 4;
    }
    structure.extend_from_slice(&st[from..]);
    let mut out = blob[..40].to_vec();
    out.extend_from_slice(&blob[rsv_start..rsv_start + rsv_len]);
    let off_struct = out.len();
    out.extend_from_slice(&structure);
    let off_strings = out.len();
    out.extend_from_slice(strings);
    let set = |out: &mut Vec<u8>, i: usize, v: usize| {
        out[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
    };
    let total = out.len();
    set(&mut out, 1, total);
    set(&mut out, 2, off_struct);
    set(&mut out, 3, off_strings);
    set(&mut out, 4, 40);
    set(&mut out, 9, structure.len());
    Ok(out)
}

/// The memory reservation block's length: 16-byte entries up to the all-zero one.
fn reservation_len(rsv: &[u8]) -> Result<usize, String> {
    rsv.chunks_exact(16)
        .position(|e| e.iter().all(|&b| b == 0))
        .map(|i| 16 * (i + 1))
        .ok_or_else(|| "the memory reservation block has no end entry".into())
}

/// The header checked: the structure and strings blocks, both inside the blob.
fn dtb_blocks(blob: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let be32 = |at: usize| -> Option<u32> {
        let b = blob.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    };
    let hdr = |i: usize| be32(4 * i).ok_or("shorter than a DTB header (40 bytes)");
    if hdr(0)? != FDT_MAGIC {
        return Err("no DTB magic (d00dfeed) at its start".into());
    }
    let total = hdr(1)? as usize;
    if total > blob.len() || total < 40 {
        return Err(format!(
            "the header gives a size of {total} bytes, the blob has {}",
            blob.len()
        ));
    }
    let [off_struct, off_strings, off_rsvmap, version] =
        [hdr(2)?, hdr(3)?, hdr(4)?, hdr(5)?].map(|x| x as usize);
    let [size_strings, size_struct] = [hdr(8)?, hdr(9)?].map(|x| x as usize);
    if version < 17 {
        return Err(format!(
            "DTB version {version}: version 17 needed (dtc writes it)"
        ));
    }
    let block = |off: usize, size: usize, what: &str| {
        off.checked_add(size)
            .filter(|&end| end <= total)
            .map(|end| &blob[off..end])
            .ok_or(format!("its {what} block lies outside the blob"))
    };
    let st = block(off_struct, size_struct, "structure")?;
    let strings = block(off_strings, size_strings, "strings")?;
    block(off_rsvmap, 0, "memory reservation")?;
    Ok((st, strings))
}

/// The structure block walked token by token (see [`check_dtb`]); returns where its
/// FDT_NOP tokens are.
fn check_structure(st: &[u8], strings: &[u8]) -> Result<Vec<usize>, String> {
    let token = |at: usize| -> Result<u32, String> {
        st.get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| format!("the structure block ends inside a token at {at:#x}"))
    };
    let align = |x: usize| (x + 3) & !3;
    let (mut pos, mut depth) = (0usize, 0usize);
    // Properties of the current node may still come (none after its first child); whether it
    // is /aliases.
    let (mut props_allowed, mut in_aliases) = (false, false);
    let mut nops = Vec::new();
    loop {
        let tok = token(pos)?;
        let at = pos;
        pos += 4;
        match tok {
            FDT_BEGIN_NODE => {
                let len = st[pos..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| format!("node name at {pos:#x} has no NUL"))?;
                let name = std::str::from_utf8(&st[pos..pos + len])
                    .map_err(|_| format!("node name at {pos:#x} is not UTF-8"))?;
                if depth == 0 && (at != 0 || !name.is_empty()) {
                    return Err("the root node must come first, with an empty name".into());
                }
                depth += 1;
                if depth > DTB_MAX_DEPTH {
                    return Err(format!("nodes nest deeper than {DTB_MAX_DEPTH} levels"));
                }
                in_aliases = depth == 2 && name.split('@').next() == Some("aliases");
                props_allowed = true;
                pos = align(pos + len + 1);
            }
            FDT_PROP if depth > 0 && props_allowed => {
                let (len, nameoff) = (token(pos)? as usize, token(pos + 4)? as usize);
                let value = st
                    .get(pos + 8..pos + 8 + len)
                    .ok_or_else(|| format!("property at {at:#x} runs past the block"))?;
                let name = strings
                    .get(nameoff..)
                    .and_then(|s| Some(&s[..s.iter().position(|&b| b == 0)?]))
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .filter(|n| !n.contains('/'))
                    .ok_or_else(|| {
                        format!("property at {at:#x}: no valid name at string offset {nameoff:#x}")
                    })?;
                if (name == "#address-cells" || name == "#size-cells") && len != 4 {
                    return Err(format!("{name} of {len} bytes: it is one cell"));
                }
                if in_aliases {
                    if let Ok(v) = std::str::from_utf8(value) {
                        if !v.trim_end_matches('\0').starts_with('/') {
                            return Err(format!("alias {name} is not a path: {v:?}"));
                        }
                    }
                }
                pos = align(pos + 8 + len);
            }
            FDT_PROP => return Err(format!("property at {at:#x} after a child node")),
            FDT_END_NODE if depth > 0 => {
                depth -= 1;
                props_allowed = false;
                in_aliases = false;
            }
            FDT_END if depth == 0 && at > 0 => return Ok(nops),
            FDT_NOP => nops.push(at),
            t => return Err(format!("unexpected token {t:#x} at {at:#x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_non_empty_files_are_taken() {
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file: give the path of the file itself"
        );
        let e = open_regular(Path::new("/")).unwrap_err().to_string();
        assert!(e.starts_with("it is a directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("platvmm-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err().to_string();
        assert!(e.starts_with("it is a FIFO"), "{e}");
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(open_regular(&empty), Err(InputError::Empty)));
        let ok = dir.join("ok");
        std::fs::write(&ok, b"abc").unwrap();
        assert_eq!(open_regular(&ok).unwrap().1, 3);
        assert_eq!(read_regular(&ok).unwrap(), b"abc");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A DTB (version 17) of structure-block `tokens` (u32 words, big-endian) and `strings`.
    fn raw_dtb(tokens: &[u32], strings: &[u8]) -> Vec<u8> {
        let st: Vec<u8> = tokens.iter().flat_map(|t| t.to_be_bytes()).collect();
        let (off_rsv, off_st) = (40u32, 56u32);
        let off_str = off_st + st.len() as u32;
        let total = off_str + strings.len() as u32;
        let hdr = [
            FDT_MAGIC,
            total,
            off_st,
            off_str,
            off_rsv,
            17,
            16,
            0,
            strings.len() as u32,
            st.len() as u32,
        ];
        let mut v: Vec<u8> = hdr.iter().flat_map(|x| x.to_be_bytes()).collect();
        v.extend_from_slice(&[0; 16]);
        v.extend_from_slice(&st);
        v.extend_from_slice(strings);
        v
    }

    /// A node name as structure-block words (NUL-terminated, padded).
    fn name(n: &str) -> Vec<u32> {
        let mut b = n.as_bytes().to_vec();
        b.push(0);
        b.resize(b.len().div_ceil(4) * 4, 0);
        b.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    const B: u32 = FDT_BEGIN_NODE;
    const E: u32 = FDT_END_NODE;
    const P: u32 = FDT_PROP;

    /// `/ { a { x = <1>; }; }` with names at these string offsets: 0 "x", 2 "#size-cells".
    const STRINGS: &[u8] = b"x\0#size-cells\0";

    fn tree(child_props: &[u32]) -> Vec<u32> {
        let mut t = vec![B, 0];
        t.push(B);
        t.extend(name("a"));
        t.extend_from_slice(child_props);
        t.extend([E, E, FDT_END]);
        t
    }

    /// A bootloader's deleted property (FDT_NOP words where it was, as in a host's own
    /// /sys/firmware/fdt): refused by the strict check, dropped by `strip_nops`, after which
    /// the tree reads back whole.
    #[test]
    fn nops_are_stripped_and_the_tree_reads_back() {
        // / { a { x = <1>; NOP NOP NOP (a deleted 4-byte property); x = <2>; }; }
        let blob = raw_dtb(
            &tree(&[P, 4, 0, 1, FDT_NOP, FDT_NOP, FDT_NOP, P, 4, 0, 2]),
            STRINGS,
        );
        assert!(check_dtb(&blob).unwrap_err().contains("FDT_NOP at"));
        let clean = strip_nops(&blob).unwrap();
        assert_eq!(check_dtb(&clean), Ok(()));
        assert_eq!(clean.len(), blob.len() - 12);
        let t = fdt::Fdt::new(&clean).unwrap();
        let values: Vec<&[u8]> = t
            .find_node("/a")
            .unwrap()
            .properties()
            .map(|p| p.value)
            .collect();
        assert_eq!(values, [&[0, 0, 0, 1][..], &[0, 0, 0, 2][..]]);
        // A blob without NOPs comes back unchanged; a malformed one is still refused.
        let plain = raw_dtb(&tree(&[P, 4, 0, 1]), STRINGS);
        assert_eq!(strip_nops(&plain).unwrap(), plain);
        assert!(strip_nops(&raw_dtb(&[B, 0, E], STRINGS)).is_err());
    }

    /// What the fdt crate would panic on (index out of range, `.expect()`, unbounded
    /// recursion), one rule each, and a well-formed tree from vm-fdt, which passes and
    /// reads back.
    #[test]
    fn dtb_check_refuses_what_the_reader_would_panic_on() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        let a = w.begin_node("aliases").unwrap();
        w.property_string("serial0", "/soc/serial@0").unwrap();
        w.end_node(a).unwrap();
        let soc = w.begin_node("soc").unwrap();
        let s0 = w.begin_node("serial@0").unwrap();
        w.property_null("dma-coherent").unwrap();
        w.end_node(s0).unwrap();
        w.end_node(soc).unwrap();
        w.end_node(root).unwrap();
        let good = w.finish().unwrap();
        assert_eq!(check_dtb(&good), Ok(()));
        let t = fdt::Fdt::new(&good).unwrap();
        assert_eq!(t.find_node("serial0").unwrap().name, "serial@0");
        assert_eq!(check_dtb(&raw_dtb(&tree(&[P, 4, 0, 1]), STRINGS)), Ok(()));

        let refused = |blob: &[u8], says: &str| {
            let e = check_dtb(blob).unwrap_err();
            assert!(e.contains(says), "{e} (wanted {says:?})");
        };
        refused(b"\xd0\x0d\xfe\xed", "shorter than a DTB header");
        refused(&good[..good.len() - 1], "the header gives a size");
        let mut v16 = good.clone();
        v16[23] = 16;
        refused(&v16, "version 17 needed");
        // Blocks past the end; a property name past the strings block, or without its NUL.
        let mut big = good.clone();
        big[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        refused(&big, "strings block lies outside");
        refused(&raw_dtb(&tree(&[P, 4, 40, 1]), STRINGS), "no valid name");
        refused(&raw_dtb(&tree(&[P, 4, 2, 1]), b"x\0#size"), "no valid name");
        // A value past the block; a node name without its NUL.
        refused(
            &raw_dtb(&tree(&[P, 400, 0, 1]), STRINGS),
            "runs past the block",
        );
        refused(&raw_dtb(&[B, 0x6161_6161], STRINGS), "has no NUL");
        // #size-cells of one byte (the reader's cell_sizes() expects four).
        refused(&raw_dtb(&tree(&[P, 1, 2, 0]), STRINGS), "it is one cell");
        // A property after a child (skip_current_node asserts END_NODE there).
        let mut t = vec![B, 0, B];
        t.extend(name("a"));
        t.extend([E, P, 4, 0, 1, E, FDT_END]);
        refused(&raw_dtb(&t, STRINGS), "after a child node");
        // NOPs, unbalanced nodes, a missing FDT_END, a named root, a second root.
        refused(&raw_dtb(&tree(&[FDT_NOP]), STRINGS), "FDT_NOP");
        refused(
            &raw_dtb(&[B, 0, E, E, FDT_END], STRINGS),
            "unexpected token 0x2",
        );
        refused(&raw_dtb(&[B, 0, E], STRINGS), "ends inside a token");
        let mut named = vec![B];
        named.extend(name("root"));
        named.extend([E, FDT_END]);
        refused(&raw_dtb(&named, STRINGS), "empty name");
        refused(
            &raw_dtb(&[B, 0, E, B, 0, E, FDT_END], STRINGS),
            "come first",
        );
        // Nesting past what the reader's parent stack holds.
        let mut deep = vec![B, 0];
        for _ in 0..DTB_MAX_DEPTH {
            deep.push(B);
            deep.extend(name("n"));
        }
        deep.extend(std::iter::repeat(E).take(DTB_MAX_DEPTH + 1));
        deep.push(FDT_END);
        refused(&raw_dtb(&deep, STRINGS), "deeper than");
        // An alias naming itself: find_node() would resolve it forever.
        let mut t = vec![B, 0, B];
        t.extend(name("aliases"));
        t.extend([P, 2, 0, u32::from_be_bytes(*b"x\0\0\0"), E, E, FDT_END]);
        refused(&raw_dtb(&t, STRINGS), "alias x is not a path");
    }
}
