//! The in-kernel interrupt controller: a KVM vGICv3, or a vGICv2 where v3 is unavailable.
//!
//! Order matters: the device is created after every vCPU exists (a GICv3 sizes its
//! redistributors by vCPU count), its addresses and line count are set, then
//! KVM_DEV_ARM_VGIC_CTRL_INIT finalises it. Only then may irqfds be wired.

use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2,
    kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_ARM_VGIC_CTRL_INIT,
    KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
    KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_DIST,
    KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{DeviceFd, VmFd};

use super::layout::{self, LayoutError};
use super::GicVersion;

/// Errors setting up the vGIC.
#[derive(Debug, thiserror::Error)]
pub enum GicError {
    /// Neither version could be created.
    #[error("KVM cannot create an interrupt controller (GICv3: {v3}; GICv2: {v2}): the host needs an in-kernel vGIC")]
    Create {
        v3: kvm_ioctls::Error,
        v2: kvm_ioctls::Error,
    },
    /// Setting an attribute failed.
    #[error("cannot configure the {version:?} interrupt controller ({what}): {source}")]
    Attr {
        version: GicVersion,
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    /// Too many vCPUs for the version the host offers.
    #[error("{0}")]
    Cpus(#[from] LayoutError),
}

/// A created and initialised vGIC.
pub struct Gic {
    _fd: DeviceFd,
    pub version: GicVersion,
}

fn create_device(vm: &VmFd, type_: u32) -> Result<DeviceFd, kvm_ioctls::Error> {
    let mut dev = kvm_create_device {
        type_,
        fd: 0,
        flags: 0,
    };
    vm.create_device(&mut dev)
}

fn set_attr(
    fd: &DeviceFd,
    version: GicVersion,
    what: &'static str,
    group: u32,
    attr: u64,
    addr: u64,
) -> Result<(), GicError> {
    let a = kvm_device_attr {
        group,
        attr,
        addr,
        flags: 0,
    };
    fd.set_device_attr(&a).map_err(|source| GicError::Attr {
        version,
        what,
        source,
    })
}

/// Sets an attribute whose payload KVM reads from our memory.
fn set_attr_u64(
    fd: &DeviceFd,
    v: GicVersion,
    what: &'static str,
    group: u32,
    attr: u32,
    val: u64,
) -> Result<(), GicError> {
    // KVM copies the value during the ioctl; `val` outlives the call.
    set_attr(fd, v, what, group, attr.into(), &val as *const u64 as u64)
}

/// Creates and initialises the vGIC for `vcpus` already-created vCPUs.
pub fn create(vm: &VmFd, vcpus: u32) -> Result<Gic, GicError> {
    let (fd, version) = match create_device(vm, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3) {
        Ok(fd) => (fd, GicVersion::V3),
        Err(v3) => match create_device(vm, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2) {
            Ok(fd) => {
                log::info!("GICv3 unavailable ({v3}); using GICv2");
                (fd, GicVersion::V2)
            }
            Err(v2) => return Err(GicError::Create { v3, v2 }),
        },
    };
    layout::check_cpus(vcpus, version)?;
    let grp = KVM_DEV_ARM_VGIC_GRP_ADDR;
    match version {
        GicVersion::V3 => {
            set_attr_u64(
                &fd,
                version,
                "distributor address",
                grp,
                KVM_VGIC_V3_ADDR_TYPE_DIST,
                layout::GIC_DIST_BASE,
            )?;
            set_attr_u64(
                &fd,
                version,
                "redistributor address",
                grp,
                KVM_VGIC_V3_ADDR_TYPE_REDIST,
                layout::GICV3_REDIST_BASE,
            )?;
        }
        GicVersion::V2 => {
            set_attr_u64(
                &fd,
                version,
                "distributor address",
                grp,
                KVM_VGIC_V2_ADDR_TYPE_DIST,
                layout::GIC_DIST_BASE,
            )?;
            set_attr_u64(
                &fd,
                version,
                "CPU interface address",
                grp,
                KVM_VGIC_V2_ADDR_TYPE_CPU,
                layout::GICV2_CPU_BASE,
            )?;
        }
    }
    let nr_irqs: u32 = layout::NR_IRQS;
    set_attr(
        &fd,
        version,
        "number of interrupts",
        KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
        0,
        &nr_irqs as *const u32 as u64,
    )?;
    set_attr(
        &fd,
        version,
        "init",
        KVM_DEV_ARM_VGIC_GRP_CTRL,
        KVM_DEV_ARM_VGIC_CTRL_INIT.into(),
        0,
    )?;
    Ok(Gic { _fd: fd, version })
}
