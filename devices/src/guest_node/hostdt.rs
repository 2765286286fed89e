//! The host device-tree node of a device, read from sysfs (`of_node` → a directory under
//! /sys/firmware/devicetree/base whose files are properties and subdirectories children).

use std::fs;
use std::path::Path;

pub use crate::dt::{is_string_list, string_list};

/// A device-tree node as raw properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNode {
    /// Node name with unit address (`pl031@9010000`).
    pub name: String,
    /// Properties in name order, values as stored (big-endian cells, NUL-terminated strings).
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<HostNode>,
}

impl HostNode {
    /// Reads the node at `dir` and its children.
    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let mut node = Self::read_props(dir)?;
        let mut subdirs: Vec<_> = fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        for p in subdirs {
            node.children.push(HostNode::read(&p)?);
        }
        Ok(node)
    }

    /// Reads the node at `dir` without its children.
    pub fn read_props(dir: &Path) -> std::io::Result<Self> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        let mut node = HostNode {
            name,
            ..Default::default()
        };
        for e in entries {
            let fname = e.file_name().to_string_lossy().into_owned();
            // `name` is the legacy name property the kernel synthesises: not a real one.
            if !e.path().is_dir() && fname != "name" {
                node.props.push((fname, fs::read(e.path())?));
            }
        }
        Ok(node)
    }

    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A string-list property (`compatible`, `reg-names`...).
    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        self.prop(name).map(string_list)
    }

    /// The first cell of property `name`.
    pub fn u32_prop(&self, name: &str) -> Option<u32> {
        self.prop(name)
            .and_then(|v| crate::dt::cells_of(v).first().copied())
    }

    /// Node name without the unit address.
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or(&self.name)
    }
}

/// The properties that decide a node's interrupt parent (`interrupt-parent`,
/// `#interrupt-cells`, `phandle`) of the node at `dir` and of each ancestor up to `base`, the
/// tree's root directory, nearest first: the ancestry `irqspec::effective_parent` reads. Only
/// the node itself when `dir` is not under `base`. Bounded by the path's length.
pub fn interrupt_ancestry(dir: &Path, base: &Path) -> Vec<HostNode> {
    const PROPS: [&str; 3] = ["interrupt-parent", "#interrupt-cells", "phandle"];
    let mut v = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        v.push(HostNode {
            name: d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            props: PROPS
                .iter()
                .filter_map(|p| Some((p.to_string(), fs::read(d.join(p)).ok()?)))
                .collect(),
            children: Vec::new(),
        });
        if d == base || !d.starts_with(base) {
            break;
        }
        cur = d.parent();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_ancestry_stops_at_the_root() {
        let base = std::env::temp_dir().join(format!("platvmm-irqdt-{}", std::process::id()));
        let dev = base.join("cp0/config-space@f2000000/sata@540000");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(base.join("interrupt-parent"), [0, 0, 0, 1]).unwrap();
        std::fs::write(base.join("cp0/interrupt-parent"), [0, 0, 0, 5]).unwrap();
        std::fs::write(dev.join("compatible"), b"generic-ahci\0").unwrap();
        let a = interrupt_ancestry(&dev, &base);
        let names: Vec<&str> = a.iter().map(|n| n.name.as_str()).collect();
        let root = base.file_name().unwrap().to_str().unwrap();
        assert_eq!(names, ["sata@540000", "config-space@f2000000", "cp0", root]);
        assert_eq!(a[2].prop("interrupt-parent"), Some(&[0u8, 0, 0, 5][..]));
        assert!(
            a[0].prop("compatible").is_none(),
            "only what decides the parent"
        );
        assert_eq!(interrupt_ancestry(&dev, Path::new("/elsewhere")).len(), 1);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn reads_a_node_directory() {
        let d =
            std::env::temp_dir().join(format!("platvmm-of-{}/pl031@9010000", std::process::id()));
        std::fs::create_dir_all(d.join("child@1")).unwrap();
        std::fs::write(d.join("compatible"), b"arm,pl031\0arm,primecell\0").unwrap();
        std::fs::write(d.join("name"), b"pl031\0").unwrap();
        std::fs::write(
            d.join("reg"),
            [0, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0],
        )
        .unwrap();
        std::fs::write(d.join("child@1/reg"), [0, 0, 0, 1]).unwrap();
        let n = HostNode::read(&d).unwrap();
        assert_eq!(n.name, "pl031@9010000");
        assert_eq!(n.base_name(), "pl031");
        assert_eq!(
            n.strings("compatible").unwrap(),
            ["arm,pl031", "arm,primecell"]
        );
        assert!(n.prop("name").is_none());
        assert_eq!(n.children.len(), 1);
        assert_eq!(n.children[0].prop("reg"), Some(&[0u8, 0, 0, 1][..]));
        std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
    }

    #[test]
    fn string_lists() {
        assert!(is_string_list(b"okay\0"));
        assert!(is_string_list(b"a\0bc\0"));
        assert!(!is_string_list(&[0, 0, 0, 5]), "a phandle cell");
        assert!(!is_string_list(b""));
        assert!(!is_string_list(b"a\0\0"));
        assert!(!is_string_list(&[0x80, 0]));
    }
}
