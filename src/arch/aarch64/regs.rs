//! vCPU registers through KVM_{GET,SET}_ONE_REG.

use std::mem::offset_of;

use kvm_bindings::{
    kvm_regs, user_pt_regs, KVM_REG_ARM64, KVM_REG_ARM64_SYSREG, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64,
};
use kvm_ioctls::VcpuFd;

/// Id of a 64-bit core register at byte `offset` in `struct kvm_regs`
/// (the id carries the offset in 32-bit words).
pub const fn core_reg_id(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE as u64 | (offset / 4) as u64
}

/// Id of a system register given its op0, op1, CRn, CRm, op2 encoding.
pub const fn sys_reg_id(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | KVM_REG_ARM64_SYSREG as u64
        | (op0 << 14)
        | (op1 << 11)
        | (crn << 7)
        | (crm << 3)
        | op2
}

const PT_REGS: usize = offset_of!(kvm_regs, regs);
/// General-purpose register x0 (the DTB address at boot).
pub const X0: u64 = core_reg_id(PT_REGS + offset_of!(user_pt_regs, regs));
/// Program counter.
pub const PC: u64 = core_reg_id(PT_REGS + offset_of!(user_pt_regs, pc));
/// PSTATE.
pub const PSTATE: u64 = core_reg_id(PT_REGS + offset_of!(user_pt_regs, pstate));
/// MPIDR_EL1: the CPU's affinity, referenced by the DT `cpu` nodes and PSCI CPU_ON.
pub const MPIDR_EL1: u64 = sys_reg_id(3, 0, 0, 0, 5);

/// EL1h with D, A, I and F masked: the state the arm64 boot protocol asks for.
pub const PSTATE_BOOT: u64 = 0x3c5;

/// Points the boot vCPU at the kernel entry with x0 = DTB address.
pub fn set_boot_regs(vcpu: &VcpuFd, entry: u64, dtb: u64) -> Result<(), kvm_ioctls::Error> {
    vcpu.set_one_reg(PSTATE, &PSTATE_BOOT.to_le_bytes())?;
    vcpu.set_one_reg(PC, &entry.to_le_bytes())?;
    vcpu.set_one_reg(X0, &dtb.to_le_bytes())?;
    Ok(())
}

/// Sets x0: a forwarded SMCCC call's result.
pub fn set_x0(vcpu: &VcpuFd, value: u64) -> Result<(), kvm_ioctls::Error> {
    vcpu.set_one_reg(X0, &value.to_le_bytes()).map(|_| ())
}

/// Reads a vCPU's MPIDR_EL1.
pub fn read_mpidr(vcpu: &VcpuFd) -> Result<u64, kvm_ioctls::Error> {
    let mut buf = [0u8; 8];
    vcpu.get_one_reg(MPIDR_EL1, &mut buf)?;
    Ok(u64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from the kernel's uapi encoding (arch/arm64/include/uapi/asm/kvm.h).
    #[test]
    fn register_ids() {
        assert_eq!(X0, 0x6030_0000_0010_0000);
        assert_eq!(PC, 0x6030_0000_0010_0040);
        assert_eq!(PSTATE, 0x6030_0000_0010_0042);
        assert_eq!(MPIDR_EL1, 0x6030_0000_0013_c005);
    }

    #[test]
    fn boot_pstate_is_el1h_all_masked() {
        assert_eq!(PSTATE_BOOT & 0xf, 0b0101, "EL1 with SP_EL1");
        assert_eq!(PSTATE_BOOT & 0x3c0, 0x3c0, "D, A, I, F masked");
    }
}
