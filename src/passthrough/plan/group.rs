//! Device groups (`group=on`): a device passed with its children that are host platform
//! devices of their own (a USB glue and its core, a bus and its devices), each opened through
//! VFIO and planned as any device, then nested back into the parent's guest node.
//!
//! A member keeps its host `reg` (an address in the parent's child address space) and its
//! node name's unit address; the parent's `ranges` gains one entry per member region, from
//! that child address to the guest address the region was placed at. A member region that
//! would overlap a range the parent already has (its own registers cover the child's) is
//! refused: pass the parent alone, its region holds the child's registers.
//!
//! A member without registers (an MFD cell such as the i.MX SNVS's RTC, whose registers are
//! the parent's, reached through a `regmap` phandle) brings its interrupts and clocks only: it
//! adds nothing to `ranges`, and its guest node is the parent's copy of the host child (which
//! keeps the references inside the parent, renumbered) with the properties only the member's
//! own plan has (`interrupts`, clocks) added.

use devices::dt::{one_cell, GuestNode};
use devices::guest_node::hostdt::HostNode;
use devices::guest_node::ranges::{self, BusCells};

use super::{DevicePlan, PlanError};

/// What makes a planned device a member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group's parent device.
    pub parent: String,
    /// The member's host node name (`dwc3@fe200000`), which its guest node keeps.
    pub host_name: String,
    /// Its host `reg` entries, in the parent's child address space.
    pub host_reg: Vec<(u64, u64)>,
}

impl Membership {
    /// The membership of a device whose host node `host` sits under group parent `parent`,
    /// on a bus of `cells` (the parent's own).
    pub fn new(parent: &str, host: &HostNode, cells: Option<BusCells>) -> Self {
        Self {
            parent: parent.to_string(),
            host_name: host.name.clone(),
            host_reg: cells
                .and_then(|c| ranges::host_regs(host, c))
                .unwrap_or_default(),
        }
    }
}

fn cells_of(n: &GuestNode, name: &str, default: u32) -> u32 {
    n.prop(name).and_then(one_cell).unwrap_or(default)
}

fn put(out: &mut Vec<u8>, v: u64, cells: u32) -> bool {
    match cells {
        1 => match u32::try_from(v) {
            Ok(x) => out.extend(x.to_be_bytes()),
            Err(_) => return false,
        },
        2 => out.extend(v.to_be_bytes()),
        _ => return false,
    }
    true
}

fn read(v: &[u8], cells: u32) -> u64 {
    v.chunks_exact(4).take(cells as usize).fold(0, |a, c| {
        (a << 32) | u64::from(u32::from_be_bytes(c.try_into().expect("4")))
    })
}

/// The child-side intervals of a `ranges` value of (`ca`, 2, `cs`)-cell entries (`ca` and
/// `cs` of 1 or 2: what [`member_node`] accepts).
fn child_intervals(v: &[u8], ca: u32, cs: u32) -> Vec<(u64, u64)> {
    let (ca, cs) = (ca.clamp(1, 2), cs.clamp(1, 2));
    let step = 4 * (ca + 2 + cs) as usize;
    v.chunks_exact(step)
        .map(|e| {
            let a = read(e, ca);
            let s = read(&e[4 * (ca + 2) as usize..], cs);
            (a, a.saturating_add(s))
        })
        .collect()
}

/// Nests every member into its parent's node; the members' own nodes are then not root
/// nodes ([`DevicePlan::nested_in`]). Returns a note per member.
pub(super) fn assemble(devices: &mut [DevicePlan]) -> Result<Vec<String>, PlanError> {
    let mut notes = Vec::new();
    for i in 0..devices.len() {
        let Some(m) = devices[i].member.clone() else {
            continue;
        };
        let p = devices
            .iter()
            .position(|d| d.name == m.parent)
            .ok_or_else(|| PlanError::GroupNoParent {
                dev: devices[i].name.clone(),
                parent: m.parent.clone(),
            })?;
        let member = devices[i].clone();
        let (node, entries) = member_node(&member, &m, &devices[p].node)?;
        let name = node.name.clone();
        let how = if entries.is_empty() {
            "no registers of its own: its interrupts and clocks added to the parent's copy"
        } else {
            "its registers reached through ranges"
        };
        nest(&mut devices[p], node, &m, entries)?;
        devices[p].synthesized.push(format!(
            "group member {} nested as {}, {how}",
            member.name, m.host_name
        ));
        devices[i].nested_in = Some(name);
        notes.push(member.name);
    }
    Ok(notes)
}

/// The member's guest node (host `reg`, host unit address) and its parent's new `ranges`
/// entries.
fn member_node(
    d: &DevicePlan,
    m: &Membership,
    parent: &GuestNode,
) -> Result<(GuestNode, Vec<u8>), PlanError> {
    let (ca, cs) = (
        cells_of(parent, "#address-cells", 2),
        cells_of(parent, "#size-cells", 1),
    );
    let host: Vec<_> = m.host_reg.iter().filter(|r| r.1 > 0).collect();
    let bad = || PlanError::GroupReg {
        dev: d.name.clone(),
        parent: m.parent.clone(),
    };
    if host.len() != d.placements.len() {
        return Err(bad());
    }
    let (mut reg, mut entries) = (Vec::new(), Vec::new());
    for (h, pl) in host.iter().zip(&d.placements) {
        let ok = put(&mut reg, h.0, ca)
            && put(&mut reg, h.1, cs)
            && put(&mut entries, h.0, ca)
            && put(&mut entries, pl.gpa, 2)
            && put(&mut entries, pl.size, cs);
        if !ok {
            return Err(bad());
        }
    }
    let mut node = d.node.clone();
    let base = node.name.split('@').next().unwrap_or("").to_string();
    let unit = m.host_name.split_once('@').map(|(_, u)| u).unwrap_or("");
    node.name = if unit.is_empty() {
        base
    } else {
        format!("{base}@{unit}")
    };
    if reg.is_empty() {
        node.remove("reg");
    } else {
        node.set("reg", reg);
    }
    Ok((node, entries))
}

/// A register-less member's guest node: the parent's copy of the host child, with what only
/// the member's own plan has (its `interrupts`, its clocks) added.
fn merge_regionless(copy: &GuestNode, member: &GuestNode) -> GuestNode {
    let mut merged = copy.clone();
    for (name, value) in &member.props {
        if merged.prop(name).is_none() {
            merged.set(name, value.clone());
        }
    }
    merged
}

/// Puts `node` in place of the parent's copy of the host child (or adds it) and extends the
/// parent's `ranges` with `entries`.
fn nest(
    parent: &mut DevicePlan,
    node: GuestNode,
    m: &Membership,
    entries: Vec<u8>,
) -> Result<(), PlanError> {
    let (ca, cs) = (
        cells_of(&parent.node, "#address-cells", 2),
        cells_of(&parent.node, "#size-cells", 1),
    );
    let regionless = entries.is_empty();
    if !regionless {
        let mut ranges = parent.node.prop("ranges").unwrap_or_default().to_vec();
        let old = child_intervals(&ranges, ca, cs);
        let overlap = child_intervals(&entries, ca, cs)
            .iter()
            .any(|n| old.iter().any(|o| n.0 < o.1 && o.0 < n.1));
        if overlap {
            return Err(PlanError::GroupOverlap {
                dev: m.host_name.clone(),
                parent: m.parent.clone(),
            });
        }
        ranges.extend(entries);
        parent.node.set("ranges", ranges);
    }
    let child = format!("/{}: ", m.host_name);
    parent.warnings.retain(|w| !w.contains(&child));
    match parent
        .node
        .children
        .iter_mut()
        .find(|c| c.name == m.host_name)
    {
        Some(c) if regionless => *c = merge_regionless(c, &node),
        Some(c) => *c = node,
        None => parent.node.children.push(node),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regionless_member_keeps_the_parents_copy_and_adds_its_interrupts() {
        // The parent's copy kept the regmap phandle (renumbered inside the parent) but
        // dropped the interrupts (not the parent's VFIO lines); the member's plan has them.
        let copy = GuestNode::with_props(
            "snvs-rtc-lp",
            &[
                ("compatible", b"fsl,sec-v4.0-mon-rtc-lp\0"),
                ("regmap", &[0, 0, 0, 5]),
            ],
        );
        let member = GuestNode::with_props(
            "snvs-rtc-lp",
            &[
                ("compatible", b"other\0"),
                ("interrupts", &[0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 4]),
                ("clocks", &[0, 0, 0, 9]),
            ],
        );
        let m = merge_regionless(&copy, &member);
        assert_eq!(m.prop("regmap"), Some(&[0u8, 0, 0, 5][..]));
        assert_eq!(
            m.prop("compatible"),
            Some(&b"fsl,sec-v4.0-mon-rtc-lp\0"[..])
        );
        assert_eq!(m.prop("interrupts").map(<[u8]>::len), Some(12));
        assert_eq!(m.prop("clocks"), Some(&[0u8, 0, 0, 9][..]));
    }

    #[test]
    fn child_intervals_read_one_and_two_cell_entries() {
        let mut v = Vec::new();
        assert!(put(&mut v, 0x100, 1) && put(&mut v, 0x4000_0000, 2) && put(&mut v, 0x10, 1));
        assert_eq!(child_intervals(&v, 1, 1), vec![(0x100, 0x110)]);
        let mut w = Vec::new();
        assert!(put(&mut w, 0x1_0000_0000, 2) && put(&mut w, 0, 2) && put(&mut w, 0x20, 2));
        assert_eq!(
            child_intervals(&w, 2, 2),
            vec![(0x1_0000_0000, 0x1_0000_0020)]
        );
        assert!(
            !put(&mut w, 0x1_0000_0000, 1),
            "a 64-bit value does not fit one cell"
        );
    }
}
