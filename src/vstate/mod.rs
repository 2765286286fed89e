//! VM state below the builder: how a guest ends ([`exit`]), exit counters ([`counters`]) and
//! the vCPU threads ([`vcpu`]).

pub mod counters;
pub mod exit;
#[cfg(target_arch = "aarch64")]
pub mod vcpu;
