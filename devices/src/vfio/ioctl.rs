//! The VFIO ioctls platvmm uses, as thin safe functions over vfio-bindings.
//!
//! Why not vfio-ioctls for these: its `VfioDevice` refuses AMBA devices (only PCI and platform
//! pass its device-type check), its `VfioContainer` insists on a TYPE1v2 IOMMU (there is no
//! no-IOMMU container, the only mode platform devices have on SoCs without an SMMU for them),
//! its `unmask_irq` only accepts IRQ index 0 (platform devices have one index per interrupt),
//! and it keeps group fds private (the KVM-VFIO device needs them). All four are needed for the
//! devices we pass, so this module is the one place that speaks VFIO.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use vfio_bindings::bindings::vfio::*;
use vmm_sys_util::ioctl::{
    ioctl, ioctl_with_mut_ref, ioctl_with_ptr, ioctl_with_ref, ioctl_with_val,
};
use vmm_sys_util::ioctl_io_nr;

ioctl_io_nr!(VFIO_GET_API_VERSION, VFIO_TYPE as u32, VFIO_BASE);
ioctl_io_nr!(VFIO_CHECK_EXTENSION, VFIO_TYPE as u32, VFIO_BASE + 1);
ioctl_io_nr!(VFIO_SET_IOMMU, VFIO_TYPE as u32, VFIO_BASE + 2);
ioctl_io_nr!(VFIO_GROUP_GET_STATUS, VFIO_TYPE as u32, VFIO_BASE + 3);
ioctl_io_nr!(VFIO_GROUP_SET_CONTAINER, VFIO_TYPE as u32, VFIO_BASE + 4);
ioctl_io_nr!(VFIO_GROUP_GET_DEVICE_FD, VFIO_TYPE as u32, VFIO_BASE + 6);
ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE as u32, VFIO_BASE + 7);
ioctl_io_nr!(VFIO_DEVICE_GET_REGION_INFO, VFIO_TYPE as u32, VFIO_BASE + 8);
ioctl_io_nr!(VFIO_DEVICE_GET_IRQ_INFO, VFIO_TYPE as u32, VFIO_BASE + 9);
ioctl_io_nr!(VFIO_DEVICE_SET_IRQS, VFIO_TYPE as u32, VFIO_BASE + 10);
ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE as u32, VFIO_BASE + 11);
ioctl_io_nr!(VFIO_IOMMU_MAP_DMA, VFIO_TYPE as u32, VFIO_BASE + 13);
ioctl_io_nr!(VFIO_IOMMU_UNMAP_DMA, VFIO_TYPE as u32, VFIO_BASE + 14);

fn check(ret: i32) -> io::Result<i32> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// VFIO_GET_API_VERSION on a container.
pub fn api_version(container: &File) -> io::Result<i32> {
    // SAFETY: the ioctl takes no argument and only returns a value.
    check(unsafe { ioctl(container, VFIO_GET_API_VERSION()) })
}

/// VFIO_CHECK_EXTENSION: whether the container supports IOMMU type `ext`.
pub fn check_extension(container: &File, ext: u32) -> io::Result<bool> {
    // SAFETY: the argument is passed by value; the kernel reads nothing from our memory.
    check(unsafe { ioctl_with_val(container, VFIO_CHECK_EXTENSION(), ext.into()) }).map(|r| r > 0)
}

/// VFIO_SET_IOMMU.
pub fn set_iommu(container: &File, iommu_type: u32) -> io::Result<()> {
    // SAFETY: the argument is passed by value.
    check(unsafe { ioctl_with_val(container, VFIO_SET_IOMMU(), iommu_type.into()) }).map(|_| ())
}

/// VFIO_GROUP_GET_STATUS: the group's flags.
pub fn group_status(group: &File) -> io::Result<u32> {
    let mut st = vfio_group_status {
        argsz: std::mem::size_of::<vfio_group_status>() as u32,
        flags: 0,
    };
    // SAFETY: `st` is a valid vfio_group_status whose argsz tells the kernel its size.
    check(unsafe { ioctl_with_mut_ref(group, VFIO_GROUP_GET_STATUS(), &mut st) })?;
    Ok(st.flags)
}

/// VFIO_GROUP_SET_CONTAINER.
pub fn group_set_container(group: &File, container: &File) -> io::Result<()> {
    let fd: RawFd = container.as_raw_fd();
    // SAFETY: the kernel reads one int (the container fd) from `fd`, which lives across the call.
    check(unsafe { ioctl_with_ref(group, VFIO_GROUP_SET_CONTAINER(), &fd) }).map(|_| ())
}

/// VFIO_GROUP_GET_DEVICE_FD for the device called `name`.
pub fn group_device_fd(group: &File, name: &str) -> io::Result<File> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call; the kernel only reads it.
    let fd = check(unsafe { ioctl_with_ptr(group, VFIO_GROUP_GET_DEVICE_FD(), c.as_ptr()) })?;
    // SAFETY: on success the ioctl returns a new file descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// VFIO_DEVICE_GET_INFO.
pub fn device_info(dev: &File) -> io::Result<vfio_device_info> {
    let mut info = vfio_device_info {
        argsz: std::mem::size_of::<vfio_device_info>() as u32,
        flags: 0,
        num_regions: 0,
        num_irqs: 0,
        cap_offset: 0,
        pad: 0,
    };
    // SAFETY: `info` is a valid vfio_device_info whose argsz tells the kernel its size.
    check(unsafe { ioctl_with_mut_ref(dev, VFIO_DEVICE_GET_INFO(), &mut info) })?;
    Ok(info)
}

/// VFIO_DEVICE_GET_REGION_INFO for region `index`.
pub fn region_info(dev: &File, index: u32) -> io::Result<vfio_region_info> {
    let mut info = vfio_region_info {
        argsz: std::mem::size_of::<vfio_region_info>() as u32,
        flags: 0,
        index,
        cap_offset: 0,
        size: 0,
        offset: 0,
    };
    // SAFETY: `info` is a valid vfio_region_info whose argsz tells the kernel its size.
    check(unsafe { ioctl_with_mut_ref(dev, VFIO_DEVICE_GET_REGION_INFO(), &mut info) })?;
    Ok(info)
}

/// VFIO_DEVICE_GET_IRQ_INFO for IRQ `index`.
pub fn irq_info(dev: &File, index: u32) -> io::Result<vfio_irq_info> {
    let mut info = vfio_irq_info {
        argsz: std::mem::size_of::<vfio_irq_info>() as u32,
        flags: 0,
        index,
        count: 0,
    };
    // SAFETY: `info` is a valid vfio_irq_info whose argsz tells the kernel its size.
    check(unsafe { ioctl_with_mut_ref(dev, VFIO_DEVICE_GET_IRQ_INFO(), &mut info) })?;
    Ok(info)
}

/// VFIO_DEVICE_SET_IRQS on IRQ `index` (sub-index 0): `flags` is one DATA_* | one ACTION_*;
/// `fds` are the eventfds for DATA_EVENTFD (count = number of fds), or empty for DATA_NONE
/// (count 1), or empty with count 0 to tear the action down.
pub fn set_irqs(dev: &File, index: u32, flags: u32, count: u32, fds: &[RawFd]) -> io::Result<()> {
    // struct vfio_irq_set { u32 argsz, flags, index, start, count; u8 data[]; } with the
    // eventfds as i32 in `data`: build it as u32 words.
    let mut buf: Vec<u32> = Vec::with_capacity(5 + fds.len());
    let argsz = (std::mem::size_of::<vfio_irq_set>() + std::mem::size_of_val(fds)) as u32;
    buf.extend_from_slice(&[argsz, flags, index, 0, count]);
    buf.extend(fds.iter().map(|&fd| fd as u32));
    // SAFETY: `buf` holds a complete vfio_irq_set (header and `argsz - 20` bytes of data) and
    // outlives the call; the kernel only reads it.
    check(unsafe { ioctl_with_ptr(dev, VFIO_DEVICE_SET_IRQS(), buf.as_ptr()) }).map(|_| ())
}

/// VFIO_DEVICE_RESET (offered when VFIO_DEVICE_GET_INFO has VFIO_DEVICE_FLAGS_RESET).
pub fn device_reset(dev: &File) -> io::Result<()> {
    // SAFETY: the ioctl takes no argument.
    check(unsafe { ioctl(dev, VFIO_DEVICE_RESET()) }).map(|_| ())
}

/// VFIO_IOMMU_MAP_DMA: makes `size` bytes at `vaddr` visible to devices at `iova`.
pub fn map_dma(container: &File, vaddr: u64, iova: u64, size: u64) -> io::Result<()> {
    let m = vfio_iommu_type1_dma_map {
        argsz: std::mem::size_of::<vfio_iommu_type1_dma_map>() as u32,
        flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        vaddr,
        iova,
        size,
    };
    // SAFETY: `m` is a valid vfio_iommu_type1_dma_map; the kernel pins the pages of `vaddr`,
    // which the caller keeps mapped until unmap_dma.
    check(unsafe { ioctl_with_ref(container, VFIO_IOMMU_MAP_DMA(), &m) }).map(|_| ())
}

/// VFIO_IOMMU_UNMAP_DMA.
pub fn unmap_dma(container: &File, iova: u64, size: u64) -> io::Result<()> {
    let mut u = vfio_iommu_type1_dma_unmap {
        argsz: std::mem::size_of::<vfio_iommu_type1_dma_unmap>() as u32,
        flags: 0,
        iova,
        size,
        data: Default::default(),
    };
    // SAFETY: `u` is a valid vfio_iommu_type1_dma_unmap with no trailing data.
    check(unsafe { ioctl_with_mut_ref(container, VFIO_IOMMU_UNMAP_DMA(), &mut u) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Request numbers from include/uapi/linux/vfio.h: _IO(';', 100 + n).
    #[test]
    fn request_numbers() {
        assert_eq!(VFIO_GET_API_VERSION(), 0x3b64);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD(), 0x3b6a);
        assert_eq!(VFIO_DEVICE_SET_IRQS(), 0x3b6e);
        assert_eq!(VFIO_IOMMU_MAP_DMA(), 0x3b71);
    }

    #[test]
    fn ioctls_on_a_non_vfio_fd_fail_cleanly() {
        let f = File::open("/dev/null").unwrap();
        assert!(api_version(&f).is_err());
        assert!(device_info(&f).is_err());
        assert!(set_irqs(
            &f,
            0,
            VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
            1,
            &[]
        )
        .is_err());
    }
}
