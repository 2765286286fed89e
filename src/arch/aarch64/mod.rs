//! aarch64 guests: memory map, boot image, device tree, and (on aarch64 hosts) the KVM vCPU
//! registers and the in-kernel GIC.

pub mod fdt;
pub mod image;
pub mod layout;

#[cfg(target_arch = "aarch64")]
pub mod gic;
#[cfg(target_arch = "aarch64")]
pub mod regs;

/// Which in-kernel interrupt controller the guest gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (KVM_DEV_TYPE_ARM_VGIC_V2): hosts with a GIC-400 or a GICv3 with v2 compat.
    V2,
    /// GICv3 (KVM_DEV_TYPE_ARM_VGIC_V3): preferred.
    V3,
}
