//! The filters tested two ways: installed for real in a forked child, which makes the
//! forbidden call and must die of SIGSYS (after an allowed call of the same kind went
//! through); and run through a classic-BPF interpreter on the call's `seccomp_data`, which
//! also works where filters cannot be installed (qemu-user, which runs the aarch64 tests,
//! refuses them: those tests say so on stderr and check the aarch64 filter that way only).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use seccompiler::sock_filter;

use super::*;
use crate::sandbox::allowlist::{self, Ioctl};

vmm_sys_util::ioctl_io_nr!(KVM_CREATE_VM, kvm_bindings::KVMIO, 0x01);
vmm_sys_util::ioctl_io_nr!(KVM_CREATE_VCPU, kvm_bindings::KVMIO, 0x41);

/// A syscall and its arguments; [`OWN_PID`] stands for the calling process's pid.
#[derive(Debug, Clone, Copy)]
struct Call {
    nr: i64,
    args: [u64; 6],
}

/// Replaced by the pid of the process that makes (or is filtered for) the call.
const OWN_PID: u64 = u64::MAX - 1;

impl Call {
    fn new(nr: i64, a: &[u64]) -> Self {
        let mut args = [0; 6];
        args[..a.len()].copy_from_slice(a);
        Self { nr, args }
    }

    fn resolved(&self, pid: u32) -> [u64; 6] {
        self.args.map(|a| if a == OWN_PID { pid.into() } else { a })
    }

    /// Makes the call (in the child); its result does not matter, only whether it returns.
    fn make(&self) {
        let a = self.resolved(std::process::id());
        // SAFETY: every call a test builds takes integers, or pointers into memory the test
        // owns for its whole run (inherited by the forked child).
        unsafe { libc::syscall(self.nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    }
}

fn ioctl(fd: i32, request: u64, arg: u64) -> Call {
    Call::new(libc::SYS_ioctl, &[fd as u64, request, arg])
}

/// An allowed call on `fd` for each kind, the control of a forbidden one: an ioctl the kind
/// issues (KVM_RUN; TCSETS with `termios`), or a plain zero-byte write for the worker, which
/// issues none.
fn allowed_on(kind: ThreadKind, fd: i32, termios: u64) -> Call {
    match kind {
        ThreadKind::Vcpu => ioctl(fd, allowlist::KVM_RUN(), 0),
        ThreadKind::EventLoop => ioctl(fd, libc::TCSETS, termios),
        ThreadKind::Worker => Call::new(libc::SYS_write, &[fd as u64, termios, 0]),
    }
}

// ---- The filter run in an interpreter ----

/// `AUDIT_ARCH_*` of this build (linux/audit.h), which the filter checks first.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// What `prog` decides for `call` made by process `pid` (a `SECCOMP_RET_*` action).
fn decide(prog: &[sock_filter], call: &Call, pid: u32) -> u32 {
    // struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
    let mut data = [0u8; 64];
    data[..4].copy_from_slice(&(call.nr as i32).to_ne_bytes());
    data[4..8].copy_from_slice(&AUDIT_ARCH.to_ne_bytes());
    for (i, a) in call.resolved(pid).iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    run_bpf(prog, &data) & libc::SECCOMP_RET_ACTION_FULL
}

/// A classic-BPF interpreter for the instructions seccompiler emits.
fn run_bpf(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = &prog[pc];
        pc += 1;
        let k = i.k as usize;
        let jump = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
        match u32::from(i.code) {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= i.k,
            c if c == libc::BPF_JMP | libc::BPF_JA => pc += k,
            c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += jump(acc == i.k),
            c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += jump(acc > i.k),
            c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += jump(acc >= i.k),
            c if c == libc::BPF_RET | libc::BPF_K => return i.k,
            c => panic!("BPF instruction {c:#x} is not interpreted"),
        }
    }
}

/// `kind`'s real filter (mode `on`) for process `pid`.
fn filter(kind: ThreadKind, pid: u32) -> BpfProgram {
    compile(kind, SeccompAction::Trap, pid, false).unwrap()
}

/// Asserts that `kind`'s filter traps `forbidden` and allows `controls`, for a process other
/// than this one, as the forked child is (pid 1 stands for it).
fn assert_decisions(kind: ThreadKind, controls: &[Call], forbidden: &Call) {
    let pid = if std::process::id() == 1 { 2 } else { 1 };
    let prog = filter(kind, pid);
    for c in controls {
        assert_eq!(
            decide(&prog, c, pid),
            libc::SECCOMP_RET_ALLOW,
            "{kind:?} must allow {c:?}"
        );
    }
    assert_eq!(
        decide(&prog, forbidden, pid),
        libc::SECCOMP_RET_TRAP,
        "{kind:?} must trap {forbidden:?}"
    );
}

// ---- The filter installed in a forked child ----

/// How a child that installed a thread kind's filter ended.
#[derive(Debug, PartialEq, Eq)]
enum Child {
    /// seccomp filters cannot be installed here (qemu-user refuses them).
    NoSeccomp,
    /// Killed by `signal` after `steps` steps returned.
    Killed { signal: i32, steps: usize },
    /// Exited with `code` after `steps` steps returned.
    Exited { code: i32, steps: usize },
}

/// The child's exit status when it cannot install a filter.
const NO_SECCOMP: i32 = 77;

/// Forks a child that installs `kind`'s real filter (mode `on`) with SIGSYS at its default
/// action — a denied call kills it, as it would kill platvmm without its handler — then runs
/// `steps` in order and exits 0. Each step that returns writes one byte to a pipe the parent
/// counts.
fn in_sandboxed_child(kind: ThreadKind, steps: &[&dyn Fn()]) -> Child {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child compiles and installs a filter (glibc's malloc is usable after fork),
    // runs the steps and leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        child_main(kind, steps, wr.as_raw_fd());
    }
    drop(wr);
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let mut buf = [0u8; 64];
    // SAFETY: reads into a local buffer of its length; the pipe is non-blocking.
    let steps = unsafe { libc::read(rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }.max(0);
    let steps = steps as usize;
    if libc::WIFSIGNALED(status) {
        return Child::Killed {
            signal: libc::WTERMSIG(status),
            steps,
        };
    }
    match libc::WEXITSTATUS(status) {
        NO_SECCOMP => Child::NoSeccomp,
        code => Child::Exited { code, steps },
    }
}

fn child_main(kind: ThreadKind, steps: &[&dyn Fn()], wr: i32) -> ! {
    // SAFETY: restores SIGSYS's default action (another test may have installed the
    // handler); no memory is involved.
    unsafe { libc::signal(libc::SIGSYS, libc::SIG_DFL) };
    let Ok(prog) = compile(kind, SeccompAction::Trap, std::process::id(), false) else {
        // SAFETY: leaves the child at once.
        unsafe { libc::_exit(2) }
    };
    if seccompiler::apply_filter(&prog).is_err() {
        // SAFETY: leaves the child at once.
        unsafe { libc::_exit(NO_SECCOMP) }
    }
    for step in steps {
        step();
        // SAFETY: a one-byte write from a static buffer.
        unsafe { libc::write(wr, b".".as_ptr().cast(), 1) };
    }
    // SAFETY: leaves the child without running the harness's exit path.
    unsafe { libc::_exit(0) }
}

/// For every thread kind: the child installs the kind's filter, makes `controls(kind)` (which
/// must go through) and then `forbidden`, which must kill it by SIGSYS; and the interpreter
/// agrees (the only check where filters cannot be installed, said on stderr).
fn assert_refused_everywhere(
    what: &str,
    controls: impl Fn(ThreadKind) -> Vec<Call>,
    forbidden: Call,
) {
    for kind in ThreadKind::ALL {
        let controls = controls(kind);
        assert_decisions(kind, &controls, &forbidden);
        let mut steps: Vec<Box<dyn Fn()>> = Vec::new();
        for c in &controls {
            let c = *c;
            steps.push(Box::new(move || c.make()));
        }
        steps.push(Box::new(move || forbidden.make()));
        let steps: Vec<&dyn Fn()> = steps.iter().map(|s| s.as_ref()).collect();
        match in_sandboxed_child(kind, &steps) {
            Child::NoSeccomp => {
                eprintln!(
                    "{what}: seccomp filters cannot be installed here (qemu-user?): the {} filter was checked in the BPF interpreter only",
                    kind.name()
                );
            }
            got => assert_eq!(
                got,
                Child::Killed {
                    signal: libc::SIGSYS,
                    steps: controls.len()
                },
                "{what} in a {} thread: the controls must go through and the call must be stopped",
                kind.name()
            ),
        }
    }
}

/// A pseudo-terminal (master, slave) and the slave's settings.
fn pty() -> (OwnedFd, OwnedFd, Box<libc::termios>) {
    let (mut m, mut s) = (0, 0);
    // SAFETY: out-pointers to two ints; no name, settings or size are passed.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    // SAFETY: termios is plain data; tcgetattr fills it.
    let mut t: Box<libc::termios> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: `t` is a valid termios for the call.
    assert_eq!(unsafe { libc::tcgetattr(s.as_raw_fd(), &mut *t) }, 0);
    (m, s, t)
}

fn dev_null() -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap()
}

fn page() -> u64 {
    // SAFETY: sysconf takes an integer.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

#[test]
fn tiocsti_on_a_pty_is_refused_in_every_thread() {
    let (_m, s, termios) = pty();
    let fd = s.as_raw_fd();
    let byte = Box::new(b'x');
    let tiocsti = ioctl(fd, libc::TIOCSTI, &*byte as *const u8 as u64);
    let t = &*termios as *const libc::termios as u64;
    assert_refused_everywhere("TIOCSTI", |k| vec![allowed_on(k, fd, t)], tiocsti);
}

#[test]
fn tgkill_of_another_process_is_refused_in_every_thread() {
    let parent = u64::from(std::process::id());
    // Signal 0: were the call let through, it would only check that the target exists.
    let own = Call::new(libc::SYS_tgkill, &[OWN_PID, OWN_PID, 0]);
    let other = Call::new(libc::SYS_tgkill, &[parent, parent, 0]);
    assert_refused_everywhere("tgkill of another process", |_| vec![own], other);
}

#[test]
fn kvm_create_vm_is_refused_in_every_thread() {
    // On /dev/null: the filter must stop the request before the kernel looks at the fd.
    let null = dev_null();
    let fd = null.as_raw_fd();
    let create_vm = ioctl(fd, KVM_CREATE_VM(), 0);
    assert_refused_everywhere("KVM_CREATE_VM", |k| vec![allowed_on(k, fd, 0)], create_vm);
}

#[test]
fn mmap_with_prot_exec_is_refused_in_every_thread() {
    let anon = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    let map = |prot: i32| Call::new(libc::SYS_mmap, &[0, page(), prot as u64, anon, u64::MAX, 0]);
    let rw = map(libc::PROT_READ | libc::PROT_WRITE);
    let rx = map(libc::PROT_READ | libc::PROT_EXEC);
    assert_refused_everywhere("mmap with PROT_EXEC", |_| vec![rw], rx);
}

#[test]
fn mprotect_adding_prot_exec_is_refused_in_every_thread() {
    // SAFETY: a fresh private anonymous page, unmapped at the end of the test.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page() as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    let protect = |prot: i32| Call::new(libc::SYS_mprotect, &[addr as u64, page(), prot as u64]);
    let read_only = protect(libc::PROT_READ);
    let exec = protect(libc::PROT_READ | libc::PROT_EXEC);
    assert_refused_everywhere("mprotect adding PROT_EXEC", |_| vec![read_only], exec);
    // SAFETY: the page mapped above, no longer used.
    unsafe { libc::munmap(addr, page() as usize) };
}

// ---- The allowlists themselves ----

/// ioctls no thread may issue once sandboxed: a terminal's input, and everything that makes
/// or reshapes a VM or a VFIO container.
fn never() -> Vec<Ioctl> {
    use devices::vfio::ioctl as vfio;
    vec![
        Ioctl {
            name: "TIOCSTI",
            nr: libc::TIOCSTI,
        },
        Ioctl {
            name: "KVM_CREATE_VM",
            nr: KVM_CREATE_VM(),
        },
        Ioctl {
            name: "KVM_CREATE_VCPU",
            nr: KVM_CREATE_VCPU(),
        },
        Ioctl {
            name: "VFIO_IOMMU_MAP_DMA",
            nr: vfio::VFIO_IOMMU_MAP_DMA(),
        },
        Ioctl {
            name: "VFIO_GROUP_GET_DEVICE_FD",
            nr: vfio::VFIO_GROUP_GET_DEVICE_FD(),
        },
    ]
}

#[test]
fn no_thread_may_issue_a_forbidden_ioctl() {
    for kind in ThreadKind::ALL {
        let mine = allowlist::ioctls(kind);
        for n in never() {
            assert!(
                mine.iter()
                    .all(|i| i.nr & 0xffff_ffff != n.nr & 0xffff_ffff),
                "{kind:?} allows {}",
                n.name
            );
        }
        let prog = filter(kind, 1);
        for n in never() {
            let c = ioctl(0, n.nr, 0);
            assert_eq!(decide(&prog, &c, 1), libc::SECCOMP_RET_TRAP, "{}", n.name);
        }
    }
    assert!(allowlist::ioctls(ThreadKind::Worker).is_empty());
}

/// The numbers as the kernel headers define them (the same on x86_64 and aarch64), so a
/// binding that drifted would show here; and each is what the filter lets through, the
/// other kinds' not.
#[test]
fn ioctls_are_allowed_by_exact_number_per_thread() {
    let expected: &[(ThreadKind, &[(&str, u64)])] = &[
        (
            ThreadKind::Vcpu,
            &[
                ("KVM_RUN", 0xae80),
                ("VHOST_SET_FEATURES", 0x4008_af00),
                ("VHOST_SET_MEM_TABLE", 0x4008_af03),
                ("VHOST_SET_VRING_NUM", 0x4008_af10),
                ("VHOST_SET_VRING_ADDR", 0x4028_af11),
                ("VHOST_SET_VRING_BASE", 0x4008_af12),
                ("VHOST_SET_VRING_CALL", 0x4008_af21),
                ("VHOST_SET_VRING_KICK", 0x4008_af20),
                ("TUNSETOFFLOAD", 0x4004_54d0),
                ("VHOST_NET_SET_BACKEND", 0x4008_af30),
                ("VHOST_VSOCK_SET_RUNNING", 0x4004_af61),
                ("VFIO_DEVICE_RESET", 0x3b6f),
                ("KVM_SET_ONE_REG", 0x4010_aeac),
                ("KVM_ARM_VCPU_INIT", 0x4020_aeae),
            ],
        ),
        (
            ThreadKind::EventLoop,
            &[
                ("TCSETS", 0x5402),
                ("TCGETS", 0x5401),
                ("VFIO_DEVICE_SET_IRQS", 0x3b6e),
                ("VFIO_DEVICE_RESET", 0x3b6f),
                ("VFIO_IOMMU_UNMAP_DMA", 0x3b72),
                ("VHOST_NET_SET_BACKEND", 0x4008_af30),
                ("VHOST_VSOCK_SET_RUNNING", 0x4004_af61),
            ],
        ),
        (ThreadKind::Worker, &[]),
    ];
    for (kind, want) in expected {
        let got: Vec<(&str, u64)> = allowlist::ioctls(*kind)
            .iter()
            .map(|i| (i.name, i.nr))
            .collect();
        assert_eq!(got, *want, "{kind:?}");
    }
    for kind in ThreadKind::ALL {
        let prog = filter(kind, 1);
        for (_, list) in expected {
            for (name, nr) in *list {
                // Allowed where its thread kind issues it (VFIO_DEVICE_RESET and the vhost stops: two
                // kinds).
                let own = expected
                    .iter()
                    .any(|(k, l)| *k == kind && l.iter().any(|(_, n)| n == nr));
                let want = if own {
                    libc::SECCOMP_RET_ALLOW
                } else {
                    libc::SECCOMP_RET_TRAP
                };
                // The request's upper 32 bits do not matter to the kernel, nor to the filter.
                for nr in [*nr, *nr | 0xffff_ffff_0000_0000] {
                    assert_eq!(decide(&prog, &ioctl(3, nr, 0), 1), want, "{kind:?} {name}");
                }
            }
        }
    }
}

/// The code paths each thread runs that issue ioctls, run for real against /dev/null (every
/// request fails with ENOTTY there) inside that thread kind's filter: none is stopped. Their
/// fds are opened before the filter, as platvmm opens its own.
#[test]
fn what_each_thread_issues_passes_its_filter() {
    let vcpu = VcpuPaths::new();
    let event_loop = EventLoopPaths::new();
    let checks: [(ThreadKind, &dyn Fn()); 2] = [
        (ThreadKind::Vcpu, &|| vcpu.run()),
        (ThreadKind::EventLoop, &|| event_loop.run()),
    ];
    for (kind, paths) in checks {
        match in_sandboxed_child(kind, &[paths]) {
            Child::NoSeccomp => eprintln!(
                "seccomp filters cannot be installed here (qemu-user?): the {} thread's code paths were not run under its filter",
                kind.name()
            ),
            got => assert_eq!(got, Child::Exited { code: 0, steps: 1 }, "{kind:?}"),
        }
    }
}

/// A vhost backend on /dev/null: the vhost crate's own ioctl calls, as
/// devices::virtio::vhost::start makes them.
struct NullVhost {
    file: std::fs::File,
    mem: std::sync::Arc<vm_memory::GuestMemoryMmap>,
}

impl AsRawFd for NullVhost {
    fn as_raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

impl vhost::vhost_kern::VhostKernBackend for NullVhost {
    type AS = std::sync::Arc<vm_memory::GuestMemoryMmap>;
    fn mem(&self) -> &Self::AS {
        &self.mem
    }
}

/// KVM_RUN, a vhost device started (every generic vhost call devices::virtio::vhost::start
/// makes), a tap's offloads set.
struct VcpuPaths {
    null: std::fs::File,
    vhost: NullVhost,
    evt: vmm_sys_util::eventfd::EventFd,
    tap: devices::virtio::tap::Tap,
    reset: Arc<std::fs::File>,
}

impl VcpuPaths {
    fn new() -> Self {
        let ram = [(vm_memory::GuestAddress(0), 0x10000)];
        let mem = vm_memory::GuestMemoryMmap::<()>::from_ranges(&ram).unwrap();
        Self {
            null: dev_null(),
            vhost: NullVhost {
                file: dev_null(),
                mem: std::sync::Arc::new(mem),
            },
            evt: vmm_sys_util::eventfd::EventFd::new(0).unwrap(),
            tap: devices::virtio::tap::Tap::from_file("null", dev_null()),
            reset: Arc::new(dev_null()),
        }
    }

    fn run(&self) {
        use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
        // SAFETY: KVM_RUN takes no argument; on /dev/null it fails with ENOTTY.
        unsafe { libc::ioctl(self.null.as_raw_fd(), allowlist::KVM_RUN() as _, 0) };
        let ring = VringConfigData {
            queue_max_size: 16,
            queue_size: 16,
            flags: 0,
            desc_table_addr: 0x1000,
            used_ring_addr: 0x2000,
            avail_ring_addr: 0x3000,
            log_addr: None,
        };
        let region = VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: 0x10000,
            userspace_addr: 0,
            mmap_offset: 0,
            mmap_handle: -1,
        };
        let (b, evt) = (&self.vhost, &self.evt);
        let results = [
            b.set_features(0),
            b.set_mem_table(&[region]).map(|_| ()),
            b.set_vring_num(0, 16),
            b.set_vring_addr(0, &ring),
            b.set_vring_base(0, 0),
            b.set_vring_call(0, evt),
            b.set_vring_kick(0, evt),
        ];
        // Each reached its ioctl (a check before it would fail otherwise, and prove nothing).
        let enotty = |r: &Result<(), vhost::Error>| matches!(r, Err(vhost::Error::IoctlError(e)) if e.raw_os_error() == Some(libc::ENOTTY));
        if !results.iter().all(enotty) {
            // SAFETY: leaves the child with a status the parent reports.
            unsafe { libc::_exit(3) };
        }
        // Offloads other than the current ones (none), so the ioctl is made.
        let _ = self.tap.set_offload(1);
        // A guest's SCMI reset of a device VFIO can reset.
        use devices::scmi::{ResetAction, ScmiBackend};
        let handle = devices::vfio::device::ResetHandle::new(self.reset.clone(), "null");
        let mut backend = devices::scmi::vfio::VfioResets::new(vec![("null".into(), Some(handle))]);
        let r = backend.reset(0, ResetAction::Device { index: 0 });
        if !matches!(r, Err(e) if e.source.raw_os_error() == Some(libc::ENOTTY)) {
            // SAFETY: leaves the child with a status the parent reports.
            unsafe { libc::_exit(4) };
        }
    }
}

/// The terminal restored as RawTerminal does (tcsetattr), a VFIO device's interrupts
/// disabled and DMA unmapped as Passthrough::release does.
struct EventLoopPaths {
    pty: (OwnedFd, OwnedFd, Box<libc::termios>),
    null: std::fs::File,
}

impl EventLoopPaths {
    fn new() -> Self {
        Self {
            pty: pty(),
            null: dev_null(),
        }
    }

    fn run(&self) {
        use devices::vfio::ioctl as vfio;
        use vfio_bindings::bindings::vfio::{VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_NONE};
        let (_, s, t) = &self.pty;
        // SAFETY: `t` holds the settings read from the same terminal.
        if unsafe { libc::tcsetattr(s.as_raw_fd(), libc::TCSANOW, &**t) } != 0 {
            // SAFETY: leaves the child with a status the parent reports.
            unsafe { libc::_exit(3) };
        }
        let flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
        let _ = vfio::set_irqs(&self.null, 0, flags, 0, &[]);
        let _ = vfio::unmap_dma(&self.null, 0, 0x1000);
    }
}

// ---- The rest of the sandbox ----

#[test]
fn all_filters_compile_for_this_architecture() {
    for kind in ThreadKind::ALL {
        for action in [SeccompAction::Trap, SeccompAction::Log] {
            let prog = compile(kind, action.clone(), 1, true).unwrap();
            assert!(prog.len() > 20, "{kind:?}: {} instructions", prog.len());
        }
    }
    assert!(Filters::build(SeccompMode::Off, false)
        .unwrap()
        .vcpu
        .is_none());
}

#[test]
fn the_denied_test_syscall_is_in_no_allowlist() {
    for kind in ThreadKind::ALL {
        let rules = allowlist::rules(kind, 1, true).unwrap();
        assert!(!rules.contains_key(&libc::SYS_socket), "{kind:?}");
        assert!(
            !rules.contains_key(&libc::SYS_openat),
            "{kind:?} may not open files"
        );
        assert!(!rules.contains_key(&libc::SYS_execve), "{kind:?}");
        let prog = filter(kind, 1);
        let socket = Call::new(libc::SYS_socket, &[libc::AF_INET as u64, 1, 0]);
        assert_eq!(decide(&prog, &socket, 1), libc::SECCOMP_RET_TRAP);
    }
}

/// The API socket's calls are the event loop's alone, and only with `--api-socket`;
/// getsockopt only for the peer's credentials.
#[test]
fn the_api_socket_adds_its_calls_to_the_event_loop_only() {
    let api = [
        libc::SYS_accept4,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_getsockopt,
    ];
    for kind in ThreadKind::ALL {
        for on in [false, true] {
            let rules = allowlist::rules(kind, 1, on).unwrap();
            let want = on && kind == ThreadKind::EventLoop;
            for nr in api {
                assert_eq!(rules.contains_key(&nr), want, "{kind:?} api={on} nr {nr}");
            }
        }
    }
    let prog = compile(ThreadKind::EventLoop, SeccompAction::Trap, 1, true).unwrap();
    let peercred = [3, libc::SOL_SOCKET as u64, libc::SO_PEERCRED as u64, 0, 0];
    let call = Call::new(libc::SYS_getsockopt, &peercred);
    assert_eq!(decide(&prog, &call, 1), libc::SECCOMP_RET_ALLOW);
    let other = [3, libc::SOL_SOCKET as u64, libc::SO_RCVBUF as u64, 0, 0];
    let call = Call::new(libc::SYS_getsockopt, &other);
    assert_eq!(decide(&prog, &call, 1), libc::SECCOMP_RET_TRAP);
}

#[test]
fn names_and_numbers_for_the_message() {
    assert_eq!(syscall_name(libc::SYS_socket), Some("socket"));
    assert_eq!(syscall_name(libc::SYS_openat), Some("openat"));
    assert_eq!(syscall_name(99_999), None);
    let mut m = MessageBuf::new();
    m.push(b"nr ");
    m.push_number(198);
    m.push(b" ");
    m.push_number(0);
    assert_eq!(&m.buf[..m.len], b"nr 198 0");
}

/// A thread that installs the event-loop filter in mode `on` and calls `socket`: the call
/// fails with ENOSYS instead of killing the process, and the denial is recorded.
#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "qemu-user, which runs the aarch64 unit tests, cannot install seccomp filters: the e2e sandbox scenario covers aarch64"
)]
fn a_denied_syscall_is_reported_and_fails() {
    let filters = Filters::build(SeccompMode::On, false).unwrap();
    let t = std::thread::spawn(move || {
        filters.apply(ThreadKind::EventLoop).unwrap();
        call_denied_syscall()
    });
    let r = t.join().unwrap();
    assert_eq!(r, -1, "socket must fail");
    assert_eq!(denied(), Some(libc::SYS_socket));
}
