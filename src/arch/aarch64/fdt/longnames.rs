//! Property names vm-fdt refuses, written all the same.
//!
//! vm-fdt's `property()` takes only the DT specification's names: at most 31 characters from
//! `[A-Za-z0-9,._+?#-]`. dtc and Linux take any non-empty name without NUL or `/`, and
//! upstream bindings use longer ones (`snps,dis-u2-freeclk-exists-quirk`, 32;
//! `snps,quirk-frame-length-adjustment`, 34). [`LongNames`] writes each such property under a
//! short placeholder name vm-fdt accepts and, once the writer has finished, renames it in the
//! blob:
//!
//! ```text
//! header   size_dt_strings += appended, totalsize += appended
//! struct   FDT_PROP len nameoff value   nameoff of a placeholder -> offset of the real name
//! strings  ... "?long0\0" ...  "snps,quirk-frame-length-adjustment\0"   (appended)
//! ```
//!
//! The placeholders stay in the strings block, unreferenced (readers ignore such strings).
//! vm-fdt writes the strings block last; a blob laid out otherwise is refused, as is a
//! structure block that does not parse, token by token, with every offset inside the block.

use std::collections::{HashMap, HashSet};

use devices::dt::{writable_prop_name, GuestNode};
use vm_fdt::FdtWriter;

use devices::dt::fdt_token::{FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP};
/// Header words (big-endian u32) this module reads or rewrites.
const HDR_TOTALSIZE: usize = 1;
const HDR_OFF_DT_STRUCT: usize = 2;
const HDR_OFF_DT_STRINGS: usize = 3;
const HDR_SIZE_DT_STRINGS: usize = 8;
const HDR_SIZE_DT_STRUCT: usize = 9;
const HDR_WORDS: usize = 10;

/// Placeholders are this prefix and a number. The `?` keeps them apart from the names the
/// fixed nodes of the guest tree use (none has one); the guest nodes' own names are avoided
/// one by one (see [`LongNames::new`]).
const PLACEHOLDER_PREFIX: &str = "?long";

/// Why a property could not be written or the blob could not be renamed.
#[derive(Debug, thiserror::Error)]
pub enum LongNameError {
    /// Empty, or with a NUL or a `/`: no DTB reader takes such a name.
    #[error("property name {0:?} cannot be written: a name is non-empty, without NUL or '/'")]
    InvalidName(String),
    /// vm-fdt refused something else.
    #[error(transparent)]
    Writer(#[from] vm_fdt::Error),
    /// The header is not the one vm-fdt writes (magic, sizes, offsets).
    #[error("DTB header: {0}")]
    Header(&'static str),
    /// A block other than the strings block comes last: appending strings would corrupt it.
    #[error(
        "the strings block ({off:#x}, {size} bytes) is not at the end of the {total}-byte DTB"
    )]
    StringsNotLast {
        off: usize,
        size: usize,
        total: usize,
    },
    /// The structure block does not parse.
    #[error("DTB structure block at {at:#x}: {what}")]
    Structure { at: usize, what: &'static str },
    /// A placeholder that was written is not in the strings block.
    #[error("placeholder {0:?} missing from the DTB strings block")]
    PlaceholderMissing(String),
    /// The renamed blob would not fit the DTB's 32-bit sizes.
    #[error("the DTB grows past 4 GiB")]
    TooLarge,
}

/// Writes properties through vm-fdt, each name it refuses under a placeholder, and renames the
/// placeholders in the finished blob.
#[derive(Debug, Default)]
pub struct LongNames {
    /// Property names of the guest nodes: no placeholder equals one.
    taken: HashSet<String>,
    /// (placeholder, real name), in the order first written.
    renames: Vec<(String, String)>,
    /// Real name → its index in `renames` (one placeholder per name, however many nodes).
    index: HashMap<String, usize>,
    /// Number of the next placeholder candidate.
    next: u64,
}

impl LongNames {
    /// For a tree whose device nodes are `nodes` (and whose other properties have names
    /// without `?`).
    pub fn new(nodes: &[GuestNode]) -> Self {
        fn collect(n: &GuestNode, taken: &mut HashSet<String>) {
            taken.extend(n.props.iter().map(|(name, _)| name.clone()));
            n.children.iter().for_each(|c| collect(c, taken));
        }
        let mut taken = HashSet::new();
        nodes.iter().for_each(|n| collect(n, &mut taken));
        LongNames {
            taken,
            ..Default::default()
        }
    }

    /// Writes property `name` = `value` in the open node: as vm-fdt writes it if it takes the
    /// name, under a placeholder otherwise. `name` must be non-empty, without NUL or `/`.
    pub fn property(
        &mut self,
        fdt: &mut FdtWriter,
        name: &str,
        value: &[u8],
    ) -> Result<(), LongNameError> {
        if !writable_prop_name(name) {
            return Err(LongNameError::InvalidName(name.to_string()));
        }
        match fdt.property(name, value) {
            Err(vm_fdt::Error::InvalidPropertyName) => {}
            r => return Ok(r?),
        }
        let placeholder = self.placeholder(name);
        fdt.property(&placeholder, value)?;
        Ok(())
    }

    /// The placeholder of `name`, made on first use.
    fn placeholder(&mut self, name: &str) -> String {
        if let Some(&i) = self.index.get(name) {
            return self.renames[i].0.clone();
        }
        let placeholder = loop {
            let candidate = format!("{PLACEHOLDER_PREFIX}{}", self.next);
            self.next += 1;
            if !self.taken.contains(&candidate) {
                break candidate;
            }
        };
        self.index.insert(name.to_string(), self.renames.len());
        self.renames.push((placeholder.clone(), name.to_string()));
        placeholder
    }

    /// Finishes `fdt` and gives every placeholder its real name.
    pub fn finish(self, fdt: FdtWriter) -> Result<Vec<u8>, LongNameError> {
        let blob = fdt.finish()?;
        if self.renames.is_empty() {
            return Ok(blob);
        }
        rename(blob, &self.renames)
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(w.try_into().expect("4 bytes")))
}

fn set_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The blocks a rename touches, from a checked header.
struct Layout {
    off_struct: usize,
    size_struct: usize,
    off_strings: usize,
    size_strings: usize,
}

impl Layout {
    fn read(blob: &[u8]) -> Result<Self, LongNameError> {
        let hdr = |i: usize| {
            be32(blob, 4 * i)
                .map(|w| w as usize)
                .ok_or(LongNameError::Header("shorter than a DTB header"))
        };
        if hdr(0)? != FDT_MAGIC as usize {
            return Err(LongNameError::Header("no DTB magic"));
        }
        let total = hdr(HDR_TOTALSIZE)?;
        if total != blob.len() {
            return Err(LongNameError::Header("totalsize is not the blob's length"));
        }
        let l = Layout {
            off_struct: hdr(HDR_OFF_DT_STRUCT)?,
            size_struct: hdr(HDR_SIZE_DT_STRUCT)?,
            off_strings: hdr(HDR_OFF_DT_STRINGS)?,
            size_strings: hdr(HDR_SIZE_DT_STRINGS)?,
        };
        if l.off_strings.checked_add(l.size_strings) != Some(total) {
            return Err(LongNameError::StringsNotLast {
                off: l.off_strings,
                size: l.size_strings,
                total,
            });
        }
        let struct_end = l.off_struct.checked_add(l.size_struct);
        if l.off_struct < 4 * HDR_WORDS || !matches!(struct_end, Some(e) if e <= l.off_strings) {
            return Err(LongNameError::Header(
                "the structure block is not between the header and the strings block",
            ));
        }
        Ok(l)
    }
}

/// Where each string of the strings block starts, by string.
fn string_offsets(strings: &[u8]) -> HashMap<&[u8], usize> {
    let mut out = HashMap::new();
    let mut at = 0;
    for s in strings.split(|&b| b == 0) {
        out.entry(s).or_insert(at);
        at += s.len() + 1;
    }
    out
}

/// `blob` (as vm-fdt finished it) with each placeholder of `renames` (placeholder, real name)
/// renamed: the real names appended to the strings block, the properties' name offsets
/// pointed at them, the header's sizes grown.
fn rename(mut blob: Vec<u8>, renames: &[(String, String)]) -> Result<Vec<u8>, LongNameError> {
    let l = Layout::read(&blob)?;
    let offsets = string_offsets(&blob[l.off_strings..]);
    let mut moved: HashMap<usize, usize> = HashMap::new();
    let mut appended = Vec::new();
    for (placeholder, real) in renames {
        let old = *offsets
            .get(placeholder.as_bytes())
            .ok_or_else(|| LongNameError::PlaceholderMissing(placeholder.clone()))?;
        moved.insert(old, l.size_strings + appended.len());
        appended.extend_from_slice(real.as_bytes());
        appended.push(0);
    }
    let fits = |n: usize| u32::try_from(n).map_err(|_| LongNameError::TooLarge);
    let st = &blob[l.off_struct..l.off_struct + l.size_struct];
    for at in prop_nameoff_positions(st)? {
        let at = l.off_struct + at;
        let old = be32(&blob, at).expect("checked by the walk") as usize;
        if let Some(&new) = moved.get(&old) {
            set_be32(&mut blob, at, fits(new)?);
        }
    }
    let size_strings = fits(l.size_strings + appended.len())?;
    let total = fits(blob.len() + appended.len())?;
    blob.extend_from_slice(&appended);
    set_be32(&mut blob, 4 * HDR_SIZE_DT_STRINGS, size_strings);
    set_be32(&mut blob, 4 * HDR_TOTALSIZE, total);
    Ok(blob)
}

/// The structure block `st` walked token by token: where (in `st`) the name offset of each
/// FDT_PROP is. Node names and values are skipped to the next 4-byte boundary; the walk ends
/// at FDT_END with every node closed.
fn prop_nameoff_positions(st: &[u8]) -> Result<Vec<usize>, LongNameError> {
    let err = |at, what| LongNameError::Structure { at, what };
    let word = |at: usize| be32(st, at).ok_or(err(at, "ends inside a token"));
    let align = |x: usize| x.checked_add(3).map(|x| x & !3);
    let (mut pos, mut depth, mut out) = (0usize, 0usize, Vec::new());
    loop {
        let at = pos;
        pos = at + 4;
        match word(at)? {
            FDT_BEGIN_NODE => {
                let len = st
                    .get(pos..)
                    .and_then(|s| s.iter().position(|&b| b == 0))
                    .ok_or(err(at, "node name without NUL"))?;
                pos = align(pos + len + 1).ok_or(err(at, "node name too long"))?;
                depth += 1;
            }
            FDT_PROP if depth > 0 => {
                let len = word(pos)? as usize;
                word(pos + 4)?;
                out.push(pos + 4);
                pos = (pos + 8)
                    .checked_add(len)
                    .filter(|&end| end <= st.len())
                    .and_then(align)
                    .ok_or(err(at, "property value past the block"))?;
            }
            FDT_PROP => return Err(err(at, "property outside a node")),
            FDT_END_NODE => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(err(at, "FDT_END_NODE unopened"))?
            }
            FDT_NOP => {}
            FDT_END if depth == 0 => return Ok(out),
            FDT_END => return Err(err(at, "FDT_END inside a node")),
            _ => return Err(err(at, "unknown token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG40: &str = "vendor,a-property-name-of-forty-chars-xx";

    fn node(name: &str, props: &[(&str, &[u8])]) -> GuestNode {
        GuestNode::with_props(name, props)
    }

    /// A root with `nodes` written through `LongNames`.
    fn write(nodes: &[GuestNode]) -> Result<Vec<u8>, LongNameError> {
        let mut names = LongNames::new(nodes);
        let mut fdt = FdtWriter::new()?;
        let root = fdt.begin_node("")?;
        for n in nodes {
            let h = fdt.begin_node(&n.name)?;
            for (name, value) in &n.props {
                names.property(&mut fdt, name, value)?;
            }
            fdt.end_node(h)?;
        }
        fdt.end_node(root)?;
        names.finish(fdt)
    }

    fn value<'a>(tree: &'a fdt::Fdt, node: &str, name: &str) -> Option<&'a [u8]> {
        Some(tree.find_node(node)?.property(name)?.value)
    }

    #[test]
    fn long_names_are_written_with_their_values() {
        assert_eq!(LONG40.len(), 40);
        let long31 = "vendor,a-name-of-31-characters-";
        assert_eq!(long31.len(), 31);
        let a = node(
            "a@1",
            &[
                ("compatible", b"x,a\0"),
                (LONG40, &[1, 2, 3]),
                (long31, b""),
            ],
        );
        let b = node("b@2", &[(LONG40, b"second\0"), ("reg", &[0, 0, 0, 2])]);
        let blob = write(&[a, b]).unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(value(&tree, "/a@1", LONG40), Some(&[1u8, 2, 3][..]));
        assert_eq!(value(&tree, "/a@1", long31), Some(&[][..]));
        assert_eq!(value(&tree, "/a@1", "compatible"), Some(&b"x,a\0"[..]));
        assert_eq!(value(&tree, "/b@2", LONG40), Some(&b"second\0"[..]));
        assert_eq!(value(&tree, "/b@2", "reg"), Some(&[0u8, 0, 0, 2][..]));
        // No property is left under its placeholder.
        let all: Vec<_> = tree.all_nodes().flat_map(|n| n.properties()).collect();
        assert!(all.iter().all(|p| !p.name.starts_with(PLACEHOLDER_PREFIX)));
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn other_characters_vm_fdt_refuses_are_written() {
        let name = "vendor,with@and!chars";
        let blob = write(&[node("a", &[(name, &[7])])]).unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(value(&tree, "/a", name), Some(&[7u8][..]));
    }

    #[test]
    fn placeholders_avoid_the_trees_own_names() {
        let n = node(
            "a",
            &[
                ("?long0", &[0]),
                ("?long1", &[1]),
                (LONG40, &[2]),
                ("z", &[3]),
            ],
        );
        let blob = write(&[n]).unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        for (name, v) in [("?long0", 0u8), ("?long1", 1), (LONG40, 2), ("z", 3)] {
            assert_eq!(value(&tree, "/a", name), Some(&[v][..]), "{name}");
        }
    }

    #[test]
    fn names_no_reader_takes_are_refused() {
        for bad in ["", "a\0b", "a/b"] {
            let e = write(&[node("a", &[(bad, &[1])])]).unwrap_err();
            assert!(
                matches!(&e, LongNameError::InvalidName(n) if n == bad),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn blobs_not_laid_out_as_vm_fdt_does_are_refused() {
        let renames = [("?long0".to_string(), LONG40.to_string())];
        let mut names = LongNames::new(&[]);
        let mut fdt = FdtWriter::new().unwrap();
        let root = fdt.begin_node("").unwrap();
        names.property(&mut fdt, LONG40, &[1]).unwrap();
        fdt.end_node(root).unwrap();
        let good = fdt.finish().unwrap();
        assert!(rename(good.clone(), &renames).is_ok());
        // Something after the strings block.
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 4]);
        let total = trailing.len() as u32;
        set_be32(&mut trailing, 4 * HDR_TOTALSIZE, total);
        let e = rename(trailing, &renames).unwrap_err();
        assert!(matches!(e, LongNameError::StringsNotLast { .. }), "{e}");
        // A token the walk does not know.
        let mut bad_token = good.clone();
        let off_struct = be32(&good, 4 * HDR_OFF_DT_STRUCT).unwrap() as usize;
        set_be32(&mut bad_token, off_struct + 8, 0x77);
        let e = rename(bad_token, &renames).unwrap_err();
        assert!(matches!(e, LongNameError::Structure { .. }), "{e}");
        // A property length past the block.
        let mut long_value = good.clone();
        set_be32(&mut long_value, off_struct + 12, 0xffff_fff0);
        let e = rename(long_value, &renames).unwrap_err();
        assert!(matches!(e, LongNameError::Structure { .. }), "{e}");
        let e = rename(good[..20].to_vec(), &renames).unwrap_err();
        assert!(matches!(e, LongNameError::Header(_)), "{e}");
        let other = [("?long9".to_string(), LONG40.to_string())];
        let e = rename(good, &other).unwrap_err();
        assert!(matches!(e, LongNameError::PlaceholderMissing(_)), "{e}");
    }

    #[test]
    fn the_walk_checks_every_token() {
        let words = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|x| x.to_be_bytes()).collect() };
        // Root "" (one padded word), a NOP, a prop of 1 byte, end node, end.
        let st = words(&[1, 0, 4, 3, 1, 5, 0xaa00_0000, 2, 9]);
        assert_eq!(prop_nameoff_positions(&st).unwrap(), [20]);
        for bad in [
            &[1, 0, 9][..],         // FDT_END inside a node
            &[3, 0, 0, 9],          // a property outside a node
            &[2, 9],                // an end without a begin
            &[1, 0, 2],             // no FDT_END
            &[1, 0, 3, 9, 0, 2, 9], // value past the block
        ] {
            let e = prop_nameoff_positions(&words(bad)).unwrap_err();
            assert!(matches!(e, LongNameError::Structure { .. }), "{bad:?}");
        }
        assert!(prop_nameoff_positions(&[0, 0, 0, 1, b'a']).is_err());
    }
}
