//! Device-tree fragments given by the user: `--dt-overlay F.dtb` (its root's children become
//! root nodes of the guest tree) and `--vfio-platform ...,overlay=F.dtb` (its root is merged
//! into one device's guest node). Read once, in `vmm::prepare`, before KVM is opened.

use std::path::{Path, PathBuf};

use devices::vfio::node::GuestNode;

/// An overlay file that cannot be used; the caller names the option it came from.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct OverlayError {
    pub path: PathBuf,
    pub msg: String,
}

/// Reads an overlay DTB: its root node becomes a [`GuestNode`].
pub fn read(path: &Path) -> Result<GuestNode, OverlayError> {
    let err = |msg: String| OverlayError {
        path: path.to_path_buf(),
        msg,
    };
    let blob = crate::input::read_regular(path).map_err(|e| err(e.to_string()))?;
    parse(&blob).map_err(err)
}

/// Parses an overlay DTB held in memory (any bytes: a fuzz target).
pub fn parse(blob: &[u8]) -> Result<GuestNode, String> {
    let fdt = fdt::Fdt::new(blob)
        .map_err(|e| format!("not a DTB ({e:?}): compile the DTS with dtc -I dts -O dtb"))?;
    let root = fdt.find_node("/").ok_or("no root node")?;
    let mut g = convert(root);
    // dtc adds nothing to the root of a fragment, but drop the usual cell-size boilerplate.
    g.remove("#address-cells");
    g.remove("#size-cells");
    Ok(g)
}

fn convert(n: fdt::node::FdtNode) -> GuestNode {
    GuestNode {
        name: n.name.to_string(),
        props: n
            .properties()
            .map(|p| (p.name.to_string(), p.value.to_vec()))
            .collect(),
        children: n.children().map(convert).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_from_dtb() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("ports-implemented", 1).unwrap();
        let c = w.begin_node("port@0").unwrap();
        w.property_u32("reg", 0).unwrap();
        w.end_node(c).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let p = std::env::temp_dir().join(format!("platvmm-overlay-{}.dtb", std::process::id()));
        std::fs::write(&p, blob).unwrap();
        let g = read(&p).unwrap();
        assert_eq!(g.prop("ports-implemented").unwrap(), [0, 0, 0, 1]);
        assert_eq!(g.children[0].name, "port@0");
        std::fs::write(&p, b"not a dtb").unwrap();
        assert!(read(&p)
            .unwrap_err()
            .to_string()
            .contains("dtc -I dts -O dtb"));
        std::fs::remove_file(&p).unwrap();
    }
}
