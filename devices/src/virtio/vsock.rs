//! virtio-vsock on vhost-vsock: the rx and tx rings are the kernel's; the event ring (used
//! only for transport resets, which platvmm never sends) stays with the driver's buffers.

use vhost::vsock::VhostVsock;
use vhost::VhostBackend;
use virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use vmm_sys_util::eventfd::EventFd;

use super::vhost::{err, Mem};
use super::{feature, read_config_bytes, ActivateError, Activation, VirtioDevice};

const QUEUE_SIZE: u16 = 256;
/// The feature bit `VIRTIO_VSOCK_F_SEQPACKET` (virtio-bindings has no virtio-vsock
/// constants).
const VIRTIO_VSOCK_F_SEQPACKET: u32 = 1;

/// Why vhost-vsock could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("cannot open /dev/vhost-vsock: {0} (load the module: modprobe vhost_vsock)")]
    Open(vhost::Error),
    #[error("vsock CID {cid} is in use by another VM on this host (pick another cid=)")]
    CidInUse { cid: u64 },
    #[error("vhost-vsock: {0}")]
    Setup(vhost::Error),
}

/// A virtio-vsock device.
pub struct Vsock {
    vhost: vhost::vhost_kern::vsock::Vsock<Mem>,
    kernel_features: u64,
    kicks: Vec<EventFd>,
    config: [u8; 8],
}

impl Vsock {
    /// Opens /dev/vhost-vsock, takes ownership and claims `cid` at once (so a CID in use is
    /// refused before the guest boots).
    pub fn new(mem: Mem, cid: u64, kicks: Vec<EventFd>) -> Result<Self, VsockError> {
        let vhost = vhost::vhost_kern::vsock::Vsock::new(mem).map_err(VsockError::Open)?;
        vhost.set_owner().map_err(VsockError::Setup)?;
        let kernel_features = vhost.get_features().map_err(VsockError::Setup)?;
        vhost.set_guest_cid(cid).map_err(|e| match &e {
            vhost::Error::IoctlError(io) if io.raw_os_error() == Some(libc::EADDRINUSE) => {
                VsockError::CidInUse { cid }
            }
            _ => VsockError::Setup(e),
        })?;
        Ok(Self {
            vhost,
            kernel_features,
            kicks,
            config: cid.to_le_bytes(),
        })
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_VSOCK
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        self.kernel_features
            & (feature(VIRTIO_RING_F_EVENT_IDX)
                | feature(VIRTIO_RING_F_INDIRECT_DESC)
                | feature(VIRTIO_VSOCK_F_SEQPACKET))
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        super::vhost::start(&self.vhost, &a, &self.kicks, 2, self.kernel_features)?;
        self.vhost.start().map_err(err("cannot start the device"))
    }
    fn reset(&mut self) {
        let _ = self.vhost.stop();
    }
    fn kernel_queues(&self) -> bool {
        true
    }
}
