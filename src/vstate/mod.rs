//! VM state below the builder: how a guest ends ([`exit`]), what each vCPU exit does
//! ([`handle`], on every host), the gate that pauses vCPUs ([`pause`]), where the threads run
//! on the host ([`placement`], checked on every host) and the vCPU threads ([`vcpu`], aarch64).

pub mod exit;
pub mod handle;
pub mod pause;
pub mod placement;
#[cfg(target_arch = "aarch64")]
pub mod vcpu;
