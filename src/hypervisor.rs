//! What attaching a device needs of the VM, in one place for every device kind:
//! - [`Hypervisor`]: the KVM VM operations the attach paths use (irqfds, ioeventfds,
//!   memslots, the KVM-VFIO device), implemented by `kvm_ioctls::VmFd` and, in unit tests,
//!   by [`fake::FakeVm`], which records them;
//! - [`KvmError`] and [`kvm_err`]: a failed KVM call, saying what was being done;
//! - [`AttachContext`]: the VM, the MMIO bus, the allocators, guest memory and the host page
//!   size, handed to `passthrough::attach` and `virtio::attach::attach`.

use std::os::fd::RawFd;

use devices::Bus;
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_VFIO,
    kvm_userspace_memory_region, KVM_DEV_VFIO_GROUP, KVM_DEV_VFIO_GROUP_ADD,
};
use kvm_ioctls::{DeviceFd, IoEventAddress, NoDatamatch, VmFd};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::memory::RamMapping;
use crate::resources::Resources;

/// A KVM call failed: what platvmm was doing, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct KvmError {
    pub what: &'static str,
    pub source: std::io::Error,
}

/// Maps a failed KVM call to a [`KvmError`] saying what was being done.
pub fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> KvmError {
    move |e| KvmError {
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// The KVM-VFIO pseudo-device, kept open while the VM runs (a test double has none).
pub struct KvmVfioDevice(pub Option<DeviceFd>);

/// The VM operations device attach paths use.
pub trait Hypervisor {
    /// Injects SPI `gsi` (edge) whenever `fd` is signalled.
    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<(), kvm_ioctls::Error>;
    /// Level SPI `gsi`: asserted by `fd`, `resample` signalled at the guest's EOI.
    fn register_irqfd_with_resample(
        &self,
        fd: &EventFd,
        resample: &EventFd,
        gsi: u32,
    ) -> Result<(), kvm_ioctls::Error>;
    /// Signals `fd` on a guest write to `addr` (of value `datamatch`, if given) without an
    /// exit to platvmm.
    fn register_ioevent(
        &self,
        fd: &EventFd,
        addr: u64,
        datamatch: Option<u32>,
    ) -> Result<(), kvm_ioctls::Error>;
    /// Maps `region` into the guest.
    ///
    /// # Safety
    /// `region.userspace_addr` must be a live mapping of at least `region.memory_size` bytes
    /// that outlives every vCPU's use of the memslot.
    unsafe fn set_user_memory_region(
        &self,
        region: kvm_userspace_memory_region,
    ) -> Result<(), kvm_ioctls::Error>;
    /// Creates the KVM-VFIO device and adds every group (`groups`: their fds) to it.
    fn add_vfio_groups(&self, groups: &[RawFd]) -> Result<KvmVfioDevice, KvmError>;
    /// Has KVM forward the guest's SMCCC calls to `function` to platvmm (an exit per call):
    /// `false` when this KVM has no SMCCC filter (Linux before 6.4, or not arm64).
    fn forward_smccc(&self, function: u32) -> Result<bool, kvm_ioctls::Error>;
}

/// The SMCCC filter entry forwarding `function` to userspace, as a device attribute of the
/// VM (`addr` points at `filter`, which must outlive the ioctl).
#[cfg(target_arch = "aarch64")]
fn smccc_filter_attr(filter: &kvm_bindings::kvm_smccc_filter) -> kvm_bindings::kvm_device_attr {
    kvm_bindings::kvm_device_attr {
        flags: 0,
        group: kvm_bindings::KVM_ARM_VM_SMCCC_CTRL,
        attr: u64::from(kvm_bindings::KVM_ARM_VM_SMCCC_FILTER),
        addr: filter as *const _ as u64,
    }
}

impl Hypervisor for VmFd {
    #[cfg(target_arch = "aarch64")]
    fn forward_smccc(&self, function: u32) -> Result<bool, kvm_ioctls::Error> {
        let filter = kvm_bindings::kvm_smccc_filter {
            base: function,
            nr_functions: 1,
            action: kvm_bindings::kvm_smccc_filter_action_KVM_SMCCC_FILTER_FWD_TO_USER as u8,
            pad: [0; 15],
        };
        let attr = smccc_filter_attr(&filter);
        if self.has_device_attr(&attr).is_err() {
            return Ok(false);
        }
        self.set_device_attr(&attr).map(|_| true)
    }

    #[cfg(not(target_arch = "aarch64"))]
    fn forward_smccc(&self, _function: u32) -> Result<bool, kvm_ioctls::Error> {
        Ok(false)
    }

    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<(), kvm_ioctls::Error> {
        VmFd::register_irqfd(self, fd, gsi)
    }

    fn register_irqfd_with_resample(
        &self,
        fd: &EventFd,
        resample: &EventFd,
        gsi: u32,
    ) -> Result<(), kvm_ioctls::Error> {
        VmFd::register_irqfd_with_resample(self, fd, resample, gsi)
    }

    fn register_ioevent(
        &self,
        fd: &EventFd,
        addr: u64,
        datamatch: Option<u32>,
    ) -> Result<(), kvm_ioctls::Error> {
        let addr = IoEventAddress::Mmio(addr);
        match datamatch {
            Some(v) => VmFd::register_ioevent(self, fd, &addr, v),
            None => VmFd::register_ioevent(self, fd, &addr, NoDatamatch),
        }
    }

    unsafe fn set_user_memory_region(
        &self,
        region: kvm_userspace_memory_region,
    ) -> Result<(), kvm_ioctls::Error> {
        // SAFETY: the caller guarantees the mapping, as this function's contract says.
        unsafe { VmFd::set_user_memory_region(self, region) }
    }

    fn add_vfio_groups(&self, groups: &[RawFd]) -> Result<KvmVfioDevice, KvmError> {
        let mut cd = kvm_create_device {
            type_: kvm_device_type_KVM_DEV_TYPE_VFIO,
            fd: 0,
            flags: 0,
        };
        let dev = self
            .create_device(&mut cd)
            .map_err(kvm_err("cannot create the KVM-VFIO device"))?;
        for gfd in groups {
            let attr = kvm_device_attr {
                group: KVM_DEV_VFIO_GROUP,
                attr: KVM_DEV_VFIO_GROUP_ADD.into(),
                addr: gfd as *const i32 as u64,
                flags: 0,
            };
            dev.set_device_attr(&attr)
                .map_err(kvm_err("cannot add the VFIO group to KVM"))?;
        }
        Ok(KvmVfioDevice(Some(dev)))
    }
}

/// What attaching a device needs: the VM, the MMIO bus (no vCPU runs yet, so it is still
/// the device manager's alone), the allocators, guest memory and the host page size.
pub struct AttachContext<'a> {
    pub vm: &'a dyn Hypervisor,
    pub bus: &'a mut Bus,
    pub res: &'a mut Resources,
    pub mem: &'a GuestMemoryMmap,
    /// Guest RAM regions (for VFIO DMA maps).
    pub ram: &'a [RamMapping],
    pub page: u64,
}

/// A recording [`Hypervisor`] for unit tests of the attach paths and the device manager.
#[cfg(test)]
pub mod fake {
    use std::sync::Mutex;

    use super::*;

    /// One call the attach paths made.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Irqfd {
            gsi: u32,
        },
        IrqfdResample {
            gsi: u32,
        },
        Ioevent {
            addr: u64,
            datamatch: Option<u32>,
        },
        Memslot {
            slot: u32,
            gpa: u64,
            size: u64,
            readonly: bool,
        },
        VfioGroups {
            count: usize,
        },
        SmcccFilter {
            function: u32,
        },
    }

    /// Records every call; `fail_irqfd` makes irqfd registration fail (EINVAL).
    #[derive(Default)]
    pub struct FakeVm {
        pub calls: Mutex<Vec<Call>>,
        pub fail_irqfd: bool,
        /// Whether this KVM has the SMCCC filter.
        pub smccc_filter: bool,
    }

    impl FakeVm {
        pub fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        fn push(&self, c: Call) {
            self.calls.lock().unwrap().push(c);
        }

        fn irqfd_result(&self) -> Result<(), kvm_ioctls::Error> {
            match self.fail_irqfd {
                true => Err(kvm_ioctls::Error::new(libc::EINVAL)),
                false => Ok(()),
            }
        }
    }

    impl Hypervisor for FakeVm {
        fn register_irqfd(&self, _fd: &EventFd, gsi: u32) -> Result<(), kvm_ioctls::Error> {
            self.push(Call::Irqfd { gsi });
            self.irqfd_result()
        }

        fn register_irqfd_with_resample(
            &self,
            _fd: &EventFd,
            _resample: &EventFd,
            gsi: u32,
        ) -> Result<(), kvm_ioctls::Error> {
            self.push(Call::IrqfdResample { gsi });
            self.irqfd_result()
        }

        fn register_ioevent(
            &self,
            _fd: &EventFd,
            addr: u64,
            datamatch: Option<u32>,
        ) -> Result<(), kvm_ioctls::Error> {
            self.push(Call::Ioevent { addr, datamatch });
            Ok(())
        }

        unsafe fn set_user_memory_region(
            &self,
            r: kvm_userspace_memory_region,
        ) -> Result<(), kvm_ioctls::Error> {
            self.push(Call::Memslot {
                slot: r.slot,
                gpa: r.guest_phys_addr,
                size: r.memory_size,
                readonly: r.flags & kvm_bindings::KVM_MEM_READONLY != 0,
            });
            Ok(())
        }

        fn add_vfio_groups(&self, groups: &[RawFd]) -> Result<KvmVfioDevice, KvmError> {
            self.push(Call::VfioGroups {
                count: groups.len(),
            });
            Ok(KvmVfioDevice(None))
        }

        fn forward_smccc(&self, function: u32) -> Result<bool, kvm_ioctls::Error> {
            if self.smccc_filter {
                self.push(Call::SmcccFilter { function });
            }
            Ok(self.smccc_filter)
        }
    }

    /// Runs `f` with an attach context on `vm` and `bus`: 64 KiB of guest RAM at 2 GiB, fresh
    /// allocators (passthrough window at its usual base), 4 KiB pages.
    pub fn with_context<T>(
        vm: &FakeVm,
        bus: &mut devices::Bus,
        f: impl FnOnce(&mut AttachContext<'_>) -> T,
    ) -> T {
        use vm_memory::GuestAddress;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0x8000_0000), 0x10000)])
            .expect("64 KiB of test RAM");
        let base = crate::arch::aarch64::layout::PASSTHROUGH_MMIO_BASE;
        let mut res = crate::resources::Resources::new(base);
        let mut ctx = AttachContext {
            vm,
            bus,
            res: &mut res,
            mem: &mem,
            ram: &[],
            page: 4096,
        };
        f(&mut ctx)
    }
}
