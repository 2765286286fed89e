//! The VFIO platform backend: host platform and AMBA devices handed to a guest.
//!
//! - [`sysfs`]: from a sysfs path to bus, driver, IOMMU group and host DT node.

pub mod sysfs;
