//! Host clocks → guest fixed clocks: one guest fixed clock per distinct host clock with a
//! rate (the host tree's or the user's), shared by every device that references it, and the
//! `apb_pclk` stand-in AMBA devices get.

use devices::dt::{free_node_name, FixedClock, GuestNode};
use devices::guest_node::clocks::{ClockRate, HostClock};
use devices::guest_node::hostdt::HostNode;

use super::desc::DeviceDesc;
use crate::resources::{Exhausted, Resources};

/// Rate of the fixed clock AMBA devices get as `apb_pclk`.
pub const APB_PCLK_HZ: u32 = 24_000_000;

/// A host clock as a guest fixed clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestClock {
    /// Which host clock (provider path and specifier).
    pub key: String,
    pub clock: FixedClock,
}

/// The guest clocks of one device.
#[derive(Default)]
pub(super) struct Clocks {
    /// One guest phandle per host `clocks` entry, when all have a rate.
    pub(super) phandles: Option<Vec<u32>>,
    /// Why `clocks` was dropped.
    pub(super) note: Option<String>,
    /// What each entry became.
    pub(super) made: Vec<String>,
}

impl Clocks {
    pub(super) fn phandles(&self) -> Option<&[u32]> {
        self.phandles.as_deref()
    }
}

/// The names `clock-rates=` can give device `d`'s clocks: each host clock's `clock-names`
/// entry, else its index; a descendant's (or group member's) as `CHILD/NAME`, CHILD its path
/// from the device's node. From the host node, so that a clock whose provider could not be
/// resolved can still be named.
pub(super) fn rate_names(d: &DeviceDesc) -> Vec<String> {
    fn names_of(n: Option<&HostNode>, resolved: &[HostClock], scope: &str, out: &mut Vec<String>) {
        let names = n.and_then(|n| n.strings("clock-names")).unwrap_or_default();
        for i in 0..names.len().max(resolved.len()) {
            let name = (resolved.get(i).and_then(|c| c.name.clone()))
                .or_else(|| names.get(i).cloned())
                .unwrap_or_else(|| i.to_string());
            out.push(format!("{scope}{name}"));
        }
    }
    let mut out = Vec::new();
    names_of(d.host_node.as_ref(), &d.clocks, "", &mut out);
    let Some(h) = &d.host_node else {
        return out;
    };
    // Breadth first, in the tree's order.
    let mut queue: std::collections::VecDeque<(&HostNode, String)> =
        h.children.iter().map(|c| (c, c.name.clone())).collect();
    while let Some((n, scope)) = queue.pop_front() {
        let path = format!("{}/{scope}", h.name);
        let resolved = d.child_clocks.iter().find(|cc| cc.path == path);
        let resolved = resolved.map_or(&[][..], |cc| &cc.clocks);
        names_of(Some(n), resolved, &format!("{scope}/"), &mut out);
        queue.extend(
            n.children
                .iter()
                .map(|c| (c, format!("{scope}/{}", c.name))),
        );
    }
    out
}

/// The first of `rates` that names none of `d`'s clocks, with the names it could give.
pub(super) fn unknown_rate(d: &DeviceDesc, rates: &[ClockRate]) -> Option<(String, Vec<String>)> {
    let known = rate_names(d);
    rates
        .iter()
        .find(|r| !known.contains(&r.name))
        .map(|r| (r.name.clone(), known))
}

/// The device's host clocks with the user's rates applied.
pub(super) fn with_user_rates(d: &DeviceDesc, rates: &[ClockRate]) -> Vec<HostClock> {
    let mut v = d.clocks.clone();
    for (i, c) in v.iter_mut().enumerate() {
        c.apply_user_rate(i, rates);
    }
    v
}

/// Guest phandles for device `dev`'s host clocks when every one has a rate (one guest fixed
/// clock per distinct host clock: one already in `guest` is shared, a new one is added there
/// with a phandle from `res`), else none and a note naming the clock.
pub(super) fn guest_clocks(
    res: &mut Resources,
    guest: &mut Vec<GuestClock>,
    dev: &str,
    host: &[HostClock],
) -> Result<Clocks, Exhausted> {
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
            dev, c.label, c.key
        ));
        return Ok(out);
    }
    let mut v = Vec::new();
    for (i, c) in host.iter().enumerate() {
        let ph = match guest.iter().find(|g| g.key == c.key) {
            Some(g) => g.clock.phandle,
            None => add_clock(res, guest, c)?,
        };
        let g = guest.iter().find(|g| g.clock.phandle == ph);
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

/// A guest fixed clock for host clock `c` (its phandle from `res`), added to `guest`; returns
/// its phandle.
fn add_clock(
    res: &mut Resources,
    guest: &mut Vec<GuestClock>,
    c: &HostClock,
) -> Result<u32, Exhausted> {
    let phandle = res.phandle()?;
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
    // "clock-<label>", without doubling a label that already says "clock"; two host clocks
    // with one label (or one cut to the same length) get distinct node names.
    let base = if safe.starts_with("clock") {
        safe
    } else {
        format!("clock-{safe}")
    };
    let name = free_node_name(&base, |n| guest.iter().any(|g| g.clock.name == n));
    guest.push(GuestClock {
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

/// The host clocks devices reference (`guest`), then the AMBA `apb_pclk` stand-in (phandle
/// `amba_clock`) when one of `nodes` references it.
pub(super) fn fixed_clocks(
    guest: &[GuestClock],
    amba_clock: u32,
    nodes: &[GuestNode],
) -> Vec<FixedClock> {
    let mut clocks: Vec<FixedClock> = guest.iter().map(|g| g.clock.clone()).collect();
    if nodes.iter().any(|n| references_phandle(n, amba_clock)) {
        clocks.push(FixedClock {
            name: "apb-pclk".into(),
            output: "apb-pclk".into(),
            phandle: amba_clock,
            hz: APB_PCLK_HZ,
        });
    }
    clocks
}

/// Whether `n` (or a child) has `clocks` cells equal to `phandle`.
pub fn references_phandle(n: &GuestNode, phandle: u32) -> bool {
    n.prop("clocks")
        .is_some_and(|c| c.chunks(4).any(|x| x == phandle.to_be_bytes()))
        || n.children.iter().any(|c| references_phandle(c, phandle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::layout;
    use crate::passthrough::plan::test_support::{clock, dt_desc, host};
    use crate::passthrough::plan::{DeviceOptions, IrqDesc, Planner};
    use devices::dt::cells_prop;
    use devices::vfio::device::DeviceKind;

    #[test]
    fn amba_devices_get_the_shared_clock_and_out_of_spis_is_named() {
        let pl031 = host(
            "pl031@9010000",
            &[
                ("compatible", b"arm,pl031\0arm,primecell\0".to_vec()),
                ("interrupts", cells_prop(&[0, 2, 4])),
            ],
        );
        let d = dt_desc("9010000.pl031", pl031, &[0x1000], 4096);
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
                assumed_level: false,
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
            let mut d = dt_desc(name, h, &[0x1000], 4096);
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
        let mut d = dt_desc("9010000.pl031", h, &[0x1000], 4096);
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
}
