//! platvmm: a virtual machine monitor for aarch64 KVM guests whose purpose is handing host
//! platform devices to the guest through vfio-platform. See docs/ARCHITECTURE.md.

pub mod arch;
pub mod cli;
pub mod identity;
pub mod inspect;
pub mod passthrough;
pub mod preview;
pub mod sec;
pub mod vmm;

#[cfg(target_arch = "aarch64")]
mod builder;
#[cfg(target_arch = "aarch64")]
mod terminal;
#[cfg(target_arch = "aarch64")]
mod vcpu;
