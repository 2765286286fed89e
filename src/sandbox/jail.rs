//! Privilege drop (`--user UID[:GID]`, `--chroot DIR`), once every fd platvmm needs is open
//! (/dev/kvm, VFIO groups and devices, images, pagemap reads for identity-mapped RAM) and
//! before any vCPU runs:
//! 1. a new root: DIR, or with `--user` alone an empty one (a fresh directory entered and
//!    removed, so nothing can even be created in it);
//! 2. no_new_privs, so no exec can gain privileges back;
//! 3. the capability bounding and ambient sets emptied;
//! 4. the user switched (supplementary groups replaced by GID), which clears the permitted
//!    and effective sets; with `--chroot` alone, those are cleared by capset instead;
//! 5. checked: the effective set read back must be empty.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::config::{JailConfig, UserSpec};

/// A step of the privilege drop failed; platvmm does not run the guest half-dropped.
#[derive(Debug, thiserror::Error)]
#[error("cannot drop privileges: {step}: {source}")]
pub struct JailError {
    pub step: String,
    pub source: std::io::Error,
}

fn check(step: impl Into<String>, r: libc::c_int) -> Result<(), JailError> {
    if r == 0 {
        return Ok(());
    }
    Err(JailError {
        step: step.into(),
        source: std::io::Error::last_os_error(),
    })
}

fn cpath(p: &Path) -> Result<CString, JailError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| JailError {
        step: format!("{}", p.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

/// Drops privileges as the module documentation says; nothing when `cfg` is inactive.
pub fn enter(cfg: &JailConfig) -> Result<(), JailError> {
    if !cfg.active() {
        return Ok(());
    }
    match &cfg.chroot {
        Some(dir) => enter_root(dir, false)?,
        None => enter_root(&empty_root_dir()?, true)?,
    }
    // SAFETY: prctl with integer arguments only.
    check("no_new_privs", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    drop_bounding_and_ambient()?;
    match cfg.user {
        Some(u) => switch_user(u)?,
        None => clear_capabilities()?,
    }
    let eff = effective_capabilities()?;
    if eff != 0 {
        return Err(JailError {
            step: format!("capabilities still effective ({eff:#x})"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
    }
    Ok(())
}

/// A fresh directory for an empty root.
fn empty_root_dir() -> Result<PathBuf, JailError> {
    let mut tmpl = *b"/tmp/platvmm-root.XXXXXX\0";
    // SAFETY: `tmpl` is a writable NUL-terminated template, as mkdtemp requires.
    let p = unsafe { libc::mkdtemp(tmpl.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(JailError {
            step: "mkdtemp /tmp/platvmm-root.XXXXXX".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    let s = std::str::from_utf8(&tmpl[..tmpl.len() - 1]).expect("ASCII template");
    Ok(PathBuf::from(s))
}

/// chdir + chroot into `dir`; `remove` deletes the (empty) directory once inside it.
fn enter_root(dir: &Path, remove: bool) -> Result<(), JailError> {
    let c = cpath(dir)?;
    let name = dir.display();
    // SAFETY: `c` is a valid NUL-terminated path.
    check(format!("chdir {name}"), unsafe { libc::chdir(c.as_ptr()) })?;
    if remove {
        // SAFETY: as above; the directory is empty and ours.
        check(format!("rmdir {name}"), unsafe { libc::rmdir(c.as_ptr()) })?;
    }
    let dot = c".";
    let root = c"/";
    // SAFETY: NUL-terminated literals.
    check(format!("chroot {name}"), unsafe {
        libc::chroot(dot.as_ptr())
    })?;
    // SAFETY: as above.
    check("chdir /", unsafe { libc::chdir(root.as_ptr()) })
}

fn drop_bounding_and_ambient() -> Result<(), JailError> {
    // Capability numbers until the kernel's last one (EINVAL past it).
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return check(format!("drop capability {cap} from the bounding set"), -1);
        }
    }
    // SAFETY: prctl with integer arguments only.
    check("clear the ambient capabilities", unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })
}

fn switch_user(u: UserSpec) -> Result<(), JailError> {
    let groups = [u.gid];
    // SAFETY: `groups` holds one valid gid_t.
    check(format!("setgroups {}", u.gid), unsafe {
        libc::setgroups(1, groups.as_ptr())
    })?;
    // SAFETY: integer arguments only.
    check(format!("setresgid {}", u.gid), unsafe {
        libc::setresgid(u.gid, u.gid, u.gid)
    })?;
    // SAFETY: integer arguments only.
    check(format!("setresuid {}", u.uid), unsafe {
        libc::setresuid(u.uid, u.uid, u.uid)
    })
}

/// The capget/capset header and data (version 3: two 32-bit words per set).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

fn clear_capabilities() -> Result<(), JailError> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let d = [CapData::default(); 2];
    // SAFETY: `h` and `d` are the version-3 header and its two data words.
    check("capset (clear all)", unsafe {
        libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) as libc::c_int
    })
}

/// The calling thread's effective capability set.
pub fn effective_capabilities() -> Result<u64, JailError> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: `h` and `d` are the version-3 header and room for its two data words.
    check("capget", unsafe {
        libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) as libc::c_int
    })?;
    Ok(u64::from(d[0].effective) | (u64::from(d[1].effective) << 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_jail_changes_nothing() {
        let before = effective_capabilities().unwrap();
        enter(&JailConfig::default()).unwrap();
        assert_eq!(effective_capabilities().unwrap(), before);
    }

    /// The whole drop, in a child process (it cannot be undone). As root, the child ends up
    /// in an empty root with no capabilities under the given user; as another user, the drop
    /// fails at its first step, with the step named.
    #[test]
    fn the_drop_leaves_no_capabilities_and_an_empty_root() {
        let j = JailConfig {
            user: Some(UserSpec {
                uid: 65534,
                gid: 65534,
            }),
            chroot: None,
        };
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            let e = enter(&j).unwrap_err().to_string();
            assert!(
                e.starts_with("cannot drop privileges: chroot /tmp/platvmm-root."),
                "{e}"
            );
            return;
        }
        // SAFETY: the child makes syscalls (glibc resets its allocator locks at fork) and
        // ends with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = enter(&j).is_ok()
                && matches!(effective_capabilities(), Ok(0))
                // The host's files are out of reach (the new root is also mode 0700, root's).
                && !Path::new("/etc/passwd").exists()
                && !Path::new("/proc/self").exists()
                // SAFETY: getuid has no preconditions.
                && unsafe { libc::getuid() } == 65534;
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0, "the child's drop failed");
    }
}
