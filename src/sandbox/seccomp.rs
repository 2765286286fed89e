//! The seccomp sandbox: one allowlist per kind of thread ([`super::allowlist`]), compiled
//! with `seccompiler` for this process and installed by each thread on itself once setup is
//! over (every fd is open, every region mapped).
//!
//! - vCPU threads: `KVM_RUN` and the MMIO exits it returns (trapped regions are pread/pwrite
//!   on a VFIO device fd, interrupts are eventfd writes, console bytes stdout writes, a
//!   vhost device started or stopped by the guest's status write: its vhost and tap ioctls).
//! - The event-loop thread (main): epoll, the signalfd, stdin, the console drain timer, and
//!   the teardown after the guest ends (VFIO interrupts disabled and DMA unmapped, munmap,
//!   close, the terminal restored).
//! - The virtio worker: block, entropy and userspace-net I/O; no ioctl at all.
//!
//! `ioctl` is allowed by exact request number, per thread; `tgkill` only within platvmm's
//! own thread group; `mmap`/`mprotect` never with `PROT_EXEC`. A syscall outside the list
//! raises SIGSYS (mode `on`): the handler names it on stderr, makes the call fail with
//! ENOSYS, and wakes the event loop, which stops the VM, releases the devices as on any other
//! exit and ends platvmm with status 159 (128 + SIGSYS). Mode `log` allows such calls and
//! leaves them to the kernel log (audit type=1326, in dmesg).

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

use super::allowlist;
pub use super::allowlist::ThreadKind;
use crate::config::SeccompMode;

/// The sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused a filter (a bug in the allowlist).
    #[error("cannot build the {thread} seccomp filter: {reason}")]
    Build {
        thread: &'static str,
        reason: String,
    },
    /// The kernel refused a filter.
    #[error("cannot install the {thread} seccomp filter: {reason} (a kernel without CONFIG_SECCOMP_FILTER? run with --seccomp=off)")]
    Install {
        thread: &'static str,
        reason: String,
    },
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

/// The compiled filters, shared by the threads that install them (`None`: mode `off`).
pub struct Filters {
    vcpu: Option<BpfProgram>,
    event_loop: Option<BpfProgram>,
    worker: Option<BpfProgram>,
}

impl Filters {
    /// Compiles the three allowlists for this machine's architecture and this process (the
    /// pid `tgkill` is limited to), the event loop's with the API socket's calls when `api`;
    /// installs the SIGSYS handler in mode `on`.
    pub fn build(mode: SeccompMode, api: bool) -> Result<Self, SeccompError> {
        let action = match mode {
            SeccompMode::Off => {
                return Ok(Self {
                    vcpu: None,
                    event_loop: None,
                    worker: None,
                })
            }
            SeccompMode::On => SeccompAction::Trap,
            SeccompMode::Log => SeccompAction::Log,
        };
        if mode == SeccompMode::On {
            install_sigsys_handler().map_err(SeccompError::Handler)?;
        } else {
            log::warn!("--seccomp=log: syscalls outside the sandbox are allowed, and logged by the kernel (dmesg: audit type=1326)");
        }
        let pid = std::process::id();
        Ok(Self {
            vcpu: Some(compile(ThreadKind::Vcpu, action.clone(), pid, api)?),
            event_loop: Some(compile(ThreadKind::EventLoop, action.clone(), pid, api)?),
            worker: Some(compile(ThreadKind::Worker, action, pid, api)?),
        })
    }

    /// Installs `kind`'s filter on the calling thread (for good).
    pub fn apply(&self, kind: ThreadKind) -> Result<(), SeccompError> {
        let prog = match kind {
            ThreadKind::Vcpu => &self.vcpu,
            ThreadKind::EventLoop => &self.event_loop,
            ThreadKind::Worker => &self.worker,
        };
        let Some(prog) = prog else { return Ok(()) };
        THREAD.with(|t| t.set(kind.name()));
        seccompiler::apply_filter(prog).map_err(|e| SeccompError::Install {
            thread: kind.name(),
            reason: e.to_string(),
        })
    }

    /// Whether a sandbox is installed at all.
    pub fn enabled(&self) -> bool {
        self.vcpu.is_some()
    }
}

/// `kind`'s filter for process `pid` (the only thread group its `tgkill` may reach), with the
/// API socket's calls when `api`.
fn compile(
    kind: ThreadKind,
    mismatch: SeccompAction,
    pid: u32,
    api: bool,
) -> Result<BpfProgram, SeccompError> {
    let err = |e: &dyn std::fmt::Display| SeccompError::Build {
        thread: kind.name(),
        reason: e.to_string(),
    };
    let rules = allowlist::rules(kind, pid, api).map_err(|e| err(&e))?;
    let arch = std::env::consts::ARCH.try_into().map_err(|e| err(&e))?;
    let filter =
        SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch).map_err(|e| err(&e))?;
    BpfProgram::try_from(filter).map_err(|e| err(&e))
}

thread_local! {
    /// The calling thread's kind, for the SIGSYS message.
    static THREAD: Cell<&'static str> = const { Cell::new("main") };
}

/// The first denied syscall's number plus one (0: none).
static DENIED: AtomicI64 = AtomicI64::new(0);
/// An eventfd the SIGSYS handler writes to wake the event loop (-1: none yet).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The syscall the sandbox denied, if any.
pub fn denied() -> Option<i64> {
    match DENIED.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n - 1),
    }
}

/// The eventfd the SIGSYS handler writes to after a denial (the event loop watches it).
pub fn set_wake_fd(fd: std::os::fd::RawFd) {
    WAKE_FD.store(fd, Ordering::SeqCst);
}

/// For `--test-denied-syscall` only: a syscall no allowlist has (`socket`), made the way
/// a compromised thread would. Returns what the call returned.
pub fn call_denied_syscall() -> i64 {
    // SAFETY: socket(2) takes plain integers; a returned descriptor is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned to us and is owned by nobody else.
        unsafe { libc::close(fd as i32) };
    }
    fd
}

/// Byte offset of `si_syscall` in a SIGSYS siginfo_t (after signo, errno, code, padding and
/// `si_call_addr`), the same on x86_64 and aarch64.
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SIGSYS (SA_SIGINFO), whose union holds
    // the syscall number at SI_SYSCALL_OFFSET.
    let nr = unsafe {
        std::ptr::read_unaligned((info as *const u8).add(SI_SYSCALL_OFFSET) as *const i32)
    };
    // SAFETY: `ctx` is the ucontext_t of the interrupted thread, writable by the handler.
    unsafe { fail_with_enosys(ctx) };
    let first = DENIED
        .compare_exchange(0, i64::from(nr) + 1, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    let mut msg = MessageBuf::new();
    msg.push(b"platvmm: error: the sandbox (seccomp) denied syscall ");
    match syscall_name(i64::from(nr)) {
        Some(name) => msg.push(name.as_bytes()),
        None => msg.push(b"?"),
    }
    msg.push(b" (");
    msg.push_number(i64::from(nr));
    msg.push(b") in the ");
    msg.push(THREAD.with(|t| t.get()).as_bytes());
    msg.push(b" thread: stopping the VM. Rerun with --seccomp=log to list what the sandbox lacks (dmesg), and report it\n");
    if first {
        // SAFETY: write(2) of a stack buffer is async-signal-safe.
        unsafe { libc::write(2, msg.buf.as_ptr().cast(), msg.len) };
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one = 1u64.to_ne_bytes();
        // SAFETY: an 8-byte write to an eventfd is async-signal-safe; `fd` stays open while
        // the event loop (its owner) runs.
        unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    }
}

/// Makes the trapped syscall return -ENOSYS (the kernel leaves its first argument there).
///
/// # Safety
/// `ctx` must be the `ucontext_t` a signal handler received.
unsafe fn fail_with_enosys(ctx: *mut libc::c_void) {
    let uc = ctx as *mut libc::ucontext_t;
    #[cfg(target_arch = "aarch64")]
    {
        (*uc).uc_mcontext.regs[0] = (-libc::ENOSYS) as u64;
    }
    #[cfg(target_arch = "x86_64")]
    {
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = -(libc::ENOSYS as i64);
    }
}

fn install_sigsys_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value, filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction =
        on_sigsys as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `sa` is initialised; the handler only does async-signal-safe work.
    let r = unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut())
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A fixed buffer for the handler's message (no allocation in a signal handler).
struct MessageBuf {
    buf: [u8; 256],
    len: usize,
}

impl MessageBuf {
    fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }
    fn push_number(&mut self, mut n: i64) {
        if n < 0 {
            self.push(b"-");
            n = -n;
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

macro_rules! syscall_table {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name)),)*]
    };
}

/// Names of the syscalls a denial is likely to hit (others print as "?").
const NAMES: &[(i64, &str)] = syscall_table![
    SYS_read,
    SYS_write,
    SYS_close,
    SYS_fstat,
    SYS_lseek,
    SYS_mmap,
    SYS_mprotect,
    SYS_munmap,
    SYS_brk,
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_ioctl,
    SYS_pread64,
    SYS_pwrite64,
    SYS_readv,
    SYS_writev,
    SYS_sched_yield,
    SYS_mremap,
    SYS_msync,
    SYS_madvise,
    SYS_dup,
    SYS_dup3,
    SYS_nanosleep,
    SYS_getpid,
    SYS_sendfile,
    SYS_socket,
    SYS_connect,
    SYS_accept,
    SYS_accept4,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_shutdown,
    SYS_bind,
    SYS_listen,
    SYS_socketpair,
    SYS_setsockopt,
    SYS_getsockopt,
    SYS_clone,
    SYS_clone3,
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_wait4,
    SYS_kill,
    SYS_uname,
    SYS_fcntl,
    SYS_flock,
    SYS_fsync,
    SYS_fdatasync,
    SYS_truncate,
    SYS_ftruncate,
    SYS_getcwd,
    SYS_chdir,
    SYS_fchdir,
    SYS_fchmod,
    SYS_fchown,
    SYS_umask,
    SYS_getrlimit,
    SYS_prlimit64,
    SYS_getrusage,
    SYS_sysinfo,
    SYS_ptrace,
    SYS_getuid,
    SYS_getgid,
    SYS_setuid,
    SYS_setgid,
    SYS_geteuid,
    SYS_getegid,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setgroups,
    SYS_capget,
    SYS_capset,
    SYS_sigaltstack,
    SYS_statfs,
    SYS_fstatfs,
    SYS_prctl,
    SYS_chroot,
    SYS_mount,
    SYS_umount2,
    SYS_reboot,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_gettid,
    SYS_futex,
    SYS_sched_setaffinity,
    SYS_sched_getaffinity,
    SYS_getdents64,
    SYS_set_tid_address,
    SYS_timer_create,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_exit_group,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_tgkill,
    SYS_openat,
    SYS_openat2,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_fchownat,
    SYS_newfstatat,
    SYS_statx,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    SYS_linkat,
    SYS_symlinkat,
    SYS_readlinkat,
    SYS_fchmodat,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_pselect6,
    SYS_ppoll,
    SYS_unshare,
    SYS_setns,
    SYS_set_robust_list,
    SYS_splice,
    SYS_signalfd4,
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_eventfd2,
    SYS_fallocate,
    SYS_epoll_create1,
    SYS_pipe2,
    SYS_memfd_create,
    SYS_getrandom,
    SYS_seccomp,
    SYS_bpf,
    SYS_userfaultfd,
    SYS_perf_event_open,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_pidfd_open,
    SYS_close_range,
    SYS_rseq,
    SYS_mlock,
    SYS_munlock,
    SYS_mlockall,
    SYS_keyctl,
    SYS_add_key,
    SYS_kexec_load,
];

#[cfg(target_arch = "x86_64")]
const ARCH_NAMES: &[(i64, &str)] = syscall_table![
    SYS_open,
    SYS_stat,
    SYS_lstat,
    SYS_poll,
    SYS_access,
    SYS_pipe,
    SYS_dup2,
    SYS_fork,
    SYS_vfork,
    SYS_unlink,
    SYS_mkdir,
    SYS_rmdir,
    SYS_rename,
    SYS_epoll_wait,
    SYS_arch_prctl,
];
#[cfg(not(target_arch = "x86_64"))]
const ARCH_NAMES: &[(i64, &str)] = &[];

fn syscall_name(nr: i64) -> Option<&'static str> {
    NAMES
        .iter()
        .chain(ARCH_NAMES)
        .find(|(n, _)| *n == nr)
        .map(|(_, s)| s.trim_start_matches("SYS_"))
}

#[cfg(test)]
mod tests;
