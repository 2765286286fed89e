//! VM state below the builder: how a guest ends ([`exit`]), what each vCPU exit does
//! ([`handle`], on every host), and the vCPU threads ([`vcpu`], aarch64).

pub mod exit;
pub mod handle;
#[cfg(target_arch = "aarch64")]
pub mod vcpu;
