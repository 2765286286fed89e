//! The VM: checks before KVM ([`prepare`]), setup and teardown in order ([`builder`]), the
//! device manager that owns RAM, the bus, the allocators and every device, the console, the
//! main thread's event loop, and the user-facing [`Error`].

#[cfg(target_arch = "aarch64")]
mod builder;
pub mod console;
pub mod control;
pub mod device_manager;
pub mod error;
pub mod event_loop;
pub mod power_button;
pub mod prepare;
pub mod reboot;

pub use error::Error;
pub use prepare::{prepare, Prepared};

use crate::config::VmConfig;
use crate::vstate::exit::GuestExit;

/// Validates `cfg` (no KVM needed), builds the VM and runs it until the guest stops.
pub fn run(cfg: VmConfig) -> Result<GuestExit, Error> {
    let prepared = prepare(cfg)?;
    #[cfg(target_arch = "aarch64")]
    return builder::run(prepared);
    #[cfg(not(target_arch = "aarch64"))]
    {
        drop(prepared);
        Err(Error::HostNotAarch64(std::env::consts::ARCH))
    }
}
