//! The VFIO side of attaching: every probed device's group opened and checked viable, one
//! container for the VM with its IOMMU type set once, guest RAM DMA-mapped (TYPE1v2), the
//! device fds and their infos; then the KVM-VFIO pseudo-device gets every group.

use std::os::fd::AsRawFd;
use std::path::Path;

use devices::vfio::container::{Container, ContainerError, Group, IommuMode};
use devices::vfio::device::VfioPlatformDevice;
use log::info;

use super::{PassDevice, Passthrough, PassthroughError, ProbedDevice};
use crate::hypervisor::{Hypervisor, KvmVfioDevice};
use crate::memory::RamMapping;

/// Opens groups, the container and the devices into `pt`. `ram` is DMA-mapped as soon as the
/// first group has given the container its IOMMU type, before any device fd exists (TYPE1v2;
/// nothing in no-IOMMU mode).
pub fn open_devices(
    pt: &mut Passthrough,
    sysfs: &Path,
    probed: Vec<ProbedDevice>,
    ram: &[RamMapping],
) -> Result<(), PassthroughError> {
    for p in probed {
        let group = Group::open(&p.host, sysfs)?;
        let (c, gi) = join(&mut pt.container, group, &p.host.name, ram, Container::open)?;
        let dev = VfioPlatformDevice::open(p.host.clone(), &c.groups()[gi])?;
        pt.devices.push(PassDevice::new(p, Box::new(dev)));
    }
    Ok(())
}

/// `group` into the VM's container (made by `open` for the first group): the group joins,
/// which sets the IOMMU type with the first one, and only then is guest RAM DMA-mapped (the
/// kernel refuses a mapping before). Returns the container and the group's index in it.
pub fn join<'c>(
    container: &'c mut Option<Container>,
    group: Group,
    dev: &str,
    ram: &[RamMapping],
    open: impl FnOnce(IommuMode) -> Result<Container, ContainerError>,
) -> Result<(&'c mut Container, usize), PassthroughError> {
    let first = container.is_none();
    let c = match container {
        Some(c) => c,
        None => container.insert(open(group.mode)?),
    };
    if first {
        info!("VFIO container: {:?}", c.mode);
    }
    let gi = c.add_group(group, dev)?;
    if first {
        // Guest RAM must be reachable by DMA before any device can run.
        for r in ram {
            c.map_dma(r.host, r.gpa, r.size)?;
        }
    }
    Ok((c, gi))
}

/// Adds every group of `container` to a KVM-VFIO pseudo-device (named after `first`, the
/// first device, in an error).
pub fn attach_kvm(
    vm: &dyn Hypervisor,
    container: &Container,
    first: &str,
) -> Result<KvmVfioDevice, PassthroughError> {
    let groups: Vec<i32> = container
        .groups()
        .iter()
        .map(|g| g.file.as_raw_fd())
        .collect();
    vm.add_vfio_groups(&groups)
        .map_err(|source| PassthroughError::Kvm {
            dev: first.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::sync::{Arc, Mutex};

    use devices::vfio::container::ContainerIoctls;
    use vfio_bindings::bindings::vfio::{VFIO_TYPE1v2_IOMMU, VFIO_NOIOMMU_IOMMU};

    use super::*;
    use crate::host::scratch::scratch_file;

    /// A container double that takes the ioctls only in the kernel's order (EINVAL
    /// otherwise, as drivers/vfio/container.c answers) and logs what it took.
    #[derive(Debug, Default, Clone)]
    struct KernelOrder {
        log: Arc<Mutex<Vec<String>>>,
        state: Arc<Mutex<(usize, bool)>>,
    }

    impl KernelOrder {
        fn take(&self, ok: bool, what: String) -> std::io::Result<()> {
            if !ok {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            self.log.lock().unwrap().push(what);
            Ok(())
        }
    }

    impl ContainerIoctls for KernelOrder {
        fn set_container(&self, _group: &File) -> std::io::Result<()> {
            self.state.lock().unwrap().0 += 1;
            self.take(true, "set-container".into())
        }
        fn set_iommu(&self, ty: u32) -> std::io::Result<()> {
            let mut s = self.state.lock().unwrap();
            let ok = s.0 > 0 && !s.1;
            s.1 |= ok;
            drop(s);
            self.take(ok, format!("set-iommu {ty}"))
        }
        fn map_dma(&self, _vaddr: u64, iova: u64, _size: u64) -> std::io::Result<()> {
            let ok = self.state.lock().unwrap().1;
            self.take(ok, format!("map {iova:#x}"))
        }
        fn unmap_dma(&self, iova: u64, _size: u64) -> std::io::Result<()> {
            self.take(true, format!("unmap {iova:#x}"))
        }
    }

    fn group(id: u32, mode: IommuMode) -> Group {
        Group {
            id,
            file: scratch_file(0),
            mode,
        }
    }

    const RAM: [RamMapping; 2] = [
        RamMapping {
            host: 0x7f00_0000_0000,
            gpa: 0x8000_0000,
            size: 0x1000_0000,
        },
        RamMapping {
            host: 0x7f00_2000_0000,
            gpa: 0x9000_0000,
            size: 0x1000_0000,
        },
    ];

    #[test]
    fn the_double_refuses_the_old_order() {
        let k = KernelOrder::default();
        assert!(
            k.map_dma(0, 0x8000_0000, 0x1000).is_err(),
            "map before SET_IOMMU"
        );
        assert!(
            k.set_iommu(VFIO_TYPE1v2_IOMMU).is_err(),
            "SET_IOMMU before a group"
        );
        let mut c = Container::with_io(IommuMode::Type1v2, Box::new(k));
        let e = c.map_dma(0, 0x8000_0000, 0x1000).unwrap_err().to_string();
        assert!(e.contains("before a VFIO group joined"), "{e}");
    }

    #[test]
    fn type1_groups_join_then_the_iommu_is_set_then_ram_is_mapped() {
        let k = KernelOrder::default();
        let mut container = None;
        for (id, dev) in [(7, "a"), (7, "b"), (9, "c")] {
            let io = Box::new(k.clone());
            let g = group(id, IommuMode::Type1v2);
            join(&mut container, g, dev, &RAM, |m| {
                Ok(Container::with_io(m, io))
            })
            .unwrap();
        }
        let ty1 = format!("set-iommu {VFIO_TYPE1v2_IOMMU}");
        assert_eq!(
            *k.log.lock().unwrap(),
            [
                "set-container",
                &ty1,
                "map 0x80000000",
                "map 0x90000000",
                "set-container"
            ]
        );
        assert_eq!(container.as_ref().unwrap().groups().len(), 2);
        drop(container);
        assert_eq!(
            k.log.lock().unwrap()[5..],
            ["unmap 0x80000000", "unmap 0x90000000"]
        );
    }

    #[test]
    fn noiommu_sets_its_type_and_maps_nothing() {
        let k = KernelOrder::default();
        let mut container = None;
        let io = Box::new(k.clone());
        let g = group(3, IommuMode::NoIommu);
        join(&mut container, g, "a", &RAM, |m| {
            Ok(Container::with_io(m, io))
        })
        .unwrap();
        let noiommu = format!("set-iommu {VFIO_NOIOMMU_IOMMU}");
        assert_eq!(*k.log.lock().unwrap(), ["set-container", &noiommu]);
        let other = group(4, IommuMode::Type1v2);
        let e = join(&mut container, other, "b", &RAM, |_| unreachable!());
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("pass devices of one kind per VM"));
    }
}
