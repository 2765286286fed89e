//! A tap interface opened through /dev/net/tun, with virtio-net headers (12 bytes) on every
//! frame, and its byte counters from sysfs.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU32, Ordering};

use virtio_bindings::virtio_net::virtio_net_hdr_v1;
use vmm_sys_util::ioctl::{ioctl_with_ref, ioctl_with_val};
use vmm_sys_util::ioctl_iow_nr;

ioctl_iow_nr!(TUNSETIFF, b'T' as u32, 202, libc::c_int);
ioctl_iow_nr!(TUNSETOFFLOAD, b'T' as u32, 208, libc::c_uint);
ioctl_iow_nr!(TUNSETVNETHDRSZ, b'T' as u32, 216, libc::c_int);

const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
pub const TUN_F_CSUM: u32 = 1;
pub const TUN_F_TSO4: u32 = 2;
pub const TUN_F_TSO6: u32 = 4;

/// The virtio-net header size with VERSION_1 (num_buffers included): 12 bytes.
pub const VNET_HDR_LEN: i32 = std::mem::size_of::<virtio_net_hdr_v1>() as i32;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

/// Why a tap could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap name '{0}' is empty or longer than 15 bytes")]
    Name(String),
    #[error("cannot open /dev/net/tun: {0} (load the tun module: modprobe tun)")]
    Open(std::io::Error),
    #[error("cannot attach to tap {name}: {source} (is it in use by another process, or owned by another user? ip tuntap add {name} mode tap user UID creates one for that user)")]
    Attach {
        name: String,
        source: std::io::Error,
    },
    #[error("{0} is a network interface but not a tap: give the name of a tap, or a new name to create one")]
    NotTap(String),
    #[error("tap {name}: {what}: {source}")]
    Setup {
        name: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// An open tap.
pub struct Tap {
    pub name: String,
    pub file: File,
    /// The offloads last set (`UNKNOWN` before the first): the ioctl is skipped when they do
    /// not change.
    offloads: AtomicU32,
}

/// No offloads set yet.
const UNKNOWN: u32 = u32::MAX;

impl Tap {
    /// Attaches to tap `name` (created, non-persistent, if it does not exist).
    pub fn open(name: &str) -> Result<Self, TapError> {
        if name.is_empty() || name.len() > 15 || name.contains('/') {
            return Err(TapError::Name(name.into()));
        }
        let sys = std::path::Path::new("/sys/class/net").join(name);
        if sys.exists() && !sys.join("tun_flags").exists() {
            return Err(TapError::NotTap(name.into()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let mut req = IfReq {
            name: [0; 16],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is (40 bytes, C layout).
        if unsafe { ioctl_with_ref(&file, TUNSETIFF(), &req) } < 0 {
            return Err(TapError::Attach {
                name: name.into(),
                source: std::io::Error::last_os_error(),
            });
        }
        let tap = Tap {
            name: name.into(),
            file,
            offloads: UNKNOWN.into(),
        };
        let hdr = VNET_HDR_LEN;
        // SAFETY: TUNSETVNETHDRSZ reads an int from the pointer.
        let r = unsafe { ioctl_with_ref(&tap.file, TUNSETVNETHDRSZ(), &hdr) };
        tap.check(r, "cannot set the virtio-net header size")?;
        tap.set_offload(0)?;
        Ok(tap)
    }

    /// A tap `file` already set up (virtio-net headers, no offloads), or a stand-in for one.
    pub fn from_file(name: &str, file: File) -> Self {
        Tap {
            name: name.into(),
            file,
            offloads: 0.into(),
        }
    }

    /// Which offloads the tap may hand the guest (TUN_F_*).
    pub fn set_offload(&self, flags: u32) -> Result<(), TapError> {
        if self.offloads.load(Ordering::Relaxed) == flags {
            return Ok(());
        }
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let r = unsafe { ioctl_with_val(&self.file, TUNSETOFFLOAD(), libc::c_ulong::from(flags)) };
        self.check(r, "cannot set offloads")?;
        self.offloads.store(flags, Ordering::Relaxed);
        Ok(())
    }

    fn check(&self, r: i32, what: &'static str) -> Result<(), TapError> {
        if r < 0 {
            return Err(TapError::Setup {
                name: self.name.clone(),
                what,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// The tap's byte counters, opened now (nothing can be opened once the sandbox is on).
    pub fn stats(&self) -> Option<TapStats> {
        let open =
            |f: &str| File::open(format!("/sys/class/net/{}/statistics/{f}", self.name)).ok();
        Some(TapStats {
            rx: open("rx_bytes")?,
            tx: open("tx_bytes")?,
        })
    }

    /// The fd for epoll.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

/// A tap's byte counters: what the host received from the guest (its rx) and sent to it.
pub struct TapStats {
    rx: File,
    tx: File,
}

impl TapStats {
    fn read(f: &File) -> u64 {
        let mut buf = [0u8; 32];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// (bytes the guest sent, bytes the guest received).
    pub fn guest_tx_rx(&self) -> (u64, u64) {
        (Self::read(&self.rx), Self::read(&self.tx))
    }
}
