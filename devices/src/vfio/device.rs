//! A VFIO platform/AMBA device: its fd, kind, regions and interrupts.

use std::fs::File;
use std::os::fd::RawFd;
use std::sync::Arc;

use vfio_bindings::bindings::vfio::*;

use super::container::Group;
use super::ioctl;
use super::region::{MappedRegion, RegionIo};
use super::sysfs::HostDevice;

/// The kind VFIO reports for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Platform,
    Amba,
}

/// Errors opening or driving a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// VFIO_GROUP_GET_DEVICE_FD failed.
    #[error("cannot open VFIO device {dev}: {source}")]
    Open { dev: String, source: std::io::Error },
    /// A device ioctl failed.
    #[error("VFIO device {dev}: {what}: {source}")]
    Ioctl {
        dev: String,
        what: String,
        source: std::io::Error,
    },
    /// VFIO says PCI (or something else).
    #[error("VFIO reports {dev} as {kind}, not a platform or AMBA device: platvmm passes only platform and AMBA devices")]
    WrongKind { dev: String, kind: &'static str },
}

/// One VFIO region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    pub index: u32,
    pub flags: u32,
    pub size: u64,
    /// Offset of the region in the device fd (for pread/pwrite/mmap).
    pub offset: u64,
}

impl RegionInfo {
    pub fn readable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_READ != 0
    }
    pub fn writable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_WRITE != 0
    }
    /// Whether the region can be mapped straight into the guest: VFIO allows mmap and both
    /// its size and fd offset are whole pages (so no byte outside it becomes reachable).
    pub fn mappable(&self, page_size: u64) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_MMAP != 0
            && self.size > 0
            && self.size % page_size == 0
            && self.offset % page_size == 0
    }
    /// Human-readable flags.
    pub fn flag_names(&self) -> String {
        let mut v = Vec::new();
        if self.readable() {
            v.push("read");
        }
        if self.writable() {
            v.push("write");
        }
        if self.flags & VFIO_REGION_INFO_FLAG_MMAP != 0 {
            v.push("mmap");
        }
        v.join(",")
    }
}

/// One VFIO interrupt index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqInfo {
    pub index: u32,
    pub flags: u32,
    pub count: u32,
}

impl IrqInfo {
    /// Level-triggered: VFIO masks the line on each assertion until unmasked.
    pub fn level(&self) -> bool {
        self.flags & VFIO_IRQ_INFO_AUTOMASKED != 0
    }
    pub fn flag_names(&self) -> String {
        let mut v = Vec::new();
        if self.flags & VFIO_IRQ_INFO_EVENTFD != 0 {
            v.push("eventfd");
        }
        if self.flags & VFIO_IRQ_INFO_MASKABLE != 0 {
            v.push("maskable");
        }
        if self.level() {
            v.push("automasked");
        }
        v.join(",")
    }
}

/// An open VFIO platform or AMBA device.
#[derive(Debug)]
pub struct VfioPlatformDevice {
    pub host: HostDevice,
    pub fd: Arc<File>,
    pub kind: DeviceKind,
    /// VFIO_DEVICE_GET_INFO flags (`VFIO_DEVICE_FLAGS_RESET`: VFIO can reset it).
    pub flags: u32,
    pub regions: Vec<RegionInfo>,
    pub irqs: Vec<IrqInfo>,
}

impl VfioPlatformDevice {
    /// Gets the device fd from its (attached) group and reads its regions and interrupts.
    pub fn open(host: HostDevice, group: &Group) -> Result<Self, DeviceError> {
        let fd = ioctl::group_device_fd(&group.file, &host.name).map_err(|source| {
            DeviceError::Open {
                dev: host.name.clone(),
                source,
            }
        })?;
        let err = |what: String, source| DeviceError::Ioctl {
            dev: host.name.clone(),
            what,
            source,
        };
        let info = ioctl::device_info(&fd).map_err(|e| err("VFIO_DEVICE_GET_INFO".into(), e))?;
        let kind = kind_from_flags(info.flags).map_err(|kind| DeviceError::WrongKind {
            dev: host.name.clone(),
            kind,
        })?;
        let mut regions = Vec::new();
        for index in 0..info.num_regions {
            let r = ioctl::region_info(&fd, index)
                .map_err(|e| err(format!("region {index} info"), e))?;
            regions.push(RegionInfo {
                index,
                flags: r.flags,
                size: r.size,
                offset: r.offset,
            });
        }
        let mut irqs = Vec::new();
        for index in 0..info.num_irqs {
            let i = ioctl::irq_info(&fd, index).map_err(|e| err(format!("IRQ {index} info"), e))?;
            irqs.push(IrqInfo {
                index,
                flags: i.flags,
                count: i.count,
            });
        }
        Ok(Self {
            host,
            fd: Arc::new(fd),
            kind,
            flags: info.flags,
            regions,
            irqs,
        })
    }

    fn set_irqs(
        &self,
        index: u32,
        flags: u32,
        count: u32,
        fds: &[RawFd],
        what: &str,
    ) -> Result<(), DeviceError> {
        ioctl::set_irqs(&self.fd, index, flags, count, fds).map_err(|source| DeviceError::Ioctl {
            dev: self.host.name.clone(),
            what: format!("IRQ {index}: {what}"),
            source,
        })
    }

    /// Signals `trigger` on each assertion of IRQ `index`.
    pub fn irq_trigger(&self, index: u32, trigger: RawFd) -> Result<(), DeviceError> {
        self.set_irqs(
            index,
            VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            1,
            &[trigger],
            "set trigger eventfd",
        )
    }

    /// Unmasks IRQ `index` whenever `unmask` is signalled (KVM's resamplefd: the guest EOI).
    pub fn irq_unmask_fd(&self, index: u32, unmask: RawFd) -> Result<(), DeviceError> {
        self.set_irqs(
            index,
            VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
            1,
            &[unmask],
            "set unmask eventfd",
        )
    }

    /// Unmasks IRQ `index` now.
    pub fn irq_unmask(&self, index: u32) -> Result<(), DeviceError> {
        self.set_irqs(
            index,
            VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
            1,
            &[],
            "unmask",
        )
    }

    /// Tears down the trigger (and with it the unmask eventfd) of IRQ `index`.
    pub fn irq_disable(&self, index: u32) -> Result<(), DeviceError> {
        self.set_irqs(
            index,
            VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            0,
            &[],
            "disable",
        )
    }
}

/// What attaching and releasing a passed-through device needs of it: its name, kind,
/// regions and interrupts; a region mapped or trapped; interrupts signalled, unmasked and
/// disabled. [`VfioPlatformDevice`] is the kernel's; unit tests use a double.
pub trait VfioDevice: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> DeviceKind;
    fn regions(&self) -> &[RegionInfo];
    fn irqs(&self) -> &[IrqInfo];
    /// mmap of region `r` (shared; read-only unless the region is writable).
    fn map_region(&self, r: &RegionInfo) -> std::io::Result<MappedRegion>;
    /// Where a trapped region's accesses go (the device fd, at the region's offset).
    fn region_io(&self) -> Arc<dyn RegionIo>;
    /// Signals `trigger` on each assertion of IRQ `index`.
    fn irq_trigger(&self, index: u32, trigger: RawFd) -> Result<(), DeviceError>;
    /// Unmasks IRQ `index` whenever `unmask` is signalled (KVM's resamplefd: the guest EOI).
    fn irq_unmask_fd(&self, index: u32, unmask: RawFd) -> Result<(), DeviceError>;
    /// Unmasks IRQ `index` now.
    fn irq_unmask(&self, index: u32) -> Result<(), DeviceError>;
    /// Tears down the trigger (and with it the unmask eventfd) of IRQ `index`.
    fn irq_disable(&self, index: u32) -> Result<(), DeviceError>;
    /// Resets the device through VFIO, if VFIO offers a reset for it (`None` if not).
    fn reset(&self) -> Option<Result<(), DeviceError>>;
    /// A handle another thread can reset the device with, if VFIO offers a reset for it.
    fn reset_handle(&self) -> Option<ResetHandle> {
        None
    }
}

/// Resets one device through VFIO (`VFIO_DEVICE_RESET` on its fd), from any thread: what the
/// guest's SCMI reset requests are carried out with.
#[derive(Debug, Clone)]
pub struct ResetHandle {
    fd: Arc<File>,
    name: String,
}

impl ResetHandle {
    /// A handle resetting the device open at `fd`.
    pub fn new(fd: Arc<File>, name: &str) -> Self {
        Self {
            fd,
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn reset(&self) -> std::io::Result<()> {
        ioctl::device_reset(&self.fd)
    }
}

impl VfioDevice for VfioPlatformDevice {
    fn name(&self) -> &str {
        &self.host.name
    }

    fn kind(&self) -> DeviceKind {
        self.kind
    }

    fn regions(&self) -> &[RegionInfo] {
        &self.regions
    }

    fn irqs(&self) -> &[IrqInfo] {
        &self.irqs
    }

    fn map_region(&self, r: &RegionInfo) -> std::io::Result<MappedRegion> {
        MappedRegion::map(&self.fd, r.offset, r.size, r.writable())
    }

    fn region_io(&self) -> Arc<dyn RegionIo> {
        self.fd.clone()
    }

    fn irq_trigger(&self, index: u32, trigger: RawFd) -> Result<(), DeviceError> {
        VfioPlatformDevice::irq_trigger(self, index, trigger)
    }

    fn irq_unmask_fd(&self, index: u32, unmask: RawFd) -> Result<(), DeviceError> {
        VfioPlatformDevice::irq_unmask_fd(self, index, unmask)
    }

    fn irq_unmask(&self, index: u32) -> Result<(), DeviceError> {
        VfioPlatformDevice::irq_unmask(self, index)
    }

    fn irq_disable(&self, index: u32) -> Result<(), DeviceError> {
        VfioPlatformDevice::irq_disable(self, index)
    }

    fn reset_handle(&self) -> Option<ResetHandle> {
        (self.flags & VFIO_DEVICE_FLAGS_RESET != 0).then(|| ResetHandle {
            fd: self.fd.clone(),
            name: self.host.name.clone(),
        })
    }

    fn reset(&self) -> Option<Result<(), DeviceError>> {
        (self.flags & VFIO_DEVICE_FLAGS_RESET != 0).then(|| {
            ioctl::device_reset(&self.fd).map_err(|source| DeviceError::Ioctl {
                dev: self.host.name.clone(),
                what: "VFIO_DEVICE_RESET".into(),
                source,
            })
        })
    }
}

/// The device kind from VFIO_DEVICE_GET_INFO flags, or the name of the refused kind.
pub fn kind_from_flags(flags: u32) -> Result<DeviceKind, &'static str> {
    if flags & VFIO_DEVICE_FLAGS_PLATFORM != 0 {
        Ok(DeviceKind::Platform)
    } else if flags & VFIO_DEVICE_FLAGS_AMBA != 0 {
        Ok(DeviceKind::Amba)
    } else if flags & VFIO_DEVICE_FLAGS_PCI != 0 {
        Err("a PCI device")
    } else {
        Err("an unsupported device type")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        // Values measured on the emulated board: platform 0x4, AMBA 0x8.
        assert_eq!(kind_from_flags(0x4), Ok(DeviceKind::Platform));
        assert_eq!(kind_from_flags(0x8), Ok(DeviceKind::Amba));
        assert_eq!(kind_from_flags(0x2 | 0x1), Err("a PCI device"));
        assert!(kind_from_flags(0x10).is_err());
    }

    #[test]
    fn mappable_only_whole_pages_with_mmap() {
        let r = |flags, size, offset| RegionInfo {
            index: 0,
            flags,
            size,
            offset,
        };
        let rwm =
            VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
        assert!(r(rwm, 0x1000, 0).mappable(0x1000));
        assert!(!r(rwm, 0x18, 0).mappable(0x1000), "fw-cfg: 0x18 bytes");
        assert!(
            !r(rwm, 0x200, 0).mappable(0x1000),
            "virtio-mmio: 0x200 bytes"
        );
        assert!(!r(rwm & !VFIO_REGION_INFO_FLAG_MMAP, 0x1000, 0).mappable(0x1000));
        assert!(!r(rwm, 0x1000, 0x800).mappable(0x1000));
        assert!(
            !r(rwm, 0x1000, 0).mappable(0x10000),
            "4 KiB region on a 64 KiB-page host"
        );
        assert_eq!(r(rwm, 0x1000, 0).flag_names(), "read,write,mmap");
    }

    #[test]
    fn irq_level_from_automasked() {
        // PL031 reported 0x7 (eventfd, maskable, automasked); virtio-mmio edge 0x1.
        assert!(IrqInfo {
            index: 0,
            flags: 0x7,
            count: 1
        }
        .level());
        assert!(!IrqInfo {
            index: 0,
            flags: 0x1,
            count: 1
        }
        .level());
    }
}
