//! The guest device tree's vocabulary, shared by every device kind and by the FDT writer:
//! [`GuestNode`] (a node as names and raw property values), property encoders and decoders,
//! and the GIC interrupt specifier (the one place its cells are spelled out).

/// First cell of a GIC interrupt specifier: a shared peripheral interrupt.
pub const GIC_SPI: u32 = 0;
/// First cell of a GIC interrupt specifier: a private peripheral interrupt.
pub const GIC_PPI: u32 = 1;
/// Third cell: trigger type (include/dt-bindings/interrupt-controller/irq.h).
pub const IRQ_TYPE_EDGE_RISING: u32 = 1;
pub const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
pub const IRQ_TYPE_LEVEL_LOW: u32 = 8;

/// The three cells of a GIC SPI specifier: level-high for a level interrupt, rising edge
/// otherwise (an irqfd pulses an edge line).
pub fn spi_specifier(spi: u32, level: bool) -> [u32; 3] {
    let trigger = if level {
        IRQ_TYPE_LEVEL_HIGH
    } else {
        IRQ_TYPE_EDGE_RISING
    };
    [GIC_SPI, spi, trigger]
}

/// Whether the trigger cell of a GIC specifier is a level type.
pub fn is_level(trigger: u32) -> bool {
    trigger & (IRQ_TYPE_LEVEL_HIGH | IRQ_TYPE_LEVEL_LOW) != 0
}

/// The flattened device tree's magic and structure-block tokens (DT specification 5.4), for
/// the code that walks or patches a DTB itself.
pub mod fdt_token {
    pub const FDT_MAGIC: u32 = 0xd00d_feed;
    pub const FDT_BEGIN_NODE: u32 = 1;
    pub const FDT_END_NODE: u32 = 2;
    pub const FDT_PROP: u32 = 3;
    pub const FDT_NOP: u32 = 4;
    pub const FDT_END: u32 = 9;
}

/// Whether the guest tree's writer takes a property called `name`: non-empty, without NUL or
/// `/` (what dtc and Linux read back). Its length and other characters do not matter.
pub fn writable_prop_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['\0', '/'])
}

/// A device-tree node to write into the guest tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestNode {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<GuestNode>,
}

impl GuestNode {
    /// A node without children holding these properties, in this order.
    pub fn with_props(name: &str, props: &[(&str, &[u8])]) -> Self {
        Self {
            name: name.into(),
            props: props
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            children: vec![],
        }
    }

    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A string-list property (empty if absent).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.prop(name).map(string_list).unwrap_or_default()
    }

    /// Sets (replacing) a property.
    pub fn set(&mut self, name: &str, value: Vec<u8>) {
        match self.props.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value,
            None => self.props.push((name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.props.len();
        self.props.retain(|(n, _)| n != name);
        before != self.props.len()
    }

    /// Merges `overlay`: its properties replace ours, its children merge by name.
    pub fn merge(&mut self, overlay: &GuestNode) {
        for (n, v) in &overlay.props {
            self.set(n, v.clone());
        }
        for oc in &overlay.children {
            match self.children.iter_mut().find(|c| c.name == oc.name) {
                Some(c) => c.merge(oc),
                None => self.children.push(oc.clone()),
            }
        }
    }
}

/// Encodes a string list property.
pub fn strings_prop<S: AsRef<str>>(items: &[S]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in items {
        v.extend_from_slice(s.as_ref().as_bytes());
        v.push(0);
    }
    v
}

/// Encodes u32 cells.
/// The big-endian cells of a property value; a trailing partial cell is ignored.
pub fn cells_of(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

/// The cells of a value made of whole cells only.
pub fn whole_cells(v: &[u8]) -> Option<Vec<u32>> {
    (v.len() % 4 == 0).then(|| cells_of(v))
}

/// A value of exactly one cell.
pub fn one_cell(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| u32::from_be_bytes(v.try_into().expect("4 bytes")))
}

pub fn cells_prop(cells: &[u32]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Splits a NUL-separated string list.
pub fn string_list(v: &[u8]) -> Vec<String> {
    v.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Whether `v` looks like one or more NUL-terminated printable strings (which cannot carry a
/// phandle).
pub fn is_string_list(v: &[u8]) -> bool {
    !v.is_empty()
        && v.last() == Some(&0)
        && v[0] != 0
        && !v.windows(2).any(|w| w == [0, 0])
        && v.iter().all(|&b| b == 0 || (0x20..0x7f).contains(&b))
}

/// A fixed-rate clock node (`compatible = "fixed-clock"`): AMBA devices need their
/// `apb_pclk` to probe, and host clocks a device references become one each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedClock {
    /// Node name.
    pub name: String,
    /// `clock-output-names`.
    pub output: String,
    pub phandle: u32,
    pub hz: u32,
}

impl FixedClock {
    /// The clock as a guest node.
    pub fn node(&self) -> GuestNode {
        GuestNode {
            name: self.name.clone(),
            props: vec![
                ("compatible".into(), strings_prop(&["fixed-clock"])),
                ("#clock-cells".into(), cells_prop(&[0])),
                ("clock-frequency".into(), cells_prop(&[self.hz])),
                ("clock-output-names".into(), strings_prop(&[&self.output])),
                ("phandle".into(), cells_prop(&[self.phandle])),
            ],
            children: Vec::new(),
        }
    }
}

/// The DT specification's longest node name.
pub const NODE_NAME_MAX: usize = 31;

/// The first name for a synthesized node made from a host label `base` (ASCII) that is not
/// `taken`: `base`, then `base-1`, `base-2`..., each cut to [`NODE_NAME_MAX`].
pub fn free_node_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    (0..)
        .map(|i| numbered_node_name(base, i))
        .find(|n| !taken(n))
        .unwrap_or_else(|| base.to_string())
}

/// `base` (ASCII), with "-i" for `i` > 0, cut to [`NODE_NAME_MAX`].
fn numbered_node_name(base: &str, i: usize) -> String {
    let suffix = if i == 0 {
        String::new()
    } else {
        format!("-{i}")
    };
    let mut keep = NODE_NAME_MAX.saturating_sub(suffix.len()).min(base.len());
    while !base.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", base[..keep].trim_end_matches('-'))
}

/// A fixed regulator node (`compatible = "regulator-fixed"`) standing for a host regulator a
/// device takes power from: always on, at the host's voltage when that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedRegulator {
    /// Node name (`regulator-…`).
    pub name: String,
    /// `regulator-name`: the host's.
    pub regulator_name: String,
    pub microvolt: Option<u32>,
    pub phandle: u32,
}

impl FixedRegulator {
    /// The regulator as a guest node.
    pub fn node(&self) -> GuestNode {
        let mut props = vec![
            ("compatible".into(), strings_prop(&["regulator-fixed"])),
            (
                "regulator-name".into(),
                strings_prop(&[&self.regulator_name]),
            ),
        ];
        if let Some(uv) = self.microvolt {
            props.push(("regulator-min-microvolt".into(), cells_prop(&[uv])));
            props.push(("regulator-max-microvolt".into(), cells_prop(&[uv])));
        }
        props.push(("regulator-always-on".into(), Vec::new()));
        props.push(("regulator-boot-on".into(), Vec::new()));
        props.push(("phandle".into(), cells_prop(&[self.phandle])));
        GuestNode {
            name: self.name.clone(),
            props,
            children: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_node_names_are_numbered_and_cut_to_31() {
        let long = "regulator-vcc-efuse-pcie-hdmi-io";
        assert_eq!(free_node_name(long, |_| false).len(), NODE_NAME_MAX);
        let taken = ["clock-a", "clock-a-1"];
        assert_eq!(
            free_node_name("clock-a", |n| taken.contains(&n)),
            "clock-a-2"
        );
        let cut = free_node_name(long, |n| n.len() == NODE_NAME_MAX && !n.ends_with("-1"));
        assert!(cut.ends_with("-1") && cut.len() == NODE_NAME_MAX, "{cut}");
    }

    #[test]
    fn writable_names_are_any_but_empty_nul_or_slash() {
        for ok in [
            "reg",
            "snps,quirk-frame-length-adjustment",
            "vendor,with@other!chars",
        ] {
            assert!(writable_prop_name(ok), "{ok}");
        }
        for bad in ["", "a\0b", "a/b", "/"] {
            assert!(!writable_prop_name(bad), "{bad:?}");
        }
    }
}
