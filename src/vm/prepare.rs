//! The checks before KVM: a [`VmConfig`] validated and its files opened into [`Prepared`].
//!
//! Validation that needs no KVM (sizes, the host CPUs and real-time policy `--cpus` names, the
//! kernel format, the boot plan) runs first, on any host, so bad input gets its message even on
//! a machine that could never run the guest.

use std::fs::File;
use std::io::Read;

use devices::dt::GuestNode;

use crate::arch::aarch64::image::{self, BootPlan, ImageHeader};
use crate::arch::aarch64::layout::{self, LayoutError};
use crate::config::VmConfig;
use crate::passthrough::ProbedDevice;

use crate::vm::error::Error;

/// The validated inputs of a boot.
#[derive(Debug)]
pub struct Prepared {
    pub cfg: VmConfig,
    pub kernel: File,
    pub kernel_size: u64,
    pub header: ImageHeader,
    pub initramfs: Option<(File, u64)>,
    /// Where things go with RAM at `RAM_BASE` (identity-mapped RAM re-plans in its runs).
    pub plan: BootPlan,
    /// The `--vfio-platform` devices, probed in sysfs, with their options and host nodes.
    pub devices: Vec<ProbedDevice>,
    /// The `--dt-overlay` fragments, parsed.
    pub dt_overlays: Vec<GuestNode>,
    /// The `--disk` images, open and locked.
    pub disks: Vec<devices::virtio::block::Disk>,
    /// The `--api-socket` listener, bound last (nothing else can fail after it here).
    pub api: Option<std::os::unix::net::UnixListener>,
}

/// Checks everything that can be checked without KVM.
pub fn prepare(cfg: VmConfig) -> Result<Prepared, Error> {
    if cfg.cpus == 0 {
        return Err(LayoutError::NoCpus.into());
    }
    crate::vstate::placement::check(&cfg.placement)?;
    layout::check_memory(cfg.mem_size)?;
    if cfg.cmdline.len() >= image::CMDLINE_MAX {
        return Err(Error::CmdlineTooLong {
            len: cfg.cmdline.len(),
            max: image::CMDLINE_MAX - 1,
            limit: image::CMDLINE_MAX,
        });
    }

    if let Some(dir) = &cfg.jail.chroot {
        if !dir.is_dir() {
            return Err(Error::ChrootNotDir(dir.clone()));
        }
    }

    let kernel_err = |source| Error::KernelOpen {
        path: cfg.kernel.clone(),
        source,
    };
    let (mut kernel, kernel_size) =
        crate::host::input::open_regular(&cfg.kernel).map_err(kernel_err)?;
    let mut head = vec![0u8; image::HEAD_READ];
    let n = read_up_to(&mut kernel, &mut head).map_err(|e| kernel_err(e.into()))?;
    let header =
        ImageHeader::parse(&head[..n], kernel_size).map_err(|source| Error::KernelFormat {
            path: cfg.kernel.clone(),
            source,
        })?;

    // Passthrough paths are checked before anything else touches KVM or VFIO, so a wrong
    // path or binding fails fast with its fix and changes nothing on the host.
    let devices = crate::passthrough::probe(&crate::passthrough::sysfs_root(), &cfg.vfio)?;
    let dt_overlays = cfg
        .dt_overlays
        .iter()
        .map(|p| crate::host::overlay::read(p).map_err(Error::DtOverlay))
        .collect::<Result<Vec<_>, _>>()?;

    let disks = crate::virtio::open_disks(&cfg.virtio)?;
    let initramfs =
        match &cfg.initramfs {
            Some(p) => Some(crate::host::input::open_regular(p).map_err(|source| {
                Error::InitramfsOpen {
                    path: p.clone(),
                    source,
                }
            })?),
            None => None,
        };
    let plan = image::plan(
        layout::RAM_BASE,
        cfg.mem_size,
        &header,
        kernel_size,
        initramfs.as_ref().map(|(_, len)| *len),
    )?;
    let api = cfg
        .api_socket
        .as_deref()
        .map(crate::api::server::bind)
        .transpose()?;
    Ok(Prepared {
        cfg,
        kernel,
        kernel_size,
        header,
        initramfs,
        plan,
        devices,
        dt_overlays,
        disks,
        api,
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::layout::MIB;
    use std::io::Write;
    use std::path::PathBuf;

    fn tmp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("platvmm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    fn image(size: usize) -> Vec<u8> {
        let mut v = vec![0u8; size];
        v[16..24].copy_from_slice(&(size as u64).to_le_bytes());
        v[56..60].copy_from_slice(b"ARM\x64");
        v
    }

    fn cfg(kernel: PathBuf) -> VmConfig {
        VmConfig {
            kernel,
            initramfs: None,
            cmdline: String::new(),
            cpus: 1,
            placement: Default::default(),
            mem_size: 64 * MIB,
            dump_dtb: None,
            vfio: Vec::new(),
            dt_overlays: Vec::new(),
            stats: false,
            identity_ram: false,
            sec_controller: false,
            seccomp: Default::default(),
            scmi: Default::default(),
            jail: Default::default(),
            virtio: Default::default(),
            test_denied_syscall: false,
            api_socket: None,
            shutdown_timeout: std::time::Duration::from_secs(10),
            on_reboot: crate::config::OnReboot::Restart,
        }
    }

    #[test]
    fn prepare_accepts_an_image_and_plans() {
        let k = tmp_file("ok-image", &image(4096));
        let i = tmp_file("ok-initrd", &[7u8; 1000]);
        let mut c = cfg(k);
        c.initramfs = Some(i);
        let p = prepare(c).unwrap();
        assert_eq!(p.kernel_size, 4096);
        assert_eq!(p.plan.initrd.unwrap().1, 1000);
    }

    #[test]
    fn prepare_errors_name_the_problem() {
        let missing = cfg(PathBuf::from("/nonexistent/Image"));
        let e = prepare(missing).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read kernel /nonexistent/Image"),
            "{e}"
        );

        let gz = tmp_file("gz", &[0x1f, 0x8b, 8, 0, 0, 0]);
        let e = prepare(cfg(gz)).unwrap_err().to_string();
        assert!(e.contains("gzip-compressed"), "{e}");

        let mut zero = cfg(tmp_file("z", &image(4096)));
        zero.cpus = 0;
        assert!(prepare(zero).unwrap_err().to_string().contains("--cpus"));

        // Host CPUs are checked before the kernel is read.
        let mut pinned = cfg(PathBuf::from("/nonexistent/Image"));
        pinned.placement = crate::config::parse_cpus("1,vmm=4000").unwrap().placement;
        let e = prepare(pinned).unwrap_err().to_string();
        assert!(
            e.starts_with("--cpus vmm=4000: host CPU 4000 does not exist or is not allowed"),
            "{e}"
        );

        let mut small = cfg(tmp_file("s", &image(4096)));
        small.mem_size = 16 * MIB;
        assert!(prepare(small)
            .unwrap_err()
            .to_string()
            .contains("too small"));

        let mut big_initrd = cfg(tmp_file("b", &image(4096)));
        big_initrd.initramfs = Some(tmp_file("bi", &vec![0u8; 70 * MIB as usize]));
        let e = prepare(big_initrd).unwrap_err().to_string();
        assert!(e.contains("too small for the kernel, initramfs"), "{e}");
    }
}
