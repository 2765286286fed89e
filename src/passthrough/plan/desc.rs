//! The planner's inputs: a device as VFIO reports it or as a host DT node describes it
//! ([`DeviceDesc`], its [`RegionDesc`]s and [`IrqDesc`]s), and the user's choices for it
//! ([`DeviceOptions`]).
//!
//! Interrupts: VFIO reports each IRQ's count and whether it is level (AUTOMASKED). From a host
//! DT node, the host's interrupts are decoded whatever their parent's specifier layout
//! (`devices::guest_node::irqspec`: `interrupts-extended` first, else `interrupts` under the
//! node's interrupt parent), one IRQ each in vfio-platform's order, the trigger from the
//! specifier where its parent's binding tells it.

use devices::dt::GuestNode;
use devices::guest_node::clocks::{ChildClocks, ClockRate, HostClock};
use devices::guest_node::hostdt::HostNode;
use devices::guest_node::irqspec::{HostIrqs, SpecTrigger};
use devices::guest_node::providers::NodeEntries;
use devices::guest_node::ranges::BusCells;
use devices::guest_node::supplies::HostSupply;
use devices::guest_node::FixedLink;
use devices::vfio::device::{DeviceKind, IrqInfo, RegionInfo};

use crate::config::VfioSpec;

/// A device region as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionDesc {
    pub index: u32,
    pub size: u64,
    /// Whole pages that VFIO can mmap: the guest reaches them without exits.
    pub mappable: bool,
}

/// A device interrupt as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqDesc {
    pub index: u32,
    pub count: u32,
    pub level: bool,
    /// The trigger is not known (a host specifier whose parent's layout does not tell it):
    /// `level` was assumed.
    pub assumed_level: bool,
    /// VFIO can signal it through an eventfd.
    pub eventfd: bool,
}

/// One device to plan.
#[derive(Debug, Clone)]
pub struct DeviceDesc {
    pub name: String,
    pub kind: DeviceKind,
    pub regions: Vec<RegionDesc>,
    pub irqs: Vec<IrqDesc>,
    pub host_node: Option<HostNode>,
    /// The host node's interrupts, decoded (entry `i` is VFIO IRQ `i` when their counts agree).
    pub host_irqs: Option<HostIrqs>,
    /// The host node's parent (SEC job rings of one guest must share it).
    pub host_parent: Option<String>,
    /// The host clocks its `clocks` property references, resolved where possible.
    pub clocks: Vec<HostClock>,
    /// The host parent bus's `#address-cells`/`#size-cells` (to translate `ranges`).
    pub host_bus: Option<BusCells>,
    /// The group parent device it is passed with (`group=on` on the parent).
    pub member_of: Option<String>,
    /// The host clocks its descendants' `clocks` reference, resolved where possible.
    pub child_clocks: Vec<ChildClocks>,
    /// The host regulators it and its descendants take power from (`*-supply`).
    pub supplies: Vec<HostSupply>,
    /// The reset lines and power domains it and its descendants reference.
    pub providers: Vec<NodeEntries>,
    /// The host's `/aliases` names for its node (`serial0`, `mmc1`).
    pub aliases: Vec<String>,
}

impl DeviceDesc {
    /// From what VFIO reports of an open device.
    pub fn from_vfio(
        name: &str,
        kind: DeviceKind,
        regions: &[RegionInfo],
        irqs: &[IrqInfo],
        page: u64,
    ) -> Self {
        use vfio_bindings::bindings::vfio::VFIO_IRQ_INFO_EVENTFD;
        Self {
            name: name.to_string(),
            kind,
            regions: regions
                .iter()
                .map(|r| RegionDesc {
                    index: r.index,
                    size: r.size,
                    mappable: r.mappable(page),
                })
                .collect(),
            irqs: irqs
                .iter()
                .map(|i| IrqDesc {
                    index: i.index,
                    count: i.count,
                    level: i.level(),
                    assumed_level: false,
                    eventfd: i.flags & VFIO_IRQ_INFO_EVENTFD != 0,
                })
                .collect(),
            host_node: None,
            host_irqs: None,
            host_parent: None,
            clocks: Vec::new(),
            host_bus: None,
            member_of: None,
            child_clocks: Vec::new(),
            supplies: Vec::new(),
            providers: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// From a host DT node as VFIO would present it: one region per `reg` entry (`sizes`),
    /// one IRQ per host interrupt (`host_irqs`, decoded from the node by the caller, who knows
    /// its tree), level unless its specifier says edge.
    pub fn from_dt(
        name: &str,
        host: HostNode,
        host_irqs: HostIrqs,
        sizes: &[u64],
        page: u64,
    ) -> Self {
        let irqs = (0u32..)
            .zip(&host_irqs.irqs)
            .map(|(index, h)| IrqDesc {
                index,
                count: 1,
                // Unknown → level, the safe default: vfio-platform marks level lines
                // AUTOMASKED (masked until the guest's EOI unmasks them through the
                // resamplefd); a level line taken for an edge one would fire without end.
                level: h.trigger != SpecTrigger::Edge,
                assumed_level: h.trigger == SpecTrigger::Unknown,
                eventfd: true,
            })
            .collect();
        let primecell = host
            .strings("compatible")
            .is_some_and(|c| c.iter().any(|x| x == "arm,primecell"));
        Self {
            name: name.to_string(),
            kind: if primecell {
                DeviceKind::Amba
            } else {
                DeviceKind::Platform
            },
            regions: (0u32..)
                .zip(sizes)
                .map(|(index, &size)| RegionDesc {
                    index,
                    size,
                    mappable: size % page == 0,
                })
                .collect(),
            irqs,
            host_node: Some(host),
            host_irqs: Some(host_irqs),
            host_parent: None,
            clocks: Vec::new(),
            host_bus: None,
            member_of: None,
            child_clocks: Vec::new(),
            supplies: Vec::new(),
            providers: Vec::new(),
            aliases: Vec::new(),
        }
    }
}

/// The user's choices for one device.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceOptions<'a> {
    pub compatible: Option<&'a [String]>,
    pub handler: Option<&'a str>,
    pub overlay: Option<&'a GuestNode>,
    /// Rates for host clocks, by `clock-names` entry; they win over the host tree's.
    pub clock_rates: &'a [ClockRate],
    /// MAC address for an Ethernet controller.
    pub mac: Option<[u8; 6]>,
    /// A fixed link for a MAC whose PHY is outside the passed-through device.
    pub fixed_link: Option<FixedLink>,
}

impl<'a> DeviceOptions<'a> {
    /// The options of one `--vfio-platform` (or `--node`) spec, `overlay` being its parsed
    /// `overlay=` fragment.
    pub fn from_spec(spec: &'a VfioSpec, overlay: Option<&'a GuestNode>) -> Self {
        Self {
            compatible: spec.compatible.as_deref(),
            handler: spec.handler.as_deref(),
            overlay,
            clock_rates: &spec.clock_rates,
            mac: spec.mac,
            fixed_link: spec.fixed_link,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::layout;
    use crate::passthrough::plan::test_support::{dt_desc, plan_one, sata, sata_as_vfio};
    use crate::passthrough::plan::{Access, IrqRoute, Placement, Trigger};

    #[test]
    fn vfio_and_host_tree_give_the_same_plan() {
        let page = 4096;
        let from_vfio = plan_one(&sata_as_vfio(page), page);
        let mut from_dt = dt_desc("3200000.sata", sata(), &[0x1_0000, 4], page);
        from_dt.kind = DeviceKind::Platform;
        let from_dt = plan_one(&from_dt, page);
        assert_eq!(from_vfio.placements, from_dt.placements);
        assert_eq!(from_vfio.irqs, from_dt.irqs);
        assert_eq!(from_vfio.node, from_dt.node);
        assert_eq!(from_vfio.handler, "sata");
        assert_eq!(
            from_vfio.placements,
            [
                Placement {
                    index: 0,
                    gpa: 0x4000_0000,
                    size: 0x1_0000,
                    access: Access::Mapped
                },
                Placement {
                    index: 1,
                    gpa: 0x4001_0000,
                    size: 4,
                    access: Access::Trapped
                },
            ],
            "the empty region gets no address"
        );
        assert_eq!(
            from_vfio.irqs,
            [IrqRoute {
                index: 0,
                spi: layout::PASSTHROUGH_SPI_BASE,
                trigger: Trigger::Level,
                shares: None,
            }],
            "the zero-count IRQ gets no SPI"
        );
        assert!(from_vfio.dma.is_some());
    }
}
