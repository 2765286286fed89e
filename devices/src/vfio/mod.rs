//! The VFIO platform backend: host platform and AMBA devices handed to a guest.
//!
//! - [`sysfs`]: from a sysfs path to bus, driver, IOMMU group and host DT node.
//! - [`ioctl`]: the VFIO ioctls (and why they are not vfio-ioctls' wrappers).
//! - [`clocks`]: a host node's clocks resolved to providers and rates.
//! - [`container`]: groups, containers, IOMMU mode, DMA mappings.
//! - [`device`]: a device's fd, kind, regions and interrupts.
//! - [`region`]: trapped regions (pread/pwrite at exact width, bounds-checked) and mmaps.
//! - [`hostdt`]: the host device-tree node from sysfs.
//! - [`node`]: the guest node generated from it, under the property policy.

pub mod clocks;
pub mod container;
pub mod device;
pub mod handlers;
pub mod hostdt;
pub mod ioctl;
pub mod node;
pub mod region;
pub mod sysfs;
