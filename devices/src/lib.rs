//! Device models of platvmm.
//!
//! - [`bus`]: the MMIO bus that routes KVM MMIO exits to device models by guest address.
//! - [`coalesced`]: the consumer of KVM's coalesced MMIO ring (guest writes that the kernel
//!   buffers instead of exiting).
//! - [`serial`]: the 16550 console UART (vm-superio) with an irqfd-backed interrupt and a
//!   host-stdin input path driven by event-manager.
//!
//! The VFIO platform backend will live here too, one module per concern.

pub mod bus;
pub mod caam;
pub mod coalesced;
pub mod serial;
pub mod vfio;

pub use bus::{Bus, BusError, MmioDevice};
