//! The pure planning of passed-through devices: regions → guest addresses (mapped or trapped),
//! IRQs → SPIs (level or edge), SEC job rings → their offsets in one guest SEC block, and the
//! guest node. `setup` (through the device manager), `inspect` and `preview-dt` all plan with
//! this code, from a [`DeviceDesc`] made of VFIO's region/IRQ info or of a host DT node.
//!
//! Interrupts: one guest GIC SPI per VFIO IRQ (the guest node's `interrupts`, under the root's
//! interrupt parent, whatever the host's parent was). The host node's decoded interrupts
//! ([`DeviceDesc::host_irqs`], one per VFIO index) tell when two indexes are one host line
//! listed twice (wired once), and notes say when they cannot be read as the host kernel reads
//! them, when their count differs from VFIO's, or when a trigger was assumed.
//!
//! Here: the [`Planner`] (regions, IRQs, the guest node) and what it decides ([`DevicePlan`],
//! [`VmPlan`]). Apart: its inputs (`desc.rs`), host clocks → guest fixed clocks (`clocks.rs`),
//! the SEC controller and its job rings ([`sec`]), the DMA hint (`dma.rs`).

use devices::dt::{FixedClock, GuestNode};
use devices::guest_node::clocks::ClockRate;
use devices::guest_node::handlers::{self, RegWrite, TypeHandler};
use devices::guest_node::irqspec::HostIrq;
use devices::guest_node::policy::StandIn;
use devices::guest_node::{self as node, GuestIrq, NodeParams};

use crate::config::ScmiMode;
use crate::resources::{Exhausted, Resources};

mod aliases;
mod clocks;
mod desc;
mod dma;
pub mod group;
mod links;
pub mod scmi;
pub mod sec;
mod supplies;

pub use clocks::{references_phandle, GuestClock, APB_PCLK_HZ};
pub use desc::{DeviceDesc, DeviceOptions, IrqDesc, RegionDesc};
pub use dma::looks_dma_capable;
use sec::JobRing;
pub use supplies::GuestRegulator;

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
    /// A group member whose parent is not passed.
    #[error("{dev} is a group member of {parent}, which is not passed")]
    GroupNoParent { dev: String, parent: String },
    /// A group member whose host reg cannot be written in its parent's address space.
    #[error("{dev}: its host reg does not pair with its regions or does not fit {parent}'s #address-cells/#size-cells: pass it on its own instead of with group=on")]
    GroupReg { dev: String, parent: String },
    /// A group member whose registers lie inside its parent's own.
    #[error("{dev}: its registers lie inside those {parent} already passes: pass {parent} without group=on (its region holds the child's registers)")]
    GroupOverlap { dev: String, parent: String },
    /// A `clock-rates=` entry that names no clock of the device.
    #[error("{dev}: clock-rates: '{name}' names no clock of the device; its clocks: {}", known_names(.known))]
    UnknownClockRate {
        dev: String,
        name: String,
        known: Vec<String>,
    },
    /// A PCI host bridge: what a guest would need of it is not a platform-device resource.
    #[error("{dev} is a PCI host bridge: the windows its 'ranges' open onto the PCI bus are not resources of the platform device (only its 'reg' is), so vfio-platform cannot give them to a guest; keep the bridge on the host and pass the PCI devices behind it with VFIO-PCI (a VMM with PCI passthrough)")]
    PciHostBridge { dev: String },
    /// A job ring whose register page would reach past the SEC block (over other devices).
    #[error("{dev}: a SEC job ring of {size:#x} bytes at offset {offset:#x} does not fit the {:#x}-byte SEC block", sec::SEC_BLOCK_SIZE)]
    SecRingOutsideBlock { dev: String, offset: u32, size: u64 },
}

/// The clock names a device has, as an error lists them.
fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "none (its host node has no clocks)".into()
    } else {
        known.join(", ")
    }
}

impl PlanError {
    /// Why device `dev` cannot be one of the guest's job rings.
    fn sec(dev: &str, r: sec::RingRefusal) -> Self {
        use sec::RingRefusal as R;
        let dev = dev.to_string();
        match r {
            R::NoOffset => Self::SecNoOffset { dev },
            R::NoRegion => Self::SecNoRegion { dev },
            R::OutsideBlock { offset, size } => Self::SecRingOutsideBlock { dev, offset, size },
            R::Mixed => Self::SecMixed { dev },
            R::Exhausted(source) => Self::Exhausted { dev, source },
        }
    }
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
    /// The register writes that stop its DMA when the VM ends (its handler's knowledge of the
    /// hardware its host compatible names; none for a device of unknown registers).
    pub dma_stop: &'static [RegWrite],
    /// A group member: its parent and host reg (`group=on`).
    pub member: Option<group::Membership>,
    /// Its node's name inside its group parent's node, once the group is assembled.
    pub nested_in: Option<String>,
    /// The host's `/aliases` names for its node; the guest's are in [`VmPlan::aliases`].
    pub host_aliases: Vec<String>,
}

/// What the hardware is: the host node's compatible, else the user's `compatible=`.
fn hardware_compatible(d: &DeviceDesc, o: &DeviceOptions) -> Vec<String> {
    d.host_node
        .as_ref()
        .and_then(|h| h.strings("compatible"))
        .or_else(|| o.compatible.map(<[String]>::to_vec))
        .unwrap_or_default()
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
    /// Host regulators given to the guest as fixed regulators, each once.
    pub regulators: Vec<GuestRegulator>,
    /// The guest's SCMI system controller, when it has one: the devices' clocks, reset lines
    /// and power domains point at it.
    pub scmi: Option<scmi::ScmiPlan>,
    /// The guest's `/aliases` for passed devices (the host's, renumbered where taken).
    pub aliases: Vec<devices::guest_node::aliases::Alias>,
}

/// Plans devices one by one against a VM's [`Resources`].
pub struct Planner<'r> {
    res: &'r mut Resources,
    page: u64,
    plan: VmPlan,
    sec: sec::Rings,
    links: links::PeerLinks,
    /// Each device's user overlay, applied once its phandles are settled.
    overlays: Vec<Option<GuestNode>>,
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
                regulators: Vec::new(),
                aliases: Vec::new(),
                scmi: None,
            },
            sec: sec::Rings::default(),
            links: links::PeerLinks::default(),
            overlays: Vec::new(),
        })
    }

    /// Tells the planner every device the VM gets, before the first [`Planner::add`]: a
    /// reference from one to another is then kept.
    pub fn peers<'d>(&mut self, devices: impl IntoIterator<Item = &'d DeviceDesc>) {
        for d in devices {
            if let Some(h) = &d.host_node {
                self.links.add_device(&d.name, h);
            }
        }
    }

    /// Plans `d`; returns its plan.
    /// Whether the guest gets an SCMI system controller under `mode`, given every device of
    /// the VM, and why (`auto`: the first device that references a reset line or a power
    /// domain); when it does, the controller is enabled ([`Planner::enable_scmi`]). Called
    /// before the devices are added.
    pub fn scmi(
        &mut self,
        mode: ScmiMode,
        descs: &[DeviceDesc],
    ) -> Result<Option<String>, PlanError> {
        let why = match mode {
            ScmiMode::Off => None,
            ScmiMode::On => Some("--scmi on".to_string()),
            ScmiMode::Auto => descs.iter().find_map(|d| {
                let e = d.providers.first()?;
                let (prop, _, _) = e.kind.props();
                Some(format!("--scmi auto: {} has '{prop}'", e.path))
            }),
        };
        if why.is_some() {
            self.enable_scmi()?;
        }
        Ok(why)
    }

    /// Reaches the SCMI system controller, if the guest has one, through `t` (the default is
    /// the mailbox, which works with any host kernel).
    pub fn scmi_transport(&mut self, t: scmi::ScmiTransport) {
        if let Some(s) = self.plan.scmi.as_mut() {
            s.transport = t;
        }
    }

    /// Gives the guest an SCMI system controller (its window, SPI and phandles now): the
    /// devices added from here on get their clocks, reset lines and power domains from it.
    pub fn enable_scmi(&mut self) -> Result<(), PlanError> {
        let s = scmi::ScmiPlan::new(self.res).map_err(|source| PlanError::Exhausted {
            dev: "the SCMI system controller".into(),
            source,
        })?;
        self.plan.scmi = Some(s);
        Ok(())
    }

    pub fn add(&mut self, d: &DeviceDesc, o: &DeviceOptions) -> Result<&DevicePlan, PlanError> {
        let ex = |source| PlanError::Exhausted {
            dev: d.name.clone(),
            source,
        };
        refusal(d, o)?;
        let (handler, why) = match o.handler.and_then(handlers::by_name) {
            Some(h) => (h, "chosen by the user".to_string()),
            None => handlers::select(d.host_node.as_ref()),
        };
        let sec_offset = self
            .sec
            .place(d, handler, self.res, &mut self.plan.sec_block)
            .map_err(|r| PlanError::sec(&d.name, r))?;
        let placements = self.place_regions(d, sec_offset).map_err(ex)?;
        let irqs = self.route_irqs(d)?;
        let (irq_warnings, mut synthesized) = irq_notes(d);
        synthesized.extend(shared_irq_notes(&irqs));
        let host_clocks = clocks::with_user_rates(d, o.clock_rates);
        let clocks = match self.plan.scmi.as_mut() {
            Some(s) => s.clocks(&d.name, &host_clocks),
            None => clocks::guest_clocks(self.res, &mut self.plan.clocks, &d.name, &host_clocks)
                .map_err(ex)?,
        };
        let stand_ins = self.stand_ins(d, o.clock_rates).map_err(ex)?;
        let inputs = NodeInputs {
            d,
            o,
            handler,
            regs: placements.iter().map(|p| (p.gpa, p.size)).collect(),
            irqs: irqs
                .iter()
                .map(|r| GuestIrq {
                    spi: r.spi,
                    level: r.trigger == Trigger::Level,
                })
                .collect(),
            clocks: clocks.phandles(),
            stand_ins: &stand_ins.stand_ins,
            amba_clock: self.plan.amba_clock,
        };
        // First with every host phandle standing for itself, to learn which ones the kept
        // references need; then with their guest phandles.
        let referenced = inputs.generate(&self.links.scanning()).referenced;
        let given = self.links.give(&referenced, self.res).map_err(ex)?;
        let mut generated = inputs.generate(&self.links);
        generated.warnings.extend(irq_warnings);
        generated.warnings.extend(clocks.note);
        synthesized.extend(clocks.made);
        generated.warnings.extend(stand_ins.notes);
        synthesized.extend(stand_ins.made);
        synthesized.extend(given.iter().map(|&(h, g)| self.phandle_note(&d.name, h, g)));
        self.overlays.push(o.overlay.cloned());
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
            dma_stop: handler.dma_stop(&hardware_compatible(d, o)),
            member: d
                .member_of
                .as_deref()
                .zip(d.host_node.as_ref())
                .map(|(p, h)| group::Membership::new(p, h, d.host_bus)),
            nested_in: None,
            host_aliases: d.aliases.clone(),
        });
        Ok(self.plan.devices.last().expect("just pushed"))
    }

    /// The plan; `sec_controller` gives the guest a SEC controller even without job rings.
    /// Every node's phandles are settled (host phandles a kept reference points at become
    /// guest ones, the others go), then the user's overlays are applied.
    /// Group members are then nested in their parents' nodes.
    pub fn finish(mut self, sec_controller: bool) -> Result<VmPlan, PlanError> {
        for (d, ov) in self.plan.devices.iter_mut().zip(&self.overlays) {
            node::settle_phandles(&mut d.node, self.links.map());
            if let Some(ov) = ov {
                d.node.merge(ov);
            }
        }
        group::assemble(&mut self.plan.devices)?;
        self.plan.aliases = aliases::assign(&mut self.plan);
        if sec_controller || self.plan.sec_block.is_some() {
            let at = self
                .res
                .emulated(
                    devices::caam::CAAM_WINDOW,
                    crate::arch::aarch64::layout::MIB,
                )
                .map_err(|source| PlanError::Exhausted {
                    dev: "the SEC controller".into(),
                    source,
                })?;
            self.plan.sec_controller = Some(at);
        }
        Ok(self.plan)
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
                let spec = |x: u32| specs.and_then(|s| s.get(x as usize));
                spec(i.index)
                    .zip(spec(r.index))
                    .is_some_and(|(a, b)| a.same_line(b))
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

    /// Guest providers for `d`: fixed clocks for the `clocks` of its descendants that all
    /// have a rate (the others are dropped by the property policy, said), fixed regulators for
    /// the supplies of it and its descendants.
    fn stand_ins(&mut self, d: &DeviceDesc, rates: &[ClockRate]) -> Result<StandIns, Exhausted> {
        let mut out = StandIns::default();
        for cc in &d.child_clocks {
            // `clock-rates=CHILD/NAME:HZ` names a descendant's clock (CHILD: its path from the
            // device's node).
            let scope = cc.path.split_once('/').map_or("", |(_, s)| s);
            let scoped = node::clocks::scoped_rates(rates, scope);
            let mut host = cc.clocks.clone();
            for (i, c) in host.iter_mut().enumerate() {
                c.apply_user_rate(i, &scoped);
            }
            let c = match self.plan.scmi.as_mut() {
                Some(s) => s.clocks(&cc.path, &host),
                None => clocks::guest_clocks(self.res, &mut self.plan.clocks, &cc.path, &host)?,
            };
            if let Some((i, no_rate)) = host.iter().enumerate().find(|(_, c)| c.hz.is_none()) {
                let id = no_rate.name.clone().unwrap_or_else(|| i.to_string());
                out.notes.push(format!(
                    "{}: its 'clocks' stay out: no rate for host clock {} ({}) in the host tree \
                     or /sys/kernel/debug/clk; give clock-rates={scope}/{id}:HZ on the device",
                    cc.path, no_rate.label, no_rate.key
                ));
            }
            out.made.extend(c.made);
            if let Some(p) = c.phandles {
                out.stand_ins.push(StandIn {
                    path: cc.path.clone(),
                    prop: "clocks".into(),
                    cells: p,
                });
            }
        }
        let s = supplies::guest_supplies(self.res, &mut self.plan.regulators, &d.supplies)?;
        out.stand_ins.extend(s.stand_ins);
        out.made.extend(s.made);
        if let Some(s) = self.plan.scmi.as_mut() {
            let index = self.plan.devices.len() as u32;
            for e in &d.providers {
                let (stand_in, made) = s.entries(e, index);
                out.stand_ins.push(stand_in);
                out.made.extend(made);
            }
        }
        Ok(out)
    }

    /// What giving host phandle `host` guest phandle `guest` for device `dev` means.
    fn phandle_note(&self, dev: &str, host: u32, guest: u32) -> String {
        match self.links.owner(host) {
            Some(o) if o == dev => {
                format!("phandle {host:#x} inside the device → guest phandle {guest:#x}")
            }
            Some(o) => format!(
                "phandle {host:#x} of {o}, passed to the same VM → guest phandle {guest:#x}"
            ),
            None => format!("phandle {host:#x} → guest phandle {guest:#x}"),
        }
    }
}

/// The guest providers standing in for a device's host references, and what was said.
#[derive(Default)]
struct StandIns {
    stand_ins: Vec<StandIn>,
    notes: Vec<String>,
    made: Vec<String>,
}

/// What one device's guest node is made from (generated twice: see [`Planner::add`]).
struct NodeInputs<'a> {
    d: &'a DeviceDesc,
    o: &'a DeviceOptions<'a>,
    handler: &'a dyn TypeHandler,
    regs: Vec<(u64, u64)>,
    irqs: Vec<GuestIrq>,
    clocks: Option<&'a [u32]>,
    stand_ins: &'a [StandIn],
    amba_clock: u32,
}

impl NodeInputs<'_> {
    fn generate(&self, links: &dyn node::Links) -> devices::guest_node::Generated {
        self.handler.generate(
            self.d.host_node.as_ref(),
            &NodeParams {
                dev_name: &self.d.name,
                kind: self.d.kind,
                regs: &self.regs,
                irqs: &self.irqs,
                compatible: self.o.compatible,
                amba_clock: self.amba_clock,
                clocks: self.clocks,
                mac: self.o.mac,
                fixed_link: self.o.fixed_link,
                host_bus: self.d.host_bus,
                links,
                stand_ins: self.stand_ins,
            },
        )
    }
}

/// Why device `d` cannot be planned with options `o`, if it cannot: a PCI host bridge, a
/// `clock-rates=` name that matches none of its clocks.
fn refusal(d: &DeviceDesc, o: &DeviceOptions) -> Result<(), PlanError> {
    let dev = d.name.clone();
    if d.host_node.as_ref().is_some_and(is_pci_host_bridge) {
        return Err(PlanError::PciHostBridge { dev });
    }
    match clocks::unknown_rate(d, o.clock_rates) {
        Some((name, known)) => Err(PlanError::UnknownClockRate { dev, name, known }),
        None => Ok(()),
    }
}

/// A node the DT specification's PCI bus binding describes (`device_type = "pci"`; "pciex"
/// on some older trees).
fn is_pci_host_bridge(h: &devices::guest_node::hostdt::HostNode) -> bool {
    h.strings("device_type")
        .is_some_and(|t| t.iter().any(|t| t == "pci" || t == "pciex"))
}

/// How many of the device's IRQs have lines (vfio-platform gives each exactly one).
fn live_irqs(d: &DeviceDesc) -> usize {
    d.irqs.iter().filter(|i| i.count > 0).count()
}

/// The host node's interrupts, entry `i` standing for VFIO IRQ `i` (vfio-platform numbers a
/// platform device's IRQs in `interrupts-extended`, else `interrupts`, order), when their count
/// is VFIO's: otherwise which entry is which IRQ is not known.
fn host_irq_specifiers(d: &DeviceDesc) -> Option<&[HostIrq]> {
    let h = d.host_irqs.as_ref()?;
    (h.irqs.len() == live_irqs(d)).then_some(h.irqs.as_slice())
}

/// Warnings (host interrupts not read as the host kernel reads them, a count that differs
/// from VFIO's) and synthesized notes (triggers assumed) about a device's interrupts.
fn irq_notes(d: &DeviceDesc) -> (Vec<String>, Vec<String>) {
    let Some(h) = &d.host_irqs else {
        return (Vec::new(), Vec::new());
    };
    let mut warnings: Vec<String> = h.note().into_iter().collect();
    let (host, vfio) = (h.irqs.len(), live_irqs(d));
    if host != vfio {
        let prop = h.prop.map_or("interrupts".to_string(), |p| p.to_string());
        warnings.push(format!(
            "the host node lists {host} interrupts in {prop} but VFIO reports {vfio}: the \
             guest node gets one SPI per VFIO IRQ, and a host line listed twice is not detected"
        ));
    }
    let assumed = d.irqs.iter().filter(|i| i.assumed_level).map(|i| {
        let Some(h) = h.irqs.get(i.index as usize) else {
            return format!("IRQ {}: trigger unknown, level assumed", i.index);
        };
        let cells: Vec<String> = h.cells.iter().map(u32::to_string).collect();
        format!(
            "IRQ {}: host specifier <{}> of {} does not tell the trigger: level assumed",
            i.index,
            cells.join(" "),
            h.parent_name()
        )
    });
    (warnings, assumed.collect())
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
        let parent = d
            .member
            .as_ref()
            .and_then(|m| self.devices.iter().find(|p| p.name == m.parent));
        if let (Some(name), Some(p)) = (&d.nested_in, parent) {
            return format!("{}/{name}", self.node_path(p));
        }
        match (d.sec_offset, self.sec_controller) {
            (Some(off), Some(ctrl)) => format!("/crypto@{ctrl:x}/jr@{off:x}"),
            _ => format!("/{}", d.node.name),
        }
    }

    /// The guest's root nodes for these devices, in order: the fixed clocks they need
    /// ([`VmPlan::fixed_clocks`]), the fixed regulators, the SCMI controller's, their nodes ([`VmPlan::device_nodes`]), then the children
    /// of `dt_overlays`' roots.
    pub fn guest_nodes(&self, dt_overlays: &[GuestNode]) -> Vec<GuestNode> {
        let nodes = self.device_nodes();
        let clocks = self.fixed_clocks(&nodes);
        let overlays = dt_overlays.iter().flat_map(|o| o.children.iter().cloned());
        let regulators = self.regulators.iter().map(|r| r.regulator.node());
        let scmi = self.scmi.iter().flat_map(scmi::ScmiPlan::nodes);
        clocks
            .iter()
            .map(FixedClock::node)
            .chain(regulators)
            .chain(scmi)
            .chain(nodes)
            .chain(overlays)
            .collect()
    }

    /// Device nodes, then the SEC controller with the job rings as its children.
    pub fn device_nodes(&self) -> Vec<GuestNode> {
        let mut nodes: Vec<GuestNode> = self
            .devices
            .iter()
            .filter(|d| d.sec_offset.is_none() && d.nested_in.is_none())
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
        clocks::fixed_clocks(&self.clocks, self.amba_clock, nodes)
    }
}

#[cfg(test)]
mod test_support {
    use super::*;
    use crate::arch::aarch64::layout;
    use devices::dt::cells_prop;
    use devices::guest_node::clocks::HostClock;
    use devices::guest_node::hostdt::HostNode;
    use devices::vfio::device::{DeviceKind, IrqInfo, RegionInfo};
    use vfio_bindings::bindings::vfio::{
        VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE,
        VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    };

    const RW_MMAP: u32 =
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    const LEVEL: u32 = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;

    pub(super) fn host(name: &str, props: &[(&str, Vec<u8>)]) -> HostNode {
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
    pub(super) fn sata() -> HostNode {
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
    pub(super) fn sata_as_vfio(page: u64) -> DeviceDesc {
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

    /// [`DeviceDesc::from_dt`] for a node without a tree: `interrupts` read as 3-cell GIC
    /// specifiers.
    pub(super) fn dt_desc(name: &str, h: HostNode, sizes: &[u64], page: u64) -> DeviceDesc {
        let irqs = devices::guest_node::irqspec::alone(&h);
        DeviceDesc::from_dt(name, h, irqs, sizes, page)
    }

    pub(super) fn plan_one(d: &DeviceDesc, page: u64) -> DevicePlan {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, page).unwrap();
        p.peers([d]);
        p.add(d, &DeviceOptions::default()).unwrap();
        p.finish(false).unwrap().devices.remove(0)
    }

    pub(super) fn clock(name: &str, key: &str, hz: Option<u32>) -> HostClock {
        HostClock {
            name: Some(name.into()),
            key: key.into(),
            label: key.trim_start_matches('/').into(),
            hz,
            source: hz.map(|_| devices::guest_node::clocks::RateSource::FixedClock),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{clock, dt_desc, host, plan_one, sata_as_vfio};
    use super::*;
    use crate::arch::aarch64::layout;
    use devices::dt::cells_prop;

    /// The host's aliases follow the passed nodes into the guest: `serial0` (the guest
    /// console's) moves to the lowest free number, `mmc1` stays.
    #[test]
    fn host_aliases_name_the_guest_nodes() {
        let uart = host(
            "serial@30860000",
            &[
                ("compatible", b"fsl,imx8mp-uart\0".to_vec()),
                ("reg", vec![0; 16]),
            ],
        );
        let mmc = host(
            "mmc@30b50000",
            &[
                ("compatible", b"fsl,imx8mp-usdhc\0".to_vec()),
                ("reg", vec![0; 16]),
            ],
        );
        let mut a = dt_desc("30860000.serial", uart, &[0x1_0000], 0x1000);
        a.aliases = vec!["serial0".into()];
        let mut b = dt_desc("30b50000.mmc", mmc, &[0x1_0000], 0x1000);
        b.aliases = vec!["mmc1".into()];
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 0x1000).unwrap();
        p.peers([&a, &b]);
        p.add(&a, &DeviceOptions::default()).unwrap();
        p.add(&b, &DeviceOptions::default()).unwrap();
        let plan = p.finish(false).unwrap();
        let got: Vec<(&str, &str)> = plan
            .aliases
            .iter()
            .map(|x| (x.name.as_str(), x.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [("serial1", "/serial@40000000"), ("mmc1", "/mmc@40010000")]
        );
        assert!(plan.devices[0]
            .synthesized
            .iter()
            .any(|s| s
                == "alias serial1 → /serial@40000000 (the host's serial0: taken in the guest)"));
        assert!(plan.devices[1]
            .synthesized
            .iter()
            .any(|s| s == "alias mmc1 → /mmc@40010000 (as on the host)"));
    }

    /// R-Car's I2C with a CS2000 clock multiplier on it (r8a77951-salvator-xs): the child's
    /// `clocks` become guest fixed clocks like the device's own; a child clock without a rate
    /// stays out, said.
    #[test]
    fn descendants_clocks_become_guest_fixed_clocks() {
        use devices::guest_node::clocks::ChildClocks;
        let mut h = host(
            "i2c@e6510000",
            &[("compatible", b"renesas,rcar-gen3-i2c\0".to_vec())],
        );
        h.children.push(host(
            "clk_multiplier@4f",
            &[
                ("reg", cells_prop(&[0x4f])),
                ("clocks", cells_prop(&[0x30, 0x31])),
                ("clock-names", b"clk_in\0ref_clk\0".to_vec()),
            ],
        ));
        h.children.push(host(
            "codec@10",
            &[
                ("reg", cells_prop(&[0x10])),
                ("clocks", cells_prop(&[0x32, 3])),
            ],
        ));
        let mut d = dt_desc("e6510000.i2c", h, &[0x40], 4096);
        d.child_clocks = vec![
            ChildClocks {
                path: "i2c@e6510000/clk_multiplier@4f".into(),
                clocks: vec![
                    clock("clk_in", "/audio-clkout", Some(12_288_000)),
                    clock("ref_clk", "/x12", Some(24_576_000)),
                ],
            },
            ChildClocks {
                path: "i2c@e6510000/codec@10".into(),
                clocks: vec![clock("mclk", "/sound-3", None)],
            },
        ];
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        p.add(&d, &DeviceOptions::default()).unwrap();
        let plan = p.finish(false).unwrap();
        let phs: Vec<u32> = plan.clocks.iter().map(|c| c.clock.phandle).collect();
        assert_eq!(plan.clocks.len(), 2);
        let n = &plan.devices[0].node;
        assert_eq!(n.children[0].prop("clocks").unwrap(), cells_prop(&phs));
        assert_eq!(n.children[0].strings("clock-names"), ["clk_in", "ref_clk"]);
        assert!(n.children[1].prop("clocks").is_none());
        assert!(plan.devices[0]
            .warnings
            .iter()
            .any(|w| w.contains("codec@10: its 'clocks' stay out")
                && w.contains("/sound-3")
                && w.contains("clock-rates=codec@10/mclk:HZ")));
        // A rate for a clock the device does not have: refused, naming the ones it has.
        let typo = [ClockRate {
            name: "codec@10/mclck".into(),
            hz: 1,
        }];
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let o = DeviceOptions {
            clock_rates: &typo,
            ..DeviceOptions::default()
        };
        let e = p.add(&d, &o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "e6510000.i2c: clock-rates: 'codec@10/mclck' names no clock of the device; its \
             clocks: clk_multiplier@4f/clk_in, clk_multiplier@4f/ref_clk, codec@10/mclk"
        );
        // The rate the note asks for, on the device's option line.
        let rates = [ClockRate {
            name: "codec@10/mclk".into(),
            hz: 11_289_600,
        }];
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let o = DeviceOptions {
            clock_rates: &rates,
            ..DeviceOptions::default()
        };
        p.add(&d, &o).unwrap();
        let plan = p.finish(false).unwrap();
        assert_eq!(plan.clocks.len(), 3);
        assert_eq!(plan.clocks[2].clock.hz, 11_289_600);
        let codec = &plan.devices[0].node.children[1];
        assert_eq!(
            codec.prop("clocks").unwrap(),
            cells_prop(&[plan.clocks[2].clock.phandle])
        );
    }

    /// A PCI host bridge is refused with the reason: its windows are not device resources.
    #[test]
    fn pci_host_bridges_are_refused() {
        let h = host(
            "pcie@f8000000",
            &[
                ("compatible", b"rockchip,rk3399-pcie\0".to_vec()),
                ("device_type", b"pci\0".to_vec()),
            ],
        );
        let d = dt_desc("f8000000.pcie", h, &[0x40], 4096);
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        let e = p.add(&d, &DeviceOptions::default()).unwrap_err();
        assert!(matches!(e, PlanError::PciHostBridge { .. }), "{e}");
        assert!(
            e.to_string().contains("vfio-platform cannot give them"),
            "{e}"
        );
        let mut d = d;
        d.host_node
            .as_mut()
            .unwrap()
            .props
            .retain(|(n, _)| n != "device_type");
        assert!(p.add(&d, &DeviceOptions::default()).is_ok());
    }

    /// On the VFIO path VFIO's IRQs rule: with as many host interrupts as VFIO IRQs, a line
    /// the host lists twice (here under a 4-cell GIC) is wired once; with another count, a
    /// note and nothing taken as shared.
    #[test]
    fn vfio_irqs_against_the_decoded_host_node() {
        use devices::guest_node::irqspec::{HostIrq, HostIrqs, IrqParent, SpecTrigger};
        let mut d = sata_as_vfio(4096);
        d.irqs[1].count = 1;
        d.irqs[1].level = false;
        let line = |spi: u32| HostIrq {
            parent: Some(IrqParent {
                phandle: 1,
                key: "/interrupt-controller@fee00000".into(),
            }),
            cells: vec![0, spi, 4, 0],
            trigger: SpecTrigger::Level,
        };
        d.host_irqs = Some(HostIrqs {
            irqs: vec![line(57), line(57)],
            prop: Some(devices::guest_node::irqspec::IrqProp::Interrupts),
            ..HostIrqs::default()
        });
        let p = plan_one(&d, 4096);
        assert_eq!((p.irqs[0].shares, p.irqs[1].shares), (None, Some(0)));
        assert_eq!(p.irqs[1].trigger, Trigger::Level, "the line's first route");
        assert!(!p.warnings.iter().any(|w| w.contains("VFIO reports")));

        d.host_irqs.as_mut().unwrap().irqs.push(line(58));
        let p = plan_one(&d, 4096);
        assert_eq!((p.irqs[0].shares, p.irqs[1].shares), (None, None));
        assert_ne!(p.irqs[0].spi, p.irqs[1].spi);
        assert_eq!(p.irqs[1].trigger, Trigger::Edge, "VFIO's flags");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("lists 3 interrupts in interrupts but VFIO reports 2")),
            "{:?}",
            p.warnings
        );
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
        let mut d = dt_desc("ff0b0000.ethernet", h, &[0x1000], 4096);
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
        p.add(&d, &opts).unwrap();
        let plan = p.finish(false).unwrap();
        let dp = plan.devices[0].clone();
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
