//! References between the devices of one VM: every passed device's host nodes by phandle
//! (so that a client's `dmas` to a passed DMA controller, or a MAC's `phy-handle` into another
//! passed MAC's MDIO bus, is kept), and the guest phandle given to each host phandle a kept
//! reference points at.

use devices::dt::one_cell;
use std::collections::HashMap;

use devices::guest_node::hostdt::HostNode;
use devices::guest_node::Links;

use crate::resources::{Exhausted, Resources};

/// The VM's passed devices' host nodes and the guest phandles given so far.
#[derive(Debug, Default)]
pub struct PeerLinks {
    /// Every node of every passed device (top nodes and their descendants), by host phandle.
    nodes: HashMap<u32, HostNode>,
    /// Which device each of those phandles belongs to.
    owner: HashMap<u32, String>,
    guest: HashMap<u32, u32>,
}

impl PeerLinks {
    /// Adds device `dev`'s host node and its subtree.
    pub fn add_device(&mut self, dev: &str, n: &HostNode) {
        if let Some(ph) = n.prop("phandle").and_then(one_cell) {
            self.nodes.insert(ph, n.clone());
            self.owner.insert(ph, dev.to_string());
        }
        n.children.iter().for_each(|c| self.add_device(dev, c));
    }

    /// Gives each of `host` phandles without one a guest phandle from `res`; returns the
    /// (host, guest) pairs given now.
    pub fn give(
        &mut self,
        host: &[u32],
        res: &mut Resources,
    ) -> Result<Vec<(u32, u32)>, Exhausted> {
        let mut made = Vec::new();
        for &h in host {
            if let std::collections::hash_map::Entry::Vacant(e) = self.guest.entry(h) {
                let g = res.phandle()?;
                e.insert(g);
                made.push((h, g));
            }
        }
        Ok(made)
    }

    /// The device host phandle `ph` belongs to, if a passed one.
    pub fn owner(&self, ph: u32) -> Option<&str> {
        self.owner.get(&ph).map(String::as_str)
    }

    /// Host → guest phandles, for settling the nodes' `phandle`s.
    pub fn map(&self) -> &HashMap<u32, u32> {
        &self.guest
    }

    /// The same peers, every host phandle standing for itself: what a first generation uses
    /// to learn which phandles the kept references need.
    pub fn scanning(&self) -> Scan<'_> {
        Scan(self)
    }
}

impl Links for PeerLinks {
    fn peer(&self, host: u32) -> Option<&HostNode> {
        self.nodes.get(&host)
    }
    fn guest(&self, host: u32) -> Option<u32> {
        self.guest.get(&host).copied()
    }
}

/// [`PeerLinks`] with every host phandle standing for itself.
#[derive(Debug)]
pub struct Scan<'a>(&'a PeerLinks);

impl Links for Scan<'_> {
    fn peer(&self, host: u32) -> Option<&HostNode> {
        self.0.peer(host)
    }
    fn guest(&self, host: u32) -> Option<u32> {
        Some(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::layout;

    fn node(name: &str, ph: u32, children: Vec<HostNode>) -> HostNode {
        HostNode {
            name: name.into(),
            props: vec![("phandle".into(), ph.to_be_bytes().to_vec())],
            children,
        }
    }

    #[test]
    fn peers_are_indexed_and_phandles_given_once() {
        let mut l = PeerLinks::default();
        l.add_device("dma", &node("dma@0", 5, vec![node("chan@0", 6, vec![])]));
        assert_eq!(l.owner(6), Some("dma"));
        assert!(l.peer(5).is_some() && l.peer(7).is_none());
        assert_eq!(l.scanning().guest(5), Some(5));
        assert_eq!(l.guest(5), None);
        let mut res = Resources::new(layout::PASSTHROUGH_MMIO_BASE);
        let made = l.give(&[5, 6], &mut res).unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(l.give(&[5], &mut res).unwrap(), [], "given once");
        assert_eq!(l.guest(5), Some(made[0].1));
    }
}
