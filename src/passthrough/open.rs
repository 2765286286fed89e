//! The VFIO side of attaching: every probed device's group opened and checked viable, one
//! container for the VM with its IOMMU type set once, guest RAM DMA-mapped (TYPE1v2), the
//! device fds and their infos; then the KVM-VFIO pseudo-device gets every group.

use std::os::fd::AsRawFd;
use std::path::Path;

use devices::vfio::container::{Container, Group, IommuMode};
use devices::vfio::device::VfioPlatformDevice;
use log::info;

use super::{PassDevice, Passthrough, PassthroughError, ProbedDevice};
use crate::hypervisor::{Hypervisor, KvmVfioDevice};
use crate::memory::RamMapping;

/// Opens groups, the container and the devices into `pt`. `ram` is DMA-mapped when the
/// container is made, before any device fd exists (TYPE1v2; nothing in no-IOMMU mode).
pub fn open_devices(
    pt: &mut Passthrough,
    sysfs: &Path,
    probed: Vec<ProbedDevice>,
    ram: &[RamMapping],
) -> Result<(), PassthroughError> {
    for p in probed {
        let group = Group::open(&p.host, sysfs)?;
        let c = match &mut pt.container {
            Some(c) => c,
            None => pt.container.insert(open_container(group.mode, ram)?),
        };
        let gi = c.add_group(group, &p.host.name)?;
        let dev = VfioPlatformDevice::open(p.host.clone(), &c.groups()[gi])?;
        pt.devices.push(PassDevice::new(p, Box::new(dev)));
    }
    Ok(())
}

fn open_container(mode: IommuMode, ram: &[RamMapping]) -> Result<Container, PassthroughError> {
    let mut c = Container::open(mode)?;
    info!("VFIO container: {:?}", c.mode);
    // Guest RAM must be reachable by DMA before any device can run.
    for r in ram {
        c.map_dma(r.host, r.gpa, r.size)?;
    }
    Ok(c)
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
