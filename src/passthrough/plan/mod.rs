//! The pure planning of passed-through devices: regions → guest addresses (mapped or trapped),
//! IRQs → SPIs (level or edge), SEC job rings → their offsets in one guest SEC block, and the
//! guest node. `setup` (through the device manager), `inspect` and `preview-dt` all plan with
//! this code, from a [`DeviceDesc`] made of VFIO's region/IRQ info or of a host DT node.

use std::collections::HashMap;

use devices::dt::{self, FixedClock, GuestNode};
use devices::guest_node::clocks::{ClockRate, HostClock};
use devices::guest_node::handlers::{self, TypeHandler};
use devices::guest_node::hostdt::HostNode;
use devices::guest_node::{self as node, FixedLink, GuestIrq, NodeParams};
use devices::vfio::device::{DeviceKind, IrqInfo, RegionInfo};

use crate::resources::{Exhausted, Resources};

pub mod sec;

use sec::JobRing;

/// Rate of the fixed clock AMBA devices get as `apb_pclk`.
pub const APB_PCLK_HZ: u32 = 24_000_000;

/// Why a plan cannot be made. Each names the device.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{dev}: {source}")]
    Exhausted { dev: String, source: Exhausted },
    /// An IRQ VFIO cannot signal through an eventfd.
    #[error("{dev}: IRQ {index} cannot be signalled through an eventfd")]
    IrqNoEventfd { dev: String, index: u32 },
    /// Job rings of two SEC blocks in one guest.
    #[error("{dev} is a job ring of another SEC block than the guest's other job rings: pass rings of one SEC per guest")]
    SecMixed { dev: String },
    /// A job ring whose offset in its SEC block is unknown.
    #[error("{dev}: a SEC job ring needs its host DT node (its reg gives the ring's offset in the SEC block)")]
    SecNoOffset { dev: String },
    /// A job ring without a register page (every region empty): it would have no node.
    #[error(
        "{dev}: a SEC job ring needs its register page, but every region of the device is empty"
    )]
    SecNoRegion { dev: String },
    /// A job ring whose register page would reach past the SEC block (over other devices).
    #[error("{dev}: a SEC job ring of {size:#x} bytes at offset {offset:#x} does not fit the {:#x}-byte SEC block", sec::SEC_BLOCK_SIZE)]
    SecRingOutsideBlock { dev: String, offset: u32, size: u64 },
}

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
    /// The host node's parent (SEC job rings of one guest must share it).
    pub host_parent: Option<String>,
    /// The host clocks its `clocks` property references, resolved where possible.
    pub clocks: Vec<HostClock>,
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
                    eventfd: i.flags & VFIO_IRQ_INFO_EVENTFD != 0,
                })
                .collect(),
            host_node: None,
            host_parent: None,
            clocks: Vec::new(),
        }
    }

    /// From a host DT node as VFIO would present it: one region per `reg` entry (`sizes`),
    /// one IRQ per GIC `interrupts` specifier (level for level-triggered flags).
    pub fn from_dt(name: &str, host: HostNode, sizes: &[u64], page: u64) -> Self {
        let irqs = host
            .prop("interrupts")
            .map(|v| {
                v.chunks_exact(12)
                    .zip(0u32..)
                    .map(|(c, index)| IrqDesc {
                        index,
                        count: 1,
                        level: dt::is_level(u32::from_be_bytes(
                            c[8..12].try_into().expect("4 bytes"),
                        )),
                        eventfd: true,
                    })
                    .collect()
            })
            .unwrap_or_default();
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
            host_parent: None,
            clocks: Vec::new(),
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

/// How the guest reaches a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// mmap'ed and a KVM memslot: no exits.
    Mapped,
    /// On the MMIO bus: every access exits and is forwarded with pread/pwrite.
    Trapped,
}

/// Where one region goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub index: u32,
    pub gpa: u64,
    pub size: u64,
    pub access: Access,
}

/// How an interrupt is signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// irqfd + resamplefd → VFIO unmask.
    Level,
    /// Plain irqfd.
    Edge,
}

/// Where one interrupt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqRoute {
    pub index: u32,
    pub spi: u32,
    pub trigger: Trigger,
    /// The same host interrupt as this earlier IRQ index (the host node lists one line twice,
    /// as a GEM does for its two queues): it shares that SPI and is not wired again (VFIO
    /// cannot request one host line twice).
    pub shares: Option<u32>,
}

/// Everything decided for one device.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub name: String,
    pub handler: &'static str,
    /// Why that handler.
    pub why: String,
    pub placements: Vec<Placement>,
    pub irqs: Vec<IrqRoute>,
    /// A SEC job ring: its offset in the guest SEC block (its node goes under the controller).
    pub sec_offset: Option<u32>,
    pub node: GuestNode,
    /// Properties dropped, with why.
    pub warnings: Vec<String>,
    /// What platvmm made up for the guest (clocks, renumbered phandles, shared IRQs...).
    pub synthesized: Vec<String>,
    /// Why the device looks DMA-capable, if it does.
    pub dma: Option<String>,
}

/// Everything decided for a VM's devices.
#[derive(Debug, Clone, Default)]
pub struct VmPlan {
    pub devices: Vec<DevicePlan>,
    /// Guest address of the SEC block holding passed-through job rings.
    pub sec_block: Option<u64>,
    /// Guest address of the emulated SEC controller page, when the guest gets one.
    pub sec_controller: Option<u64>,
    /// phandle of the fixed clock AMBA devices reference.
    pub amba_clock: u32,
    /// Host clocks given to the guest as fixed clocks, each once however many devices use it.
    pub clocks: Vec<GuestClock>,
}

/// A host clock as a guest fixed clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestClock {
    /// Which host clock (provider path and specifier).
    pub key: String,
    pub clock: FixedClock,
}

/// Plans devices one by one against a VM's [`Resources`].
pub struct Planner<'r> {
    res: &'r mut Resources,
    page: u64,
    plan: VmPlan,
    sec_parent: Option<Option<String>>,
}

impl<'r> Planner<'r> {
    /// A planner placing regions at `page` granularity.
    pub fn new(res: &'r mut Resources, page: u64) -> Result<Self, Exhausted> {
        let amba_clock = res.phandle()?;
        Ok(Self {
            res,
            page,
            plan: VmPlan {
                devices: Vec::new(),
                sec_block: None,
                sec_controller: None,
                amba_clock,
                clocks: Vec::new(),
            },
            sec_parent: None,
        })
    }

    /// Plans `d`; returns its plan.
    pub fn add(&mut self, d: &DeviceDesc, o: &DeviceOptions) -> Result<&DevicePlan, PlanError> {
        let ex = |source| PlanError::Exhausted {
            dev: d.name.clone(),
            source,
        };
        let (handler, why) = match o.handler.and_then(handlers::by_name) {
            Some(h) => (h, "chosen by the user".to_string()),
            None => handlers::select(d.host_node.as_ref()),
        };
        let sec_offset = self.sec_ring(d, handler)?;
        let placements = self.place_regions(d, sec_offset).map_err(ex)?;
        let irqs = self.route_irqs(d)?;
        let mut synthesized = shared_irq_notes(&irqs);
        let host_clocks = with_user_rates(d, o.clock_rates);
        let clocks = self.guest_clocks(d, &host_clocks).map_err(ex)?;
        let mut generated = self.generate(d, o, handler, &placements, &irqs, clocks.phandles());
        generated.warnings.extend(clocks.note);
        synthesized.extend(clocks.made);
        synthesized.extend(self.renumber(&mut generated.node).map_err(ex)?);
        if let Some(ov) = o.overlay {
            generated.node.merge(ov);
        }
        self.plan.devices.push(DevicePlan {
            name: d.name.clone(),
            handler: handler.name(),
            why,
            placements,
            irqs,
            sec_offset,
            node: generated.node,
            warnings: generated.warnings,
            synthesized,
            dma: d.host_node.as_ref().and_then(looks_dma_capable),
        });
        Ok(self.plan.devices.last().expect("just pushed"))
    }

    /// The plan; `sec_controller` gives the guest a SEC controller even without job rings.
    pub fn finish(mut self, sec_controller: bool) -> Result<VmPlan, Exhausted> {
        if sec_controller || self.plan.sec_block.is_some() {
            self.plan.sec_controller = Some(self.res.emulated(
                devices::caam::CAAM_WINDOW,
                crate::arch::aarch64::layout::MIB,
            )?);
        }
        Ok(self.plan)
    }

    /// A SEC job ring's offset in its block (allocating the guest SEC block for the first).
    fn sec_ring(&mut self, d: &DeviceDesc, h: &dyn TypeHandler) -> Result<Option<u32>, PlanError> {
        if h.name() != "sec" {
            return Ok(None);
        }
        let off = sec::ring_offset(d.host_node.as_ref()).ok_or_else(|| PlanError::SecNoOffset {
            dev: d.name.clone(),
        })?;
        // The ring's first region is its register page, at its offset in the guest SEC block
        // (and its node's `reg` under the controller).
        let page = d
            .regions
            .iter()
            .find(|r| r.size > 0)
            .ok_or_else(|| PlanError::SecNoRegion {
                dev: d.name.clone(),
            })?;
        if u64::from(off) + page.size > sec::SEC_BLOCK_SIZE {
            return Err(PlanError::SecRingOutsideBlock {
                dev: d.name.clone(),
                offset: off,
                size: page.size,
            });
        }
        match &self.sec_parent {
            Some(p) if *p != d.host_parent => {
                return Err(PlanError::SecMixed {
                    dev: d.name.clone(),
                })
            }
            _ => self.sec_parent = Some(d.host_parent.clone()),
        }
        if self.plan.sec_block.is_none() {
            let block = self
                .res
                .window(sec::SEC_BLOCK_SIZE, sec::SEC_BLOCK_SIZE)
                .map_err(|source| PlanError::Exhausted {
                    dev: d.name.clone(),
                    source,
                })?;
            self.plan.sec_block = Some(block);
        }
        Ok(Some(off))
    }

    /// Regions in VFIO order; empty ones get nothing. A job ring's first region sits at its
    /// offset in the SEC block.
    fn place_regions(
        &mut self,
        d: &DeviceDesc,
        sec_offset: Option<u32>,
    ) -> Result<Vec<Placement>, Exhausted> {
        let mut v: Vec<Placement> = Vec::new();
        for r in d.regions.iter().filter(|r| r.size > 0) {
            let gpa = match (sec_offset, self.plan.sec_block, v.is_empty()) {
                (Some(off), Some(block), true) => block + u64::from(off),
                _ => self.res.window(r.size, self.page)?,
            };
            v.push(Placement {
                index: r.index,
                gpa,
                size: r.size,
                access: if r.mappable {
                    Access::Mapped
                } else {
                    Access::Trapped
                },
            });
        }
        Ok(v)
    }

    /// One SPI per IRQ that exists (count > 0); an IRQ the host node lists twice gets one.
    fn route_irqs(&mut self, d: &DeviceDesc) -> Result<Vec<IrqRoute>, PlanError> {
        let mut v: Vec<IrqRoute> = Vec::new();
        let specs = host_irq_specifiers(d);
        for i in d.irqs.iter().filter(|i| i.count > 0) {
            let same = |r: &&IrqRoute| {
                let spec = |x: u32| specs.as_ref().and_then(|s| s.get(x as usize));
                spec(i.index).is_some() && spec(r.index) == spec(i.index)
            };
            if let Some(first) = v.iter().find(same) {
                let shared = IrqRoute {
                    index: i.index,
                    shares: Some(first.index),
                    ..*first
                };
                v.push(shared);
                continue;
            }
            if !i.eventfd {
                return Err(PlanError::IrqNoEventfd {
                    dev: d.name.clone(),
                    index: i.index,
                });
            }
            let spi = self.res.spi().map_err(|source| PlanError::Exhausted {
                dev: d.name.clone(),
                source,
            })?;
            let trigger = if i.level {
                Trigger::Level
            } else {
                Trigger::Edge
            };
            v.push(IrqRoute {
                index: i.index,
                spi,
                trigger,
                shares: None,
            });
        }
        Ok(v)
    }

    /// Guest phandles for the device's host clocks when every one has a rate (one guest
    /// fixed clock per distinct host clock), else none and a note naming the clock.
    fn guest_clocks(&mut self, d: &DeviceDesc, host: &[HostClock]) -> Result<Clocks, Exhausted> {
        let mut out = Clocks::default();
        if host.is_empty() {
            return Ok(out);
        }
        if let Some((i, c)) = host.iter().enumerate().find(|(_, c)| c.hz.is_none()) {
            let id = c.name.clone().unwrap_or_else(|| i.to_string());
            out.note = Some(format!(
                "{}: dropped 'clocks': no rate for host clock {} ({}): its provider is not a \
                 fixed-clock, the host's /sys/kernel/debug/clk has no rate for it and the \
                 device assigns it none; give clock-rates={id}:HZ (the host keeps it running)",
                d.name, c.label, c.key
            ));
            return Ok(out);
        }
        let mut v = Vec::new();
        for (i, c) in host.iter().enumerate() {
            let ph = match self.plan.clocks.iter().find(|g| g.key == c.key) {
                Some(g) => g.clock.phandle,
                None => self.add_clock(c)?,
            };
            let g = self.plan.clocks.iter().find(|g| g.clock.phandle == ph);
            out.made.push(format!(
                "clock {}: host {} at {} Hz ({}) → guest fixed clock /{}",
                c.name.clone().unwrap_or_else(|| i.to_string()),
                c.key,
                c.hz.unwrap_or(0),
                c.source.map(|s| s.to_string()).unwrap_or_default(),
                g.map(|g| g.clock.name.as_str()).unwrap_or("?"),
            ));
            v.push(ph);
        }
        out.phandles = Some(v);
        Ok(out)
    }

    /// Gives the subtree's internal references (a MAC's `phy-handle` to its own PHY) guest
    /// phandles from the allocator; returns what was renumbered.
    fn renumber(&mut self, n: &mut GuestNode) -> Result<Vec<String>, Exhausted> {
        let mut map = HashMap::new();
        let mut made = Vec::new();
        for host in node::local_phandles(n) {
            let guest = self.res.phandle()?;
            map.insert(host, guest);
            made.push(format!(
                "phandle {host:#x} inside the device → guest phandle {guest:#x}"
            ));
        }
        node::remap_phandles(n, &map);
        Ok(made)
    }

    fn add_clock(&mut self, c: &HostClock) -> Result<u32, Exhausted> {
        let phandle = self.res.phandle()?;
        let safe: String = c
            .label
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ",._+-".contains(ch) {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        // Two host clocks with one label get distinct node names.
        let n = self
            .plan
            .clocks
            .iter()
            .filter(|g| g.clock.output == c.label)
            .count();
        // "clock-<label>", without doubling a label that already says "clock".
        let base = if safe.starts_with("clock") {
            safe
        } else {
            format!("clock-{safe}")
        };
        let name = match n {
            0 => base,
            _ => format!("{base}-{n}"),
        };
        self.plan.clocks.push(GuestClock {
            key: c.key.clone(),
            clock: FixedClock {
                name,
                output: c.label.clone(),
                phandle,
                hz: c.hz.unwrap_or(0),
            },
        });
        Ok(phandle)
    }

    fn generate(
        &self,
        d: &DeviceDesc,
        o: &DeviceOptions,
        h: &dyn TypeHandler,
        placements: &[Placement],
        irqs: &[IrqRoute],
        clocks: Option<&[u32]>,
    ) -> devices::guest_node::Generated {
        let regs: Vec<(u64, u64)> = placements.iter().map(|p| (p.gpa, p.size)).collect();
        let girqs: Vec<GuestIrq> = irqs
            .iter()
            .map(|r| GuestIrq {
                spi: r.spi,
                level: r.trigger == Trigger::Level,
            })
            .collect();
        h.generate(
            d.host_node.as_ref(),
            &NodeParams {
                dev_name: &d.name,
                kind: d.kind,
                regs: &regs,
                irqs: &girqs,
                compatible: o.compatible,
                amba_clock: self.plan.amba_clock,
                clocks,
                mac: o.mac,
                fixed_link: o.fixed_link,
            },
        )
    }
}

/// The guest clocks of one device.
#[derive(Default)]
struct Clocks {
    /// One guest phandle per host `clocks` entry, when all have a rate.
    phandles: Option<Vec<u32>>,
    /// Why `clocks` was dropped.
    note: Option<String>,
    /// What each entry became.
    made: Vec<String>,
}

impl Clocks {
    fn phandles(&self) -> Option<&[u32]> {
        self.phandles.as_deref()
    }
}

/// The device's host clocks with the user's rates applied.
fn with_user_rates(d: &DeviceDesc, rates: &[ClockRate]) -> Vec<HostClock> {
    let mut v = d.clocks.clone();
    for (i, c) in v.iter_mut().enumerate() {
        c.apply_user_rate(i, rates);
    }
    v
}

/// The host node's `interrupts` split into one specifier per IRQ, when they line up with
/// VFIO's IRQ indexes (VFIO numbers a platform device's IRQs in `interrupts` order).
fn host_irq_specifiers(d: &DeviceDesc) -> Option<Vec<Vec<u8>>> {
    let v = d.host_node.as_ref()?.prop("interrupts")?;
    let n = d.irqs.len();
    if n == 0 || v.len() % n != 0 || v.len() / n < 4 || (v.len() / n) % 4 != 0 {
        return None;
    }
    Some(v.chunks_exact(v.len() / n).map(<[u8]>::to_vec).collect())
}

fn shared_irq_notes(irqs: &[IrqRoute]) -> Vec<String> {
    irqs.iter()
        .filter_map(|r| {
            let first = r.shares?;
            Some(format!(
                "IRQ {} is host IRQ {first} listed again: both get SPI {} (wired once)",
                r.index, r.spi
            ))
        })
        .collect()
}

impl VmPlan {
    /// Where device `name`'s node went, for reports: `/node` or `/crypto@.../jr@...`.
    pub fn node_path(&self, d: &DevicePlan) -> String {
        match (d.sec_offset, self.sec_controller) {
            (Some(off), Some(ctrl)) => format!("/crypto@{ctrl:x}/jr@{off:x}"),
            _ => format!("/{}", d.node.name),
        }
    }

    /// The guest's root nodes for these devices, in order: the fixed clocks they need
    /// ([`VmPlan::fixed_clocks`]), their nodes ([`VmPlan::device_nodes`]), then the children
    /// of `dt_overlays`' roots.
    pub fn guest_nodes(&self, dt_overlays: &[GuestNode]) -> Vec<GuestNode> {
        let nodes = self.device_nodes();
        let clocks = self.fixed_clocks(&nodes);
        let overlays = dt_overlays.iter().flat_map(|o| o.children.iter().cloned());
        clocks
            .iter()
            .map(FixedClock::node)
            .chain(nodes)
            .chain(overlays)
            .collect()
    }

    /// Device nodes, then the SEC controller with the job rings as its children.
    pub fn device_nodes(&self) -> Vec<GuestNode> {
        let mut nodes: Vec<GuestNode> = self
            .devices
            .iter()
            .filter(|d| d.sec_offset.is_none())
            .map(|d| d.node.clone())
            .collect();
        if let Some(ctrl) = self.sec_controller {
            let rings: Vec<JobRing> = self
                .devices
                .iter()
                .filter_map(|d| {
                    Some(JobRing {
                        node: d.node.clone(),
                        offset: d.sec_offset?,
                        size: d.placements.first()?.size,
                    })
                })
                .collect();
            nodes.push(sec::controller_node(ctrl, &rings, self.sec_block));
        }
        nodes
    }

    /// The host clocks devices reference, then the AMBA `apb_pclk` stand-in when one of
    /// `nodes` references it.
    pub fn fixed_clocks(&self, nodes: &[GuestNode]) -> Vec<FixedClock> {
        let mut clocks: Vec<FixedClock> = self.clocks.iter().map(|g| g.clock.clone()).collect();
        if nodes.iter().any(|n| references_phandle(n, self.amba_clock)) {
            clocks.push(FixedClock {
                name: "apb-pclk".into(),
                output: "apb-pclk".into(),
                phandle: self.amba_clock,
                hz: APB_PCLK_HZ,
            });
        }
        clocks
    }
}

/// Whether `n` (or a child) has `clocks` cells equal to `phandle`.
pub fn references_phandle(n: &GuestNode, phandle: u32) -> bool {
    n.prop("clocks")
        .is_some_and(|c| c.chunks(4).any(|x| x == phandle.to_be_bytes()))
        || n.children.iter().any(|c| references_phandle(c, phandle))
}

/// Why a host node looks like a DMA master, if it does.
pub fn looks_dma_capable(h: &HostNode) -> Option<String> {
    const DMA_COMPATIBLES: &[&str] = &[
        "virtio,mmio",
        "ahci",
        "xhci",
        "ehci",
        "ohci",
        "dwc3",
        "sdhci",
        "mmc",
        "ethernet",
        "gmac",
        "dwmac",
        "sec-v",
        "caam",
        "pcie",
        "dma",
    ];
    if let Some(c) = h.strings("compatible").and_then(|cs| {
        cs.into_iter()
            .find(|c| DMA_COMPATIBLES.iter().any(|d| c.contains(d)))
    }) {
        return Some(format!("compatible \"{c}\""));
    }
    ["iommus", "dmas", "dma-coherent", "dma-ranges"]
        .iter()
        .find(|p| h.prop(p).is_some())
        .map(|p| format!("has '{p}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::layout;
    use devices::dt::cells_prop;
    use vfio_bindings::bindings::vfio::{
        VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE,
        VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    };

    const RW_MMAP: u32 =
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    const LEVEL: u32 = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;

    fn host(name: &str, props: &[(&str, Vec<u8>)]) -> HostNode {
        HostNode {
            name: name.into(),
            props: props
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
            children: vec![],
        }
    }

    /// The LS1046A SATA controller: a 64 KiB AHCI block and a 4-byte ECC register.
    fn sata() -> HostNode {
        host(
            "sata@3200000",
            &[
                ("compatible", b"fsl,ls1046a-ahci\0".to_vec()),
                ("reg", vec![0; 32]),
                ("interrupts", cells_prop(&[0, 69, 4])),
                ("dma-coherent", vec![]),
            ],
        )
    }

    /// How VFIO reports that controller: region 1 is sub-page (no mmap), one level IRQ, and
    /// an extra empty IRQ index that must not get an SPI.
    fn sata_as_vfio(page: u64) -> DeviceDesc {
        let regions = [
            RegionInfo {
                index: 0,
                flags: RW_MMAP,
                size: 0x1_0000,
                offset: 0,
            },
            RegionInfo {
                index: 1,
                flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
                size: 4,
                offset: 1 << 40,
            },
            RegionInfo {
                index: 2,
                flags: 0,
                size: 0,
                offset: 2 << 40,
            },
        ];
        let irqs = [
            IrqInfo {
                index: 0,
                flags: LEVEL,
                count: 1,
            },
            IrqInfo {
                index: 1,
                flags: VFIO_IRQ_INFO_EVENTFD,
                count: 0,
            },
        ];
        let mut d =
            DeviceDesc::from_vfio("3200000.sata", DeviceKind::Platform, &regions, &irqs, page);
        d.host_node = Some(sata());
        d
    }

    fn plan_one(d: &DeviceDesc, page: u64) -> DevicePlan {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, page).unwrap();
        p.add(d, &DeviceOptions::default()).unwrap().clone()
    }

    #[test]
    fn vfio_and_host_tree_give_the_same_plan() {
        let page = 4096;
        let from_vfio = plan_one(&sata_as_vfio(page), page);
        let mut from_dt = DeviceDesc::from_dt("3200000.sata", sata(), &[0x1_0000, 4], page);
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

    #[test]
    fn regions_follow_the_host_page_size() {
        let p = plan_one(&sata_as_vfio(0x1_0000), 0x1_0000);
        assert_eq!(p.placements[1].gpa, 0x4001_0000);
        let mut small = sata_as_vfio(0x1_0000);
        small.regions[0].size = 0x1000;
        small.regions[0].mappable = false;
        let p = plan_one(&small, 0x1_0000);
        assert_eq!(p.placements[1].gpa, 0x4001_0000, "64 KiB granules");
        assert_eq!(p.placements[0].access, Access::Trapped);
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
        let mut d = DeviceDesc::from_dt(name, h, &[0x10000], 4096);
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

    #[test]
    fn amba_devices_get_the_shared_clock_and_out_of_spis_is_named() {
        let pl031 = host(
            "pl031@9010000",
            &[
                ("compatible", b"arm,pl031\0arm,primecell\0".to_vec()),
                ("interrupts", cells_prop(&[0, 2, 4])),
            ],
        );
        let d = DeviceDesc::from_dt("9010000.pl031", pl031, &[0x1000], 4096);
        assert_eq!(d.kind, DeviceKind::Amba);
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        p.add(&d, &DeviceOptions::default()).unwrap();
        let plan = p.finish(false).unwrap();
        let clocks = plan.fixed_clocks(&plan.device_nodes());
        assert_eq!(
            clocks.iter().map(|c| c.phandle).collect::<Vec<_>>(),
            [plan.amba_clock]
        );
        assert_eq!(plan.guest_nodes(&[])[0], clocks[0].node());
        assert!(plan.sec_controller.is_none());

        let mut many = d.clone();
        many.irqs = (0..300)
            .map(|index| IrqDesc {
                index,
                count: 1,
                level: true,
                eventfd: true,
            })
            .collect();
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let e = p
            .add(&many, &DeviceOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("9010000.pl031: out of guest interrupt lines"),
            "{e}"
        );
    }

    fn clock(name: &str, key: &str, hz: Option<u32>) -> HostClock {
        HostClock {
            name: Some(name.into()),
            key: key.into(),
            label: key.trim_start_matches('/').into(),
            hz,
            source: hz.map(|_| devices::guest_node::clocks::RateSource::FixedClock),
        }
    }

    #[test]
    fn host_clocks_become_shared_guest_fixed_clocks() {
        // Two PL011s of one SoC, both clocked by the board's 24 MHz fixed clock.
        let uart = |name: &str| {
            let h = host(
                "pl011@9040000",
                &[
                    ("compatible", b"arm,pl011\0arm,primecell\0".to_vec()),
                    ("clock-names", b"uartclk\0apb_pclk\0".to_vec()),
                    ("clocks", cells_prop(&[0x8000, 0x8000])),
                ],
            );
            let mut d = DeviceDesc::from_dt(name, h, &[0x1000], 4096);
            let c = clock("uartclk", "/apb-pclk", Some(24_000_000));
            d.clocks = vec![
                c.clone(),
                HostClock {
                    name: Some("apb_pclk".into()),
                    ..c
                },
            ];
            d
        };
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let a = p
            .add(&uart("9040000.pl011"), &DeviceOptions::default())
            .unwrap()
            .clone();
        let b = p
            .add(&uart("9050000.pl011"), &DeviceOptions::default())
            .unwrap()
            .clone();
        let plan = p.finish(false).unwrap();
        assert_eq!(plan.clocks.len(), 1, "one guest clock per host clock");
        let ph = plan.clocks[0].clock.phandle;
        assert_eq!(a.node.prop("clocks").unwrap(), cells_prop(&[ph, ph]));
        assert_eq!(b.node.prop("clocks").unwrap(), cells_prop(&[ph, ph]));
        assert_eq!(a.node.strings("clock-names"), ["uartclk", "apb_pclk"]);
        assert!(
            !a.warnings.iter().any(|w| w.contains("'clocks'")),
            "{:?}",
            a.warnings
        );
        let clocks = plan.fixed_clocks(&plan.device_nodes());
        assert_eq!(clocks.len(), 1, "the apb-pclk stand-in is not needed");
        assert_eq!(clocks[0].name, "clock-apb-pclk");
        assert_eq!(clocks[0].hz, 24_000_000);
    }

    #[test]
    fn a_clock_without_a_rate_is_dropped_with_a_note() {
        let h = host(
            "pl031@9010000",
            &[("compatible", b"arm,pl031\0arm,primecell\0".to_vec())],
        );
        let mut d = DeviceDesc::from_dt("9010000.pl031", h, &[0x1000], 4096);
        d.clocks = vec![clock("apb_pclk", "/clkc-7", None)];
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let dp = p.add(&d, &DeviceOptions::default()).unwrap().clone();
        assert!(
            dp.warnings
                .iter()
                .any(|w| w.contains("no rate for host clock clkc-7")),
            "{:?}",
            dp.warnings
        );
        let plan = p.finish(false).unwrap();
        assert!(plan.clocks.is_empty());
        assert_eq!(
            dp.node.prop("clocks").unwrap(),
            cells_prop(&[plan.amba_clock]),
            "AMBA stand-in"
        );
    }

    /// The emulated ZCU102's GEM0 (resources/boards/zcu102.dts): two queue interrupts on one
    /// host line, a PHY under its own mdio node, fixed clocks; and a user rate.
    #[test]
    fn gem_shares_its_line_renumbers_its_phy_and_takes_user_rates() {
        let mut h = host(
            "ethernet@ff0b0000",
            &[
                ("compatible", b"xlnx,zynqmp-gem\0cdns,gem\0".to_vec()),
                ("interrupts", cells_prop(&[0, 57, 4, 0, 57, 4])),
                ("clocks", cells_prop(&[0x10, 0x11])),
                ("clock-names", b"pclk\0tx_clk\0".to_vec()),
                ("phy-handle", cells_prop(&[0x6])),
                ("#address-cells", cells_prop(&[1])),
                ("#size-cells", cells_prop(&[0])),
            ],
        );
        let mut mdio = host("mdio", &[]);
        mdio.children.push(host(
            "ethernet-phy@17",
            &[
                ("reg", cells_prop(&[0x17])),
                ("phandle", cells_prop(&[0x6])),
            ],
        ));
        h.children.push(mdio);
        let mut d = DeviceDesc::from_dt("ff0b0000.ethernet", h, &[0x1000], 4096);
        d.clocks = vec![
            clock("pclk", "/clock-lpd-lsbus", Some(100_000_000)),
            clock("tx_clk", "/clkc-44", None),
        ];
        let rates = [ClockRate {
            name: "tx_clk".into(),
            hz: 125_000_000,
        }];
        let opts = DeviceOptions {
            clock_rates: &rates,
            ..Default::default()
        };
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let dp = p.add(&d, &opts).unwrap().clone();
        let plan = p.finish(false).unwrap();
        assert_eq!(dp.handler, "ethernet");
        assert_eq!(dp.irqs.len(), 2);
        assert_eq!(dp.irqs[0].spi, dp.irqs[1].spi, "one host line, one SPI");
        assert_eq!((dp.irqs[0].shares, dp.irqs[1].shares), (None, Some(0)));
        let spi = dp.irqs[0].spi;
        assert_eq!(
            dp.node.prop("interrupts").unwrap(),
            cells_prop(&[0, spi, 4, 0, spi, 4])
        );
        let guest_ph = u32::from_be_bytes(dp.node.prop("phy-handle").unwrap().try_into().unwrap());
        let phy = &dp.node.children[0].children[0];
        assert_eq!(phy.prop("phandle").unwrap(), cells_prop(&[guest_ph]));
        let clock_phs: Vec<u32> = plan.clocks.iter().map(|c| c.clock.phandle).collect();
        assert!(
            !clock_phs.contains(&guest_ph) && guest_ph != plan.amba_clock,
            "the PHY's phandle comes from the allocator like the clocks'"
        );
        assert_eq!(plan.clocks.len(), 2);
        assert_eq!(plan.clocks[1].clock.hz, 125_000_000, "the user's rate");
        assert!(dp
            .synthesized
            .iter()
            .any(|s| s.contains("tx_clk") && s.contains("(clock-rates=)")));
        assert!(dp
            .synthesized
            .iter()
            .any(|s| s.contains("IRQ 1 is host IRQ 0")));
        assert!(!dp
            .warnings
            .iter()
            .any(|w| w.contains("'clocks'") || w.contains("phy-handle")));

        // Without the user's rate, the note names the option.
        let dp = plan_one(&d, 4096);
        assert!(dp.node.prop("clocks").is_none());
        assert!(
            dp.warnings
                .iter()
                .any(|w| w.contains("give clock-rates=tx_clk:HZ")),
            "{:?}",
            dp.warnings
        );
    }
}
