//! What each platvmm thread may do once it runs sandboxed, as seccomp rules: its syscalls,
//! and the `ioctl` requests it issues, each by its exact number and named with the code that
//! issues it. Two argument rules hold for every thread: `tgkill` only to platvmm's own
//! threads (thread group = platvmm's pid), and `mmap`/`mprotect` only without `PROT_EXEC`.
//!
//! | thread | ioctl requests |
//! |---|---|
//! | vCPU | `KVM_RUN`; what a guest register write can start or stop on a vhost device: `VHOST_SET_FEATURES`, `VHOST_SET_MEM_TABLE`, `VHOST_SET_VRING_{NUM,ADDR,BASE,CALL,KICK}`, `VHOST_NET_SET_BACKEND`, `VHOST_VSOCK_SET_RUNNING`, the tap's `TUNSETOFFLOAD`; a guest SCMI reset: `VFIO_DEVICE_RESET` (where VFIO offers it); an SCMI SMC's result: `KVM_SET_ONE_REG` |
//! | event loop (main thread, teardown included) | `TCSETS`, `TCGETS` (the terminal restored), `VFIO_DEVICE_SET_IRQS` (interrupts disabled), `VFIO_DEVICE_RESET` (where VFIO offers it), `VFIO_IOMMU_UNMAP_DMA` |
//! | virtio worker | none |
//!
//! So no thread can create a VM or a vCPU, change memslots or interrupt routes, map DMA or
//! push input into a terminal (`TIOCSTI`): platvmm does all it needs of that before the
//! sandbox.

use std::collections::BTreeMap;

use devices::vfio::ioctl as vfio;
use devices::virtio::tap;
use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use vhost::vhost_kern::vhost_binding as vhost;
use vmm_sys_util::{ioctl_io_nr, ioctl_iow_nr};

/// The kinds of thread, each with its own allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    Vcpu,
    EventLoop,
    /// The virtio worker: disk, entropy and userspace network I/O.
    Worker,
}

impl ThreadKind {
    /// Every kind, for tests and docs.
    pub const ALL: [ThreadKind; 3] = [ThreadKind::Vcpu, ThreadKind::EventLoop, ThreadKind::Worker];

    /// The thread's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "vCPU",
            ThreadKind::EventLoop => "event-loop",
            ThreadKind::Worker => "virtio-worker",
        }
    }
}

// kvm-ioctls keeps its request numbers private: KVM_RUN from KVMIO, as the kernel defines it.
ioctl_io_nr!(KVM_RUN, kvm_bindings::KVMIO, 0x80);
/// `struct kvm_vcpu_init` (arm64's; kvm-bindings has it on aarch64 only), for its size in the
/// request number.
#[repr(C)]
struct KvmVcpuInit {
    _target: u32,
    _features: [u32; 7],
}
#[cfg(target_arch = "aarch64")]
const _: () = assert!(
    std::mem::size_of::<KvmVcpuInit>() == std::mem::size_of::<kvm_bindings::kvm_vcpu_init>()
);
ioctl_iow_nr!(KVM_ARM_VCPU_INIT, kvm_bindings::KVMIO, 0xae, KvmVcpuInit);
ioctl_iow_nr!(
    KVM_SET_ONE_REG,
    kvm_bindings::KVMIO,
    0xac,
    kvm_bindings::kvm_one_reg
);

/// An `ioctl` request a thread may issue: its name and number (as the code passes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ioctl {
    pub name: &'static str,
    pub nr: u64,
}

/// `ioctl!(NAME)` or `ioctl!(module::NAME)`: the request `NAME()` (a vmm-sys-util ioctl
/// number function), named.
macro_rules! ioctl {
    ($m:ident :: $name:ident) => {
        Ioctl {
            name: stringify!($name),
            nr: u64::from($m::$name()),
        }
    };
    ($name:ident) => {
        Ioctl {
            name: stringify!($name),
            nr: u64::from($name()),
        }
    };
}

/// The `ioctl` requests `kind` issues once sandboxed.
pub fn ioctls(kind: ThreadKind) -> Vec<Ioctl> {
    match kind {
        ThreadKind::Vcpu => vec![
            // vstate::vcpu::run_loop (VcpuFd::run). The kick out of it (`immediate_exit`)
            // and the coalesced console ring are stores and loads in shared pages.
            ioctl!(KVM_RUN),
            // A guest's DRIVER_OK write to a vhost device's virtio-mmio page
            // (devices::virtio::mmio::MmioTransport::activate → Net/Vsock::activate →
            // devices::virtio::vhost::start): features and memory table, then per ring its
            // size, addresses, first index, call (irqfd) and kick (ioeventfd).
            ioctl!(vhost::VHOST_SET_FEATURES),
            ioctl!(vhost::VHOST_SET_MEM_TABLE),
            ioctl!(vhost::VHOST_SET_VRING_NUM),
            ioctl!(vhost::VHOST_SET_VRING_ADDR),
            ioctl!(vhost::VHOST_SET_VRING_BASE),
            ioctl!(vhost::VHOST_SET_VRING_CALL),
            ioctl!(vhost::VHOST_SET_VRING_KICK),
            // devices::virtio::net::Net::start_vhost: the offloads the driver accepted
            // (Tap::set_offload), then the tap attached to both rings; Net::reset (a status
            // 0 write) detaches it (fd -1).
            ioctl!(tap::TUNSETOFFLOAD),
            ioctl!(vhost::VHOST_NET_SET_BACKEND),
            // devices::virtio::vsock::Vsock::activate starts the device (VhostVsock::start),
            // Vsock::reset stops it.
            ioctl!(vhost::VHOST_VSOCK_SET_RUNNING),
            // A guest's SCMI RESET message (the mailbox doorbell write, served in the vCPU's
            // MMIO exit: devices::scmi → devices::scmi::vfio::VfioResets::reset →
            // ResetHandle::reset), where VFIO offers a reset for the device.
            ioctl!(vfio::VFIO_DEVICE_RESET),
            // The SCMI SMC transport: a forwarded SMC's result goes into the guest's x0
            // (vstate::vcpu::run_loop → arch::aarch64::regs::set_x0); a reboot in place:
            // vCPU 0's boot registers (vstate::vcpu::VcpuReset::apply → regs::set_boot_regs).
            ioctl!(KVM_SET_ONE_REG),
            // A reboot in place: each vCPU re-initialised as at creation
            // (vstate::vcpu::VcpuReset::apply → VcpuFd::vcpu_init).
            ioctl!(KVM_ARM_VCPU_INIT),
        ],
        ThreadKind::EventLoop => vec![
            // host::terminal::RawTerminal's drop (after teardown): tcsetattr(TCSANOW), which
            // glibc (2.36, x86_64 and the static aarch64 build) issues as TCSETS followed by
            // a TCGETS that checks the settings took (before it too, on aarch64).
            Ioctl {
                name: "TCSETS",
                nr: libc::TCSETS,
            },
            Ioctl {
                name: "TCGETS",
                nr: libc::TCGETS,
            },
            // Teardown: passthrough::quiesce → VfioDevice::irq_disable, then ::reset where
            // VFIO offers one.
            ioctl!(vfio::VFIO_DEVICE_SET_IRQS),
            ioctl!(vfio::VFIO_DEVICE_RESET),
            // Teardown: Passthrough::release and Container's drop → Container::unmap_all
            // (TYPE1 containers only).
            ioctl!(vfio::VFIO_IOMMU_UNMAP_DMA),
            // A reboot in place (vm::builder::reboot_in_place → Bus::reset_all →
            // MmioTransport::reset): the vhost devices stopped as a guest's status 0 write
            // stops them (Net::reset detaches the tap, Vsock::reset stops the device).
            ioctl!(vhost::VHOST_NET_SET_BACKEND),
            ioctl!(vhost::VHOST_VSOCK_SET_RUNNING),
        ],
        // Block, entropy and userspace-net handlers: preadv/pwritev, fdatasync, fallocate,
        // getrandom, readv/writev on the tap, eventfd reads and writes.
        ThreadKind::Worker => Vec::new(),
    }
}

/// Syscalls every thread makes: memory management by the allocator, locks, signal return,
/// logging, eventfd/timerfd writes, thread exit, and the abort path of a panic. `mmap`,
/// `mprotect` and `tgkill` are allowed only with the arguments [`rules`] checks.
fn common_syscalls() -> Vec<i64> {
    vec![
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_futex,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_sched_yield,
        libc::SYS_getrandom,
        libc::SYS_timerfd_settime,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]
}

/// Syscalls only `kind` makes (its ioctls apart).
fn thread_syscalls(kind: ThreadKind) -> Vec<i64> {
    match kind {
        // Trapped regions: one pread/pwrite per guest access on the VFIO device fd.
        ThreadKind::Vcpu => vec![libc::SYS_pread64, libc::SYS_pwrite64],
        ThreadKind::EventLoop => {
            let mut v = vec![
                libc::SYS_epoll_pwait,
                libc::SYS_epoll_ctl,
                libc::SYS_fcntl,
                libc::SYS_pread64,
                libc::SYS_pwrite64,
                // A reboot in place reads the kernel and initramfs again from their start
                // (vm::builder::load_images).
                libc::SYS_lseek,
            ];
            v.extend_from_slice(ARCH_EVENT_LOOP);
            v
        }
        // Disk I/O straight into guest memory, flush, discard; tap frames; eventfd reads.
        ThreadKind::Worker => {
            let mut v = vec![
                libc::SYS_epoll_pwait,
                libc::SYS_pread64,
                libc::SYS_pwrite64,
                libc::SYS_preadv,
                libc::SYS_pwritev,
                libc::SYS_readv,
                libc::SYS_fdatasync,
                libc::SYS_fsync,
                libc::SYS_fallocate,
            ];
            v.extend_from_slice(ARCH_EVENT_LOOP);
            v
        }
    }
}

/// glibc's epoll_wait is the epoll_wait syscall where one exists (x86_64), epoll_pwait else.
#[cfg(target_arch = "x86_64")]
const ARCH_EVENT_LOOP: &[i64] = &[libc::SYS_epoll_wait];
#[cfg(not(target_arch = "x86_64"))]
const ARCH_EVENT_LOOP: &[i64] = &[];

/// A rule of one condition on the low 32 bits of argument `arg` (every argument checked here
/// is an `int` or `unsigned int` to the kernel: a pid, `prot`, an ioctl request).
fn one(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        op,
        value,
    )?])
}

/// The API socket's, served by the event loop (`--api-socket`): accepting a connection
/// (`accept4`), receiving a request (std's socket `read` is `recvfrom`) and replying.
/// `getsockopt` (the peer's credentials) is added with its arguments pinned.
const API_SOCKET: &[i64] = &[libc::SYS_accept4, libc::SYS_recvfrom, libc::SYS_sendto];

/// `kind`'s allowlist for process `pid` (with the API socket's calls for the event loop when
/// `api`): each allowed syscall with the rules one of which its arguments must match (none:
/// any arguments).
pub fn rules(
    kind: ThreadKind,
    pid: u32,
    api: bool,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
    let api = api && kind == ThreadKind::EventLoop;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = common_syscalls()
        .into_iter()
        .chain(thread_syscalls(kind))
        .chain(if api { API_SOCKET } else { &[] }.iter().copied())
        .map(|nr| (nr, Vec::new()))
        .collect();
    if api {
        // getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ..) only.
        let eq = |arg, value: i32| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value as u64)
        };
        let conds = vec![eq(1, libc::SOL_SOCKET)?, eq(2, libc::SO_PEERCRED)?];
        rules.insert(libc::SYS_getsockopt, vec![SeccompRule::new(conds)?]);
    }
    // tgkill(tgid, tid, sig): platvmm's own threads only (vcpu::stop_all's kick, abort()).
    rules.insert(
        libc::SYS_tgkill,
        vec![one(0, SeccompCmpOp::Eq, pid.into())?],
    );
    // mmap(addr, len, prot, ..) and mprotect(addr, len, prot): never executable.
    let no_exec = SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64);
    rules.insert(libc::SYS_mmap, vec![one(2, no_exec.clone(), 0)?]);
    rules.insert(libc::SYS_mprotect, vec![one(2, no_exec, 0)?]);
    let ioctls = ioctls(kind)
        .iter()
        .map(|i| one(1, SeccompCmpOp::Eq, i.nr))
        .collect::<Result<Vec<_>, _>>()?;
    if !ioctls.is_empty() {
        rules.insert(libc::SYS_ioctl, ioctls);
    }
    Ok(rules)
}
