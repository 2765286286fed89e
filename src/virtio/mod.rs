//! The virtio devices of a VM: the host files behind them (disk images opened and locked by
//! `vm::prepare`, before KVM) and, in [`attach`], each device made real on the VM.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

pub mod attach;

use devices::virtio::block::Disk;

use crate::config::{DiskSpec, VirtioConfig, MAX_DEVICES};

/// A virtio device could not be set up. Each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    #[error("--disk {path}: {source}")]
    DiskOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--disk {path}: not a regular file or block device (give a raw disk image)")]
    DiskKind { path: PathBuf },
    #[error("--disk {path}: the image is empty (make one, e.g. truncate -s 1G {path})")]
    DiskEmpty { path: PathBuf },
    #[error("--disk {path} is in use by another process that holds a lock on it ({held}); stop it first{hint}")]
    DiskLocked {
        path: PathBuf,
        held: &'static str,
        hint: &'static str,
    },
    #[error("--net tap={tap}: {source}")]
    Tap {
        tap: String,
        source: devices::virtio::tap::TapError,
    },
    #[error("--vsock: {0}")]
    Vsock(#[from] devices::virtio::vsock::VsockError),
    #[error("{0} virtio devices asked for: platvmm has interrupt lines for {MAX_DEVICES} (--disk, --net, --vsock and --rng together)")]
    TooMany(usize),
    #[error("out of interrupt lines for emulated devices ({MAX_DEVICES} virtio devices at most)")]
    Spis,
    #[error("platvmm's emulated-device area is full: too many virtio devices")]
    Area,
    /// A host resource (eventfd) could not be made.
    #[error("{what}: {source}")]
    Host {
        what: &'static str,
        source: std::io::Error,
    },
    /// KVM refused an irqfd or ioeventfd.
    #[error("{0}")]
    Kvm(#[from] crate::hypervisor::KvmError),
    /// The device's registers overlap another device on the bus.
    #[error("cannot place a virtio device: {0}")]
    Bus(#[from] devices::BusError),
}

/// Checks the device count, then opens and locks every disk image (read-write images
/// exclusively, read-only ones shared).
pub fn open_disks(cfg: &VirtioConfig) -> Result<Vec<Disk>, VirtioError> {
    if cfg.count() > MAX_DEVICES {
        return Err(VirtioError::TooMany(cfg.count()));
    }
    cfg.disks.iter().map(open_disk).collect()
}

fn open_disk(d: &DiskSpec) -> Result<Disk, VirtioError> {
    let path = d.path.clone();
    let io = |source| VirtioError::DiskOpen {
        path: path.clone(),
        source,
    };
    // Non-blocking open, so a FIFO cannot hang it; the flag is cleared once it is a disk.
    let file = OpenOptions::new()
        .read(true)
        .write(!d.readonly)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&d.path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EISDIR) => VirtioError::DiskKind { path: path.clone() },
            _ => io(e),
        })?;
    let meta = file.metadata().map_err(io)?;
    let ft = meta.file_type();
    if !ft.is_file() && !ft.is_block_device() {
        return Err(VirtioError::DiskKind { path });
    }
    // SAFETY: F_SETFL on an fd we own, with flags we read back from it.
    unsafe {
        let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
    lock(&file, d)?;
    let size = if ft.is_file() {
        meta.len()
    } else {
        use std::io::Seek;
        (&file).seek(std::io::SeekFrom::End(0)).map_err(io)?
    };
    if size < 512 {
        return Err(VirtioError::DiskEmpty { path });
    }
    if size % 512 != 0 {
        log::warn!(
            "--disk {}: {} bytes past the last whole 512-byte sector are not visible to the guest",
            d.path.display(),
            size % 512
        );
    }
    Ok(Disk {
        file,
        readonly: d.readonly,
        serial: d.serial.clone().unwrap_or_default().into_bytes(),
        sectors: size / 512,
    })
}

fn lock(file: &File, d: &DiskSpec) -> Result<(), VirtioError> {
    let op = if d.readonly {
        libc::LOCK_SH
    } else {
        libc::LOCK_EX
    };
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(VirtioError::DiskOpen {
            path: d.path.clone(),
            source: e,
        });
    }
    Err(VirtioError::DiskLocked {
        path: d.path.clone(),
        held: if d.readonly {
            "read-write"
        } else {
            "read-only or read-write"
        },
        hint: if d.readonly {
            ""
        } else {
            ", or add ,readonly to share it read-only"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_net;

    #[test]
    fn more_devices_than_interrupt_lines_are_refused_before_any_open() {
        let cfg = VirtioConfig {
            net: vec![parse_net("tap=t").unwrap(); MAX_DEVICES],
            rng: true,
            ..Default::default()
        };
        let e = open_disks(&cfg).unwrap_err().to_string();
        assert!(e.starts_with("15 virtio devices"), "{e}");
        let mut r = crate::resources::Resources::new(0x4000_0000);
        let n = std::iter::from_fn(|| r.emulated_spi().ok()).count();
        assert_eq!(
            n,
            MAX_DEVICES + 1,
            "MAX_DEVICES and the power button fill the emulated SPIs"
        );
    }

    #[test]
    fn a_locked_image_is_refused_and_readonly_shares() {
        let dir = std::env::temp_dir().join(format!("platvmm-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("img");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let rw = DiskSpec {
            path: p.clone(),
            readonly: false,
            serial: None,
        };
        let ro = DiskSpec {
            readonly: true,
            ..rw.clone()
        };
        let held = open_disk(&rw).unwrap();
        assert_eq!(held.sectors, 8);
        let e = open_disk(&rw).unwrap_err().to_string();
        assert!(e.contains("in use by another process"), "{e}");
        assert!(
            open_disk(&ro).is_err(),
            "read-write holder excludes readers"
        );
        drop(held);
        let r1 = open_disk(&ro).unwrap();
        let _r2 = open_disk(&ro).unwrap();
        assert!(open_disk(&rw).is_err(), "readers exclude a writer");
        drop(r1);
        std::fs::write(dir.join("empty"), b"").unwrap();
        let e = open_disk(&DiskSpec {
            path: dir.join("empty"),
            ..ro.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = open_disk(&DiskSpec {
            path: dir.clone(),
            ..ro
        })
        .unwrap_err();
        assert!(e.to_string().contains("--disk"), "{e}");
    }
}
