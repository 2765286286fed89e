//! Per-type guest node handlers, selected by the host node's compatible; the generic handler
//! (a copy under the property policy, see [`super`]) is the fallback.
//!
//! Each handler is a small adjustment of the generic copy:
//! - [`Sata`]: AHCI controllers. `generic-ahci` as is. NXP Layerscape `fsl,ls*-ahci` keep their
//!   vendor compatible (the guest's ahci_qoriq applies the SoC errata fixes) with both `reg`
//!   entries in VFIO order: the 4-byte `sata-ecc` register is a sub-page region, so platvmm
//!   traps it and forwards exactly those 4 bytes. Xilinx `ceva,ahci-1v84` keeps its vendor
//!   compatible and the `ceva,*` PHY parameters its driver requires. Both bindings require a
//!   `clocks` entry: it points at platvmm's fixed clock (the drivers only enable it; the host
//!   keeps the real clock running while VFIO holds the device). Any of them can be turned
//!   into a plain AHCI with `compatible=generic-ahci`.
//! - [`Usb`]: `generic-xhci`/`-ehci`/`-ohci` as they are; `snps,dwc3` is host-only in a guest:
//!   `dr_mode = "host"` is forced, the `snps,*` quirks (cells included) kept, PHY and role-switch
//!   properties dropped. Where the DWC3 core driver cannot work (QEMU's Versal models only the
//!   xHCI block) use `compatible=generic-xhci`.
//! - [`net::Ethernet`], [`mmc::Mmc`], [`serial::Serial`]: Ethernet MACs, SD/MMC controllers
//!   and UARTs, whose guest drivers need their clocks, PHYs and MAC address (see each module
//!   for what it keeps, synthesizes and drops).
//! - [`Generic`]: everything else, with one policy of its own: a vendor variant whose driver
//!   works through the platform firmware (Versal's `xlnx,versal-ospi-1.0`) gives way to the
//!   generic compatible after it, as [`mmc::Mmc`] does for the ZynqMP/Versal SDHCI variants
//!   (see [`FirmwareVariant`]).

pub mod mmc;
pub mod net;
pub mod serial;

use super::hostdt::HostNode;
use super::{self as node, Generated, NodeParams};
use crate::dt::strings_prop;

/// A guest node generator for one kind of device.
pub trait TypeHandler: Sync {
    /// Short name shown by `inspect` and accepted by the `handler=` option.
    fn name(&self) -> &'static str;
    /// Why this handler takes a device with these compatibles, if it does.
    fn claims(&self, compatible: &[String]) -> Option<String>;
    /// Builds the node.
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated;
    /// The register writes that stop a device with these compatibles from doing DMA (its
    /// engines halted or reset), in order, in its first region: platvmm makes them when the
    /// VM ends, before guest RAM goes. Nothing for a device of unknown registers.
    fn dma_stop(&self, _compatible: &[String]) -> &'static [RegWrite] {
        &[]
    }
}

/// One register write of a DMA stop, in the device's first region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegWrite {
    /// A 32-bit write of `value` at `offset`.
    W32 { offset: u64, value: u32 },
    /// An 8-bit write of `value` at `offset`.
    W8 { offset: u64, value: u8 },
    /// A 32-bit write at `offset` from the operational registers, which start at the byte
    /// the register at offset 0 holds (EHCI's and xHCI's CAPLENGTH).
    W32AfterCapLength { offset: u64, value: u32 },
}

/// Every handler, most specific first; the generic one claims everything.
pub static HANDLERS: &[&dyn TypeHandler] = &[
    &Sata,
    &Usb,
    &net::Ethernet,
    &mmc::Mmc,
    &serial::Serial,
    &SecJobRing,
    &Generic,
];

/// The handler named `name`.
pub fn by_name(name: &str) -> Option<&'static dyn TypeHandler> {
    HANDLERS.iter().copied().find(|h| h.name() == name)
}

/// Names of all handlers, for messages.
pub fn names() -> Vec<&'static str> {
    HANDLERS.iter().map(|h| h.name()).collect()
}

/// The handler for `host` and the reason it was chosen.
pub fn select(host: Option<&HostNode>) -> (&'static dyn TypeHandler, String) {
    let compat = host
        .and_then(|h| h.strings("compatible"))
        .unwrap_or_default();
    for h in HANDLERS {
        if let Some(why) = h.claims(&compat) {
            return (*h, why);
        }
    }
    unreachable!("the generic handler claims every device")
}

fn first_match(compat: &[String], f: impl Fn(&str) -> bool) -> Option<&String> {
    compat.iter().find(|c| f(c))
}

/// Renames a node to `<generic>@<unit address>`, the name bindings expect.
fn rename(g: &mut Generated, generic: &str) {
    let unit = g.node.name.split_once('@').map(|(_, u)| u.to_string());
    if let Some(unit) = unit {
        g.node.name = format!("{generic}@{unit}");
    }
}

/// A vendor compatible whose guest driver would call the platform firmware (Xilinx's EEMI),
/// which a guest does not have, and the generic compatible of the same IP the guest gets
/// instead. The host keeps whatever the firmware set up for the device.
pub struct FirmwareVariant {
    /// The vendor variant's compatible.
    pub compatible: &'static str,
    /// The generic compatible the guest gets (added if the host's list lacks it).
    pub fallback: &'static str,
    /// What the variant's driver does through the firmware, and what that means for the
    /// host, for the warning.
    pub why: &'static str,
}

/// Devices of the generic handler with a firmware variant.
pub const GENERIC_FIRMWARE_VARIANTS: &[FirmwareVariant] = &[FirmwareVariant {
    compatible: "xlnx,versal-ospi-1.0",
    fallback: "cdns,qspi-nor",
    why: "that variant's driver switches the OSPI mux through the platform firmware the guest \
          does not have for its DMA reads; the generic controller reads through the AHB window \
          in linear mode, where the host's own driver leaves the mux after every read",
}];

/// Replaces the first variant of `table` in the node's compatible by its fallback, with a
/// warning, unless the user gave `compatible=`.
fn drop_firmware_variant(g: &mut Generated, p: &NodeParams, table: &[FirmwareVariant]) {
    if p.compatible.is_some() {
        return;
    }
    let compat = g.node.strings("compatible");
    let Some(v) = table
        .iter()
        .find(|v| compat.iter().any(|c| c == v.compatible))
    else {
        return;
    };
    let mut kept: Vec<String> = compat.into_iter().filter(|c| c != v.compatible).collect();
    if !kept.iter().any(|c| c == v.fallback) {
        kept.push(v.fallback.into());
    }
    g.node.set("compatible", strings_prop(&kept));
    g.warnings.push(format!(
        "{}: compatible \"{}\" dropped ({}): the guest gets [{}]",
        p.dev_name,
        v.compatible,
        v.why,
        kept.join(", ")
    ));
}

/// AHCI SATA controllers.
pub struct Sata;

fn is_layerscape_ahci(c: &str) -> bool {
    (c.starts_with("fsl,ls") || c.starts_with("fsl,lx")) && c.ends_with("-ahci")
}

impl TypeHandler for Sata {
    fn name(&self) -> &'static str {
        "sata"
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        first_match(compat, |c| {
            c == "generic-ahci" || is_layerscape_ahci(c) || c == "ceva,ahci-1v84"
        })
        .map(|c| format!("compatible \"{c}\" is an AHCI SATA controller"))
    }
    fn dma_stop(&self, _compat: &[String]) -> &'static [RegWrite] {
        // GHC: AE | HR. The HBA reset stops every port's command and FIS engines.
        &[RegWrite::W32 {
            offset: 0x04,
            value: 0x8000_0001,
        }]
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        rename(&mut g, "sata");
        let guest_compat = g.node.strings("compatible");
        if p.clocks.is_none()
            && guest_compat
                .iter()
                .any(|c| c == "ceva,ahci-1v84" || is_layerscape_ahci(c))
        {
            // Its binding requires a clock; the driver only enables it. platvmm's fixed clock
            // stands in (the host keeps the real one running while VFIO holds the device).
            g.node.set("clocks", node::cells_prop(&[p.amba_clock]));
        }
        let compat = host
            .and_then(|h| h.strings("compatible"))
            .unwrap_or_default();
        if p.compatible.is_none()
            && compat.iter().any(|c| is_layerscape_ahci(c))
            && p.regs.len() < 2
        {
            g.warnings.push(format!(
                "{}: a Layerscape AHCI with no 'sata-ecc' region: its driver will fail; use compatible=generic-ahci",
                p.dev_name
            ));
        }
        g
    }
}

/// USB host controllers.
pub struct Usb;

const USB_GENERIC: &[&str] = &["generic-xhci", "generic-ehci", "generic-ohci"];
/// Properties of a DWC3 that make no sense in a host-only guest (dual-role, PHYs, switches).
const DWC3_DROP: &[&str] = &[
    "usb-role-switch",
    "role-switch-default-mode",
    "extcon",
    "otg-rev",
    "usb-phy",
];

impl TypeHandler for Usb {
    fn name(&self) -> &'static str {
        "usb"
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        first_match(compat, |c| USB_GENERIC.contains(&c) || c == "snps,dwc3")
            .map(|c| format!("compatible \"{c}\" is a USB host controller"))
    }
    fn dma_stop(&self, compat: &[String]) -> &'static [RegWrite] {
        if compat.iter().any(|c| c == "generic-ohci") {
            // HcCommandStatus.HCR: a host controller reset (no more list processing).
            return &[RegWrite::W32 {
                offset: 0x08,
                value: 1,
            }];
        }
        // xHCI (DWC3's is at the start of its region) and EHCI: USBCMD (the first
        // operational register) with Run/Stop clear halts the schedules.
        &[RegWrite::W32AfterCapLength {
            offset: 0,
            value: 0,
        }]
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        rename(&mut g, "usb");
        let compat = g.node.strings("compatible");
        let generic = compat.iter().any(|c| USB_GENERIC.contains(&c.as_str()));
        if compat.iter().any(|c| c == "snps,dwc3") || generic {
            host_interrupts_only(&mut g, p.dev_name);
        }
        if generic {
            // A DWC3 (or its host node) presented as a plain xHCI: its binding has none of the
            // DWC3 properties; the one meaning something to xhci-plat is translated.
            // The generic bindings take one interrupt: the host one, first after the filter.
            if let Some(irqs) = g.node.prop("interrupts").map(<[u8]>::to_vec) {
                if irqs.len() > 12 {
                    g.node.set("interrupts", irqs[..12].to_vec());
                    g.warnings.push(format!(
                        "{}: a generic USB host controller has one interrupt: kept the first of {}",
                        p.dev_name,
                        irqs.len() / 12
                    ));
                }
            }
            if g.node.remove("snps,usb3_lpm_capable") {
                g.node.set("usb3-lpm-capable", Vec::new());
            }
            let dwc3: Vec<String> = g
                .node
                .props
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| n.starts_with("snps,") || n == "dr_mode" || n == "interrupt-names")
                .collect();
            for n in &dwc3 {
                g.node.remove(n);
            }
            if !dwc3.is_empty() {
                g.warnings.push(format!(
                    "{}: DWC3 properties not in the generic host binding dropped: {}",
                    p.dev_name,
                    dwc3.join(", ")
                ));
            }
        }
        if compat.iter().any(|c| c == "snps,dwc3") {
            let was = g.node.prop("dr_mode").map(super::hostdt::string_list);
            if was.as_ref().and_then(|v| v.first()).map(String::as_str) != Some("host") {
                g.warnings.push(format!(
                    "{}: dr_mode {} forced to \"host\": a guest drives the controller as a host only",
                    p.dev_name,
                    was.and_then(|v| v.first().cloned()).map_or("(unset)".into(), |m| format!("\"{m}\""))
                ));
            }
            g.node.set("dr_mode", strings_prop(&["host"]));
            for d in DWC3_DROP {
                if g.node.remove(d) {
                    g.warnings.push(format!(
                        "{}: dropped '{d}' (dual-role/PHY, host-only guest)",
                        p.dev_name
                    ));
                }
            }
        }
        g
    }
}

/// Keeps only the host-mode interrupts of a USB controller (drops `otg`/`peripheral`); nodes
/// without `interrupt-names` are left alone.
fn host_interrupts_only(g: &mut Generated, dev: &str) {
    let Some(names) = g
        .node
        .prop("interrupt-names")
        .map(super::hostdt::string_list)
    else {
        return;
    };
    let Some(irqs) = g.node.prop("interrupts").map(<[u8]>::to_vec) else {
        return;
    };
    let keep: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] != "otg" && names[i] != "peripheral")
        .collect();
    if keep.len() == names.len() || keep.is_empty() || irqs.len() != names.len() * 12 {
        return;
    }
    let dropped: Vec<&str> = (0..names.len())
        .filter(|i| !keep.contains(i))
        .map(|i| names[i].as_str())
        .collect();
    let kept_irqs: Vec<u8> = keep
        .iter()
        .flat_map(|&i| irqs[i * 12..i * 12 + 12].to_vec())
        .collect();
    let kept: Vec<&str> = keep.iter().map(|&i| names[i].as_str()).collect();
    g.node.set("interrupts", kept_irqs);
    g.node.set("interrupt-names", strings_prop(&kept));
    g.warnings.push(format!(
        "{dev}: dropped interrupt(s) {} (host-only guest)",
        dropped.join(", ")
    ));
}

/// NXP SEC (CAAM) job rings. The ring's own node is a copy (compatible, interrupts); the VMM
/// puts it under a synthesized controller node whose register page it emulates, with the
/// ring's host offset in the SEC block as its child address (see platvmm's `sec` module).
pub struct SecJobRing;

/// Whether `c` is a SEC job-ring compatible (`fsl,sec-vX.Y-job-ring`).
pub fn is_sec_job_ring(c: &str) -> bool {
    c.starts_with("fsl,sec-v") && c.ends_with("-job-ring")
}

impl TypeHandler for SecJobRing {
    fn name(&self) -> &'static str {
        "sec"
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        first_match(compat, is_sec_job_ring).map(|c| {
            format!(
                "compatible \"{c}\" is a SEC job ring: it goes under a synthesized SEC controller"
            )
        })
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        rename(&mut g, "jr");
        g
    }
    fn dma_stop(&self, _compat: &[String]) -> &'static [RegWrite] {
        // JRCR: RESET. The ring flushes and halts: no more descriptor or data fetches.
        &[RegWrite::W32 {
            offset: 0x6c,
            value: 1,
        }]
    }
}

/// The fallback: a copy of the host node under the property policy.
pub struct Generic;

impl TypeHandler for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }
    fn claims(&self, compat: &[String]) -> Option<String> {
        Some(if compat.is_empty() {
            "no host compatible: generic copy".into()
        } else {
            format!(
                "no type handler for [{}]: generic copy under the property policy",
                compat.join(", ")
            )
        })
    }
    fn dma_stop(&self, compat: &[String]) -> &'static [RegWrite] {
        if compat.iter().any(|c| c == "virtio,mmio") {
            // Status = 0: the device resets and lets go of its rings.
            return &[RegWrite::W32 {
                offset: 0x70,
                value: 0,
            }];
        }
        &[]
    }
    fn generate(&self, host: Option<&HostNode>, p: &NodeParams) -> Generated {
        let mut g = node::generate(host, p);
        drop_firmware_variant(&mut g, p, GENERIC_FIRMWARE_VARIANTS);
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::cells_prop;
    use crate::guest_node::GuestIrq;
    use crate::vfio::device::DeviceKind;

    use crate::guest_node::test_support::host;

    fn params<'a>(regs: &'a [(u64, u64)], irqs: &'a [GuestIrq]) -> NodeParams<'a> {
        crate::guest_node::test_support::params(DeviceKind::Platform, regs, irqs)
    }

    const LEVEL: &[GuestIrq] = &[GuestIrq {
        spi: 16,
        level: true,
    }];

    fn reg_of(regs: &[(u64, u64)]) -> Vec<u8> {
        regs.iter()
            .flat_map(|&(a, s)| [a, s])
            .flat_map(|x| x.to_be_bytes())
            .collect()
    }

    #[test]
    fn selection_and_reasons() {
        let (h, why) = select(Some(&host(
            "sata@3200000",
            &[("compatible", b"fsl,ls1046a-ahci\0")],
        )));
        assert_eq!(h.name(), "sata");
        assert!(why.contains("fsl,ls1046a-ahci"), "{why}");
        let (h, _) = select(Some(&host(
            "usb@fe200000",
            &[("compatible", b"snps,dwc3\0")],
        )));
        assert_eq!(h.name(), "usb");
        let (h, why) = select(Some(&host(
            "pl031@9010000",
            &[("compatible", b"arm,pl031\0arm,primecell\0")],
        )));
        assert_eq!(h.name(), "generic");
        assert!(why.contains("arm,pl031, arm,primecell"), "{why}");
        assert_eq!(select(None).0.name(), "generic");
        assert_eq!(
            names(),
            ["sata", "usb", "ethernet", "mmc", "serial", "sec", "generic"]
        );
        let jr = host(
            "jr@10000",
            &[(
                "compatible",
                b"fsl,sec-v5.4-job-ring\0fsl,sec-v5.0-job-ring\0fsl,sec-v4.0-job-ring\0",
            )],
        );
        assert_eq!(select(Some(&jr)).0.name(), "sec");
        assert!(by_name("usb").is_some() && by_name("nope").is_none());
    }

    /// fsl-ls1046a.dtsi's sata node: the AHCI block and the 4-byte sata-ecc register.
    #[test]
    fn layerscape_ahci_keeps_vendor_compatible_and_ecc_register() {
        let h = host(
            "sata@3200000",
            &[
                ("compatible", b"fsl,ls1046a-ahci\0"),
                ("reg", &[0; 32]),
                ("reg-names", b"ahci\0sata-ecc\0"),
                ("interrupts", &[0, 0, 0, 0, 0, 0, 0, 69, 0, 0, 0, 4]),
                ("clocks", &[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1]),
                ("dma-coherent", b""),
                ("status", b"disabled\0"),
            ],
        );
        let regs = [(0x4000_0000, 0x10000), (0x4001_0000, 4)];
        let g = Sata.generate(Some(&h), &params(&regs, LEVEL));
        assert_eq!(g.node.name, "sata@40000000");
        assert_eq!(g.node.prop("compatible").unwrap(), b"fsl,ls1046a-ahci\0");
        assert_eq!(
            g.node.prop("reg").unwrap(),
            reg_of(&regs),
            "exact 4-byte ECC region kept"
        );
        assert_eq!(g.node.prop("reg-names").unwrap(), b"ahci\0sata-ecc\0");
        assert_eq!(g.node.prop("dma-coherent").unwrap(), b"");
        assert_eq!(
            g.node.prop("clocks").unwrap(),
            cells_prop(&[2]),
            "platvmm's fixed clock"
        );
        assert!(g.node.prop("status").is_none());
        assert!(
            g.warnings.iter().any(|w| w.contains("'clocks'")),
            "the host's clock is dropped"
        );

        let fallback = vec!["generic-ahci".to_string()];
        let mut p = params(&regs[..1], LEVEL);
        p.compatible = Some(&fallback);
        let g = Sata.generate(Some(&h), &p);
        assert_eq!(g.node.prop("compatible").unwrap(), b"generic-ahci\0");
        assert!(!g.warnings.iter().any(|w| w.contains("will fail")));
        let g = Sata.generate(Some(&h), &params(&regs[..1], LEVEL));
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("compatible=generic-ahci")));
    }

    /// zynqmp.dtsi + zcu102 board: CEVA AHCI with its PHY parameters.
    #[test]
    fn ceva_ahci_keeps_phy_parameters_drops_firmware_links() {
        let h = host(
            "ahci@fd0c0000",
            &[
                ("compatible", b"ceva,ahci-1v84\0"),
                ("ceva,p0-cominit-params", &[0x18, 0x40, 0x18, 0x28]),
                ("ceva,p0-burst-params", &[0x13, 0x08, 0x4a, 0x06]),
                ("power-domains", &[0, 0, 0, 9, 0, 0, 0, 0x1c]),
                ("resets", &[0, 0, 0, 8, 0, 0, 0, 16]),
                ("iommus", &[0, 0, 0, 7, 0, 0, 4, 0xc0]),
                ("phy-names", b"sata-phy\0"),
                ("phys", &[0, 0, 0, 6, 0, 0, 0, 3]),
            ],
        );
        let g = Sata.generate(Some(&h), &params(&[(0x4000_0000, 0x2000)], LEVEL));
        assert_eq!(g.node.name, "sata@40000000");
        assert_eq!(
            g.node.prop("ceva,p0-cominit-params").unwrap(),
            [0x18, 0x40, 0x18, 0x28]
        );
        assert!(g.node.prop("ceva,p0-burst-params").is_some());
        for p in ["power-domains", "resets", "iommus", "phys", "phy-names"] {
            assert!(g.node.prop(p).is_none(), "{p}");
            assert!(
                g.warnings.iter().any(|w| w.contains(&format!("'{p}'"))),
                "{p}"
            );
        }
    }

    /// fsl-ls1046a.dtsi's usb0: a bare snps,dwc3 with quirks, one of them cell-valued.
    #[test]
    fn dwc3_host_only_with_quirks() {
        let h = host(
            "usb@2f00000",
            &[
                ("compatible", b"snps,dwc3\0"),
                ("dr_mode", b"otg\0"),
                ("snps,quirk-frame-length-adjustment", &[0, 0, 0, 0x20]),
                (
                    "snps,incr-burst-type-adjustment",
                    &[0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 16],
                ),
                ("snps,dis_rxdet_inp3_quirk", b""),
                ("usb3-lpm-capable", b""),
                ("usb-role-switch", b""),
                ("phys", &[0, 0, 0, 5]),
                ("phy-names", b"usb3-phy\0"),
            ],
        );
        let g = Usb.generate(Some(&h), &params(&[(0x4000_0000, 0x10000)], LEVEL));
        assert_eq!(g.node.name, "usb@40000000");
        assert_eq!(g.node.prop("dr_mode").unwrap(), b"host\0");
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("dr_mode \"otg\" forced to \"host\"")));
        // 34 characters: longer than the DT spec's 31, kept (dtc and Linux take it).
        assert_eq!(
            g.node.prop("snps,quirk-frame-length-adjustment").unwrap(),
            cells_prop(&[0x20])
        );
        assert_eq!(
            g.node.prop("snps,incr-burst-type-adjustment").unwrap(),
            cells_prop(&[1, 4, 8, 16])
        );
        assert!(g.node.prop("snps,dis_rxdet_inp3_quirk").is_some());
        assert!(g.node.prop("usb3-lpm-capable").is_some());
        assert!(g.node.prop("usb-role-switch").is_none());
        assert!(g.node.prop("phys").is_none() && g.node.prop("phy-names").is_none());
        assert_eq!(g.node.prop("interrupts").unwrap(), cells_prop(&[0, 16, 4]));
    }

    /// zynqmp.dtsi's dwc3_0: host and OTG interrupts; as generic-xhci, no DWC3 properties.
    #[test]
    fn zynqmp_dwc3_host_interrupt_and_generic_xhci_conversion() {
        let h = host(
            "usb@fe200000",
            &[
                ("compatible", b"snps,dwc3\0"),
                ("interrupt-names", b"dwc_usb3\0otg\0"),
                ("snps,usb3_lpm_capable", b""),
                ("snps,resume-hs-terminations", b""),
            ],
        );
        let irqs = [
            GuestIrq {
                spi: 16,
                level: true,
            },
            GuestIrq {
                spi: 17,
                level: true,
            },
        ];
        let g = Usb.generate(Some(&h), &params(&[(0x4000_0000, 0x10000)], &irqs));
        assert_eq!(g.node.prop("interrupts").unwrap(), cells_prop(&[0, 16, 4]));
        assert_eq!(g.node.prop("interrupt-names").unwrap(), b"dwc_usb3\0");
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("dropped interrupt(s) otg")));

        let xhci = vec!["generic-xhci".to_string()];
        let mut p = params(&[(0x4000_0000, 0x10000)], &irqs);
        p.compatible = Some(&xhci);
        let g = Usb.generate(Some(&h), &p);
        assert_eq!(g.node.prop("interrupts").unwrap(), cells_prop(&[0, 16, 4]));
        assert!(g.node.prop("interrupt-names").is_none());
        assert!(g.node.prop("snps,resume-hs-terminations").is_none());
        assert_eq!(g.node.prop("usb3-lpm-capable").unwrap(), b"");
    }

    #[test]
    fn ceva_gets_the_fixed_clock() {
        let h = host("ahci@fd0c0000", &[("compatible", b"ceva,ahci-1v84\0")]);
        let g = Sata.generate(Some(&h), &params(&[(0x4000_0000, 0x2000)], LEVEL));
        assert_eq!(g.node.prop("clocks").unwrap(), cells_prop(&[2]));
    }

    #[test]
    fn generic_xhci_untouched_and_override_to_generic_xhci() {
        let h = host(
            "usb@fe200000",
            &[
                ("compatible", b"snps,dwc3\0"),
                ("maximum-speed", b"high-speed\0"),
            ],
        );
        let xhci = vec!["generic-xhci".to_string()];
        let mut p = params(&[(0x4000_0000, 0x10000)], LEVEL);
        p.compatible = Some(&xhci);
        let g = Usb.generate(Some(&h), &p);
        assert_eq!(g.node.prop("compatible").unwrap(), b"generic-xhci\0");
        assert!(g.node.prop("dr_mode").is_none(), "no dwc3 core, no dr_mode");
        assert_eq!(g.node.prop("maximum-speed").unwrap(), b"high-speed\0");
    }

    #[test]
    fn versal_ospi_becomes_the_generic_cadence_controller() {
        // The Versal OSPI as Xilinx's versal.dtsi has it, with a flash child.
        let mut h = host(
            "spi@f1010000",
            &[
                ("compatible", b"xlnx,versal-ospi-1.0\0cdns,qspi-nor\0"),
                ("cdns,fifo-depth", &[0, 0, 1, 0]),
                ("cdns,trigger-address", &[0xc0, 0, 0, 0]),
                ("cdns,is-dma", &[0, 0, 0, 1]),
                ("power-domains", &[0, 0, 0, 9, 0x18, 0x22, 0xc0, 0x0a]),
                ("#address-cells", &[0, 0, 0, 1]),
                ("#size-cells", &[0, 0, 0, 0]),
            ],
        );
        h.children.push(host(
            "flash@0",
            &[("compatible", b"jedec,spi-nor\0"), ("reg", &[0, 0, 0, 0])],
        ));
        let (handler, _) = select(Some(&h));
        assert_eq!(handler.name(), "generic");
        let regs = [(0x4000_0000, 0x10000), (0x4001_0000, 0x2000_0000)];
        let g = Generic.generate(Some(&h), &params(&regs, LEVEL));
        assert_eq!(g.node.strings("compatible"), ["cdns,qspi-nor"]);
        assert!(g
            .warnings
            .iter()
            .any(|w| w.contains("\"xlnx,versal-ospi-1.0\" dropped") && w.contains("OSPI mux")));
        assert_eq!(g.node.prop("cdns,fifo-depth").unwrap(), cells_prop(&[256]));
        assert_eq!(g.node.children.len(), 1, "the flash stays");

        // Only the variant goes: a plain Cadence controller is copied as it is, and the
        // user's compatible= wins over the policy.
        let plain = host("spi@ff8d2000", &[("compatible", b"cdns,qspi-nor\0")]);
        let g = Generic.generate(Some(&plain), &params(&regs, LEVEL));
        assert_eq!(g.node.strings("compatible"), ["cdns,qspi-nor"]);
        assert!(!g.warnings.iter().any(|w| w.contains("dropped (")));
        let theirs = vec![
            "xlnx,versal-ospi-1.0".to_string(),
            "cdns,qspi-nor".to_string(),
        ];
        let mut p = params(&regs, LEVEL);
        p.compatible = Some(&theirs);
        let g = Generic.generate(Some(&h), &p);
        assert_eq!(g.node.strings("compatible"), theirs);
    }

    #[test]
    fn each_handler_knows_how_its_hardware_stops_dma() {
        use RegWrite::*;
        for (handler, compat, want) in [
            (
                "sata",
                "fsl,ls1046a-ahci",
                W32 {
                    offset: 0x04,
                    value: 0x8000_0001,
                },
            ),
            (
                "usb",
                "generic-xhci",
                W32AfterCapLength {
                    offset: 0,
                    value: 0,
                },
            ),
            (
                "usb",
                "snps,dwc3",
                W32AfterCapLength {
                    offset: 0,
                    value: 0,
                },
            ),
            (
                "usb",
                "generic-ohci",
                W32 {
                    offset: 0x08,
                    value: 1,
                },
            ),
            (
                "ethernet",
                "cdns,zynqmp-gem",
                W32 {
                    offset: 0,
                    value: 0,
                },
            ),
            (
                "ethernet",
                "snps,dwmac-5.10a",
                W32 {
                    offset: 0x1000,
                    value: 1,
                },
            ),
            (
                "mmc",
                "arasan,sdhci-8.9a",
                W8 {
                    offset: 0x2f,
                    value: 1,
                },
            ),
            (
                "mmc",
                "rockchip,rk3288-dw-mshc",
                W32 {
                    offset: 0,
                    value: 7,
                },
            ),
            (
                "sec",
                "fsl,sec-v4.0-job-ring",
                W32 {
                    offset: 0x6c,
                    value: 1,
                },
            ),
            (
                "generic",
                "virtio,mmio",
                W32 {
                    offset: 0x70,
                    value: 0,
                },
            ),
        ] {
            let h = by_name(handler).unwrap();
            assert_eq!(h.dma_stop(&[compat.to_string()]), [want], "{compat}");
        }
        for (handler, compat) in [("generic", "arm,pl031"), ("serial", "arm,pl011")] {
            assert!(by_name(handler)
                .unwrap()
                .dma_stop(&[compat.into()])
                .is_empty());
        }
    }
}
