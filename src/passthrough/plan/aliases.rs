//! The guest's `/aliases` for passed devices: each host alias that names a passed node names
//! its guest node, under the same name unless the guest already uses it (`serial0` is the
//! console's), then under the lowest free number of the same stem (`serial1`).

use super::VmPlan;
use devices::guest_node::aliases::{split, Alias};

/// The aliases platvmm's own nodes hold.
const RESERVED: &[&str] = &["serial0"];

/// Gives each passed device's host aliases to its guest node, noting each in the device's
/// `synthesized` list; returns them in device order.
pub(super) fn assign(plan: &mut VmPlan) -> Vec<Alias> {
    let mut out: Vec<Alias> = Vec::new();
    for i in 0..plan.devices.len() {
        let path = plan.node_path(&plan.devices[i]);
        let mut notes = Vec::new();
        for host in &plan.devices[i].host_aliases {
            let taken = |n: &str| RESERVED.contains(&n) || out.iter().any(|a| a.name == n);
            let Some(name) = free_name(host, taken) else {
                notes.push(format!(
                    "alias: the host's {host} names it, but the guest uses {host} and the name has no number to change"
                ));
                continue;
            };
            notes.push(if name == *host {
                format!("alias {name} → {path} (as on the host)")
            } else {
                format!("alias {name} → {path} (the host's {host}: taken in the guest)")
            });
            out.push(Alias {
                name,
                path: path.clone(),
            });
        }
        plan.devices[i].synthesized.extend(notes);
    }
    out
}

/// `host` if free, else the lowest free name of its stem; `None` for a taken name without a
/// number.
fn free_name(host: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
    if !taken(host) {
        return Some(host.to_string());
    }
    let (stem, _) = split(host)?;
    // At most RESERVED plus one alias per host alias are taken: the search ends.
    (0u32..).map(|n| format!("{stem}{n}")).find(|n| !taken(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_moves_to_the_lowest_free_number() {
        let taken = |n: &str| ["serial0", "serial1", "ethernet"].contains(&n);
        assert_eq!(free_name("mmc1", taken).as_deref(), Some("mmc1"));
        assert_eq!(free_name("serial0", taken).as_deref(), Some("serial2"));
        assert_eq!(free_name("serial3", taken).as_deref(), Some("serial3"));
        assert_eq!(free_name("ethernet", taken), None);
    }
}
