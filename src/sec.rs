//! NXP SEC (CAAM): the synthesized controller node and its emulated register page.
//!
//! A guest's caam driver binds job rings only under a controller node it has probed. platvmm
//! writes that controller node itself, backed by [`devices::caam::CaamController`] (trapped),
//! and puts passed-through job rings under it as children, each reached through a `ranges`
//! entry. With `--sec-controller` and no job rings the controller probes alone (its queue
//! interface is advertised), which is what the emulated board can show: no emulator models
//! CAAM, so job rings themselves are only exercised on real hardware (ci/hw-test.sh).

use devices::caam::CAAM_WINDOW;
use devices::vfio::node::{cells_prop, strings_prop, GuestNode};

use crate::arch::aarch64::layout;

/// Guest address of the emulated controller page, in platvmm's emulated-device area.
pub const SEC_CTRL_BASE: u64 = 0x0910_0000;
const _: () = assert!(
    SEC_CTRL_BASE >= layout::EMULATED_MMIO_BASE
        && SEC_CTRL_BASE + CAAM_WINDOW <= layout::EMULATED_MMIO_END
);

/// Compatible of the emulated controller (what the register page models).
pub const SEC_COMPATIBLE: [&str; 3] = ["fsl,sec-v5.4", "fsl,sec-v5.0", "fsl,sec-v4.0"];
/// SEC era the page models.
pub const SEC_ERA: u32 = 8;

/// A passed-through job ring as a child of the controller.
#[derive(Debug, Clone)]
pub struct JobRing {
    /// The ring's node as the handler generated it (its `reg`/`interrupts` are rewritten here).
    pub node: GuestNode,
    /// Offset of the ring in the host SEC block (its host `reg`), used as the child address.
    pub offset: u32,
    /// Guest address and size of the ring's page.
    pub gpa: u64,
    pub size: u64,
}

/// The controller node with `rings` as children.
pub fn controller_node(rings: &[JobRing]) -> GuestNode {
    let mut n = GuestNode {
        name: format!("crypto@{SEC_CTRL_BASE:x}"),
        ..Default::default()
    };
    n.set("compatible", strings_prop(&SEC_COMPATIBLE));
    n.set("fsl,sec-era", cells_prop(&[SEC_ERA]));
    n.set(
        "reg",
        [SEC_CTRL_BASE, CAAM_WINDOW]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect(),
    );
    n.set("dma-coherent", Vec::new());
    if rings.is_empty() {
        return n;
    }
    n.set("#address-cells", cells_prop(&[1]));
    n.set("#size-cells", cells_prop(&[1]));
    // One ranges entry per ring: child address (its host offset) → its guest page.
    let ranges: Vec<u32> = rings
        .iter()
        .flat_map(|r| [r.offset, (r.gpa >> 32) as u32, r.gpa as u32, r.size as u32])
        .collect();
    n.set("ranges", cells_prop(&ranges));
    for r in rings {
        let mut c = r.node.clone();
        c.name = format!("jr@{:x}", r.offset);
        c.set("reg", cells_prop(&[r.offset, r.size as u32]));
        n.children.push(c);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_alone() {
        let n = controller_node(&[]);
        assert_eq!(n.name, "crypto@9100000");
        assert_eq!(
            n.prop("compatible").unwrap(),
            b"fsl,sec-v5.4\0fsl,sec-v5.0\0fsl,sec-v4.0\0"
        );
        assert_eq!(n.prop("fsl,sec-era").unwrap(), cells_prop(&[8]));
        assert!(n.prop("ranges").is_none() && n.children.is_empty());
    }

    #[test]
    fn rings_become_children_through_ranges() {
        let jr = |offset, gpa| JobRing {
            node: GuestNode {
                name: "jr@40000000".into(),
                props: vec![
                    (
                        "compatible".into(),
                        strings_prop(&["fsl,sec-v5.4-job-ring", "fsl,sec-v4.0-job-ring"]),
                    ),
                    ("interrupts".into(), cells_prop(&[0, 16, 4])),
                ],
                children: vec![],
            },
            offset,
            gpa,
            size: 0x10000,
        };
        let n = controller_node(&[jr(0x10000, 0x4000_0000), jr(0x20000, 0x4001_0000)]);
        assert_eq!(
            n.prop("ranges").unwrap(),
            cells_prop(&[
                0x10000,
                0,
                0x4000_0000,
                0x10000,
                0x20000,
                0,
                0x4001_0000,
                0x10000
            ])
        );
        assert_eq!(n.children[1].name, "jr@20000");
        assert_eq!(
            n.children[1].prop("reg").unwrap(),
            cells_prop(&[0x20000, 0x10000])
        );
        assert_eq!(
            n.children[0].prop("interrupts").unwrap(),
            cells_prop(&[0, 16, 4])
        );
    }
}
