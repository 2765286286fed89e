//! Device models of platvmm.
//!
//! - [`bus`]: the MMIO bus that routes KVM MMIO exits to device models by guest address.
//! - [`coalesced`]: the consumer of KVM's coalesced MMIO ring (guest writes that the kernel
//!   buffers instead of exiting).
//! - [`serial`]: the 16550 console UART (vm-superio) with an irqfd-backed interrupt and a
//!   host-stdin input path driven by event-manager.
//! - [`caam`]: the emulated NXP SEC controller page.
//! - [`gpio`]: the emulated ARM PL061 GPIO controller, the guest's power button (a
//!   `gpio-keys` KEY_POWER on its line 3).
//! - [`vfio`]: the VFIO platform/AMBA backend: sysfs, groups and containers, device fds,
//!   regions, IRQs, host DT nodes and the guest-node handlers.
//! - [`stats`]: [`counter_set!`], the one way a counter set (the devices' and the VM's exit
//!   counters) is declared and snapshotted.

/// Stack size of platvmm's threads (vCPUs, virtio worker). Under 2 MiB on purpose: with
/// transparent hugepages set to `always`, a 2 MiB stack that happens to start on a 2 MiB
/// boundary is backed by a whole hugepage once touched; a smaller one never can be.
pub const THREAD_STACK: usize = 1 << 20;

pub mod bus;
pub mod caam;
pub mod coalesced;
pub mod dt;
pub mod gpio;
pub mod guest_node;
pub mod scmi;
pub mod serial;
pub mod stats;
pub mod vfio;
pub mod virtio;

pub use bus::{Bus, BusError, MmioDevice};
