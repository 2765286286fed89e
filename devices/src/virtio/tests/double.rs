//! A vhost kernel backend double: records each call the devices make, fails the ones a test
//! names.

use std::fs::File;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use vhost::net::VhostNet;
use vhost::{
    VhostBackend, VhostUserDirtyLogRegion, VhostUserMemoryRegionBase, VhostUserMemoryRegionInfo,
    VringConfigData,
};
use vmm_sys_util::eventfd::EventFd;

/// One call, as the double saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Features(u64),
    MemTable(usize),
    Num(usize, u16),
    Addr(usize),
    Base(usize),
    Irqfd(usize),
    Kick(usize),
    /// `set_backend(queue, attach?)`, whether it succeeded or not.
    Backend(usize, bool),
}

/// The double; `calls` is shared with the test.
#[derive(Default, Clone)]
pub struct Vhost {
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// `set_backend(queue, Some(_))` fails for this queue.
    pub fail_attach: Option<usize>,
}

impl Vhost {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, c: Call) -> vhost::Result<()> {
        self.calls.lock().unwrap().push(c);
        Ok(())
    }
}

impl VhostBackend for Vhost {
    fn get_features(&self) -> vhost::Result<u64> {
        Ok(!0)
    }
    fn set_features(&self, features: u64) -> vhost::Result<()> {
        self.record(Call::Features(features))
    }
    fn set_owner(&self) -> vhost::Result<()> {
        Ok(())
    }
    fn reset_owner(&self) -> vhost::Result<()> {
        Ok(())
    }
    fn set_mem_table(
        &self,
        regions: &[VhostUserMemoryRegionInfo],
    ) -> vhost::Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        self.record(Call::MemTable(regions.len()))?;
        Ok(None)
    }
    fn set_log_base(
        &self,
        _base: u64,
        _region: Option<VhostUserDirtyLogRegion>,
    ) -> vhost::Result<()> {
        Ok(())
    }
    fn set_log_fd(&self, _fd: RawFd) -> vhost::Result<()> {
        Ok(())
    }
    fn set_vring_num(&self, queue_index: usize, num: u16) -> vhost::Result<()> {
        self.record(Call::Num(queue_index, num))
    }
    fn set_vring_addr(&self, queue_index: usize, _config: &VringConfigData) -> vhost::Result<()> {
        self.record(Call::Addr(queue_index))
    }
    fn set_vring_base(&self, queue_index: usize, _base: u16) -> vhost::Result<()> {
        self.record(Call::Base(queue_index))
    }
    fn get_vring_base(&self, _queue_index: usize) -> vhost::Result<u32> {
        Ok(0)
    }
    fn set_vring_call(&self, queue_index: usize, _fd: &EventFd) -> vhost::Result<()> {
        self.record(Call::Irqfd(queue_index))
    }
    fn set_vring_kick(&self, queue_index: usize, _fd: &EventFd) -> vhost::Result<()> {
        self.record(Call::Kick(queue_index))
    }
    fn set_vring_err(&self, _queue_index: usize, _fd: &EventFd) -> vhost::Result<()> {
        Ok(())
    }
}

impl VhostNet for Vhost {
    fn set_backend(&self, queue_idx: usize, fd: Option<&File>) -> vhost::Result<()> {
        self.record(Call::Backend(queue_idx, fd.is_some()))?;
        if fd.is_some() && self.fail_attach == Some(queue_idx) {
            return Err(vhost::Error::IoctlError(std::io::Error::from_raw_os_error(
                libc::EINVAL,
            )));
        }
        Ok(())
    }
}
