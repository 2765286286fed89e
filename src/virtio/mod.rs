//! The virtio devices a user asks for: `--disk`, `--net`, `--vsock`, `--rng` as config types,
//! their parsers, and the host files behind them (disk images opened and locked by
//! `vmm::prepare`, before KVM).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

pub mod wire;

use devices::virtio::block::{Disk, SERIAL_LEN};

/// One `--disk PATH[,readonly][,serial=S]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub readonly: bool,
    pub serial: Option<String>,
}

/// `--net tap=NAME[,mac=M][,vhost=on|off]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    pub tap: String,
    pub mac: Option<[u8; 6]>,
    /// `vhost=off`: the userspace path even where /dev/vhost-net exists.
    pub vhost: bool,
}

/// `--vsock cid=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VsockSpec {
    pub cid: u64,
}

/// Every virtio device of a VM, in the order the guest sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtioConfig {
    pub disks: Vec<DiskSpec>,
    pub net: Vec<NetSpec>,
    pub vsock: Option<VsockSpec>,
    pub rng: bool,
}

/// Virtio devices one VM can have: one SPI each from the emulated range (SPIs 1..=15).
pub const MAX_DEVICES: usize = 15;

impl VirtioConfig {
    /// How many virtio devices the guest gets.
    pub fn count(&self) -> usize {
        self.disks.len()
            + self.net.len()
            + usize::from(self.vsock.is_some())
            + usize::from(self.rng)
    }
}

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
    #[error("{what}: {source}")]
    Host {
        what: &'static str,
        source: std::io::Error,
    },
}

/// Parses `PATH[,readonly][,serial=S]`.
pub fn parse_disk(s: &str) -> Result<DiskSpec, String> {
    let mut parts = s.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or("missing image path")?;
    let mut d = DiskSpec {
        path: PathBuf::from(path),
        readonly: false,
        serial: None,
    };
    for opt in parts {
        match opt.split_once('=') {
            None if opt == "readonly" || opt == "ro" => d.readonly = true,
            Some(("serial", v)) => {
                if v.len() > SERIAL_LEN || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!(
                        "serial={v}: at most {SERIAL_LEN} printable ASCII characters"
                    ));
                }
                d.serial = Some(v.to_string());
            }
            _ => {
                return Err(format!(
                    "unknown option '{opt}' (options: readonly, serial=S)"
                ))
            }
        }
    }
    Ok(d)
}

/// Parses `tap=NAME[,mac=M][,vhost=on|off]`.
pub fn parse_net(s: &str) -> Result<NetSpec, String> {
    let (mut tap, mut mac, mut vhost) = (None, None, true);
    for opt in s.split(',') {
        match opt.split_once('=') {
            Some(("tap", v)) if !v.is_empty() && v.len() <= 15 => tap = Some(v.to_string()),
            Some(("tap", v)) => return Err(format!("tap={v}: an interface name of 1 to 15 bytes")),
            Some(("mac", v)) => mac = Some(crate::cli::parse_mac(v)?),
            Some(("vhost", "on")) => vhost = true,
            Some(("vhost", "off")) => vhost = false,
            _ => {
                return Err(format!(
                "unknown option '{opt}' (options: tap=NAME, mac=XX:XX:XX:XX:XX:XX, vhost=on|off)"
            ))
            }
        }
    }
    let tap = tap.ok_or("tap=NAME is required (e.g. --net tap=tap0)")?;
    Ok(NetSpec { tap, mac, vhost })
}

/// Parses `cid=N` (3 and up: 0-2 are reserved for the hypervisor and the host).
pub fn parse_vsock(s: &str) -> Result<VsockSpec, String> {
    let v = s
        .strip_prefix("cid=")
        .ok_or("give the guest's context id: --vsock cid=N (N >= 3)")?;
    let cid: u64 = v.parse().map_err(|_| format!("cid={v}: not a number"))?;
    if !(3..u64::from(u32::MAX)).contains(&cid) {
        return Err(format!(
            "cid={cid}: must be 3 or more and below {}",
            u32::MAX
        ));
    }
    Ok(VsockSpec { cid })
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

    #[test]
    fn options_parse_and_bad_ones_name_the_choices() {
        let d = parse_disk("/img,readonly,serial=abc").unwrap();
        assert!(d.readonly);
        assert_eq!(d.serial.as_deref(), Some("abc"));
        assert!(parse_disk("/img,rw")
            .unwrap_err()
            .contains("readonly, serial="));
        assert!(parse_disk("/img,serial=123456789012345678901").is_err());
        let n = parse_net("tap=tap0,mac=52:54:00:12:34:56,vhost=off").unwrap();
        assert_eq!(n.tap, "tap0");
        assert!(!n.vhost);
        assert_eq!(n.mac.unwrap()[5], 0x56);
        assert!(parse_net("mac=52:54:00:12:34:56")
            .unwrap_err()
            .contains("tap=NAME"));
        assert!(parse_net("tap=averyveryverylongname").is_err());
        assert_eq!(parse_vsock("cid=42").unwrap().cid, 42);
        assert!(parse_vsock("cid=2").is_err());
        assert!(parse_vsock("42").unwrap_err().contains("cid=N"));
    }

    #[test]
    fn more_devices_than_interrupt_lines_are_refused_before_any_open() {
        let cfg = VirtioConfig {
            net: vec![parse_net("tap=t").unwrap(); MAX_DEVICES],
            rng: true,
            ..Default::default()
        };
        let e = open_disks(&cfg).unwrap_err().to_string();
        assert!(e.starts_with("16 virtio devices"), "{e}");
        let mut r = crate::resources::Resources::new(0x4000_0000);
        let n = std::iter::from_fn(|| r.emulated_spi().ok()).count();
        assert_eq!(n, MAX_DEVICES, "MAX_DEVICES matches the emulated SPI range");
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
