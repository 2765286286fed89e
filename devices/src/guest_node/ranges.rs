//! A passed device's `ranges` for the guest: its children's addresses (their `reg`, kept as
//! the host has them) translated into the guest addresses of the regions they fall in.
//!
//! On the host, `ranges` maps child addresses to the parent bus; platvmm knows, for each
//! region it passes, the host bus address (the host `reg` entry VFIO made it from) and the
//! guest address it placed it at ([`Window`]). The guest `ranges` keeps each host range's
//! child side and replaces its parent side by the guest address, piece by piece where a range
//! spans several regions; what falls outside every passed region is not reachable and is left
//! out. An empty host `ranges` (identity) becomes one entry per region.

use super::hostdt::HostNode;
use crate::dt::whole_cells;

/// Where one region's host bus addresses went in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Host parent-bus address (as in the host node's `reg`).
    pub host: u64,
    pub guest: u64,
    pub size: u64,
}

/// `#address-cells` and `#size-cells` of a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusCells {
    pub address: u32,
    pub size: u32,
}

/// The guest root's (and so the guest parent's of every passed device).
pub const GUEST_BUS: BusCells = BusCells {
    address: 2,
    size: 2,
};

/// A number of one or two cells (more: not an address platvmm translates).
fn number(c: &[u32]) -> Option<u64> {
    match c {
        [] => Some(0),
        [a] => Some(u64::from(*a)),
        [hi, lo] => Some((u64::from(*hi) << 32) | u64::from(*lo)),
        _ => None,
    }
}

fn put(out: &mut Vec<u8>, v: u64, n: u32) -> Result<(), String> {
    match n {
        1 => out.extend(
            u32::try_from(v)
                .map_err(|_| format!("{v:#x} needs two cells"))?
                .to_be_bytes(),
        ),
        2 => out.extend(v.to_be_bytes()),
        _ => return Err(format!("{n}-cell numbers are not translated")),
    }
    Ok(())
}

/// The node's own bus cells (the DT defaults when absent: 2 and 1).
pub fn own_cells(n: &HostNode) -> BusCells {
    let get = |p: &str, d: u32| {
        n.prop(p)
            .and_then(whole_cells)
            .and_then(|c| c.first().copied())
            .unwrap_or(d)
    };
    BusCells {
        address: get("#address-cells", 2),
        size: get("#size-cells", 1),
    }
}

/// The host node's `reg` entries (address, size) on its parent bus `parent`.
pub fn host_regs(n: &HostNode, parent: BusCells) -> Option<Vec<(u64, u64)>> {
    let c = whole_cells(n.prop("reg")?)?;
    let step = (parent.address + parent.size) as usize;
    if step == 0 || c.len() % step != 0 {
        return None;
    }
    c.chunks_exact(step)
        .map(|e| {
            let (a, s) = e.split_at(parent.address as usize);
            Some((number(a)?, number(s)?))
        })
        .collect()
}

/// Windows for the regions VFIO made from `host` entries (the empty ones have no region and
/// no guest address) placed at `guest` (address, size), in order; `None` if they do not pair.
pub fn windows(host: &[(u64, u64)], guest: &[(u64, u64)]) -> Option<Vec<Window>> {
    let host: Vec<_> = host.iter().filter(|r| r.1 > 0).collect();
    (host.len() == guest.len()).then(|| {
        host.iter()
            .zip(guest)
            .map(|(h, g)| Window {
                host: h.0,
                guest: g.0,
                size: g.1,
            })
            .collect()
    })
}

/// One host range: child address, parent-bus address, length.
struct Range {
    child: u64,
    parent: u64,
    len: u64,
}

fn host_ranges(n: &HostNode, parent: BusCells, windows: &[Window]) -> Result<Vec<Range>, String> {
    let own = own_cells(n);
    let v = n.prop("ranges").unwrap_or_default();
    if v.is_empty() {
        return Ok(windows
            .iter()
            .map(|w| Range {
                child: w.host,
                parent: w.host,
                len: w.size,
            })
            .collect());
    }
    let c = whole_cells(v).ok_or("its length is not whole cells")?;
    let (ca, pa, cs) = (
        own.address as usize,
        parent.address as usize,
        own.size as usize,
    );
    if ca + pa + cs == 0 || c.len() % (ca + pa + cs) != 0 {
        return Err("its length does not match #address-cells/#size-cells".into());
    }
    c.chunks_exact(ca + pa + cs)
        .map(|e| {
            let bad = || {
                format!(
                    "an entry of {}-cell addresses is not translated",
                    ca.max(pa)
                )
            };
            Ok(Range {
                child: number(&e[..ca]).ok_or_else(bad)?,
                parent: number(&e[ca..ca + pa]).ok_or_else(bad)?,
                len: number(&e[ca + pa..]).ok_or_else(bad)?,
            })
        })
        .collect()
}

/// The guest `ranges` of host node `n` (on host bus `parent`) whose regions went to `windows`.
/// `Err` says why there is none.
pub fn guest_ranges(n: &HostNode, parent: BusCells, windows: &[Window]) -> Result<Vec<u8>, String> {
    let own = own_cells(n);
    let mut out = Vec::new();
    for r in host_ranges(n, parent, windows)? {
        for w in windows {
            let lo = r.parent.max(w.host);
            let hi = r
                .parent
                .saturating_add(r.len)
                .min(w.host.saturating_add(w.size));
            if lo >= hi {
                continue;
            }
            let child = r
                .child
                .checked_add(lo - r.parent)
                .ok_or("a child address overflows")?;
            put(&mut out, child, own.address)?;
            put(&mut out, w.guest + (lo - w.host), GUEST_BUS.address)?;
            put(&mut out, hi - lo, own.size)?;
        }
    }
    if out.is_empty() {
        return Err("none of its ranges reaches a passed region".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::cells_prop;
    use crate::guest_node::test_support::host;

    const BUS64: BusCells = BusCells {
        address: 2,
        size: 2,
    };

    #[test]
    fn caam_controller_ranges_follow_its_region() {
        // fsl-ls1046a.dtsi: crypto@1700000, 1 address/size cell inside, ranges into the
        // 64-bit soc bus.
        let n = host(
            "crypto@1700000",
            &[
                ("#address-cells", &cells_prop(&[1])),
                ("#size-cells", &cells_prop(&[1])),
                ("reg", &cells_prop(&[0, 0x170_0000, 0, 0x10_0000])),
                ("ranges", &cells_prop(&[0, 0, 0x170_0000, 0x10_0000])),
            ],
        );
        let regs = host_regs(&n, BUS64).unwrap();
        assert_eq!(regs, [(0x170_0000, 0x10_0000)]);
        let w = windows(&regs, &[(0x4000_0000, 0x10_0000)]).unwrap();
        let r = guest_ranges(&n, BUS64, &w).unwrap();
        assert_eq!(r, cells_prop(&[0, 0, 0x4000_0000, 0x10_0000]));
    }

    #[test]
    fn identity_ranges_become_one_entry_per_region() {
        // A glue with `ranges;` and 2/2 cells (zynqmp.dtsi usb@ff9d0000), two regions.
        let n = host(
            "usb@ff9d0000",
            &[
                ("#address-cells", &cells_prop(&[2])),
                ("#size-cells", &cells_prop(&[2])),
                ("ranges", b""),
            ],
        );
        let w = [
            Window {
                host: 0xff9d_0000,
                guest: 0x4000_0000,
                size: 0x100,
            },
            Window {
                host: 0xfe20_0000,
                guest: 0x4010_0000,
                size: 0x4_0000,
            },
        ];
        let r = guest_ranges(&n, BUS64, &w).unwrap();
        let want: Vec<u32> = vec![
            0,
            0xff9d_0000,
            0,
            0x4000_0000,
            0,
            0x100,
            0,
            0xfe20_0000,
            0,
            0x4010_0000,
            0,
            0x4_0000,
        ];
        assert_eq!(r, cells_prop(&want));
    }

    #[test]
    fn a_range_spanning_two_regions_is_split_and_the_rest_left_out() {
        // 1-cell child space over 2 regions of a 32-bit bus, plus a range to elsewhere.
        let n = host(
            "bus@1000000",
            &[
                ("#address-cells", &cells_prop(&[1])),
                ("#size-cells", &cells_prop(&[1])),
                (
                    "ranges",
                    &cells_prop(&[0, 0x100_0000, 0x2_0000, 0x8000_0000, 0x9000_0000, 0x1000]),
                ),
            ],
        );
        let bus32 = BusCells {
            address: 1,
            size: 1,
        };
        let w = [
            Window {
                host: 0x100_0000,
                guest: 0x4000_0000,
                size: 0x1_0000,
            },
            Window {
                host: 0x101_0000,
                guest: 0x4100_0000,
                size: 0x1_0000,
            },
        ];
        let r = guest_ranges(&n, bus32, &w).unwrap();
        let want = [
            0,
            0,
            0x4000_0000,
            0x1_0000,
            0x1_0000,
            0,
            0x4100_0000,
            0x1_0000,
        ];
        assert_eq!(r, cells_prop(&want));
    }

    #[test]
    fn untranslatable_ranges_say_why() {
        let n = host(
            "pcie@0",
            &[
                ("#address-cells", &cells_prop(&[3])),
                ("#size-cells", &cells_prop(&[2])),
                (
                    "ranges",
                    &cells_prop(&[0x0200_0000, 0, 0, 0, 0x1000, 0, 0x1000]),
                ),
            ],
        );
        let w = [Window {
            host: 0x1000,
            guest: 0x4000_0000,
            size: 0x1000,
        }];
        assert!(guest_ranges(&n, BUS64, &w).unwrap_err().contains("3-cell"));
        let ragged = host("x@0", &[("ranges", &[0, 0, 1])]);
        assert!(guest_ranges(&ragged, BUS64, &w).is_err());
        let elsewhere = host(
            "x@0",
            &[
                ("#size-cells", &cells_prop(&[2])),
                ("ranges", &cells_prop(&[0, 0, 0, 0x9000, 0, 0x10])),
            ],
        );
        assert!(guest_ranges(&elsewhere, BUS64, &w)
            .unwrap_err()
            .contains("none"));
        // Whole-cell garbage never panics, whatever the cells say.
        let huge = host(
            "x@0",
            &[
                ("#address-cells", &cells_prop(&[1])),
                ("#size-cells", &cells_prop(&[1])),
                (
                    "ranges",
                    &cells_prop(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX]),
                ),
            ],
        );
        let _ = guest_ranges(&huge, BUS64, &w);
        assert!(host_regs(&host("x@0", &[("reg", &[0; 12])]), BUS64).is_none());
    }
}
