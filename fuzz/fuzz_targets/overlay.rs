//! Overlay DTBs: `platvmm::host::overlay::parse` on any bytes, then the fragment used both ways the
//! VMM uses one:
//! - `--vfio-platform ...,overlay=F.dtb`: merged into a device's guest node by the planner
//!   (after generation and phandle renumbering), for a ZynqMP GEM with its PHY subtree, a
//!   CEVA AHCI and a PL011; the merged node must carry every overlay property, the overlay's
//!   value winning;
//! - `--dt-overlay F.dtb`: its root's children added at the root of the guest tree;
//!
//! then the guest DTB written. Nothing may panic.

#![no_main]

use devices::dt::GuestNode;
use devices::guest_node::hostdt::HostNode;
use devices::guest_node::irqspec;
use libfuzzer_sys::fuzz_target;
use platvmm::arch::aarch64::layout;
use platvmm::commands::preview::{self, PREVIEW_PAGE};
use platvmm::passthrough::plan::{DeviceDesc, DeviceOptions, Planner};
use platvmm::resources::Resources;

fn host(name: &str, props: &[(&str, &[u8])], children: Vec<HostNode>) -> HostNode {
    HostNode {
        name: name.into(),
        props: props
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
        children,
    }
}

/// zynqmp.dtsi's gem3 with the ZCU102's PHY under its mdio node; zynqmp.dtsi's SATA; a
/// PL011 as QEMU's virt board has it.
fn devices() -> Vec<DeviceDesc> {
    let phy = host(
        "ethernet-phy@c",
        &[("reg", &[0, 0, 0, 0xc]), ("phandle", &[0, 0, 0, 0x2a])],
        vec![],
    );
    let mdio = host(
        "mdio",
        &[("#address-cells", &[0, 0, 0, 1]), ("#size-cells", &[0; 4])],
        vec![phy],
    );
    let gem = host(
        "ethernet@ff0e0000",
        &[
            ("compatible", b"xlnx,zynqmp-gem\0cdns,gem\0"),
            ("interrupts", &[0, 0, 0, 0, 0, 0, 0, 63, 0, 0, 0, 4]),
            ("phy-mode", b"rgmii-id\0"),
            ("phy-handle", &[0, 0, 0, 0x2a]),
            ("clock-names", b"pclk\0hclk\0"),
        ],
        vec![mdio],
    );
    let sata = host(
        "ahci@fd0c0000",
        &[
            ("compatible", b"ceva,ahci-1v84\0"),
            ("interrupts", &[0, 0, 0, 0, 0, 0, 0, 133, 0, 0, 0, 4]),
            ("ceva,p0-cominit-params", &[0x18, 0x40, 0x18, 0x28]),
        ],
        vec![],
    );
    let uart = host(
        "pl011@9000000",
        &[
            ("compatible", b"arm,pl011\0arm,primecell\0"),
            ("interrupts", &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4]),
        ],
        vec![],
    );
    // No tree: `interrupts` read as 3-cell GIC specifiers.
    let desc = |name: &str, h: HostNode, size: u64| {
        let irqs = irqspec::alone(&h);
        DeviceDesc::from_dt(name, h, irqs, &[size], PREVIEW_PAGE)
    };
    vec![
        desc("ff0e0000.ethernet", gem, 0x1000),
        desc("fd0c0000.ahci", sata, 0x2000),
        desc("9000000.pl011", uart, 0x1000),
    ]
}

/// The last value the overlay gives `name` (a fragment may repeat a property: the last wins).
fn last<'a>(ov: &'a GuestNode, name: &str) -> Option<&'a [u8]> {
    ov.props
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fuzz_target!(|data: &[u8]| {
    let Ok(ov) = platvmm::host::overlay::parse(data) else {
        return;
    };
    let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
    let mut planner = Planner::new(&mut res, PREVIEW_PAGE).expect("a fresh VM has phandles");
    for d in &devices() {
        let o = DeviceOptions {
            overlay: Some(&ov),
            ..Default::default()
        };
        if planner.add(d, &o).is_err() {
            return;
        }
    }
    let Ok(plan) = planner.finish(data.first().is_some_and(|b| b & 1 != 0)) else {
        return;
    };
    // Overlays are applied last, once the phandles are settled: they win.
    for p in &plan.devices {
        for (n, _) in &ov.props {
            assert_eq!(
                p.node.prop(n),
                last(&ov, n),
                "overlay property {n} not applied"
            );
        }
    }
    // Both uses at once: the merged device nodes and the fragment's nodes at the root.
    let _ = preview::guest_dtb(&plan, std::slice::from_ref(&ov));
});
