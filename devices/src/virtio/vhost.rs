//! What vhost-net and vhost-vsock share: the memory table and the rings handed to the
//! kernel, kicked by the KVM ioeventfds and calling the irqfd directly.

use std::sync::Arc;

use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use super::{ActivateError, Activation, QueueT};

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

/// Features for the kernel: those agreed with the driver that vhost itself knows (the
/// device-specific offload bits stay with the tap).
pub fn start<B: VhostBackend>(
    b: &B,
    a: &Activation,
    kicks: &[EventFd],
    rings: usize,
    kernel_features: u64,
) -> Result<(), ActivateError> {
    b.set_features(a.features & kernel_features)
        .map_err(err("cannot set features"))?;
    b.set_mem_table(&mem_table(&a.mem))
        .map_err(err("cannot set the memory table"))?;
    for (i, q) in a.queues.iter().take(rings).enumerate() {
        if !q.ready() {
            return Err(ActivateError::BadQueue(i));
        }
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
