//! Where platvmm's threads run on the host (`--cpus N,affinity=...,vmm=...,policy=...`):
//! [`check`]ed before KVM is opened (every CPU named is one platvmm may use, the real-time
//! policy is one the host grants), then applied by each thread on itself as it starts, before
//! its seccomp filter: [`apply_vcpu`] in each vCPU thread, [`apply_vmm`] in the main thread
//! (the event loop) and the virtio worker. Pure where it can be (every host): [`check_cpus`]
//! takes the allowed set as a parameter.

use std::collections::BTreeSet;
use std::io;

use crate::config::{CpuPlacement, CpuSet, RtClass, RtPolicy};

/// A placement the host refuses, or a thread that cannot take its part.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// A CPU named is outside the set platvmm may run on (absent, offline, or excluded by
    /// `taskset`/cpusets).
    #[error("--cpus {option}: host CPU {cpu} does not exist or is not allowed to platvmm (allowed: {allowed})")]
    NotAllowed {
        option: String,
        cpu: u32,
        allowed: String,
    },
    /// The allowed set cannot be read.
    #[error("cannot read the host CPUs platvmm may run on (sched_getaffinity): {0}")]
    AllowedSet(io::Error),
    /// EPERM: neither CAP_SYS_NICE nor a high enough RLIMIT_RTPRIO.
    #[error("--cpus policy={policy}: the host does not permit real-time scheduling for platvmm (run as root or raise RLIMIT_RTPRIO: it is {limit} here, e.g. `ulimit -r {}` in the shell that starts platvmm)", .policy.priority)]
    NotPermitted { policy: RtPolicy, limit: String },
    /// The policy failed otherwise.
    #[error("--cpus policy={policy}: cannot set it: {source}")]
    Policy { policy: RtPolicy, source: io::Error },
    /// A thread could not pin itself.
    #[error("--cpus {option}: cannot pin the thread to host CPUs {cpus}: {source}")]
    Pin {
        option: String,
        cpus: CpuSet,
        source: io::Error,
    },
    /// The helper thread that tries the policy could not start.
    #[error("--cpus policy={policy}: cannot start a thread to try it: {source}")]
    Probe { policy: RtPolicy, source: io::Error },
    /// RLIMIT_RTPRIO could not be raised before the privilege drop.
    #[error("--cpus policy={policy}: cannot raise RLIMIT_RTPRIO to {} before dropping privileges: {source}", .policy.priority)]
    RtLimit { policy: RtPolicy, source: io::Error },
}

/// Checks `p` against this host before anything runs: every CPU named is one platvmm may run
/// on, and the policy (tried on a short-lived thread) is granted.
pub fn check(p: &CpuPlacement) -> Result<(), PlacementError> {
    if !p.affinity.is_empty() || p.vmm.is_some() {
        let allowed = thread_cpus().map_err(PlacementError::AllowedSet)?;
        check_cpus(p, &allowed)?;
    }
    if let Some(policy) = p.policy {
        try_policy(policy)?;
    }
    Ok(())
}

/// Every CPU `p` names is in `allowed`; else the first one that is not.
pub fn check_cpus(p: &CpuPlacement, allowed: &BTreeSet<u32>) -> Result<(), PlacementError> {
    let named = p
        .affinity
        .iter()
        .map(|a| (format!("affinity={a}"), a.cpus))
        .chain(p.vmm.map(|v| (format!("vmm={v}"), v)));
    for (option, set) in named {
        if let Some(cpu) = set.cpus().find(|c| !allowed.contains(c)) {
            return Err(PlacementError::NotAllowed {
                option,
                cpu,
                allowed: cpu_list(allowed),
            });
        }
    }
    Ok(())
}

/// On vCPU `id`'s own thread: its affinity, if it has one, and the policy, if there is one.
pub fn apply_vcpu(p: &CpuPlacement, id: usize) -> Result<(), PlacementError> {
    let pinned = u32::try_from(id).ok().and_then(|id| p.vcpu(id));
    if let Some(a) = pinned {
        pin(a.cpus).map_err(|source| PlacementError::Pin {
            option: format!("affinity={a}"),
            cpus: a.cpus,
            source,
        })?;
    }
    if let Some(policy) = p.policy {
        set_policy(policy).map_err(|e| policy_error(policy, e))?;
    }
    Ok(())
}

/// On the main thread or the virtio worker: `vmm=`, if given.
pub fn apply_vmm(p: &CpuPlacement) -> Result<(), PlacementError> {
    if let Some(cpus) = p.vmm {
        pin(cpus).map_err(|source| PlacementError::Pin {
            option: format!("vmm={cpus}"),
            cpus,
            source,
        })?;
    }
    Ok(())
}

/// Before privileges are dropped (`--user`, `--chroot`): RLIMIT_RTPRIO raised to the policy's
/// priority, so the vCPU threads, started without CAP_SYS_NICE, may still take it.
pub fn keep_policy_after_drop(p: &CpuPlacement) -> Result<(), PlacementError> {
    let Some(policy) = p.policy else {
        return Ok(());
    };
    let err = |source| PlacementError::RtLimit { policy, source };
    let current = rtprio_limit().map_err(err)?;
    if let Some(raised) = raised_rtprio(current, policy.priority) {
        // SAFETY: `raised` is an initialised rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_RTPRIO, &raised) } != 0 {
            return Err(err(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The limit that lets a thread take `priority`, if `current` does not.
fn raised_rtprio(current: libc::rlimit, priority: u8) -> Option<libc::rlimit> {
    let want = libc::rlim_t::from(priority);
    (current.rlim_cur < want).then(|| libc::rlimit {
        rlim_cur: want,
        rlim_max: current.rlim_max.max(want),
    })
}

fn rtprio_limit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the call writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// The CPUs the calling thread may run on.
pub fn thread_cpus() -> io::Result<BTreeSet<u32>> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size passed, which the call writes; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let size = libc::CPU_SETSIZE as usize;
    // SAFETY: every index is below CPU_SETSIZE, inside `set`.
    let cpus = (0..size).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Ok(cpus.filter_map(|c| u32::try_from(c).ok()).collect())
}

/// Pins the calling thread to `cpus`.
fn pin(cpus: CpuSet) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = libc::CPU_SETSIZE as usize;
    for cpu in cpus.cpus() {
        let c = usize::try_from(cpu)
            .ok()
            .filter(|&c| c < size)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("CPU {cpu} is beyond the {size} a CPU mask holds"),
                )
            })?;
        // SAFETY: `c` is below CPU_SETSIZE, so its bit is inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is an initialised cpu_set_t of the size passed, only read; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread `policy`.
fn set_policy(policy: RtPolicy) -> io::Result<()> {
    // SAFETY: sched_param is plain data; zeroes fill any field besides the priority.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = i32::from(policy.priority);
    let class = match policy.class {
        RtClass::Fifo => libc::SCHED_FIFO,
        RtClass::RoundRobin => libc::SCHED_RR,
    };
    // SAFETY: pthread_self() is the calling thread, alive; `param` is initialised and only read.
    match unsafe { libc::pthread_setschedparam(libc::pthread_self(), class, &param) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Tries `policy` on a helper thread that ends at once, leaving every other thread as it was.
fn try_policy(policy: RtPolicy) -> Result<(), PlacementError> {
    let helper = std::thread::Builder::new()
        .name("rt-probe".into())
        .spawn(move || set_policy(policy))
        .map_err(|source| PlacementError::Probe { policy, source })?;
    let tried = helper
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the helper thread panicked")));
    tried.map_err(|e| policy_error(policy, e))
}

/// EPERM says what the host needs; anything else as it is.
fn policy_error(policy: RtPolicy, e: io::Error) -> PlacementError {
    if e.raw_os_error() != Some(libc::EPERM) {
        return PlacementError::Policy { policy, source: e };
    }
    let limit = match rtprio_limit() {
        Ok(l) if l.rlim_cur == libc::RLIM_INFINITY => "unlimited".to_string(),
        Ok(l) => l.rlim_cur.to_string(),
        Err(_) => "unknown".to_string(),
    };
    PlacementError::NotPermitted { policy, limit }
}

/// `0-1,4,6-7` (`none` for an empty set).
pub fn cpu_list(cpus: &BTreeSet<u32>) -> String {
    let mut runs: Vec<CpuSet> = Vec::new();
    for &c in cpus {
        match runs.last_mut() {
            Some(r) if r.last.checked_add(1) == Some(c) => r.last = c,
            _ => runs.push(CpuSet { first: c, last: c }),
        }
    }
    if runs.is_empty() {
        return "none".into();
    }
    let runs: Vec<String> = runs.iter().map(CpuSet::to_string).collect();
    runs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_cpus;

    fn placement(s: &str) -> CpuPlacement {
        parse_cpus(s).unwrap().placement
    }

    fn allowed(cpus: &[u32]) -> BTreeSet<u32> {
        cpus.iter().copied().collect()
    }

    #[test]
    fn cpu_lists_read_like_taskset() {
        assert_eq!(cpu_list(&allowed(&[0, 1])), "0-1");
        assert_eq!(cpu_list(&allowed(&[0, 1, 2, 4, 6, 7])), "0-2,4,6-7");
        assert_eq!(cpu_list(&allowed(&[5])), "5");
        assert_eq!(cpu_list(&allowed(&[])), "none");
    }

    #[test]
    fn every_cpu_named_must_be_allowed() {
        let two = allowed(&[0, 1]);
        assert!(check_cpus(&placement("2"), &two).is_ok());
        assert!(check_cpus(&placement("2,affinity=0:0,1:1,vmm=0-1"), &two).is_ok());
        let e = check_cpus(&placement("2,affinity=1:5"), &two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cpus affinity=1:5: host CPU 5 does not exist or is not allowed to platvmm (allowed: 0-1)"
        );
        let e = check_cpus(&placement("2,affinity=0:0-3"), &two).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--cpus affinity=0:0-3: host CPU 2 "),
            "{e}"
        );
        let e = check_cpus(&placement("1,vmm=1-2"), &allowed(&[0, 1, 3])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cpus vmm=1-2: host CPU 2 does not exist or is not allowed to platvmm (allowed: 0-1,3)"
        );
        // taskset -c 2,3: CPU 0 exists but is not platvmm's.
        let e = check_cpus(&placement("1,affinity=0:0"), &allowed(&[2, 3])).unwrap_err();
        assert!(
            e.to_string()
                .contains("host CPU 0 does not exist or is not allowed"),
            "{e}"
        );
        // A policy alone names no CPU.
        assert!(check_cpus(&placement("2,policy=fifo:10"), &allowed(&[])).is_ok());
    }

    #[test]
    fn this_host_passes_its_own_allowed_set() {
        let mine = thread_cpus().unwrap();
        assert!(!mine.is_empty());
        let first = *mine.first().unwrap();
        let p = placement(&format!("1,affinity=0:{first},vmm={first}"));
        check(&p).unwrap();
        let e = check(&placement("1,affinity=0:1023"));
        if !mine.contains(&1023) {
            assert!(matches!(
                e,
                Err(PlacementError::NotAllowed { cpu: 1023, .. })
            ));
        }
    }

    #[test]
    fn a_thread_pins_itself_and_reads_it_back() {
        // CPU 0 on every host, unless platvmm's tests run under taskset: its lowest CPU.
        let first = *thread_cpus().unwrap().first().unwrap();
        let p = placement(&format!("2,affinity=1:{first},vmm={first}"));
        let (vcpu, vmm, other) = std::thread::spawn(move || {
            let before = thread_cpus().unwrap();
            apply_vcpu(&p, 0).unwrap(); // vCPU 0 is not pinned: nothing changes.
            let other = thread_cpus().unwrap() == before;
            apply_vcpu(&p, 1).unwrap();
            let vcpu = thread_cpus().unwrap();
            apply_vmm(&p).unwrap();
            (vcpu, thread_cpus().unwrap(), other)
        })
        .join()
        .unwrap();
        assert!(other);
        assert_eq!(vcpu, allowed(&[first]));
        assert_eq!(vmm, allowed(&[first]));
    }

    #[test]
    fn a_cpu_beyond_the_mask_is_an_error_not_a_panic() {
        let p = placement("1,affinity=0:5000");
        let e = std::thread::spawn(move || apply_vcpu(&p, 0))
            .join()
            .unwrap()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--cpus affinity=0:5000: cannot pin the thread to host CPUs 5000: CPU 5000 is beyond"),
            "{e}"
        );
    }

    #[test]
    fn a_policy_is_tried_on_a_helper_thread() {
        let p = placement("1,policy=fifo:10");
        let before = thread_cpus().unwrap();
        // SAFETY: sched_getscheduler(0) only reads the calling thread's class.
        let class = unsafe { libc::sched_getscheduler(0) };
        match check(&p) {
            // Root (CAP_SYS_NICE) or a raised RLIMIT_RTPRIO.
            Ok(()) => {}
            Err(e @ PlacementError::NotPermitted { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("--cpus policy=fifo:10: the host does not permit real-time scheduling for platvmm (run as root or raise RLIMIT_RTPRIO: it is "), "{msg}");
                assert!(
                    msg.ends_with("e.g. `ulimit -r 10` in the shell that starts platvmm)"),
                    "{msg}"
                );
            }
            Err(e) => panic!("{e}"),
        }
        // This thread kept its class.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, class);
        assert_eq!(thread_cpus().unwrap(), before);
    }

    #[test]
    fn eperm_names_the_fix() {
        let policy = placement("1,policy=rr:5").policy.unwrap();
        let e = policy_error(policy, io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(e.starts_with("--cpus policy=rr:5: the host does not permit real-time scheduling for platvmm (run as root or raise RLIMIT_RTPRIO: it is "), "{e}");
        let e = policy_error(policy, io::Error::from_raw_os_error(libc::EINVAL)).to_string();
        assert!(e.starts_with("--cpus policy=rr:5: cannot set it: "), "{e}");
    }

    #[test]
    fn the_rtprio_limit_is_raised_only_when_short() {
        let lim = |cur, max| libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        let r = raised_rtprio(lim(0, 0), 10).unwrap();
        assert_eq!((r.rlim_cur, r.rlim_max), (10, 10));
        let r = raised_rtprio(lim(0, libc::RLIM_INFINITY), 10).unwrap();
        assert_eq!((r.rlim_cur, r.rlim_max), (10, libc::RLIM_INFINITY));
        assert!(raised_rtprio(lim(10, 10), 10).is_none());
        assert!(raised_rtprio(lim(libc::RLIM_INFINITY, libc::RLIM_INFINITY), 99).is_none());
        assert!(keep_policy_after_drop(&placement("1")).is_ok());
    }
}
