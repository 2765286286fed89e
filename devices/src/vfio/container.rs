//! VFIO containers and groups.
//!
//! One container per IOMMU mode is shared by every device of a VM: TYPE1v2 when the host has
//! an IOMMU for the devices, no-IOMMU (`/dev/vfio/noiommu-N` groups, vfio loaded with
//! `enable_unsafe_noiommu_mode=1`) when it does not. With TYPE1v2, guest RAM is DMA-mapped
//! IOVA = guest-physical before any device can run.
//!
//! The kernel's order (drivers/vfio/container.c): a group joins the container
//! (`VFIO_GROUP_SET_CONTAINER`), then the IOMMU type is set (`VFIO_SET_IOMMU` fails with no
//! group), then DMA can be mapped (`VFIO_IOMMU_MAP_DMA` fails before an IOMMU type is set).
//! [`Container::add_group`] sets the type with the first group; [`Container::map_dma`] refuses
//! to run before that. The ioctls go through [`ContainerIoctls`], so a double that enforces
//! the kernel's order can stand in for `/dev/vfio/vfio` in tests.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use vfio_bindings::bindings::vfio::{
    VFIO_TYPE1v2_IOMMU, VFIO_API_VERSION, VFIO_GROUP_FLAGS_VIABLE, VFIO_NOIOMMU_IOMMU,
};

use super::ioctl;
use super::sysfs::{HostDevice, SysfsError};

/// How devices reach memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IommuMode {
    /// An IOMMU translates device DMA: guest RAM is mapped IOVA = guest-physical.
    Type1v2,
    /// No IOMMU: devices DMA to host physical addresses.
    NoIommu,
}

/// Errors opening groups and containers.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// /dev/vfio/vfio missing or not openable.
    #[error("cannot open /dev/vfio/vfio: {0} (load the vfio module)")]
    OpenContainer(std::io::Error),
    /// Unknown VFIO API.
    #[error("unsupported VFIO API version {0}")]
    ApiVersion(i32),
    /// The IOMMU type is not available.
    #[error("VFIO does not offer the {0:?} IOMMU type on this host")]
    NoIommuType(IommuMode),
    /// Opening the group node failed.
    #[error("cannot open VFIO group {path}: {source}")]
    OpenGroup {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Sysfs-level explanation of a non-viable group.
    #[error("{0}")]
    Sysfs(#[from] SysfsError),
    /// Group not viable although sysfs shows nothing bound elsewhere.
    #[error("VFIO group {0} is not viable: every device of /sys/kernel/iommu_groups/{0}/devices must be bound to vfio")]
    NotViable(u32),
    /// A group ioctl failed.
    #[error("VFIO group {group}: {what}: {source}")]
    Group {
        group: u32,
        what: &'static str,
        source: std::io::Error,
    },
    /// Mixed modes in one VM.
    #[error("device {dev} is in a {found:?} group but the VM's other devices use {want:?}: pass devices of one kind per VM")]
    MixedModes {
        dev: String,
        found: IommuMode,
        want: IommuMode,
    },
    /// A DMA mapping asked for before any group gave the container its IOMMU type.
    #[error("cannot DMA-map guest RAM {iova:#x}+{size:#x} before a VFIO group joined the container (platvmm bug)")]
    MapBeforeGroup { iova: u64, size: u64 },
    /// DMA mapping failed.
    #[error("cannot DMA-map guest RAM {iova:#x}+{size:#x}: {source}")]
    MapDma {
        iova: u64,
        size: u64,
        source: std::io::Error,
    },
}

/// An open VFIO group.
#[derive(Debug)]
pub struct Group {
    pub id: u32,
    pub file: File,
    pub mode: IommuMode,
}

/// The device node of group `id`: `/dev/vfio/noiommu-N` in no-IOMMU mode, else `/dev/vfio/N`.
pub fn group_node(dev_vfio: &Path, id: u32) -> (PathBuf, IommuMode) {
    let noiommu = dev_vfio.join(format!("noiommu-{id}"));
    if noiommu.exists() {
        (noiommu, IommuMode::NoIommu)
    } else {
        (dev_vfio.join(id.to_string()), IommuMode::Type1v2)
    }
}

impl Group {
    /// Opens the group of `dev` and checks it is viable.
    pub fn open(dev: &HostDevice, sysfs_root: &Path) -> Result<Self, ContainerError> {
        let (path, mode) = group_node(Path::new("/dev/vfio"), dev.group);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| ContainerError::OpenGroup {
                path: path.clone(),
                source,
            })?;
        let flags = ioctl::group_status(&file).map_err(|source| ContainerError::Group {
            group: dev.group,
            what: "VFIO_GROUP_GET_STATUS",
            source,
        })?;
        if flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            dev.check_group(sysfs_root)?;
            return Err(ContainerError::NotViable(dev.group));
        }
        Ok(Self {
            id: dev.group,
            file,
            mode,
        })
    }
}

/// The ioctls of a VFIO container (`/dev/vfio/vfio`), in the order the kernel takes them.
pub trait ContainerIoctls: std::fmt::Debug + Send + Sync {
    /// `VFIO_GROUP_SET_CONTAINER` on `group`.
    fn set_container(&self, group: &File) -> std::io::Result<()>;
    /// `VFIO_SET_IOMMU` (the kernel refuses it before a group has joined).
    fn set_iommu(&self, iommu_type: u32) -> std::io::Result<()>;
    /// `VFIO_IOMMU_MAP_DMA` (the kernel refuses it before an IOMMU type is set).
    fn map_dma(&self, vaddr: u64, iova: u64, size: u64) -> std::io::Result<()>;
    /// `VFIO_IOMMU_UNMAP_DMA`.
    fn unmap_dma(&self, iova: u64, size: u64) -> std::io::Result<()>;
}

/// The kernel's container: `/dev/vfio/vfio`.
#[derive(Debug)]
pub struct KernelContainer {
    pub file: File,
}

impl ContainerIoctls for KernelContainer {
    fn set_container(&self, group: &File) -> std::io::Result<()> {
        ioctl::group_set_container(group, &self.file)
    }
    fn set_iommu(&self, iommu_type: u32) -> std::io::Result<()> {
        ioctl::set_iommu(&self.file, iommu_type)
    }
    fn map_dma(&self, vaddr: u64, iova: u64, size: u64) -> std::io::Result<()> {
        ioctl::map_dma(&self.file, vaddr, iova, size)
    }
    fn unmap_dma(&self, iova: u64, size: u64) -> std::io::Result<()> {
        ioctl::unmap_dma(&self.file, iova, size)
    }
}

/// A VFIO container with its groups.
#[derive(Debug)]
pub struct Container {
    io: Box<dyn ContainerIoctls>,
    pub mode: IommuMode,
    groups: Vec<Group>,
    /// DMA mappings made (IOVA, size), undone on drop.
    mapped: Vec<(u64, u64)>,
}

impl Container {
    /// Opens `/dev/vfio/vfio` for `mode`.
    pub fn open(mode: IommuMode) -> Result<Self, ContainerError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/vfio/vfio")
            .map_err(ContainerError::OpenContainer)?;
        let v = ioctl::api_version(&file).map_err(ContainerError::OpenContainer)?;
        if v != VFIO_API_VERSION as i32 {
            return Err(ContainerError::ApiVersion(v));
        }
        let ty = iommu_type(mode);
        if !ioctl::check_extension(&file, ty).unwrap_or(false) {
            return Err(ContainerError::NoIommuType(mode));
        }
        Ok(Self::with_io(mode, Box::new(KernelContainer { file })))
    }

    /// A container for `mode` whose ioctls go to `io`.
    pub fn with_io(mode: IommuMode, io: Box<dyn ContainerIoctls>) -> Self {
        Self {
            io,
            mode,
            groups: Vec::new(),
            mapped: Vec::new(),
        }
    }

    /// Adds `group` (once per group id) and returns its index in [`Container::groups`]. The
    /// first group also sets the container's IOMMU type, after which DMA can be mapped.
    pub fn add_group(&mut self, group: Group, dev_name: &str) -> Result<usize, ContainerError> {
        if let Some(i) = self.groups.iter().position(|g| g.id == group.id) {
            return Ok(i);
        }
        if group.mode != self.mode {
            return Err(ContainerError::MixedModes {
                dev: dev_name.to_string(),
                found: group.mode,
                want: self.mode,
            });
        }
        let gerr = |what, source| ContainerError::Group {
            group: group.id,
            what,
            source,
        };
        self.io
            .set_container(&group.file)
            .map_err(|e| gerr("VFIO_GROUP_SET_CONTAINER", e))?;
        if self.groups.is_empty() {
            // The IOMMU type is set once, after the first group joins; later groups inherit it.
            self.io
                .set_iommu(iommu_type(self.mode))
                .map_err(|e| gerr("VFIO_SET_IOMMU", e))?;
        }
        self.groups.push(group);
        Ok(self.groups.len() - 1)
    }

    /// The groups in this container.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Maps `size` bytes of guest RAM at host `vaddr` to IOVA `iova` (TYPE1v2 only; a no-IOMMU
    /// container has no mappings). A group must have joined first (it sets the IOMMU type).
    pub fn map_dma(&mut self, vaddr: u64, iova: u64, size: u64) -> Result<(), ContainerError> {
        if self.mode == IommuMode::NoIommu {
            return Ok(());
        }
        if self.groups.is_empty() {
            return Err(ContainerError::MapBeforeGroup { iova, size });
        }
        self.io
            .map_dma(vaddr, iova, size)
            .map_err(|source| ContainerError::MapDma { iova, size, source })?;
        self.mapped.push((iova, size));
        Ok(())
    }

    /// Undoes every DMA mapping (also done on drop).
    pub fn unmap_all(&mut self) {
        for (iova, size) in self.mapped.drain(..) {
            if let Err(e) = self.io.unmap_dma(iova, size) {
                log::warn!("VFIO: cannot unmap DMA {iova:#x}+{size:#x}: {e}");
            }
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.unmap_all();
    }
}

fn iommu_type(mode: IommuMode) -> u32 {
    match mode {
        IommuMode::Type1v2 => VFIO_TYPE1v2_IOMMU,
        IommuMode::NoIommu => VFIO_NOIOMMU_IOMMU,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_node_prefers_noiommu() {
        let d = std::env::temp_dir().join(format!("platvmm-devvfio-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(group_node(&d, 3), (d.join("3"), IommuMode::Type1v2));
        std::fs::write(d.join("noiommu-3"), b"").unwrap();
        assert_eq!(group_node(&d, 3), (d.join("noiommu-3"), IommuMode::NoIommu));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
