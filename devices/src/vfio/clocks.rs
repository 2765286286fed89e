//! The host clocks a device's `clocks` property references, resolved to rates the guest can be
//! given as fixed clocks.
//!
//! For each `clocks` entry (with its `clock-names` entry): the provider node found by phandle;
//! the rate from a `fixed-clock` provider's `clock-frequency`, else from the device's own
//! `assigned-clocks`/`assigned-clock-rates` for that clock. An entry without a rate is reported
//! as unresolved (the caller drops `clocks` and says why).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::hostdt::{string_list, HostNode};

/// Finds host DT nodes by phandle.
pub trait PhandleLookup {
    /// The node with `phandle`, and a key naming it uniquely (its path).
    fn node(&self, phandle: u32) -> Option<(String, HostNode)>;
}

/// One clock of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostClock {
    /// The device's `clock-names` entry, if any.
    pub name: Option<String>,
    /// Which host clock: the provider's path, plus its specifier cells if it has any.
    pub key: String,
    /// A name for the guest node: the provider's `clock-output-names` entry, else its node
    /// name (plus specifier cells).
    pub label: String,
    /// Its rate, if one could be found.
    pub hz: Option<u32>,
}

fn cells(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn u32_prop(n: &HostNode, name: &str) -> Option<u32> {
    n.prop(name).and_then(|v| cells(v).first().copied())
}

/// A (phandle, specifier) list such as `clocks` or `assigned-clocks`; `None` if a provider
/// is missing or the cells do not add up.
fn specifiers(v: &[u8], tree: &dyn PhandleLookup) -> Option<Vec<(String, HostNode, Vec<u32>)>> {
    let c = cells(v);
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let (path, provider) = tree.node(c[i])?;
        let n = u32_prop(&provider, "#clock-cells").unwrap_or(0) as usize;
        let args = c.get(i + 1..i + 1 + n)?.to_vec();
        out.push((path, provider, args));
        i += 1 + n;
    }
    Some(out)
}

/// The clocks of `dev`, in `clocks` order; empty if it has none or they cannot be parsed.
pub fn resolve(dev: &HostNode, tree: &dyn PhandleLookup) -> Vec<HostClock> {
    let Some(list) = dev.prop("clocks").and_then(|v| specifiers(v, tree)) else {
        return Vec::new();
    };
    let names = dev.strings("clock-names").unwrap_or_default();
    let assigned: Vec<(String, Vec<u32>)> = dev
        .prop("assigned-clocks")
        .and_then(|v| specifiers(v, tree))
        .unwrap_or_default()
        .into_iter()
        .map(|(p, _, a)| (p, a))
        .collect();
    let rates = dev
        .prop("assigned-clock-rates")
        .map(cells)
        .unwrap_or_default();
    list.into_iter()
        .enumerate()
        .map(|(i, (path, provider, args))| {
            let fixed = provider
                .strings("compatible")
                .is_some_and(|c| c.iter().any(|x| x == "fixed-clock"));
            let hz = if fixed && args.is_empty() {
                u32_prop(&provider, "clock-frequency")
            } else {
                None
            }
            .or_else(|| {
                let j = assigned
                    .iter()
                    .position(|(p, a)| *p == path && *a == args)?;
                rates.get(j).copied().filter(|&r| r > 0)
            });
            let suffix: String = args.iter().map(|a| format!("-{a}")).collect();
            let output = provider.prop("clock-output-names").map(string_list);
            let idx = args.first().copied().unwrap_or(0) as usize;
            let label = match output
                .as_ref()
                .and_then(|o| o.get(if args.is_empty() { 0 } else { idx }))
            {
                Some(o) => o.clone(),
                None => format!("{}{suffix}", provider.base_name()),
            };
            HostClock {
                name: names.get(i).cloned(),
                key: format!("{path}{suffix}"),
                label,
                hz,
            }
        })
        .collect()
}

/// The host's live device tree under /sys/firmware/devicetree/base (or a test copy). Its
/// phandles are indexed by one walk, on the first lookup.
pub struct SysfsTree {
    root: PathBuf,
    index: OnceLock<HashMap<u32, PathBuf>>,
}

impl SysfsTree {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            index: OnceLock::new(),
        }
    }

    fn walk(dir: &Path, index: &mut HashMap<u32, PathBuf>) {
        let own = std::fs::read(dir.join("phandle")).ok();
        if let Some(&ph) = own.as_deref().map(cells).as_deref().and_then(|c| c.first()) {
            index.insert(ph, dir.to_path_buf());
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                Self::walk(&e.path(), index);
            }
        }
    }
}

impl PhandleLookup for SysfsTree {
    fn node(&self, phandle: u32) -> Option<(String, HostNode)> {
        let index = self.index.get_or_init(|| {
            let mut m = HashMap::new();
            Self::walk(&self.root, &mut m);
            m
        });
        let dir = index.get(&phandle)?.clone();
        // Only the provider's own properties matter: do not read a whole subtree.
        let n = HostNode::read_props(&dir).ok()?;
        let rel = dir.strip_prefix(&self.root).unwrap_or(&dir);
        Some((format!("/{}", rel.display()), n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfio::node::{cells_prop, strings_prop};

    struct Tree(Vec<(u32, &'static str, HostNode)>);

    impl PhandleLookup for Tree {
        fn node(&self, ph: u32) -> Option<(String, HostNode)> {
            self.0
                .iter()
                .find(|(p, _, _)| *p == ph)
                .map(|(_, path, n)| (path.to_string(), n.clone()))
        }
    }

    fn node(name: &str, props: Vec<(&str, Vec<u8>)>) -> HostNode {
        HostNode {
            name: name.into(),
            props: props.into_iter().map(|(n, v)| (n.into(), v)).collect(),
            children: vec![],
        }
    }

    fn tree() -> Tree {
        Tree(vec![
            (
                0x8000,
                "/apb-pclk",
                node(
                    "apb-pclk",
                    vec![
                        ("compatible", strings_prop(&["fixed-clock"])),
                        ("#clock-cells", cells_prop(&[0])),
                        ("clock-frequency", cells_prop(&[24_000_000])),
                        ("clock-output-names", strings_prop(&["clk24mhz"])),
                    ],
                ),
            ),
            (
                3,
                "/firmware/zynqmp-firmware/clock-controller",
                node("clock-controller", vec![("#clock-cells", cells_prop(&[1]))]),
            ),
        ])
    }

    #[test]
    fn fixed_clock_rates_and_names() {
        let dev = node(
            "pl031@9010000",
            vec![
                ("clocks", cells_prop(&[0x8000])),
                ("clock-names", strings_prop(&["apb_pclk"])),
            ],
        );
        let c = resolve(&dev, &tree());
        assert_eq!(
            c,
            [HostClock {
                name: Some("apb_pclk".into()),
                key: "/apb-pclk".into(),
                label: "clk24mhz".into(),
                hz: Some(24_000_000),
            }]
        );
    }

    #[test]
    fn provider_with_cells_needs_an_assigned_rate() {
        // As zynqmp.dtsi's GEM: <&zynqmp_clk 31>, <&zynqmp_clk 104>; one rate assigned.
        let dev = node(
            "ethernet@ff0e0000",
            vec![
                ("clocks", cells_prop(&[3, 31, 3, 104])),
                ("clock-names", strings_prop(&["pclk", "tx_clk"])),
                ("assigned-clocks", cells_prop(&[3, 104])),
                ("assigned-clock-rates", cells_prop(&[125_000_000])),
            ],
        );
        let c = resolve(&dev, &tree());
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].hz, None,
            "no rate for pclk: no fixed clock, none assigned"
        );
        assert_eq!(c[0].key, "/firmware/zynqmp-firmware/clock-controller-31");
        assert_eq!(c[0].label, "clock-controller-31");
        assert_eq!(c[1].hz, Some(125_000_000));
        assert_eq!(c[1].name.as_deref(), Some("tx_clk"));
    }

    #[test]
    fn unknown_providers_and_short_cells_resolve_to_nothing() {
        let missing = node("x@0", vec![("clocks", cells_prop(&[77]))]);
        assert!(resolve(&missing, &tree()).is_empty());
        let short = node("x@0", vec![("clocks", cells_prop(&[3]))]);
        assert!(resolve(&short, &tree()).is_empty());
        assert!(resolve(&node("x@0", vec![]), &tree()).is_empty());
    }

    #[test]
    fn sysfs_tree_finds_a_provider_by_phandle() {
        let d = std::env::temp_dir().join(format!("platvmm-dt-{}", std::process::id()));
        let clk = d.join("soc/clk@1");
        std::fs::create_dir_all(clk.join("child")).unwrap();
        std::fs::write(clk.join("phandle"), cells_prop(&[5])).unwrap();
        std::fs::write(clk.join("compatible"), strings_prop(&["fixed-clock"])).unwrap();
        std::fs::write(clk.join("clock-frequency"), cells_prop(&[100])).unwrap();
        let t = SysfsTree::new(&d);
        let (path, n) = t.node(5).unwrap();
        assert_eq!(path, "/soc/clk@1");
        assert_eq!(n.prop("clock-frequency").unwrap(), cells_prop(&[100]));
        assert!(n.children.is_empty());
        assert!(t.node(6).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
