//! The guest device tree, written with vm-fdt.
//!
//! Nodes: root (`linux,dummy-virt`), `cpus` (one `cpu@N` per vCPU, reg = MPIDR affinity,
//! PSCI enable-method), `memory@80000000`, `chosen` (bootargs, initrd, stdout-path), the
//! GIC (`interrupt-controller@8000000`), the architected timer, `psci` (0.2, HVC) and the console UART.
//! Device nodes come as [`GuestNode`]s, written as they are: property names vm-fdt refuses
//! (longer than the DT specification's 31 characters, which dtc and Linux accept) go through
//! `longnames`.

mod longnames;

pub use longnames::LongNameError;

use devices::dt::{
    writable_prop_name, GuestNode, GIC_PPI, GIC_SPI, IRQ_TYPE_EDGE_RISING, IRQ_TYPE_LEVEL_HIGH,
    IRQ_TYPE_LEVEL_LOW,
};
use devices::guest_node::aliases::Alias;
use longnames::LongNames;
use vm_fdt::{FdtWriter, FdtWriterResult};

use super::layout::*;
use super::GicVersion;

/// phandle of the GIC: every interrupt specifier refers to it through the root's
/// `interrupt-parent`.
pub const GIC_PHANDLE: u32 = 1;

/// PPIs of the architected timer (secure phys, non-secure phys, virtual, hypervisor).
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// GICv3 maintenance interrupt PPI.
const GIC_MAINT_PPI: u32 = 9;
/// MPIDR bits that identify a CPU (Aff3 in 39:32, Aff2..Aff0 in 23:0).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Writes `n` and its children; a property name no DTB reader takes (empty, with a NUL or a
/// `/`) is skipped with a warning, every other name is written (see `longnames`).
fn write_guest_node(
    fdt: &mut FdtWriter,
    names: &mut LongNames,
    n: &GuestNode,
) -> Result<(), FdtError> {
    let node = fdt.begin_node(&n.name)?;
    for (name, value) in &n.props {
        if !writable_prop_name(name) {
            log::warn!(
                "{}: property {name:?} skipped: a property name is non-empty, without NUL or '/'",
                n.name
            );
            continue;
        }
        names.property(fdt, name, value)?;
    }
    for c in &n.children {
        write_guest_node(fdt, names, c)?;
    }
    Ok(fdt.end_node(node)?)
}

/// What the device tree describes.
pub struct FdtConfig<'a> {
    /// MPIDR_EL1 of each vCPU, in vCPU order.
    pub mpidrs: &'a [u64],
    pub gic: GicVersion,
    /// Guest RAM regions (base, size), sorted.
    pub memory: &'a [(u64, u64)],
    pub cmdline: &'a str,
    /// Initramfs start and size.
    pub initrd: Option<(u64, u64)>,
    /// The devices' nodes (fixed clocks, passed-through devices, virtio, overlays), in order.
    pub nodes: &'a [GuestNode],
    /// Aliases of passed devices' nodes, after the console's `serial0`.
    pub aliases: &'a [Alias],
}

/// Errors building the device tree.
#[derive(Debug, thiserror::Error)]
pub enum FdtError {
    /// vm-fdt refused something.
    #[error("cannot build the guest device tree: {0}")]
    Writer(#[from] vm_fdt::Error),
    /// A property name could not be written, or the blob not renamed (see `longnames`).
    #[error("cannot build the guest device tree: {0}")]
    Names(#[from] LongNameError),
    /// The result is larger than the 2 MiB the boot protocol allows.
    #[error("guest device tree is {0} bytes, over the 2 MiB limit")]
    TooBig(usize),
}

fn uart_node_name() -> String {
    format!("serial@{UART_BASE:x}")
}

/// Builds the DTB.
pub fn create_fdt(cfg: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    let mut names = LongNames::new(cfg.nodes);
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", "platvmm")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    write_chosen(&mut fdt, cfg)?;
    write_aliases(&mut fdt, cfg.aliases)?;
    write_cpus(&mut fdt, cfg.mpidrs)?;
    write_memory(&mut fdt, cfg.memory)?;
    write_gic(&mut fdt, cfg.gic, cfg.mpidrs.len() as u32)?;
    write_timer(&mut fdt, cfg.gic, cfg.mpidrs.len() as u32)?;
    write_psci(&mut fdt)?;
    write_uart(&mut fdt)?;
    for n in cfg.nodes {
        write_guest_node(&mut fdt, &mut names, n)?;
    }

    fdt.end_node(root)?;
    let blob = names.finish(fdt)?;
    if blob.len() as u64 > super::image::DTB_MAX_SIZE {
        return Err(FdtError::TooBig(blob.len()));
    }
    Ok(blob)
}

fn write_chosen(fdt: &mut FdtWriter, cfg: &FdtConfig) -> FdtWriterResult<()> {
    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", cfg.cmdline)?;
    fdt.property_string("stdout-path", &format!("/{}", uart_node_name()))?;
    if let Some((start, size)) = cfg.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", start + size)?;
    }
    fdt.end_node(chosen)
}

fn write_aliases(fdt: &mut FdtWriter, more: &[Alias]) -> FdtWriterResult<()> {
    let aliases = fdt.begin_node("aliases")?;
    fdt.property_string("serial0", &format!("/{}", uart_node_name()))?;
    for a in more {
        fdt.property_string(&a.name, &a.path)?;
    }
    fdt.end_node(aliases)
}

fn write_cpus(fdt: &mut FdtWriter, mpidrs: &[u64]) -> FdtWriterResult<()> {
    let cpus = fdt.begin_node("cpus")?;
    // Two address cells so Aff3 fits; the kernel compares reg with MPIDR & affinity mask.
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 0)?;
    for (i, mpidr) in mpidrs.iter().enumerate() {
        let cpu = fdt.begin_node(&format!("cpu@{i}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,arm-v8")?;
        if mpidrs.len() > 1 {
            fdt.property_string("enable-method", "psci")?;
        }
        fdt.property_u64("reg", mpidr & MPIDR_AFFINITY_MASK)?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)
}

fn write_memory(fdt: &mut FdtWriter, regions: &[(u64, u64)]) -> FdtWriterResult<()> {
    let base = regions.first().map_or(RAM_BASE, |r| r.0);
    let mem = fdt.begin_node(&format!("memory@{base:x}"))?;
    fdt.property_string("device_type", "memory")?;
    let reg: Vec<u64> = regions.iter().flat_map(|&(b, s)| [b, s]).collect();
    fdt.property_array_u64("reg", &reg)?;
    fdt.end_node(mem)
}

fn write_gic(fdt: &mut FdtWriter, gic: GicVersion, vcpus: u32) -> FdtWriterResult<()> {
    let intc = fdt.begin_node(&format!("interrupt-controller@{GIC_DIST_BASE:x}"))?;
    match gic {
        GicVersion::V3 => {
            fdt.property_string("compatible", "arm,gic-v3")?;
            fdt.property_array_u64(
                "reg",
                &[
                    GIC_DIST_BASE,
                    GIC_DIST_SIZE,
                    GICV3_REDIST_BASE,
                    gicv3_redist_size(vcpus),
                ],
            )?;
            fdt.property_array_u32("interrupts", &[GIC_PPI, GIC_MAINT_PPI, IRQ_TYPE_LEVEL_HIGH])?;
        }
        GicVersion::V2 => {
            fdt.property_string("compatible", "arm,cortex-a15-gic")?;
            fdt.property_array_u64(
                "reg",
                &[
                    GIC_DIST_BASE,
                    GICV2_DIST_SIZE,
                    GICV2_CPU_BASE,
                    GICV2_CPU_SIZE,
                ],
            )?;
        }
    }
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_null("ranges")?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(intc)
}

/// Third cell of a PPI specifier: GICv2 wants the CPU target mask in bits 15:8.
fn ppi_flags(gic: GicVersion, vcpus: u32, trigger: u32) -> u32 {
    match gic {
        GicVersion::V3 => trigger,
        GicVersion::V2 => (((1u32 << vcpus.min(8)) - 1) << 8) | trigger,
    }
}

fn write_timer(fdt: &mut FdtWriter, gic: GicVersion, vcpus: u32) -> FdtWriterResult<()> {
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    fdt.property_null("always-on")?;
    let flags = ppi_flags(gic, vcpus, IRQ_TYPE_LEVEL_LOW);
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, flags])
        .collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.end_node(timer)
}

fn write_psci(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    let psci = fdt.begin_node("psci")?;
    fdt.property_string("compatible", "arm,psci-0.2")?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)
}

fn write_uart(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    let uart = fdt.begin_node(&uart_node_name())?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[UART_BASE, UART_SIZE])?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.property_u32("reg-shift", 0)?;
    fdt.property_u32("reg-io-width", 1)?;
    // The irqfd pulses the line: describe it as an edge so the vGIC latches every pulse.
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_TYPE_EDGE_RISING])?;
    fdt.end_node(uart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use devices::dt::cells_prop;

    fn cells(v: &[u8]) -> Vec<u32> {
        v.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u64s(v: &[u8]) -> Vec<u64> {
        v.chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn prop<'a>(fdt: &'a fdt::Fdt, node: &str, name: &str) -> &'a [u8] {
        fdt.find_node(node)
            .unwrap_or_else(|| panic!("node {node}"))
            .property(name)
            .unwrap_or_else(|| panic!("{node}:{name}"))
            .value
    }

    /// One GICv3 vCPU, no command line or initramfs: the tree around device/memory nodes.
    fn one_cpu(memory: &[(u64, u64)], nodes: &[GuestNode]) -> Vec<u8> {
        create_fdt(&FdtConfig {
            mpidrs: &[0],
            gic: GicVersion::V3,
            memory,
            cmdline: "",
            initrd: None,
            nodes,
            aliases: &[],
        })
        .unwrap()
    }

    fn build(gic: GicVersion, ncpu: u64, initrd: Option<(u64, u64)>) -> Vec<u8> {
        let mpidrs: Vec<u64> = (0..ncpu).map(|i| 0x8000_0000 | i).collect();
        create_fdt(&FdtConfig {
            mpidrs: &mpidrs,
            gic,
            memory: &[(RAM_BASE, 256 * MIB)],
            cmdline: "console=ttyS0 panic=-1",
            initrd,
            nodes: &[],
            aliases: &[],
        })
        .unwrap()
    }

    #[test]
    fn root_chosen_memory() {
        let blob = build(GicVersion::V3, 2, Some((0x8f00_0000, 0x12_3456)));
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(fdt.root().compatible().first(), "linux,dummy-virt");
        assert_eq!(fdt.chosen().bootargs(), Some("console=ttyS0 panic=-1"));
        assert_eq!(fdt.chosen().stdout().unwrap().name, "serial@9000000");
        assert_eq!(
            u64s(prop(&fdt, "/chosen", "linux,initrd-start")),
            [0x8f00_0000]
        );
        assert_eq!(
            u64s(prop(&fdt, "/chosen", "linux,initrd-end")),
            [0x8f12_3456]
        );
        let regions: Vec<_> = fdt.memory().regions().collect();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].starting_address as u64, RAM_BASE);
        assert_eq!(regions[0].size, Some(256 * MIB as usize));
    }

    #[test]
    fn identity_memory_has_every_run() {
        let runs = [(0x4a00_0000, 64 * MIB), (0x9000_0000, 32 * MIB)];
        let blob = one_cpu(&runs, &[]);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(
            u64s(prop(&fdt, "/memory@4a000000", "reg")),
            [0x4a00_0000, 64 * MIB, 0x9000_0000, 32 * MIB]
        );
    }

    #[test]
    fn no_initrd_properties_without_initrd() {
        let blob = build(GicVersion::V3, 1, None);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        assert!(chosen.property("linux,initrd-start").is_none());
    }

    #[test]
    fn cpus_carry_mpidr_and_psci() {
        let blob = build(GicVersion::V3, 3, None);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let cpus: Vec<_> = fdt.cpus().collect();
        assert_eq!(cpus.len(), 3);
        for i in 0..3u64 {
            let node = format!("/cpus/cpu@{i}");
            assert_eq!(u64s(prop(&fdt, &node, "reg")), [i], "MPIDR masked");
            assert_eq!(prop(&fdt, &node, "enable-method"), b"psci\0");
        }
        assert_eq!(prop(&fdt, "/psci", "method"), b"hvc\0");
        assert_eq!(prop(&fdt, "/psci", "compatible"), b"arm,psci-0.2\0");
    }

    #[test]
    fn gicv3_node_and_phandle_references() {
        let blob = build(GicVersion::V3, 4, None);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let gic = fdt.find_phandle(GIC_PHANDLE).expect("GIC phandle resolves");
        assert_eq!(gic.name, "interrupt-controller@8000000");
        assert_eq!(gic.compatible().unwrap().first(), "arm,gic-v3");
        assert_eq!(
            u64s(gic.property("reg").unwrap().value),
            [
                GIC_DIST_BASE,
                GIC_DIST_SIZE,
                GICV3_REDIST_BASE,
                4 * GICV3_REDIST_SIZE_PER_CPU
            ]
        );
        assert_eq!(cells(prop(&fdt, "/", "interrupt-parent")), [GIC_PHANDLE]);
        let uart = fdt.find_node("/serial@9000000").unwrap();
        // The UART inherits the root's interrupt-parent, which must resolve to the GIC.
        assert!(uart.property("interrupt-parent").is_none());
        let parent = cells(prop(&fdt, "/", "interrupt-parent"))[0];
        assert_eq!(
            fdt.find_phandle(parent).unwrap().name,
            "interrupt-controller@8000000"
        );
        assert_eq!(
            cells(uart.property("interrupts").unwrap().value),
            [GIC_SPI, UART_SPI, IRQ_TYPE_EDGE_RISING]
        );
        assert_eq!(
            cells(prop(&fdt, "/timer", "interrupts")),
            [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]
        );
    }

    #[test]
    fn gicv2_node_and_ppi_cpu_masks() {
        let blob = build(GicVersion::V2, 2, None);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(
            prop(&fdt, "/interrupt-controller@8000000", "compatible"),
            b"arm,cortex-a15-gic\0"
        );
        assert_eq!(
            u64s(prop(&fdt, "/interrupt-controller@8000000", "reg")),
            [GIC_DIST_BASE, 0x1000, GICV2_CPU_BASE, 0x2000]
        );
        let timer = cells(prop(&fdt, "/timer", "interrupts"));
        assert_eq!(timer[2], 0x308, "CPU mask 0b11 in bits 15:8, level-low");
    }

    #[test]
    fn uart_registers_and_clock() {
        let blob = build(GicVersion::V3, 1, None);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(
            u64s(prop(&fdt, "/serial@9000000", "reg")),
            [UART_BASE, UART_SIZE]
        );
        assert_eq!(prop(&fdt, "/serial@9000000", "compatible"), b"ns16550a\0");
        assert_eq!(
            cells(prop(&fdt, "/serial@9000000", "clock-frequency")),
            [UART_CLOCK_HZ]
        );
        assert_eq!(
            fdt.aliases().unwrap().resolve("serial0"),
            Some("/serial@9000000")
        );
    }

    #[test]
    fn passed_devices_aliases_follow_the_console_s() {
        let aliases = [Alias {
            name: "serial1".into(),
            path: "/serial@40000000".into(),
        }];
        let blob = create_fdt(&FdtConfig {
            mpidrs: &[0],
            gic: GicVersion::V3,
            memory: &[(RAM_BASE, 256 * MIB)],
            cmdline: "",
            initrd: None,
            nodes: &[],
            aliases: &aliases,
        })
        .unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let a = fdt.aliases().unwrap();
        assert_eq!(a.resolve("serial0"), Some("/serial@9000000"));
        assert_eq!(a.resolve("serial1"), Some("/serial@40000000"));
    }

    #[test]
    fn passthrough_node_and_clock_phandle_resolve() {
        let node = GuestNode {
            name: "pl031@40000000".into(),
            props: vec![
                ("compatible".into(), b"arm,pl031\0arm,primecell\0".to_vec()),
                ("clocks".into(), cells_prop(&[2])),
                ("interrupts".into(), cells_prop(&[0, 16, 4])),
            ],
            children: vec![],
        };
        let clk = devices::dt::FixedClock {
            name: "apb-pclk".into(),
            output: "apb-pclk".into(),
            phandle: 2,
            hz: 24_000_000,
        };
        let blob = one_cpu(&[(RAM_BASE, 64 * MIB)], &[clk.node(), node]);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let dev = fdt.find_node("/pl031@40000000").unwrap();
        let clk_ph = cells(dev.property("clocks").unwrap().value)[0];
        assert_eq!(fdt.find_phandle(clk_ph).unwrap().name, "apb-pclk");
        assert_eq!(
            cells(dev.property("interrupts").unwrap().value),
            [GIC_SPI, 16, IRQ_TYPE_LEVEL_HIGH]
        );
        assert_ne!(clk_ph, GIC_PHANDLE);
    }

    #[test]
    fn long_property_names_are_written() {
        let long40 = "snps,a-binding-property-of-40-characters";
        let long31 = "snps,dis-u2-freeclk-exists-quir";
        assert_eq!((long40.len(), long31.len()), (40, 31));
        let usb = |name: &str, extra: &[u8]| GuestNode {
            name: name.into(),
            props: vec![
                ("compatible".into(), b"generic-xhci\0".to_vec()),
                (long40.into(), extra.to_vec()),
                (long31.into(), vec![]),
                (
                    "snps,quirk-frame-length-adjustment".into(),
                    cells_prop(&[0x20]),
                ),
            ],
            children: vec![],
        };
        let nodes = [usb("usb@40000000", &[1, 2, 3]), usb("usb@40100000", b"x\0")];
        let blob = one_cpu(&[(RAM_BASE, 64 * MIB)], &nodes);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        for (node, extra) in [
            ("/usb@40000000", &[1u8, 2, 3][..]),
            ("/usb@40100000", b"x\0"),
        ] {
            assert_eq!(prop(&fdt, node, long40), extra, "{node}");
            assert_eq!(prop(&fdt, node, long31), b"", "{node}");
            assert_eq!(
                cells(prop(&fdt, node, "snps,quirk-frame-length-adjustment")),
                [0x20]
            );
            assert_eq!(prop(&fdt, node, "compatible"), b"generic-xhci\0");
            assert_eq!(fdt.find_node(node).unwrap().properties().count(), 4);
        }
        // The fixed nodes are untouched.
        assert_eq!(prop(&fdt, "/psci", "method"), b"hvc\0");
        assert_eq!(fdt.chosen().stdout().unwrap().name, "serial@9000000");
    }

    #[test]
    fn names_no_reader_takes_are_skipped_not_fatal() {
        let node = GuestNode {
            name: "usb@40000000".into(),
            props: vec![
                ("compatible".into(), b"generic-xhci\0".to_vec()),
                (String::new(), vec![1]),
                ("a/b".into(), vec![2]),
                ("a\0b".into(), vec![3]),
            ],
            children: vec![],
        };
        let blob = one_cpu(&[(RAM_BASE, 64 * MIB)], &[node]);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let n = fdt.find_node("/usb@40000000").unwrap();
        let names: Vec<_> = n.properties().map(|p| p.name).collect();
        assert_eq!(names, ["compatible"]);
    }

    #[test]
    fn device_nodes_are_appended() {
        let extra = GuestNode {
            name: "extra@40000000".into(),
            props: vec![("compatible".into(), b"test,extra\0".to_vec())],
            children: vec![],
        };
        let blob = one_cpu(&[(RAM_BASE, 64 * MIB)], &[extra]);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert!(fdt.find_compatible(&["test,extra"]).is_some());
    }
}
