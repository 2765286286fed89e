//! The guest's SCMI system controller, planned with its devices: one SCMI identifier per
//! distinct host clock, reset line and power domain the passed devices (and their descendants)
//! reference, and the guest nodes that reach it — a `brcm,bcm2835-mbox` doorbell, the
//! shared-memory channel in an `mmio-sram` page, and `/firmware/scmi` with a provider node per
//! protocol that has something to serve.
//!
//! The device model is `devices::scmi`; the VM instantiates it at [`ScmiPlan::window`].

use devices::dt::{self, cells_prop, strings_prop, GuestNode};
use devices::guest_node::clocks::HostClock;
use devices::guest_node::policy::StandIn;
use devices::guest_node::providers::{NodeEntries, ProviderKind};
use devices::scmi::mailbox::{MAILBOX_SIZE, SHMEM_SIZE, SRAM_SIZE, WINDOW_SIZE};
use devices::scmi::{
    ClockConfig, PowerDomainConfig, ResetAction, ResetDomainConfig, ScmiConfig, MAX_NAME,
};

use super::clocks::Clocks;
use crate::resources::{Exhausted, Resources};

/// An SCMI clock: a host clock with a rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmiClock {
    pub key: String,
    pub name: String,
    pub hz: u64,
}

/// An SCMI reset domain: a host reset line; resetting it resets device `device` (its index
/// in the plan: the first device that references the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmiReset {
    pub key: String,
    pub name: String,
    pub device: u32,
}

/// An SCMI power domain: a host power domain (the host keeps it on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmiPower {
    pub key: String,
    pub name: String,
}

/// Where the SCMI platform sits and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmiPlan {
    /// How the guest reaches it.
    pub transport: ScmiTransport,
    /// Guest address of the doorbell page; the channel's page follows it.
    pub window: u64,
    /// The doorbell's SPI.
    pub spi: u32,
    mailbox_phandle: u32,
    shmem_phandle: u32,
    clock_provider: u32,
    reset_provider: u32,
    power_provider: u32,
    pub clocks: Vec<ScmiClock>,
    pub resets: Vec<ScmiReset>,
    pub power_domains: Vec<ScmiPower>,
}

/// The SMCCC function the SMC transport uses: a fast call in the SiP service range, which
/// KVM's SMCCC filter may forward to userspace (its own ranges, PSCI and the KVM vendor
/// services, it keeps).
pub const SMC_FUNCTION: u32 = 0x8200_0010;

/// How the guest's SCMI agent reaches the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScmiTransport {
    /// `arm,scmi` over the emulated `brcm,bcm2835-mbox` doorbell, its completion an
    /// interrupt: works with any host kernel.
    Mailbox,
    /// `arm,scmi-smc`: the guest's SMC with `function`, forwarded by KVM's SMCCC filter
    /// (Linux 6.4 and later), rings the doorbell; the reply is ready when the SMC returns.
    Smc { function: u32 },
}

/// An SCMI entity with the host key it stands for.
trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for ScmiClock {
    fn key(&self) -> &str {
        &self.key
    }
}

impl Keyed for ScmiReset {
    fn key(&self) -> &str {
        &self.key
    }
}

impl Keyed for ScmiPower {
    fn key(&self) -> &str {
        &self.key
    }
}

/// The identifier (index in `list`) of the entity standing for host `key`: the one already
/// there, else a new one made by `make`.
fn intern<T: Keyed>(list: &mut Vec<T>, key: &str, make: impl FnOnce(String) -> T) -> u32 {
    let id = list.iter().position(|e| e.key() == key).unwrap_or_else(|| {
        list.push(make(key.to_string()));
        list.len() - 1
    });
    id as u32
}

/// An SCMI name: printable ASCII, at most [`MAX_NAME`] bytes, never empty.
fn scmi_name(s: &str, fallback: impl FnOnce() -> String) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '_'
            }
        })
        .collect();
    n.truncate(MAX_NAME);
    if n.is_empty() {
        fallback()
    } else {
        n
    }
}

impl ScmiPlan {
    /// A platform with its window, SPI and phandles from `res`, serving nothing yet.
    pub(super) fn new(res: &mut Resources) -> Result<Self, Exhausted> {
        Ok(Self {
            transport: ScmiTransport::Mailbox,
            window: res.emulated(WINDOW_SIZE, MAILBOX_SIZE)?,
            spi: res.emulated_spi()?,
            mailbox_phandle: res.phandle()?,
            shmem_phandle: res.phandle()?,
            clock_provider: res.phandle()?,
            reset_provider: res.phandle()?,
            power_provider: res.phandle()?,
            clocks: Vec::new(),
            resets: Vec::new(),
            power_domains: Vec::new(),
        })
    }

    /// The guest `clocks` of node `path` for its host clocks: `<&scmi_clk ID>` per entry
    /// when every one has a rate, else none and a note naming the clock.
    pub(super) fn clocks(&mut self, path: &str, host: &[HostClock]) -> Clocks {
        let mut out = Clocks::default();
        if host.is_empty() {
            return out;
        }
        // A rate of 0 Hz (a fixed-clock saying so) is no rate: SCMI serves none.
        let no_rate = |c: &&HostClock| !c.hz.is_some_and(|hz| hz > 0);
        if let Some((i, c)) = host.iter().enumerate().find(|(_, c)| no_rate(c)) {
            let id = c.name.clone().unwrap_or_else(|| i.to_string());
            out.note = Some(format!(
                "{path}: dropped 'clocks': no rate for host clock {} ({}) to serve as an SCMI \
                 clock: the host tree and /sys/kernel/debug/clk do not tell it; give \
                 clock-rates={id}:HZ",
                c.label, c.key
            ));
            return out;
        }
        let mut cells = Vec::new();
        for (i, c) in host.iter().enumerate() {
            let n = self.clocks.len();
            let id = intern(&mut self.clocks, &c.key, |key| ScmiClock {
                key,
                name: scmi_name(&c.label, || format!("clock{n}")),
                hz: u64::from(c.hz.unwrap_or(0)),
            });
            out.made.push(format!(
                "clock {}: host {} at {} Hz → SCMI clock {id}",
                c.name.clone().unwrap_or_else(|| i.to_string()),
                c.key,
                c.hz.unwrap_or(0),
            ));
            cells.extend([self.clock_provider, id]);
        }
        out.phandles = Some(cells);
        out
    }

    /// The guest value of one node's `resets` or `power-domains` (`<&provider ID>` per
    /// entry), and what each entry became; `device` is the plan index of the device the node
    /// belongs to.
    pub(super) fn entries(&mut self, e: &NodeEntries, device: u32) -> (StandIn, Vec<String>) {
        let (prop, _, _) = e.kind.props();
        let mut cells = Vec::new();
        let mut made = Vec::new();
        for (i, h) in e.entries.iter().enumerate() {
            let label = h.name.clone().unwrap_or_else(|| i.to_string());
            let name = || {
                let node = e.path.rsplit('/').next().unwrap_or(&e.path);
                scmi_name(&format!("{node}:{label}"), || format!("{prop}{i}"))
            };
            let (provider, id, what) = match e.kind {
                ProviderKind::Reset => {
                    let id = intern(&mut self.resets, &h.key, |key| ScmiReset {
                        key,
                        name: name(),
                        device,
                    });
                    (self.reset_provider, id, "reset domain")
                }
                ProviderKind::PowerDomain => {
                    let id = intern(&mut self.power_domains, &h.key, |key| ScmiPower {
                        key,
                        name: name(),
                    });
                    (self.power_provider, id, "power domain")
                }
            };
            made.push(format!(
                "{} '{prop}' {label}: host {} → SCMI {what} {id}",
                e.path, h.key
            ));
            cells.extend([provider, id]);
        }
        let stand_in = StandIn {
            path: e.path.clone(),
            prop: prop.to_string(),
            cells,
        };
        (stand_in, made)
    }

    /// What the platform serves: clocks at their host rates (not settable), reset domains
    /// that reset their device, power domains.
    pub fn config(&self) -> ScmiConfig {
        ScmiConfig {
            clocks: self
                .clocks
                .iter()
                .map(|c| ClockConfig {
                    name: c.name.clone(),
                    rate_hz: c.hz,
                    settable: false,
                })
                .collect(),
            reset_domains: self
                .resets
                .iter()
                .map(|r| ResetDomainConfig {
                    name: r.name.clone(),
                    action: Some(ResetAction::Device { index: r.device }),
                })
                .collect(),
            power_domains: self
                .power_domains
                .iter()
                .map(|p| PowerDomainConfig {
                    name: p.name.clone(),
                })
                .collect(),
        }
    }

    /// The guest's root nodes: the doorbell, the channel's page, `/firmware/scmi`.
    pub fn nodes(&self) -> Vec<GuestNode> {
        match self.transport {
            ScmiTransport::Mailbox => {
                vec![self.mailbox_node(), self.sram_node(), self.firmware_node()]
            }
            ScmiTransport::Smc { .. } => vec![self.sram_node(), self.firmware_node()],
        }
    }

    /// The guest address the SMC transport's calls ring (the doorbell register), if it is
    /// the transport.
    pub fn smc_doorbell(&self) -> Option<(u32, u64)> {
        match self.transport {
            ScmiTransport::Smc { function } => {
                Some((function, self.window + devices::scmi::mailbox::DOORBELL))
            }
            ScmiTransport::Mailbox => None,
        }
    }

    fn mailbox_node(&self) -> GuestNode {
        GuestNode {
            name: format!("mailbox@{:x}", self.window),
            props: vec![
                ("compatible".into(), strings_prop(&["brcm,bcm2835-mbox"])),
                ("reg".into(), reg(self.window, MAILBOX_SIZE)),
                (
                    "interrupts".into(),
                    cells_prop(&dt::spi_specifier(self.spi, false)),
                ),
                ("#mbox-cells".into(), cells_prop(&[0])),
                ("phandle".into(), cells_prop(&[self.mailbox_phandle])),
            ],
            children: Vec::new(),
        }
    }

    fn sram_node(&self) -> GuestNode {
        let base = self.window + MAILBOX_SIZE;
        let hi = (base >> 32) as u32;
        let shmem = GuestNode {
            name: "scmi-sram@0".into(),
            props: vec![
                ("compatible".into(), strings_prop(&["arm,scmi-shmem"])),
                ("reg".into(), cells_prop(&[0, SHMEM_SIZE as u32])),
                ("phandle".into(), cells_prop(&[self.shmem_phandle])),
            ],
            children: Vec::new(),
        };
        GuestNode {
            name: format!("sram@{base:x}"),
            props: vec![
                ("compatible".into(), strings_prop(&["mmio-sram"])),
                ("reg".into(), reg(base, SRAM_SIZE)),
                ("#address-cells".into(), cells_prop(&[1])),
                ("#size-cells".into(), cells_prop(&[1])),
                (
                    "ranges".into(),
                    cells_prop(&[0, hi, base as u32, SRAM_SIZE as u32]),
                ),
            ],
            children: vec![shmem],
        }
    }

    fn firmware_node(&self) -> GuestNode {
        let protocol = |id: u32, cells: &str, phandle: u32| GuestNode {
            name: format!("protocol@{id:x}"),
            props: vec![
                ("reg".into(), cells_prop(&[id])),
                (cells.into(), cells_prop(&[1])),
                ("phandle".into(), cells_prop(&[phandle])),
            ],
            children: Vec::new(),
        };
        let mut children = Vec::new();
        if !self.power_domains.is_empty() {
            children.push(protocol(0x11, "#power-domain-cells", self.power_provider));
        }
        if !self.clocks.is_empty() {
            children.push(protocol(0x14, "#clock-cells", self.clock_provider));
        }
        if !self.resets.is_empty() {
            children.push(protocol(0x16, "#reset-cells", self.reset_provider));
        }
        let transport = match self.transport {
            ScmiTransport::Mailbox => vec![
                ("compatible".into(), strings_prop(&["arm,scmi"])),
                ("mboxes".into(), cells_prop(&[self.mailbox_phandle])),
            ],
            ScmiTransport::Smc { function } => vec![
                ("compatible".into(), strings_prop(&["arm,scmi-smc"])),
                ("arm,smc-id".into(), cells_prop(&[function])),
            ],
        };
        let mut props = transport;
        props.extend([
            ("shmem".into(), cells_prop(&[self.shmem_phandle])),
            ("#address-cells".into(), cells_prop(&[1])),
            ("#size-cells".into(), cells_prop(&[0])),
        ]);
        let scmi = GuestNode {
            name: "scmi".into(),
            props,
            children,
        };
        GuestNode {
            name: "firmware".into(),
            props: Vec::new(),
            children: vec![scmi],
        }
    }
}

/// A root-level `reg` (2 address cells, 2 size cells).
fn reg(base: u64, size: u64) -> Vec<u8> {
    [base, size].iter().flat_map(|x| x.to_be_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{clock, dt_desc, host};
    use super::super::{DeviceDesc, DeviceOptions, Planner};
    use super::*;
    use crate::arch::aarch64::layout;
    use crate::config::ScmiMode;
    use devices::guest_node::providers::HostEntry;

    /// A device with clocks `clocks` (name, key) at 125 MHz, one reset line `reset` and, if
    /// given, a power domain.
    fn dev(name: &str, clocks: &[(&str, &str)], reset: &str, pd: Option<&str>) -> DeviceDesc {
        let node = format!("{name}@0");
        let mut props = vec![
            ("compatible", b"vendor,dev\0".to_vec()),
            ("resets", cells_prop(&[0x50, 7])),
            ("reset-names", b"rst\0".to_vec()),
        ];
        if pd.is_some() {
            props.push(("power-domains", cells_prop(&[0x51])));
        }
        let h = host(&node, &props);
        let mut d = dt_desc(name, h, &[0x1000], 4096);
        d.clocks = clocks
            .iter()
            .map(|(n, k)| clock(n, k, Some(125_000_000)))
            .collect();
        let entry = |key: &str, n: Option<&str>| HostEntry {
            key: key.into(),
            name: n.map(Into::into),
        };
        d.providers.push(NodeEntries {
            path: node.clone(),
            kind: ProviderKind::Reset,
            entries: vec![entry(reset, Some("rst"))],
        });
        if let Some(pd) = pd {
            d.providers.push(NodeEntries {
                path: node,
                kind: ProviderKind::PowerDomain,
                entries: vec![entry(pd, None)],
            });
        }
        d
    }

    /// Two devices sharing a clock and a reset line: one SCMI identifier each, shared; the
    /// nodes point at the protocol providers; the reset resets the first device.
    #[test]
    fn host_providers_become_shared_scmi_identifiers() {
        let a = dev(
            "a",
            &[("pclk", "/clk-1"), ("ref", "/clk-2")],
            "/rst-7",
            Some("/pd-1"),
        );
        let b = dev("b", &[("pclk", "/clk-1")], "/rst-7", None);
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut p = Planner::new(&mut res, 4096).unwrap();
        p.peers([&a, &b]);
        let why = p.scmi(ScmiMode::Auto, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(why.as_deref(), Some("--scmi auto: a@0 has 'resets'"));
        p.add(&a, &DeviceOptions::default()).unwrap();
        p.add(&b, &DeviceOptions::default()).unwrap();
        let plan = p.finish(false).unwrap();
        let s = plan.scmi.as_ref().unwrap();
        let (clk, rst, pd) = (s.clock_provider, s.reset_provider, s.power_provider);
        let na = &plan.devices[0].node;
        assert_eq!(na.prop("clocks").unwrap(), cells_prop(&[clk, 0, clk, 1]));
        assert_eq!(na.prop("resets").unwrap(), cells_prop(&[rst, 0]));
        assert_eq!(na.prop("power-domains").unwrap(), cells_prop(&[pd, 0]));
        let nb = &plan.devices[1].node;
        assert_eq!(nb.prop("clocks").unwrap(), cells_prop(&[clk, 0]));
        assert_eq!(nb.prop("resets").unwrap(), cells_prop(&[rst, 0]), "shared");
        assert!(plan.clocks.is_empty(), "no fixed clocks with SCMI");
        let c = s.config();
        let names: Vec<&str> = c.clocks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["clk-1", "clk-2"]);
        assert_eq!(c.reset_domains[0].name, "a@0:rst");
        assert_eq!(
            c.reset_domains[0].action,
            Some(ResetAction::Device { index: 0 })
        );
        assert_eq!(c.power_domains[0].name, "a@0:0");
        c.validate().unwrap();
        assert!(plan.devices[0]
            .synthesized
            .iter()
            .any(|m| m == "a@0 'resets' rst: host /rst-7 → SCMI reset domain 0"));
    }

    /// The guest nodes: the doorbell, the channel under an mmio-sram page, /firmware/scmi
    /// with a protocol node only for what it serves.
    #[test]
    fn nodes_reach_the_platform_and_name_only_what_it_serves() {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut s = ScmiPlan::new(&mut res).unwrap();
        let c = s.clocks("d", &[clock("pclk", "/c", Some(1))]);
        assert_eq!(c.phandles, Some(vec![s.clock_provider, 0]));
        let n = s.nodes();
        assert_eq!(n[0].strings("compatible"), ["brcm,bcm2835-mbox"]);
        assert_eq!(
            n[0].prop("interrupts").unwrap(),
            cells_prop(&dt::spi_specifier(s.spi, false)),
            "edge: an irqfd pulse"
        );
        assert_eq!(n[1].children[0].strings("compatible"), ["arm,scmi-shmem"]);
        let scmi = &n[2].children[0];
        assert_eq!(scmi.name, "scmi");
        assert_eq!(
            scmi.prop("mboxes").unwrap(),
            cells_prop(&[s.mailbox_phandle])
        );
        let protocols: Vec<&str> = scmi.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(protocols, ["protocol@14"], "clocks only");
        // A clock without a rate, or at 0 Hz: no SCMI clock, a note with the fix.
        for hz in [None, Some(0)] {
            let none = s.clocks("d", &[clock("x", "/x", hz)]);
            assert!(none.phandles.is_none());
            assert!(none.note.unwrap().contains("clock-rates=x:HZ"));
        }
        s.config().validate().unwrap();
    }

    #[test]
    fn the_smc_transport_has_no_mailbox_and_names_its_function() {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut s = ScmiPlan::new(&mut res).unwrap();
        assert_eq!(s.smc_doorbell(), None, "the mailbox by default");
        s.clocks("d", &[clock("pclk", "/c", Some(1))]);
        s.transport = ScmiTransport::Smc {
            function: SMC_FUNCTION,
        };
        let n = s.nodes();
        assert_eq!(n.len(), 2, "sram and firmware: {n:?}");
        assert_eq!(n[0].children[0].strings("compatible"), ["arm,scmi-shmem"]);
        let scmi = &n[1].children[0];
        assert_eq!(scmi.strings("compatible"), ["arm,scmi-smc"]);
        assert_eq!(
            scmi.prop("arm,smc-id").unwrap(),
            cells_prop(&[SMC_FUNCTION])
        );
        assert!(scmi.prop("mboxes").is_none());
        assert_eq!(scmi.prop("shmem").unwrap(), cells_prop(&[s.shmem_phandle]));
        assert_eq!(
            s.smc_doorbell(),
            Some((SMC_FUNCTION, s.window + devices::scmi::mailbox::DOORBELL))
        );
    }

    #[test]
    fn modes_decide_whether_the_guest_gets_it() {
        let with = dev("a", &[], "/r", None);
        let mut without = with.clone();
        without.providers.clear();
        for (mode, descs, on) in [
            (ScmiMode::Auto, vec![without.clone()], false),
            (ScmiMode::Auto, vec![without.clone(), with.clone()], true),
            (ScmiMode::Off, vec![with.clone()], false),
            (ScmiMode::On, vec![without.clone()], true),
        ] {
            let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
            let mut p = Planner::new(&mut res, 4096).unwrap();
            assert_eq!(p.scmi(mode, &descs).unwrap().is_some(), on, "{mode:?}");
            assert_eq!(p.finish(false).unwrap().scmi.is_some(), on);
        }
    }

    #[test]
    fn scmi_names_are_printable_and_bounded() {
        assert_eq!(scmi_name("a\u{e9}b\0", || "x".into()), "a_b_");
        assert_eq!(scmi_name("", || "clock3".into()), "clock3");
        assert_eq!(scmi_name(&"n".repeat(100), || "x".into()).len(), MAX_NAME);
    }
}
