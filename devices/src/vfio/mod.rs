//! The VFIO kernel interface for platform and AMBA devices (what the guest node looks like is
//! [`crate::guest_node`]'s business).
//!
//! - [`sysfs`]: from a sysfs path to bus, driver, IOMMU group and host DT node.
//! - [`ioctl`]: the VFIO ioctls (and why they are not vfio-ioctls' wrappers).
//! - [`container`]: groups, containers, IOMMU mode, DMA mappings.
//! - [`device`]: a device's fd, kind, regions and interrupts.
//! - [`region`]: trapped regions (one pread/pwrite per access, bounds-checked; vfio-platform
//!   splits 8-byte ones into two 32-bit accesses) and mmaps.

pub mod container;
pub mod device;
pub mod ioctl;
pub mod region;
pub mod sysfs;
