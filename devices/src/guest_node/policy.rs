//! The property policy: a guest node gets every property of the host node and of its
//! children, except
//! - what platvmm rewrites (`reg`, `interrupts`, `ranges`) or makes true by construction
//!   (`status`: the guest node is enabled), dropped silently;
//! - a short deny-list ([`DENY`]) of host-only properties that would mislead a guest, each
//!   with its reason;
//! - references to host nodes ([`refs`]): kept when every entry points inside the passed
//!   subtree (their targets keep a `phandle` the caller renumbers), else dropped by kind with
//!   advice, their `…-names` companions with them. A child's interrupts are kept when its
//!   interrupt parent is inside the subtree: otherwise they are host lines this VFIO device
//!   does not carry.

use std::collections::{HashMap, HashSet};

use super::hostdt::HostNode;
use super::refs::{self, Layout, RefKind};
use crate::dt::GuestNode;

/// Host-only properties that would mislead the guest, with why they are dropped.
pub const DENY: &[(&str, &str)] = &[
    (
        "dma-ranges",
        "the host bus's DMA address translation; the guest's DMA addresses are guest RAM",
    ),
    (
        "secure-status",
        "the secure world's view of the device, not the guest's",
    ),
    ("linux,phandle", "the old spelling of phandle"),
];

/// Properties of the top node that platvmm rewrites or drops without a word.
const TOP_SILENT: &[&str] = &[
    "phandle",
    "status",
    "reg",
    "interrupts",
    "interrupt-parent",
    "interrupts-extended",
    "ranges",
];

/// One copy of a host subtree under the policy.
pub struct Copier<'a> {
    /// Reference properties the caller rewrites itself (resolved clocks): no drop warning.
    rewritten: &'a dyn Fn(&str) -> bool,
    /// The subtree's nodes by phandle (providers' `#…-cells` for decoding).
    local: HashMap<u32, &'a HostNode>,
    /// Local phandles something kept refers to.
    referenced: HashSet<u32>,
    pub warnings: Vec<String>,
}

fn one_cell(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| u32::from_be_bytes(v.try_into().expect("4 bytes")))
}

fn phandle_of(n: &HostNode) -> Option<u32> {
    n.prop("phandle")
        .or_else(|| n.prop("linux,phandle"))
        .and_then(one_cell)
}

fn index<'a>(n: &'a HostNode, out: &mut HashMap<u32, &'a HostNode>) {
    if let Some(ph) = phandle_of(n) {
        out.insert(ph, n);
    }
    n.children.iter().for_each(|c| index(c, out));
}

impl<'a> Copier<'a> {
    /// A copier for `top`'s subtree (the top node's own phandle is not local: references to
    /// the device itself come from outside).
    pub fn new(top: &'a HostNode, rewritten: &'a dyn Fn(&str) -> bool) -> Self {
        let mut local = HashMap::new();
        top.children.iter().for_each(|c| index(c, &mut local));
        Self {
            rewritten,
            local,
            referenced: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// The copy of `top` and its children; the children's `phandle`s nothing refers to are
    /// removed.
    pub fn copy(&mut self, top: &HostNode) -> GuestNode {
        let mut node = self.node(top, &top.name, true, false);
        let referenced = std::mem::take(&mut self.referenced);
        node.children
            .iter_mut()
            .for_each(|c| drop_unreferenced(c, &referenced));
        node
    }

    /// `irq_local`: the node's inherited interrupt parent is inside the subtree.
    fn node(&mut self, h: &HostNode, path: &str, top: bool, irq_local: bool) -> GuestNode {
        let mut g = GuestNode {
            name: h.name.clone(),
            ..Default::default()
        };
        let irq_local = match h.prop("interrupt-parent").and_then(one_cell) {
            Some(ph) => self.local.contains_key(&ph),
            None => irq_local,
        };
        let mut dropped = HashSet::new();
        for (name, value) in &h.props {
            if top && TOP_SILENT.contains(&name.as_str()) {
                continue;
            }
            if self.keep(path, h, name, value, top, irq_local) {
                g.props.push((name.clone(), value.clone()));
            } else {
                dropped.insert(name.as_str());
            }
        }
        g.props.retain(|(n, _)| {
            !refs::companion_of(n).is_some_and(|m| dropped.contains(m) || h.prop(m).is_none())
        });
        for c in &h.children {
            let cp = format!("{path}/{}", c.name);
            let child = self.node(c, &cp, false, irq_local);
            g.children.push(child);
        }
        g
    }

    /// Whether property `name` of the node at `path` is kept; a drop is noted.
    fn keep(
        &mut self,
        path: &str,
        h: &HostNode,
        name: &str,
        value: &[u8],
        top: bool,
        irq_local: bool,
    ) -> bool {
        if let Some((_, why)) = DENY.iter().find(|(n, _)| *n == name) {
            self.warnings
                .push(format!("{path}: dropped '{name}' ({why})"));
            return false;
        }
        if name == "phandle" {
            // Kept for now: removed afterwards unless something in the subtree refers to it.
            return true;
        }
        if !top && name == "interrupts" {
            if !irq_local {
                let why = refs::drop_advice(name, RefKind::Interrupt);
                self.warnings
                    .push(format!("{path}: dropped '{name}' ({why})"));
            }
            return irq_local;
        }
        let Some(r) = refs::reference(name) else {
            return true;
        };
        if r.kind == RefKind::Interrupt && name == "interrupt-parent" && !top {
            // Kept with the interrupts it serves; dropped silently with them.
            return self.keep_local(value, r.layout);
        }
        if self.keep_local(value, r.layout) {
            return true;
        }
        if !(self.rewritten)(name) {
            let why = refs::drop_advice(name, r.kind);
            let with: String = refs::companions(name, h.props.iter().map(|(n, _)| n.as_str()))
                .iter()
                .map(|c| format!(" and '{c}'"))
                .collect();
            self.warnings
                .push(format!("{path}: dropped '{name}'{with} ({why})"));
        }
        false
    }

    /// Whether every entry of reference `value` points inside the subtree (then they are
    /// recorded as referenced).
    fn keep_local(&mut self, value: &[u8], layout: Layout) -> bool {
        let local = &self.local;
        let cells =
            |ph: u32, name: &str| local.get(&ph).and_then(|n| n.prop(name)).and_then(one_cell);
        let Some(entries) = refs::decode(value, layout, &cells) else {
            return false;
        };
        if entries.is_empty() || !entries.iter().all(|e| local.contains_key(&e.phandle)) {
            return false;
        }
        self.referenced.extend(entries.iter().map(|e| e.phandle));
        true
    }
}

fn drop_unreferenced(n: &mut GuestNode, referenced: &HashSet<u32>) {
    if let Some(ph) = n.prop("phandle").and_then(one_cell) {
        if !referenced.contains(&ph) {
            n.remove("phandle");
        }
    }
    n.children
        .iter_mut()
        .for_each(|c| drop_unreferenced(c, referenced));
}

/// The host phandles a generated node keeps for references inside its own subtree (the
/// `phandle` properties of its descendants), in tree order.
pub fn local_phandles(n: &GuestNode) -> Vec<u32> {
    fn walk(n: &GuestNode, out: &mut Vec<u32>) {
        if let Some(ph) = n.prop("phandle").and_then(one_cell) {
            out.push(ph);
        }
        n.children.iter().for_each(|c| walk(c, out));
    }
    let mut out = Vec::new();
    n.children.iter().for_each(|c| walk(c, &mut out));
    out
}

/// Rewrites the subtree's `phandle`s and every kept reference to them from host to guest
/// phandles (`map`); a reference with an entry outside `map` is left as it is.
pub fn remap_phandles(n: &mut GuestNode, map: &HashMap<u32, u32>) {
    let mut cells: HashMap<u32, Vec<(String, u32)>> = HashMap::new();
    collect_cells(n, &mut cells);
    remap(n, map, &cells);
}

/// Each subtree provider's `#…-cells` properties, by its host phandle.
fn collect_cells(n: &GuestNode, out: &mut HashMap<u32, Vec<(String, u32)>>) {
    if let Some(ph) = n.prop("phandle").and_then(one_cell) {
        let v = n
            .props
            .iter()
            .filter(|(k, _)| k.starts_with('#') && k.ends_with("-cells"))
            .filter_map(|(k, v)| Some((k.clone(), one_cell(v)?)))
            .collect();
        out.insert(ph, v);
    }
    n.children.iter().for_each(|c| collect_cells(c, out));
}

fn remap(n: &mut GuestNode, map: &HashMap<u32, u32>, cells: &HashMap<u32, Vec<(String, u32)>>) {
    let lookup = |ph: u32, name: &str| {
        cells
            .get(&ph)?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    };
    for (name, value) in &mut n.props {
        if name == "phandle" {
            if let Some(g) = one_cell(value).and_then(|h| map.get(&h)) {
                *value = g.to_be_bytes().to_vec();
            }
            continue;
        }
        let Some(r) = refs::reference(name) else {
            continue;
        };
        let new = refs::decode(value, r.layout, &lookup)
            .and_then(|e| refs::encode(&e, &|ph| map.get(&ph).copied()));
        if let Some(v) = new {
            *value = v;
        }
    }
    n.children.iter_mut().for_each(|c| remap(c, map, cells));
}
