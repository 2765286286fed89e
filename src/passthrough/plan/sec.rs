//! NXP SEC (CAAM): the synthesized controller node and its emulated register page, and where
//! the planner puts passed-through job rings (`Rings`: one guest SEC block, each ring at its
//! host offset).
//!
//! A guest's caam driver binds job rings only under a controller node it has probed. platvmm
//! writes that controller node itself, backed by [`devices::caam::CaamController`] (trapped),
//! and puts passed-through job rings under it as children, each reached through a `ranges`
//! entry. With `--sec-controller` and no job rings the controller probes alone (its queue
//! interface is advertised), which is what the emulated board can show: no emulator models
//! CAAM, so job rings themselves are only exercised on real hardware (ci/hw-test.sh).

use devices::caam::CAAM_WINDOW;
use devices::dt::{cells_prop, strings_prop, GuestNode};
use devices::guest_node::handlers::TypeHandler;

use super::desc::DeviceDesc;
use crate::arch::aarch64::layout;
use crate::resources::{Exhausted, Resources};

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

/// Why a device the `sec` handler took cannot be one of the guest's job rings (the planner
/// names the device: `PlanError::Sec*`).
#[derive(Debug)]
pub(super) enum RingRefusal {
    /// Its offset in its SEC block is unknown.
    NoOffset,
    /// Every region is empty: it has no register page.
    NoRegion,
    /// Its register page would reach past the SEC block.
    OutsideBlock { offset: u32, size: u64 },
    /// It is a ring of another SEC block than the guest's other job rings.
    Mixed,
    /// No room left for the guest SEC block.
    Exhausted(Exhausted),
}

/// The guest's job rings as the planner places them: rings of one host SEC block, at their
/// offsets in one guest SEC block.
#[derive(Debug, Default)]
pub(super) struct Rings {
    /// The host parent (SEC block) of the rings placed so far, once there is one.
    parent: Option<Option<String>>,
}

impl Rings {
    /// Device `d`'s offset in the guest SEC block when handler `h` makes it a job ring
    /// (allocating the block, `block`, from `res` for the first ring); none for other devices.
    pub(super) fn place(
        &mut self,
        d: &DeviceDesc,
        h: &dyn TypeHandler,
        res: &mut Resources,
        block: &mut Option<u64>,
    ) -> Result<Option<u32>, RingRefusal> {
        if h.name() != "sec" {
            return Ok(None);
        }
        let off = ring_offset(d.host_node.as_ref()).ok_or(RingRefusal::NoOffset)?;
        // The ring's first region is its register page, at its offset in the guest SEC block
        // (and its node's `reg` under the controller).
        let page = d
            .regions
            .iter()
            .find(|r| r.size > 0)
            .ok_or(RingRefusal::NoRegion)?;
        if u64::from(off) + page.size > SEC_BLOCK_SIZE {
            return Err(RingRefusal::OutsideBlock {
                offset: off,
                size: page.size,
            });
        }
        match &self.parent {
            Some(p) if *p != d.host_parent => return Err(RingRefusal::Mixed),
            _ => self.parent = Some(d.host_parent.clone()),
        }
        if block.is_none() {
            let b = res
                .window(SEC_BLOCK_SIZE, SEC_BLOCK_SIZE)
                .map_err(RingRefusal::Exhausted)?;
            *block = Some(b);
        }
        Ok(Some(off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passthrough::plan::test_support::{dt_desc, host};
    use crate::passthrough::plan::{DeviceOptions, PlanError, Planner};

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

    fn ring(name: &str, off: u32) -> DeviceDesc {
        let h = host(
            name,
            &[
                (
                    "compatible",
                    b"fsl,sec-v5.4-job-ring\0fsl,sec-v4.0-job-ring\0".to_vec(),
                ),
                ("reg", cells_prop(&[off, 0x10000])),
                ("interrupts", cells_prop(&[0, 71, 4])),
            ],
        );
        let mut d = dt_desc(name, h, &[0x10000], 4096);
        d.host_parent = Some("/soc/crypto@1700000".into());
        d
    }

    #[test]
    fn job_rings_share_one_sec_block_and_a_controller() {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        p.add(&ring("jr@10000", 0x10000), &DeviceOptions::default())
            .unwrap();
        p.add(&ring("jr@20000", 0x20000), &DeviceOptions::default())
            .unwrap();
        let mut other = ring("jr@30000", 0x30000);
        other.host_parent = Some("/soc/crypto@1800000".into());
        let e = p.add(&other, &DeviceOptions::default()).unwrap_err();
        assert!(matches!(e, PlanError::SecMixed { .. }), "{e}");
        let plan = p.finish(false).unwrap();
        let block = plan.sec_block.unwrap();
        assert_eq!(plan.devices[1].placements[0].gpa, block + 0x20000);
        assert_eq!(plan.sec_controller, Some(0x0910_0000));
        let nodes = plan.device_nodes();
        assert_eq!(nodes.len(), 1, "rings go under the controller");
        assert_eq!(nodes[0].children.len(), 2);
        assert_eq!(plan.node_path(&plan.devices[0]), "/crypto@9100000/jr@10000");
        assert!(plan.fixed_clocks(&nodes).is_empty());
        assert_eq!(plan.guest_nodes(&[]), nodes);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/guest_node.rs): a ring whose regions are all
    /// empty was planned, reported at /crypto@.../jr@..., and left out of the guest tree.
    #[test]
    fn a_job_ring_without_a_register_page_is_refused() {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let mut d = ring("jr@10000", 0x10000);
        d.regions[0].size = 0;
        let e = p.add(&d, &DeviceOptions::default()).unwrap_err();
        assert!(matches!(e, PlanError::SecNoRegion { .. }), "{e}");
        assert!(e.to_string().contains("register page"), "{e}");
        let plan = p.finish(false).unwrap();
        assert!(plan.devices.is_empty() && plan.sec_block.is_none());
    }

    /// Found by fuzzing (fuzz/fuzz_targets/guest_node.rs: `handler=sec` forced on QEMU virt's
    /// GICv3 node, whose first reg cell is 0, with its first region emptied): its 0xf60000-byte
    /// redistributor region became the ring's page at offset 0 of the 1 MiB SEC block and ran
    /// past it, over whatever the window holds next.
    #[test]
    fn a_job_ring_that_does_not_fit_the_sec_block_is_refused() {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let mut d = ring("jr@0", 0);
        d.regions[0].size = 0xf6_0000;
        let e = p.add(&d, &DeviceOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                PlanError::SecRingOutsideBlock {
                    offset: 0,
                    size: 0xf6_0000,
                    ..
                }
            ),
            "{e}"
        );
        let mut d = ring("jr@f0000", 0xf_0000);
        d.regions[0].size = 0x2_0000;
        assert!(p.add(&d, &DeviceOptions::default()).is_err());
        // The last ring page of the block still fits.
        let d = ring("jr@f0000", 0xf_0000);
        assert_eq!(
            p.add(&d, &DeviceOptions::default()).unwrap().placements[0].size,
            0x1_0000
        );
    }
}
