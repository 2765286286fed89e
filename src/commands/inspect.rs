//! `platvmm inspect PATH`: what platvmm sees of a host device and the guest node it would
//! generate, printed as DTS, without starting a VM.

use std::fmt::Write as _;

use devices::dt::GuestNode;
use devices::dt::{is_string_list, string_list};
use devices::guest_node::hostdt::HostNode;
use devices::vfio::device::VfioDevice;

use crate::arch::aarch64::layout;
use crate::config::{ScmiMode, VfioSpec};
use crate::passthrough::plan::{Access, DevicePlan, PlanError, Planner, Trigger};
use crate::passthrough::{self, open, Passthrough, PassthroughError, ProbedDevice};
use crate::resources::{page_size, Resources};

/// Renders a property value the way dtc would print it.
pub fn dts_value(v: &[u8]) -> String {
    if v.is_empty() {
        String::new()
    } else if is_string_list(v) {
        let s: Vec<String> = string_list(v).iter().map(|x| format!("\"{x}\"")).collect();
        format!(" = {}", s.join(", "))
    } else if v.len() % 4 == 0 {
        let cells: Vec<String> = v
            .chunks(4)
            .map(|c| format!("{:#x}", u32::from_be_bytes(c.try_into().expect("4 bytes"))))
            .collect();
        format!(" = <{}>", cells.join(" "))
    } else {
        let bytes: Vec<String> = v.iter().map(|b| format!("{b:02x}")).collect();
        format!(" = [{}]", bytes.join(" "))
    }
}

/// A node as DTS text.
pub fn to_dts(
    name: &str,
    props: &[(String, Vec<u8>)],
    children: &[GuestNode],
    indent: usize,
) -> String {
    let pad = "\t".repeat(indent);
    let mut out = format!("{pad}{name} {{\n");
    for (n, v) in props {
        let _ = writeln!(out, "{pad}\t{n}{};", dts_value(v));
    }
    for c in children {
        out += &to_dts(&c.name, &c.props, &c.children, indent + 1);
    }
    let _ = writeln!(out, "{pad}}};");
    out
}

fn host_to_guest(h: &HostNode) -> GuestNode {
    GuestNode {
        name: h.name.clone(),
        props: h.props.clone(),
        children: h.children.iter().map(host_to_guest).collect(),
    }
}

/// Prints the report for `path`: the device is opened through VFIO (no KVM) and planned as
/// the only passed-through device of a VM, with the same planner `setup` uses.
pub fn run(spec: VfioSpec, scmi: ScmiMode) -> Result<(), PassthroughError> {
    let sysfs = crate::passthrough::sysfs_root();
    let probed = passthrough::probe(&sysfs, std::slice::from_ref(&spec))?;
    let host = &probed[0].host;
    println!(
        "device {} ({} bus, IOMMU group {})",
        host.name,
        host.bus.name(),
        host.group
    );
    let mut pt = Passthrough::default();
    open::open_devices(&mut pt, &sysfs, probed, &[])?;
    let container = pt.container.as_ref().expect("one device, one container");
    println!("VFIO group mode: {:?}", container.mode);
    let d = &pt.devices[0];
    println!("VFIO device kind: {:?}", d.dev.kind());
    let page = page_size();
    let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
    let mut planner = Planner::new(&mut res, page).map_err(|source| PlanError::Exhausted {
        dev: d.dev.name().to_string(),
        source,
    })?;
    // The device and, with group=on, its members: planned together as `setup` would.
    let descs: Vec<_> = pt.devices.iter().map(|x| x.desc(page)).collect();
    planner.peers(&descs);
    if let Some(why) = planner.scmi(scmi, &descs)? {
        println!("SCMI system controller: on ({why})");
    }
    for (x, desc) in pt.devices.iter().zip(&descs) {
        planner.add(desc, &x.probed.options())?;
    }
    let vm = planner.finish(false)?;
    let plan = vm.devices[0].clone();
    for m in vm.devices.iter().skip(1) {
        println!(
            "group member: {} ({} handler) → {}",
            m.name,
            m.handler,
            vm.node_path(m)
        );
    }
    print_regions(d.dev.as_ref(), &plan);
    print_irqs(d.dev.as_ref(), &plan);
    print_host_node(&d.probed);
    println!("handler: {} ({})", plan.handler, plan.why);
    println!(
        "DMA stop when the VM ends: {}",
        crate::passthrough::quiesce::describe(plan.dma_stop)
    );
    println!("guest node (as the only passed-through device, with its group members):");
    print!(
        "{}",
        to_dts(&plan.node.name, &plan.node.props, &plan.node.children, 1)
    );
    for s in &plan.synthesized {
        println!("synthesized: {s}");
    }
    for w in &plan.warnings {
        println!("note: {w}");
    }
    Ok(())
}

fn print_regions(dev: &dyn VfioDevice, plan: &DevicePlan) {
    println!("regions:");
    for r in dev.regions() {
        let how = match plan.placements.iter().find(|p| p.index == r.index) {
            Some(p) if p.access == Access::Mapped => {
                format!("mapped into the guest at {:#x}", p.gpa)
            }
            Some(p) => format!("trapped (pread/pwrite) at guest {:#x}", p.gpa),
            None => "empty: not placed".into(),
        };
        println!(
            "  {}: size {:#x} fd offset {:#x} flags {} → {how}",
            r.index,
            r.size,
            r.offset,
            r.flag_names()
        );
    }
}

fn print_irqs(dev: &dyn VfioDevice, plan: &DevicePlan) {
    println!("interrupts:");
    for i in dev.irqs() {
        let how = match plan.irqs.iter().find(|r| r.index == i.index) {
            Some(r) if r.shares.is_some() => format!(
                "SPI {}, the host line of IRQ {} again: shared, wired once",
                r.spi,
                r.shares.unwrap_or_default()
            ),
            Some(r) if r.trigger == Trigger::Level => {
                format!("SPI {}, level: irqfd + resamplefd → VFIO unmask", r.spi)
            }
            Some(r) => format!("SPI {}, edge: irqfd", r.spi),
            None => "no lines: not routed".into(),
        };
        println!(
            "  {}: count {} flags {} → {how}",
            i.index,
            i.count,
            i.flag_names()
        );
    }
}

fn print_host_node(p: &ProbedDevice) {
    match (&p.host_node, &p.host.of_node) {
        (Some(h), Some(path)) => {
            println!("host DT node ({}):", path.display());
            let g = host_to_guest(h);
            print!("{}", to_dts(&g.name, &g.props, &g.children, 1));
        }
        _ => println!("host DT node: none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dts_rendering() {
        assert_eq!(dts_value(b""), "");
        assert_eq!(
            dts_value(b"arm,pl031\0arm,primecell\0"),
            " = \"arm,pl031\", \"arm,primecell\""
        );
        assert_eq!(dts_value(&[0, 0, 0, 0, 0, 0, 0, 0x10]), " = <0x0 0x10>");
        assert_eq!(dts_value(&[1, 2]), " = [01 02]");
        let n = to_dts("x@1", &[("reg".into(), vec![0, 0, 0, 1])], &[], 0);
        assert_eq!(n, "x@1 {\n\treg = <0x1>;\n};\n");
    }
}
