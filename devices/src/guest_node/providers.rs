//! The reset lines and power domains a device and its descendants reference (`resets`,
//! `power-domains`), resolved to host providers: what a system controller serving the guest
//! (platvmm's SCMI platform) needs to give each one an identifier.

use super::clocks::PhandleLookup;
use super::hostdt::HostNode;
use crate::dt::cells_of;

/// The provider references a system controller stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Reset,
    PowerDomain,
}

impl ProviderKind {
    /// The reference property, its provider's cells and its names.
    pub fn props(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Reset => ("resets", "#reset-cells", "reset-names"),
            Self::PowerDomain => ("power-domains", "#power-domain-cells", "power-domain-names"),
        }
    }
}

/// One entry of a node's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The provider's path and the entry's arguments (`/reset-controller@ff5e0230-3`): one
    /// guest identifier per distinct key.
    pub key: String,
    /// The entry's `…-names` entry, if any.
    pub name: Option<String>,
}

/// The `resets` or `power-domains` of one node of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntries {
    /// The node's path from the device's node, its name first, as the property policy names
    /// it.
    pub path: String,
    pub kind: ProviderKind,
    pub entries: Vec<HostEntry>,
}

/// The references of `kind` of `top` and its descendants whose every entry decodes (a
/// provider the tree does not have, or cells that do not add up, leave the node's
/// reference to the property policy, which drops it).
pub fn resolve(top: &HostNode, kind: ProviderKind, tree: &dyn PhandleLookup) -> Vec<NodeEntries> {
    let mut out = Vec::new();
    walk(top, &top.name, kind, tree, &mut out);
    out
}

/// The `resets` and the `power-domains` of `top` and its descendants.
pub fn resolve_all(top: &HostNode, tree: &dyn PhandleLookup) -> Vec<NodeEntries> {
    let mut v = resolve(top, ProviderKind::Reset, tree);
    v.extend(resolve(top, ProviderKind::PowerDomain, tree));
    v
}

fn walk(
    n: &HostNode,
    path: &str,
    kind: ProviderKind,
    tree: &dyn PhandleLookup,
    out: &mut Vec<NodeEntries>,
) {
    let (prop, cells, names) = kind.props();
    if let Some(entries) = n.prop(prop).and_then(|v| decode(v, cells, tree)) {
        let names = n.strings(names).unwrap_or_default();
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, key)| HostEntry {
                key,
                name: names.get(i).cloned(),
            })
            .collect();
        out.push(NodeEntries {
            path: path.to_string(),
            kind,
            entries,
        });
    }
    for c in &n.children {
        walk(c, &format!("{path}/{}", c.name), kind, tree, out);
    }
}

/// The keys of a `<&provider args...>` list, each provider's `cells` telling how many args.
fn decode(v: &[u8], cells: &str, tree: &dyn PhandleLookup) -> Option<Vec<String>> {
    let c = cells_of(v);
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let (path, provider) = tree.node(c[i])?;
        let n = provider.u32_prop(cells).unwrap_or(0) as usize;
        let args = c.get(i + 1..i.checked_add(1 + n)?)?;
        out.push(args.iter().fold(path, |k, a| format!("{k}-{a}")));
        i += 1 + n;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::cells_prop;
    use crate::guest_node::test_support::{host, Tree};

    #[test]
    fn resets_and_power_domains_of_a_device_and_its_children() {
        let rst = host("reset-controller@1", &[("#reset-cells", &cells_prop(&[1]))]);
        let pd = host(
            "power-controller",
            &[("#power-domain-cells", &cells_prop(&[0]))],
        );
        let tree = Tree(vec![
            (0x10, "/reset-controller@1", rst),
            (0x11, "/pmu/pd", pd),
        ]);
        let mut dev = host(
            "usb@ff9d0000",
            &[
                ("resets", &cells_prop(&[0x10, 3, 0x10, 4])),
                ("reset-names", b"usb_crst\0usb_hibrst\0"),
                ("power-domains", &cells_prop(&[0x11])),
            ],
        );
        dev.children
            .push(host("usb@fe200000", &[("resets", &cells_prop(&[0x10, 9]))]));
        dev.children
            .push(host("phy@0", &[("resets", &cells_prop(&[0x99, 1]))]));
        let r = resolve(&dev, ProviderKind::Reset, &tree);
        assert_eq!(
            r.len(),
            2,
            "a provider the tree lacks is the policy's: {r:?}"
        );
        assert_eq!(r[0].path, "usb@ff9d0000");
        assert_eq!(
            r[0].entries,
            [
                HostEntry {
                    key: "/reset-controller@1-3".into(),
                    name: Some("usb_crst".into())
                },
                HostEntry {
                    key: "/reset-controller@1-4".into(),
                    name: Some("usb_hibrst".into())
                },
            ]
        );
        assert_eq!(r[1].path, "usb@ff9d0000/usb@fe200000");
        assert_eq!(r[1].entries[0].name, None);
        let p = resolve(&dev, ProviderKind::PowerDomain, &tree);
        assert_eq!(p[0].entries[0].key, "/pmu/pd");
        // Cells that do not add up: nothing.
        let cut = host("x", &[("resets", &cells_prop(&[0x10]))]);
        assert!(resolve(&cut, ProviderKind::Reset, &tree).is_empty());
    }
}
