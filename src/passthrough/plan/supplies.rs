//! Host regulators → guest fixed regulators: one per distinct host regulator the VM's devices
//! (and their descendants) take power from, shared by every `*-supply` that names it.

use devices::dt::{free_node_name, FixedRegulator};
use devices::guest_node::policy::StandIn;
use devices::guest_node::supplies::HostSupply;

use crate::resources::{Exhausted, Resources};

/// A host regulator as a guest fixed regulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRegulator {
    /// Which host regulator (its node's path).
    pub key: String,
    pub regulator: FixedRegulator,
}

/// The guest regulators of one device: what its supplies became.
#[derive(Default)]
pub(super) struct Supplies {
    pub(super) stand_ins: Vec<StandIn>,
    pub(super) made: Vec<String>,
}

/// A guest regulator for each of `host` (one already in `guest` is shared, a new one is added
/// there with a phandle from `res`).
pub(super) fn guest_supplies(
    res: &mut Resources,
    guest: &mut Vec<GuestRegulator>,
    host: &[HostSupply],
) -> Result<Supplies, Exhausted> {
    let mut out = Supplies::default();
    for s in host {
        let r = match guest.iter().position(|g| g.key == s.key) {
            Some(i) => &guest[i].regulator,
            None => add_regulator(res, guest, s)?,
        };
        let volts = match r.microvolt {
            Some(uv) => format!("{} mV", uv / 1000),
            None => "no fixed voltage in the host tree".to_string(),
        };
        out.made.push(format!(
            "{} '{}': host regulator {} ({volts}) → guest fixed regulator /{} (the host \
             keeps the rail; the guest cannot switch it)",
            s.path, s.prop, s.key, r.name
        ));
        out.stand_ins.push(StandIn {
            path: s.path.clone(),
            prop: s.prop.clone(),
            cells: vec![r.phandle],
        });
    }
    Ok(out)
}

fn add_regulator<'g>(
    res: &mut Resources,
    guest: &'g mut Vec<GuestRegulator>,
    s: &HostSupply,
) -> Result<&'g FixedRegulator, Exhausted> {
    let phandle = res.phandle()?;
    // The binding's node name: "regulator-" and lower-case letters, digits and '-'.
    let safe: String = s
        .name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let safe = safe.trim_matches('-');
    let base = match safe.strip_prefix("regulator") {
        Some(rest) => format!("regulator{rest}"),
        None => format!("regulator-{safe}"),
    };
    let name = free_node_name(&base, |n| guest.iter().any(|g| g.regulator.name == n));
    guest.push(GuestRegulator {
        key: s.key.clone(),
        regulator: FixedRegulator {
            name,
            regulator_name: s.name.clone(),
            microvolt: s.microvolt,
            phandle,
        },
    });
    Ok(&guest[guest.len() - 1].regulator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::layout;

    fn supply(path: &str, prop: &str, key: &str, name: &str, uv: Option<u32>) -> HostSupply {
        HostSupply {
            path: path.into(),
            prop: prop.into(),
            key: key.into(),
            name: name.into(),
            microvolt: uv,
        }
    }

    #[test]
    fn one_guest_regulator_per_host_regulator_shared_by_supplies() {
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let mut guest = Vec::new();
        let host = [
            supply("mmc@1", "vmmc-supply", "/reg-a", "VDD_3V3", Some(3_300_000)),
            supply("mmc@1", "vqmmc-supply", "/pmic/ldo5", "ldo5", None),
            supply(
                "mmc@1/card@0",
                "vcc-supply",
                "/reg-a",
                "VDD_3V3",
                Some(3_300_000),
            ),
            supply(
                "adc@2",
                "vref-supply",
                "/reg-b",
                "regulator-VDD 3v3",
                Some(1_800_000),
            ),
        ];
        let s = guest_supplies(&mut res, &mut guest, &host).unwrap();
        let names: Vec<&str> = guest.iter().map(|g| g.regulator.name.as_str()).collect();
        assert_eq!(
            names,
            ["regulator-vdd-3v3", "regulator-ldo5", "regulator-vdd-3v3-1"]
        );
        assert_eq!(s.stand_ins.len(), 4);
        assert_eq!(s.stand_ins[0].cells, s.stand_ins[2].cells, "shared");
        assert_ne!(s.stand_ins[0].cells, s.stand_ins[1].cells);
        assert_eq!(s.stand_ins[2].path, "mmc@1/card@0");
        assert!(s.made[1].contains("no fixed voltage"), "{}", s.made[1]);
        let node = guest[0].regulator.node();
        assert_eq!(
            node.prop("regulator-min-microvolt"),
            Some(&3_300_000u32.to_be_bytes()[..])
        );
        assert!(guest[1]
            .regulator
            .node()
            .prop("regulator-min-microvolt")
            .is_none());
        // A second device's supply of the same host regulator adds nothing.
        let again = guest_supplies(&mut res, &mut guest, &host[..1]).unwrap();
        assert_eq!(guest.len(), 3);
        assert_eq!(again.stand_ins[0].cells, s.stand_ins[0].cells);
    }
}
