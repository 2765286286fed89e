//! The host regulators a device and its descendants take power from (`*-supply`), resolved to
//! what a guest fixed regulator standing for each needs: a name and, where the host tree fixes
//! it, a voltage.
//!
//! The host keeps its regulators: a guest fixed regulator only lets the guest's driver find
//! the supply its binding requires and read the voltage (an ADC's reference, an MMC card's
//! voltage window); the guest cannot switch the host's rail or change its voltage.

use super::clocks::PhandleLookup;
use super::hostdt::HostNode;
use super::refs::{self, RefKind};
use crate::dt::one_cell;

/// One `*-supply` property of the device or a descendant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSupply {
    /// The node's path from the device's node, its name first (`mmc@11240000`), as the
    /// property policy names it.
    pub path: String,
    /// The property (`vmmc-supply`).
    pub prop: String,
    /// The host regulator node's path: one guest regulator per distinct host regulator.
    pub key: String,
    /// The host's `regulator-name`, else the regulator node's name.
    pub name: String,
    /// The voltage, when the host tree fixes it (`regulator-min-microvolt` equal to
    /// `regulator-max-microvolt`); a range does not say where the host has set it.
    pub microvolt: Option<u32>,
}

/// The supplies of `top` and every descendant whose regulator the host tree has.
pub fn resolve(top: &HostNode, tree: &dyn PhandleLookup) -> Vec<HostSupply> {
    let mut out = Vec::new();
    walk(top, &top.name, tree, &mut out);
    out
}

fn walk(n: &HostNode, path: &str, tree: &dyn PhandleLookup, out: &mut Vec<HostSupply>) {
    for (prop, value) in &n.props {
        let supply = refs::reference(prop).is_some_and(|r| r.kind == RefKind::Supply);
        let Some((key, reg)) = supply
            .then(|| one_cell(value))
            .flatten()
            .and_then(|ph| tree.node(ph))
        else {
            continue;
        };
        out.push(HostSupply {
            path: path.to_string(),
            prop: prop.clone(),
            name: reg
                .strings("regulator-name")
                .and_then(|v| v.into_iter().next())
                .unwrap_or_else(|| reg.base_name().to_string()),
            microvolt: fixed_voltage(&reg),
            key,
        });
    }
    for c in &n.children {
        walk(c, &format!("{path}/{}", c.name), tree, out);
    }
}

fn fixed_voltage(reg: &HostNode) -> Option<u32> {
    let uv = |p: &str| reg.prop(p).and_then(one_cell);
    match (uv("regulator-min-microvolt"), uv("regulator-max-microvolt")) {
        (Some(min), Some(max)) if min == max => Some(min),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::cells_prop;
    use crate::guest_node::test_support::{host, Tree};

    #[test]
    fn supplies_of_the_device_and_its_children_are_resolved_with_fixed_voltages() {
        let vmmc = host(
            "regulator-vmmc",
            &[
                ("regulator-name", b"vmmc\0"),
                ("regulator-min-microvolt", &cells_prop(&[3_300_000])),
                ("regulator-max-microvolt", &cells_prop(&[3_300_000])),
            ],
        );
        let ldo = host(
            "ldo5",
            &[
                ("regulator-min-microvolt", &cells_prop(&[1_800_000])),
                ("regulator-max-microvolt", &cells_prop(&[3_300_000])),
            ],
        );
        let tree = Tree(vec![
            (0x10, "/regulator-vmmc", vmmc),
            (0x11, "/pmic/ldo5", ldo),
        ]);
        let mut dev = host(
            "mmc@11240000",
            &[
                ("vmmc-supply", &cells_prop(&[0x10])),
                ("vqmmc-supply", &cells_prop(&[0x11])),
                ("vdd-supply", &cells_prop(&[0x99])),
                ("bus-width", &cells_prop(&[4])),
            ],
        );
        dev.children
            .push(host("card@0", &[("vcc-supply", &cells_prop(&[0x10]))]));
        let s = resolve(&dev, &tree);
        let got: Vec<(&str, &str, &str, Option<u32>)> = s
            .iter()
            .map(|s| {
                (
                    s.path.as_str(),
                    s.prop.as_str(),
                    s.name.as_str(),
                    s.microvolt,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("mmc@11240000", "vmmc-supply", "vmmc", Some(3_300_000)),
                ("mmc@11240000", "vqmmc-supply", "ldo5", None),
                ("mmc@11240000/card@0", "vcc-supply", "vmmc", Some(3_300_000)),
            ],
            "a regulator the tree does not have (0x99) is left to the policy"
        );
        assert_eq!(s[0].key, "/regulator-vmmc");
        assert_eq!(s[0].key, s[2].key, "one host regulator, one key");
    }
}
