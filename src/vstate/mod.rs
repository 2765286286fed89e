//! VM state below the builder: how a guest ends ([`exit`]), and the vCPU threads ([`vcpu`]).

pub mod exit;
#[cfg(target_arch = "aarch64")]
pub mod vcpu;
