//! A host device-tree node → its guest node, through every type handler.
//!
//! Input: [`CTL`] control bytes, then a host DTB. The DTB is read the way `preview-dt` reads
//! one (`preview::host_tree`, `preview::desc`: host node, region sizes from `reg`, IRQs from
//! `interrupts-extended` or `interrupts` under the interrupt parent found by walking from the
//! root, of any `#interrupt-cells`, cyclic or absent parents included; clocks resolved through
//! the tree's phandles, resets and power domains given to the SCMI controller as preview-dt's
//! `--scmi auto` does); the control bytes pick the node
//! and the user's options (clock-rates=, mac=, fixed-link=, compatible=, the SEC controller)
//! and vary the regions and interrupts. Then:
//! - the planner (as preview-dt and the VMM plan a device) with the handler the host
//!   compatible selects and with each handler forced (`handler=`), then the guest DTB written
//!   and read back: the device's node must be where the plan says;
//! - each handler's `generate` called directly with parameters the planner never makes
//!   (region and IRQ lists of any length, a `clocks` list of any length), then the subtree's
//!   phandles renumbered.
//!
//! Nothing may panic.

#![no_main]

use std::collections::HashMap;

use devices::guest_node::clocks::ClockRate;
use devices::guest_node::handlers::{self, HANDLERS};
use devices::guest_node::hostdt::HostNode;
use devices::guest_node::{self as node, FixedLink, GuestIrq, NodeParams};
use devices::vfio::device::DeviceKind;
use libfuzzer_sys::fuzz_target;
use platvmm::arch::aarch64::layout;
use platvmm::commands::preview::{self, PREVIEW_PAGE};
use platvmm::config::ScmiMode;
use platvmm::passthrough::plan::{DeviceDesc, DeviceOptions, Planner};
use platvmm::resources::Resources;

/// Control bytes before the DTB.
const CTL: usize = 16;
/// Nodes considered per tree (depth-first); the selector byte picks one.
const MAX_NODES: usize = 256;

/// The control bytes, decoded.
struct Ctl([u8; CTL]);

impl Ctl {
    fn bit(&self, n: usize) -> bool {
        self.0[1 + n / 8] & (1 << (n % 8)) != 0
    }
    fn mac(&self) -> Option<[u8; 6]> {
        self.bit(0).then(|| self.0[3..9].try_into().unwrap())
    }
    fn fixed_link(&self) -> Option<FixedLink> {
        self.bit(1).then(|| FixedLink {
            speed: u32::from(u16::from_le_bytes([self.0[9], self.0[10]])),
            full_duplex: self.bit(2),
        })
    }
}

/// Every node's path, depth-first (the fdt crate gives none: built from the names).
fn node_paths(tree: &fdt::Fdt) -> Vec<String> {
    fn walk(n: fdt::node::FdtNode, path: String, out: &mut Vec<String>, depth: usize) {
        if out.len() >= MAX_NODES || depth > 16 {
            return;
        }
        out.push(if path.is_empty() {
            "/".into()
        } else {
            path.clone()
        });
        for c in n.children() {
            walk(c, format!("{path}/{}", c.name), out, depth + 1);
        }
    }
    let mut out = Vec::new();
    if let Some(root) = tree.find_node("/") {
        walk(root, String::new(), &mut out, 0);
    }
    out
}

/// clock-rates= for the node's clocks (by clock-names entry, else index), rates from `ctl`.
fn clock_rates(host: Option<&HostNode>, ctl: &Ctl) -> Vec<ClockRate> {
    if !ctl.bit(3) {
        return Vec::new();
    }
    let names = host
        .and_then(|h| h.strings("clock-names"))
        .unwrap_or_default();
    let n = names.len().max(usize::from(ctl.0[11] % 8));
    (0..n)
        .map(|i| ClockRate {
            name: names.get(i).cloned().unwrap_or_else(|| i.to_string()),
            hz: (u32::from(ctl.0[12]) + 1) * 1_000_000 + i as u32,
        })
        .collect()
}

/// Region sizes varied by `ctl`: some of them made sub-page (trapped) or empty.
fn vary_regions(d: &mut DeviceDesc, ctl: &Ctl) {
    if !ctl.bit(4) {
        return;
    }
    for (i, r) in d.regions.iter_mut().enumerate() {
        let b = ctl.0[13].rotate_left(i as u32);
        r.size = match b % 4 {
            0 => r.size,
            1 => u64::from(b) & 0xfc,
            2 => 0,
            _ => r.size.saturating_mul(u64::from(b)),
        };
        r.mappable = r.size % PREVIEW_PAGE == 0;
    }
}

fn plan_and_write(
    d: &DeviceDesc,
    members: &[DeviceDesc],
    o: &DeviceOptions,
    sec_controller: bool,
) {
    let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
    let mut planner = Planner::new(&mut res, PREVIEW_PAGE).expect("a fresh VM has phandles");
    planner.peers(std::iter::once(d).chain(members));
    // As preview-dt does by default: the SCMI controller when the node has resets or power
    // domains (their identifiers, its nodes in the guest DTB).
    let all: Vec<DeviceDesc> = std::iter::once(d).chain(members).cloned().collect();
    if planner.scmi(ScmiMode::Auto, &all).is_err() {
        return;
    }
    if planner.add(d, o).is_err() {
        return;
    }
    for m in members {
        if planner.add(m, &DeviceOptions::default()).is_err() {
            return;
        }
    }
    let Ok(plan) = planner.finish(sec_controller) else {
        return;
    };
    // Regions inside the passthrough windows (low, or high above RAM), none overlapping; a
    // job ring's page inside the SEC block.
    let dp = &plan.devices[0];
    let low = layout::PASSTHROUGH_MMIO_BASE
        ..layout::PASSTHROUGH_MMIO_BASE + layout::PASSTHROUGH_MMIO_SIZE;
    let high = layout::HIGH_MMIO_BASE..layout::HIGH_MMIO_END;
    let all: Vec<_> = plan.devices.iter().flat_map(|d| &d.placements).collect();
    for (i, a) in all.iter().enumerate() {
        let end = a.gpa + a.size;
        assert!(
            (low.contains(&a.gpa) && end <= low.end) || (high.contains(&a.gpa) && end <= high.end),
            "{a:?} outside the windows"
        );
        for b in &all[i + 1..] {
            assert!(
                a.gpa + a.size <= b.gpa || b.gpa + b.size <= a.gpa,
                "{a:?} overlaps {b:?}"
            );
        }
    }
    if let (Some(_), Some(block), Some(first)) =
        (dp.sec_offset, plan.sec_block, dp.placements.first())
    {
        assert!(
            first.gpa >= block
                && first.gpa + first.size
                    <= block + platvmm::passthrough::plan::sec::SEC_BLOCK_SIZE,
            "{first:?} outside the SEC block at {block:#x}"
        );
    }
    let Ok(dtb) = preview::guest_dtb(&plan, &[]) else {
        return;
    };
    // What platvmm writes, its own reader must read, with the device where the plan says.
    let tree = preview::host_tree(&dtb).expect("the guest DTB platvmm wrote reads back");
    for dp in &plan.devices {
        let at = plan.node_path(dp);
        assert!(
            tree.find_node(&at).is_some(),
            "{at} missing from the guest DTB"
        );
    }
}

/// Each handler on its own, with parameters of any shape.
fn each_handler(host: &HostNode, ctl: &Ctl, compatible: Option<&[String]>) {
    let n = usize::from(ctl.0[14] % 5);
    let regs: Vec<(u64, u64)> = (0..n)
        .map(|i| {
            let x = u64::from(ctl.0[15].wrapping_add(i as u8));
            (0x4000_0000 + (x << 16), x << (x % 24))
        })
        .collect();
    let irqs: Vec<GuestIrq> = (0..usize::from(ctl.0[14] / 5 % 5))
        .map(|i| GuestIrq {
            spi: 16 + i as u32,
            level: ctl.0[15] & (1 << i) != 0,
        })
        .collect();
    let clocks: Vec<u32> = (0..u32::from(ctl.0[11] % 6)).map(|i| 10 + i).collect();
    for kind in [DeviceKind::Platform, DeviceKind::Amba] {
        let p = NodeParams {
            dev_name: "fuzz",
            kind,
            regs: &regs,
            irqs: &irqs,
            compatible,
            amba_clock: 2,
            clocks: ctl.bit(5).then_some(clocks.as_slice()),
            mac: ctl.mac(),
            fixed_link: ctl.fixed_link(),
            host_bus: ctl.bit(8).then_some(node::ranges::BusCells {
                address: u32::from(ctl.0[12] % 4),
                size: u32::from(ctl.0[13] % 4),
            }),
            links: &node::NoLinks,
            stand_ins: &[],
        };
        for h in HANDLERS {
            let mut g = h.generate(Some(host), &p);
            let map: HashMap<u32, u32> = g.referenced.iter().copied().zip(0x20..).collect();
            node::settle_phandles(&mut g.node, &map);
        }
    }
    let _ = handlers::select(Some(host));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < CTL {
        return;
    }
    let ctl = Ctl(data[..CTL].try_into().unwrap());
    let Ok(tree) = preview::host_tree(&data[CTL..]) else {
        return;
    };
    let paths = node_paths(&tree);
    if paths.is_empty() {
        return;
    }
    let path = &paths[usize::from(ctl.0[0]) % paths.len()];
    let Ok(mut d) = preview::desc(&tree, path) else {
        return;
    };
    vary_regions(&mut d, &ctl);
    // group=on: the node's memory-mapped child devices nested back into it.
    let mut spec = platvmm::config::VfioSpec::new(path.into());
    spec.group = true;
    let members = if ctl.bit(9) {
        preview::group_members(&tree, std::slice::from_ref(&spec), std::slice::from_ref(&d))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let rates = clock_rates(d.host_node.as_ref(), &ctl);
    let compat = vec!["generic-ahci".to_string(), "vendor,fuzz".to_string()];
    let compatible = ctl.bit(6).then_some(compat.as_slice());
    for handler in std::iter::once(None).chain(handlers::names().into_iter().map(Some)) {
        let o = DeviceOptions {
            compatible,
            handler,
            overlay: None,
            clock_rates: &rates,
            mac: ctl.mac(),
            fixed_link: ctl.fixed_link(),
        };
        plan_and_write(&d, &members, &o, ctl.bit(7));
    }
    if let Some(h) = &d.host_node {
        each_handler(h, &ctl, compatible);
    }
});
