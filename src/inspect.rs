//! `platvmm inspect PATH`: what platvmm sees of a host device and the guest node it would
//! generate, printed as DTS, without starting a VM.

use std::fmt::Write as _;
use std::path::Path;

use devices::vfio::container::{Container, Group};
use devices::vfio::device::VfioPlatformDevice;
use devices::vfio::handlers;
use devices::vfio::hostdt::{is_string_list, string_list, HostNode};
use devices::vfio::node::{GuestIrq, GuestNode, NodeParams};
use devices::vfio::sysfs::HostDevice;

use crate::arch::aarch64::layout;
use crate::passthrough::{page_size, PassthroughError, WindowAllocator, AMBA_CLOCK_PHANDLE};

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

/// Prints the report for `path`.
pub fn run(
    path: &Path,
    compatible: Option<Vec<String>>,
    handler: Option<&str>,
) -> Result<(), PassthroughError> {
    let sysfs = Path::new("/sys");
    let host = HostDevice::probe(sysfs, path)?;
    println!(
        "device {} ({} bus, IOMMU group {})",
        host.name,
        host.bus.name(),
        host.group
    );
    let group = Group::open(&host, sysfs)?;
    let mut container = Container::open(group.mode)?;
    println!("VFIO group mode: {:?}", group.mode);
    let gi = container.add_group(group, &host.name)?;
    let dev = VfioPlatformDevice::open(host, &container.groups()[gi])?;
    println!("VFIO device kind: {:?}", dev.kind);

    let page = page_size();
    let mut window =
        WindowAllocator::new(layout::PASSTHROUGH_MMIO_BASE, layout::PASSTHROUGH_MMIO_SIZE);
    let mut regs = Vec::new();
    println!("regions:");
    for r in &dev.regions {
        let how = if r.mappable(page) {
            "mapped into the guest"
        } else {
            "trapped (pread/pwrite)"
        };
        println!(
            "  {}: size {:#x} fd offset {:#x} flags {} → {how}",
            r.index,
            r.size,
            r.offset,
            r.flag_names()
        );
        if let Some(a) = window.alloc(r.size, page) {
            regs.push((a, r.size));
        }
    }
    let mut irqs = Vec::new();
    println!("interrupts:");
    for (n, i) in dev.irqs.iter().enumerate() {
        let kind = if i.level() {
            "level: irqfd + resamplefd → VFIO unmask"
        } else {
            "edge: irqfd"
        };
        println!(
            "  {}: count {} flags {} → {kind}",
            i.index,
            i.count,
            i.flag_names()
        );
        irqs.push(GuestIrq {
            spi: layout::PASSTHROUGH_SPI_BASE + n as u32,
            level: i.level(),
        });
    }
    let host_node = dev
        .host
        .of_node
        .as_deref()
        .and_then(|p| HostNode::read(p).ok());
    match &host_node {
        Some(h) => {
            println!(
                "host DT node ({}):",
                dev.host
                    .of_node
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            );
            let g = host_to_guest(h);
            print!("{}", to_dts(&g.name, &g.props, &g.children, 1));
        }
        None => println!("host DT node: none"),
    }
    let (h, why) = match handler.and_then(handlers::by_name) {
        Some(h) => (h, "chosen with --handler".to_string()),
        None => handlers::select(host_node.as_ref()),
    };
    let g = h.generate(
        host_node.as_ref(),
        &NodeParams {
            dev_name: &dev.host.name,
            kind: dev.kind,
            regs: &regs,
            irqs: &irqs,
            compatible: compatible.as_deref(),
            amba_clock: AMBA_CLOCK_PHANDLE,
        },
    );
    println!("handler: {} ({why})", h.name());
    println!("guest node (as the only passed-through device):");
    print!(
        "{}",
        to_dts(&g.node.name, &g.node.props, &g.node.children, 1)
    );
    for w in &g.warnings {
        println!("note: {w}");
    }
    Ok(())
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
