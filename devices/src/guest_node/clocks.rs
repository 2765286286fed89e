//! The host clocks a device's `clocks` property references, resolved to rates the guest can be
//! given as fixed clocks.
//!
//! For each `clocks` entry (with its `clock-names` entry): the provider node found by phandle;
//! the rate from a `fixed-clock` provider's `clock-frequency`, else from the device's own
//! `assigned-clocks`/`assigned-clock-rates` for that clock. An entry without a rate is reported
//! as unresolved (the caller drops `clocks` and says why).

use crate::dt::cells_of;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::hostdt::HostNode;
use crate::dt::string_list;

/// Finds host DT nodes by phandle, and clock rates by clock name.
pub trait PhandleLookup {
    /// The node with `phandle`, and a key naming it uniquely (its path).
    fn node(&self, phandle: u32) -> Option<(String, HostNode)>;
    /// The current rate of the host clock called `name` (the common clock framework's name,
    /// which is the provider's `clock-output-names` entry), if the host tells it.
    fn clock_rate(&self, _name: &str) -> Option<u32> {
        None
    }
}

/// Where a clock's rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSource {
    /// The provider is a `fixed-clock`: its `clock-frequency`.
    FixedClock,
    /// The host's clock framework: /sys/kernel/debug/clk/NAME/clk_rate.
    Debugfs,
    /// The device's `assigned-clock-rates`.
    Assigned,
    /// The user's `clock-rates=` option.
    User,
}

impl std::fmt::Display for RateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateSource::FixedClock => "fixed-clock",
            RateSource::Debugfs => "debugfs clk_rate",
            RateSource::Assigned => "assigned-clock-rates",
            RateSource::User => "clock-rates=",
        })
    }
}

/// A rate the user gives for one of a device's clocks (`clock-rates=NAME:HZ`), by its
/// `clock-names` entry (or its index in `clocks` when the node has no `clock-names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockRate {
    pub name: String,
    pub hz: u32,
}

/// The rates of `rates` scoped to `scope`, a node under the passed device named by its path
/// from it (`usb@ff400000`, `clk@4f`): entries `SCOPE/NAME` as `NAME`. A group's members and a
/// device's descendants get their rates this way from the device's `clock-rates=`.
pub fn scoped_rates(rates: &[ClockRate], scope: &str) -> Vec<ClockRate> {
    rates
        .iter()
        .filter_map(|r| {
            let name = r.name.strip_prefix(scope)?.strip_prefix('/')?;
            Some(ClockRate {
                name: name.to_string(),
                hz: r.hz,
            })
        })
        .collect()
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
    /// Its rate and where that came from, if one could be found.
    pub hz: Option<u32>,
    pub source: Option<RateSource>,
}

impl HostClock {
    /// Applies the user's rate for this clock (entry `index` of `clocks`), which wins over
    /// what the host tree says.
    pub fn apply_user_rate(&mut self, index: usize, rates: &[ClockRate]) {
        let id = self.name.clone().unwrap_or_else(|| index.to_string());
        if let Some(r) = rates.iter().find(|r| r.name == id) {
            self.hz = Some(r.hz);
            self.source = Some(RateSource::User);
        }
    }
}

/// One (phandle, specifier) entry of a list such as `clocks`.
struct Specifier {
    path: String,
    provider: HostNode,
    args: Vec<u32>,
}

/// A (phandle, specifier) list such as `clocks` or `assigned-clocks`; `None` if a provider
/// is missing or the cells do not add up.
fn specifiers(v: &[u8], tree: &dyn PhandleLookup) -> Option<Vec<Specifier>> {
    let c = cells_of(v);
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let (path, provider) = tree.node(c[i])?;
        let n = provider.u32_prop("#clock-cells").unwrap_or(0) as usize;
        let args = c.get(i + 1..i + 1 + n)?.to_vec();
        out.push(Specifier {
            path,
            provider,
            args,
        });
        i += 1 + n;
    }
    Some(out)
}

/// The host clock's name in Linux's clock framework: the provider's `clock-output-names`
/// entry for `args` (index 0 without cells), else, for a controller that does not name its
/// outputs in the tree but whose driver Linux ships (the i.MX 8M CCMs), the driver's name for
/// output `args[0]`.
fn output_name(s: &Specifier) -> Option<String> {
    let idx = s.args.first().copied().unwrap_or(0);
    if let Some(names) = s.provider.prop("clock-output-names").map(string_list) {
        return names
            .get(if s.args.is_empty() { 0 } else { idx as usize })
            .cloned();
    }
    let [index] = s.args[..] else {
        return None;
    };
    let compatibles = s.provider.strings("compatible")?;
    linux_output_name(&compatibles, index).map(str::to_string)
}

/// Linux's name for output `index` of a clock controller with one of `compatibles`, from the
/// table `tools/clknames.py` generates.
pub fn linux_output_name(compatibles: &[String], index: u32) -> Option<&'static str> {
    let (_, outputs) = super::clock_ids::CONTROLLERS
        .iter()
        .find(|(c, _)| compatibles.iter().any(|x| x == c))?;
    let at = outputs.binary_search_by_key(&index, |&(i, _)| i).ok()?;
    Some(outputs[at].1)
}

/// The rate of one clock: a fixed clock's frequency, the host clock framework's current rate
/// (by output name), or the device's assigned rate.
fn rate_of(
    s: &Specifier,
    output: Option<&str>,
    assigned: &[(String, Vec<u32>, u32)],
    tree: &dyn PhandleLookup,
) -> Option<(u32, RateSource)> {
    let fixed = s
        .provider
        .strings("compatible")
        .is_some_and(|c| c.iter().any(|x| x == "fixed-clock"));
    if fixed && s.args.is_empty() {
        if let Some(hz) = s.provider.u32_prop("clock-frequency") {
            return Some((hz, RateSource::FixedClock));
        }
    }
    if let Some(hz) = output.and_then(|o| tree.clock_rate(o)).filter(|&r| r > 0) {
        return Some((hz, RateSource::Debugfs));
    }
    assigned
        .iter()
        .find(|(p, a, _)| *p == s.path && *a == s.args)
        .map(|&(_, _, r)| r)
        .filter(|&r| r > 0)
        .map(|r| (r, RateSource::Assigned))
}

/// The clocks of `dev`, in `clocks` order; empty if it has none or they cannot be parsed.
pub fn resolve(dev: &HostNode, tree: &dyn PhandleLookup) -> Vec<HostClock> {
    let Some(list) = dev.prop("clocks").and_then(|v| specifiers(v, tree)) else {
        return Vec::new();
    };
    let names = dev.strings("clock-names").unwrap_or_default();
    let rates = dev
        .prop("assigned-clock-rates")
        .map(cells_of)
        .unwrap_or_default();
    let assigned: Vec<(String, Vec<u32>, u32)> = dev
        .prop("assigned-clocks")
        .and_then(|v| specifiers(v, tree))
        .unwrap_or_default()
        .into_iter()
        .zip(rates)
        .map(|(s, r)| (s.path, s.args, r))
        .collect();
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let suffix: String = s.args.iter().map(|a| format!("-{a}")).collect();
            let output = output_name(&s);
            let rate = rate_of(&s, output.as_deref(), &assigned, tree);
            HostClock {
                name: names.get(i).cloned(),
                key: format!("{}{suffix}", s.path),
                label: output.unwrap_or_else(|| format!("{}{suffix}", s.provider.base_name())),
                hz: rate.map(|r| r.0),
                source: rate.map(|r| r.1),
            }
        })
        .collect()
}

/// The clocks of one descendant of a passed device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildClocks {
    /// The descendant's path from the device's node, its name first (`i2c@e6510000/clk@4f`),
    /// as the property policy names it.
    pub path: String,
    pub clocks: Vec<HostClock>,
}

/// The clocks of every descendant of `top` that has a `clocks` property (an I2C clock
/// multiplier's reference clocks, a codec's MCLK), resolved like the device's own.
pub fn resolve_children(top: &HostNode, tree: &dyn PhandleLookup) -> Vec<ChildClocks> {
    fn walk(n: &HostNode, path: &str, tree: &dyn PhandleLookup, out: &mut Vec<ChildClocks>) {
        for c in &n.children {
            let p = format!("{path}/{}", c.name);
            let clocks = resolve(c, tree);
            if !clocks.is_empty() {
                out.push(ChildClocks {
                    path: p.clone(),
                    clocks,
                });
            }
            walk(c, &p, tree, out);
        }
    }
    let mut out = Vec::new();
    walk(top, &top.name, tree, &mut out);
    out
}

/// The host's live device tree under /sys/firmware/devicetree/base (or a test copy). Its
/// phandles are indexed by one walk, on the first lookup.
pub struct SysfsTree {
    root: PathBuf,
    index: OnceLock<HashMap<u32, PathBuf>>,
    /// The clock framework's debugfs directory (/sys/kernel/debug/clk), for current rates.
    clk_debugfs: PathBuf,
}

impl SysfsTree {
    /// The tree at `root`, with clock rates from `clk_debugfs` where it is mounted.
    pub fn new(root: &Path, clk_debugfs: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            index: OnceLock::new(),
            clk_debugfs: clk_debugfs.to_path_buf(),
        }
    }

    fn walk(dir: &Path, index: &mut HashMap<u32, PathBuf>) {
        let own = std::fs::read(dir.join("phandle")).ok();
        if let Some(&ph) = own
            .as_deref()
            .map(cells_of)
            .as_deref()
            .and_then(|c| c.first())
        {
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

    fn clock_rate(&self, name: &str) -> Option<u32> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        let text = std::fs::read_to_string(self.clk_debugfs.join(name).join("clk_rate")).ok()?;
        let hz: u64 = text.trim().parse().ok()?;
        u32::try_from(hz).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::{cells_prop, strings_prop};

    #[test]
    fn scoped_rates_are_the_entries_under_a_node_path() {
        let r = |n: &str, hz| ClockRate { name: n.into(), hz };
        let rates = [
            r("ref", 1),
            r("usb@ff400000/otg", 2),
            r("usb@ff400000x/otg", 3),
            r("usb@ff400000/phy@0/ref", 4),
        ];
        assert_eq!(
            scoped_rates(&rates, "usb@ff400000"),
            [r("otg", 2), r("phy@0/ref", 4)]
        );
        assert_eq!(scoped_rates(&rates, "usb@ff400000/phy@0"), [r("ref", 4)]);
        assert!(scoped_rates(&rates, "ref").is_empty());
    }

    use crate::guest_node::test_support::{node, Tree};

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
                source: Some(RateSource::FixedClock),
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
        let t = SysfsTree::new(&d, &d.join("debug-clk"));
        let (path, n) = t.node(5).unwrap();
        assert_eq!(path, "/soc/clk@1");
        assert_eq!(n.prop("clock-frequency").unwrap(), cells_prop(&[100]));
        assert!(n.children.is_empty());
        assert!(t.node(6).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A clock controller with cells whose outputs are named, and a debugfs copy.
    struct Debugfs(Tree, PathBuf);

    impl PhandleLookup for Debugfs {
        fn node(&self, ph: u32) -> Option<(String, HostNode)> {
            self.0.node(ph)
        }
        fn clock_rate(&self, name: &str) -> Option<u32> {
            let t = SysfsTree::new(&self.1, &self.1);
            t.clock_rate(name)
        }
    }

    #[test]
    fn named_outputs_take_the_debugfs_rate_and_the_user_rate_wins() {
        let d = std::env::temp_dir().join(format!("platvmm-clk-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sdio1_ref")).unwrap();
        std::fs::write(d.join("sdio1_ref/clk_rate"), "187498123\n").unwrap();
        let ctrl = node(
            "clock-controller",
            vec![
                ("#clock-cells", cells_prop(&[1])),
                (
                    "clock-output-names",
                    strings_prop(&["lpd_lsbus", "sdio1_ref"]),
                ),
            ],
        );
        let t = Debugfs(Tree(vec![(3, "/clkc", ctrl)]), d.clone());
        let dev = node(
            "mmc@ff170000",
            vec![
                ("clocks", cells_prop(&[3, 1, 3, 0])),
                ("clock-names", strings_prop(&["clk_xin", "clk_ahb"])),
            ],
        );
        let mut c = resolve(&dev, &t);
        assert_eq!(c[0].label, "sdio1_ref");
        assert_eq!(c[0].hz, Some(187_498_123));
        assert_eq!(c[0].source, Some(RateSource::Debugfs));
        assert_eq!(
            (c[1].hz, c[1].source),
            (None, None),
            "lpd_lsbus not in debugfs"
        );
        let user = [ClockRate {
            name: "clk_ahb".into(),
            hz: 100_000_000,
        }];
        c[1].apply_user_rate(1, &user);
        assert_eq!(
            (c[1].hz, c[1].source),
            (Some(100_000_000), Some(RateSource::User))
        );
        c[0].apply_user_rate(0, &user);
        assert_eq!(
            c[0].source,
            Some(RateSource::Debugfs),
            "no user rate for clk_xin"
        );
        assert!(SysfsTree::new(&d, &d).clock_rate("../x").is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_imx8m_ccm_output_is_named_as_linux_names_it() {
        let d = std::env::temp_dir().join(format!("platvmm-ccm-{}", std::process::id()));
        std::fs::create_dir_all(d.join("uart1_root_clk")).unwrap();
        std::fs::write(d.join("uart1_root_clk/clk_rate"), "80000000\n").unwrap();
        let ccm = node(
            "clock-controller",
            vec![
                ("compatible", strings_prop(&["fsl,imx8mp-ccm"])),
                ("#clock-cells", cells_prop(&[1])),
            ],
        );
        let t = Debugfs(
            Tree(vec![(2, "/soc/clock-controller@30380000", ccm)]),
            d.clone(),
        );
        // IMX8MP_CLK_UART1_ROOT (251), IMX8MP_CLK_USDHC2_ROOT (258), and an index the
        // driver does not register (IMX8MP_CLK_END and beyond).
        let dev = node(
            "serial@30860000",
            vec![
                ("clocks", cells_prop(&[2, 251, 2, 258, 2, 9999])),
                ("clock-names", strings_prop(&["ipg", "per", "x"])),
            ],
        );
        let c = resolve(&dev, &t);
        assert_eq!(c[0].label, "uart1_root_clk");
        assert_eq!(
            (c[0].hz, c[0].source),
            (Some(80_000_000), Some(RateSource::Debugfs))
        );
        assert_eq!(
            (c[1].label.as_str(), c[1].hz),
            ("usdhc2_root_clk", None),
            "named, but not in this debugfs"
        );
        assert_eq!(c[2].label, "clock-controller-9999");
        let other = ["fsl,imx8mq-ccm".to_string()];
        assert_eq!(linux_output_name(&other, 202), Some("uart1_root_clk"));
        assert_eq!(linux_output_name(&["acme,ccm".to_string()], 1), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
