//! platvmm: a virtual machine monitor for aarch64 KVM guests whose purpose is handing host
//! platform devices to the guest through vfio-platform. See docs/ARCHITECTURE.md.
//!
//! Floors, top to bottom (a file imports only from floors below it, so nothing imports in a
//! circle): `builder` → `vmm`, `device_manager`, `inspect`, `preview`, `hostlist`, `binding`,
//! `config` → `event_loop`,
//! `vstate/vcpu`, `memory` → `error` → `passthrough/*`, `virtio/*`, `console` → `cli`, `sec`, `identity`, `overlay`,
//! `startup`, `vstate/{exit,counters}` → `resources`, `input`, `seccomp`, `jail`, `terminal` → `arch`.

pub mod arch;
pub mod binding;
pub mod cli;
pub mod config;
pub mod console;
pub mod device_manager;
pub mod error;
pub mod event_loop;
pub mod hostlist;
pub mod identity;
pub mod input;
pub mod inspect;
pub mod jail;
pub mod memory;
pub mod overlay;
pub mod passthrough;
pub mod preview;
pub mod resources;
pub mod sec;
pub mod seccomp;
pub mod startup;
pub mod virtio;
pub mod vmm;
pub mod vstate;

#[cfg(target_arch = "aarch64")]
mod builder;
#[cfg(target_arch = "aarch64")]
mod terminal;

use vmm::{Error, GuestExit, VmConfig};

/// Validates `cfg` (no KVM needed), builds the VM and runs it until the guest stops.
pub fn run(cfg: VmConfig) -> Result<GuestExit, Error> {
    let prepared = vmm::prepare(cfg)?;
    #[cfg(target_arch = "aarch64")]
    return builder::run(prepared);
    #[cfg(not(target_arch = "aarch64"))]
    {
        drop(prepared);
        Err(Error::HostNotAarch64(std::env::consts::ARCH))
    }
}
