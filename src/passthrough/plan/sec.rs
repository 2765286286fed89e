//! NXP SEC (CAAM): the synthesized controller node and its emulated register page.
//!
//! A guest's caam driver binds job rings only under a controller node it has probed. platvmm
//! writes that controller node itself, backed by [`devices::caam::CaamController`] (trapped),
//! and puts passed-through job rings under it as children, each reached through a `ranges`
//! entry. With `--sec-controller` and no job rings the controller probes alone (its queue
//! interface is advertised), which is what the emulated board can show: no emulator models
//! CAAM, so job rings themselves are only exercised on real hardware (ci/hw-test.sh).

use devices::caam::CAAM_WINDOW;
use devices::dt::{cells_prop, strings_prop, GuestNode};

use crate::arch::aarch64::layout;

// The controller page is allocated in the emulated-device area (1 MiB aligned: 0x0910_0000).
const _: () = assert!(CAAM_WINDOW <= layout::EMULATED_MMIO_END - layout::EMULATED_MMIO_BASE);

/// Compatible of the emulated controller (what the register page models).
pub const SEC_COMPATIBLE: [&str; 3] = ["fsl,sec-v5.4", "fsl,sec-v5.0", "fsl,sec-v4.0"];
/// SEC era the page models.
pub const SEC_ERA: u32 = 8;

/// Size of the guest SEC block job rings are placed in (as on the host: rings at 0x10000,
/// 0x20000... of a 1 MiB block), mapped by the controller's single `ranges` entry.
pub const SEC_BLOCK_SIZE: u64 = 0x10_0000;

/// A passed-through job ring as a child of the controller.
#[derive(Debug, Clone)]
pub struct JobRing {
    /// The ring's node as the handler generated it (its `reg` is rewritten here).
    pub node: GuestNode,
    /// Offset of the ring in the SEC block (its host `reg`), also its child address.
    pub offset: u32,
    /// Size of the ring's page.
    pub size: u64,
}

/// A job ring's offset in its SEC block: the first cell of its host `reg` (the host
/// controller gives its children one address cell).
pub fn ring_offset(host: Option<&devices::guest_node::hostdt::HostNode>) -> Option<u32> {
    host.and_then(|h| h.prop("reg"))
        .filter(|r| r.len() >= 4)
        .map(|r| u32::from_be_bytes(r[..4].try_into().expect("4 bytes")))
        .filter(|&o| u64::from(o) < SEC_BLOCK_SIZE)
}

/// The controller node (its page at `ctrl`) with `rings` as children, in the guest SEC block
/// at `block`.
pub fn controller_node(ctrl: u64, rings: &[JobRing], block: Option<u64>) -> GuestNode {
    let mut n = GuestNode {
        name: format!("crypto@{ctrl:x}"),
        ..Default::default()
    };
    n.set("compatible", strings_prop(&SEC_COMPATIBLE));
    n.set("fsl,sec-era", cells_prop(&[SEC_ERA]));
    n.set(
        "reg",
        [ctrl, CAAM_WINDOW]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect(),
    );
    n.set("dma-coherent", Vec::new());
    let Some(block) = block.filter(|_| !rings.is_empty()) else {
        return n;
    };
    n.set("#address-cells", cells_prop(&[1]));
    n.set("#size-cells", cells_prop(&[1]));
    // Child address 0 is the start of the guest SEC block, as on the host.
    n.set(
        "ranges",
        cells_prop(&[0, (block >> 32) as u32, block as u32, SEC_BLOCK_SIZE as u32]),
    );
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
        let n = controller_node(0x0910_0000, &[], None);
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
        let jr = |offset| JobRing {
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
            size: 0x10000,
        };
        let n = controller_node(0x0910_0000, &[jr(0x10000), jr(0x20000)], Some(0x4010_0000));
        assert_eq!(
            n.prop("ranges").unwrap(),
            cells_prop(&[0, 0, 0x4010_0000, 0x10_0000]),
            "one ranges entry: the binding allows no more"
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
