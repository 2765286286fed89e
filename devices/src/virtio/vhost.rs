//! What vhost-net and vhost-vsock share: the memory table and the rings handed to the
//! kernel, kicked by the KVM ioeventfds and calling the irqfd directly.
//!
//! The kernel is given the host address of each ring's start and walks on from there, so a
//! ring must lie inside one guest memory region: two guest-adjacent regions need not be
//! adjacent on the host (with identity-mapped RAM they never are). The userspace queues
//! translate each element on its own and have no such limit.

use std::sync::Arc;

use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use super::{ActivateError, Activation, Queue, QueueT};

/// Guest memory as the vhost crate addresses it.
pub type Mem = Arc<GuestMemoryMmap>;

pub fn err(what: &'static str) -> impl Fn(vhost::Error) -> ActivateError {
    move |e| ActivateError::Vhost(format!("{what}: {e}"))
}

/// Every guest RAM region, for VHOST_SET_MEM_TABLE.
pub fn mem_table(mem: &GuestMemoryMmap) -> Vec<VhostUserMemoryRegionInfo> {
    mem.iter()
        .map(|r| VhostUserMemoryRegionInfo {
            guest_phys_addr: r.start_addr().0,
            memory_size: r.len(),
            userspace_addr: mem.get_host_address(r.start_addr()).map_or(0, |h| h as u64),
            mmap_offset: 0,
            mmap_handle: -1,
        })
        .collect()
}

/// Whether guest range `[addr, addr + len)` lies inside one guest memory region.
pub fn in_one_region(mem: &GuestMemoryMmap, addr: u64, len: u64) -> bool {
    let Some(r) = mem.find_region(GuestAddress(addr)) else {
        return false;
    };
    let room = r.len() - (addr - r.start_addr().0);
    len <= room
}

/// Queue `index`'s three rings (descriptor table, available ring, used ring, each with the
/// EVENT_IDX field after it), each inside one guest memory region, or the first that is not.
pub fn check_rings(mem: &GuestMemoryMmap, index: usize, q: &Queue) -> Result<(), ActivateError> {
    let n = u64::from(q.size());
    let rings = [
        ("descriptor table", q.desc_table(), 16 * n),
        ("available ring", q.avail_ring(), 6 + 2 * n),
        ("used ring", q.used_ring(), 6 + 8 * n),
    ];
    for (ring, addr, len) in rings {
        if !in_one_region(mem, addr, len) {
            return Err(ActivateError::RingAcrossRegions {
                queue: index,
                ring,
                addr,
                len,
            });
        }
    }
    Ok(())
}

/// Gives the first `rings` queues to the kernel. Every ring is checked first (ready, each
/// inside one region): nothing reaches the kernel for a queue set that is refused. Features
/// for the kernel: those agreed with the driver that vhost itself knows (the device-specific
/// offload bits stay with the tap).
pub fn start<B: VhostBackend>(
    b: &B,
    a: &Activation,
    kicks: &[EventFd],
    rings: usize,
    kernel_features: u64,
) -> Result<(), ActivateError> {
    for (i, q) in a.queues.iter().take(rings).enumerate() {
        if !q.ready() {
            return Err(ActivateError::BadQueue(i));
        }
        check_rings(&a.mem, i, q)?;
    }
    b.set_features(a.features & kernel_features)
        .map_err(err("cannot set features"))?;
    b.set_mem_table(&mem_table(&a.mem))
        .map_err(err("cannot set the memory table"))?;
    for (i, q) in a.queues.iter().take(rings).enumerate() {
        let cfg = VringConfigData {
            queue_max_size: q.max_size(),
            queue_size: q.size(),
            flags: 0,
            desc_table_addr: q.desc_table(),
            used_ring_addr: q.used_ring(),
            avail_ring_addr: q.avail_ring(),
            log_addr: None,
        };
        b.set_vring_num(i, q.size())
            .map_err(err("cannot set a ring size"))?;
        b.set_vring_addr(i, &cfg)
            .map_err(err("cannot set ring addresses"))?;
        b.set_vring_base(i, 0)
            .map_err(err("cannot set a ring base"))?;
        b.set_vring_call(i, a.interrupt.irqfd())
            .map_err(err("cannot set the call eventfd"))?;
        b.set_vring_kick(i, &kicks[i])
            .map_err(err("cannot set the kick eventfd"))?;
    }
    Ok(())
}
