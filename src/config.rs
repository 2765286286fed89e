//! The VM's configuration as typed values, and the parsers of their option strings.
//!
//! Config flows one way: the command line (`cli`, in the binary) and `--config` files parse
//! into these types; the VM and its devices read them. Nothing here opens a file or a device.

use std::fmt;
use std::path::PathBuf;

use devices::guest_node::clocks::ClockRate;
use devices::guest_node::FixedLink;
use devices::virtio::block::SERIAL_LEN;

use crate::arch::aarch64::layout::{GIB, KIB, MIB};

/// A VM to run.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    /// How many vCPUs (`--cpus N`).
    pub cpus: u32,
    /// Where the vCPU threads and platvmm's own run on the host (`--cpus N,affinity=...`).
    pub placement: CpuPlacement,
    pub mem_size: u64,
    pub dump_dtb: Option<PathBuf>,
    pub vfio: Vec<VfioSpec>,
    pub dt_overlays: Vec<PathBuf>,
    pub stats: bool,
    pub identity_ram: bool,
    pub sec_controller: bool,
    pub seccomp: SeccompMode,
    pub scmi: ScmiMode,
    pub jail: JailConfig,
    pub virtio: VirtioConfig,
    /// Test only: SIGUSR1 makes the event loop call a syscall the sandbox denies.
    pub test_denied_syscall: bool,
    /// `--api-socket`: where the control plane listens.
    pub api_socket: Option<PathBuf>,
    /// `--shutdown-timeout`: how long SIGTERM's power-button press waits for the guest.
    pub shutdown_timeout: std::time::Duration,
    /// `--on-reboot`: what a guest's PSCI SYSTEM_RESET does.
    pub on_reboot: OnReboot,
}

/// `--on-reboot`: what platvmm does when the guest reboots (PSCI SYSTEM_RESET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnReboot {
    /// Restart the guest in the same platvmm: vCPUs reset, RAM cleared, kernel, initramfs and
    /// device tree loaded again, devices reset; the VFIO groups stay open (the default).
    #[default]
    Restart,
    /// End with exit status 3 (a supervisor restarts platvmm).
    Exit,
}

/// `--scmi`: whether the guest gets platvmm's SCMI system controller, which serves the passed
/// devices' clocks, reset lines and power domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScmiMode {
    /// When a passed device (or a descendant) references a reset line or a power domain:
    /// nothing else can give the guest those. Otherwise fixed clocks, which every guest
    /// kernel has (the default).
    #[default]
    Auto,
    /// Always: clocks too come from it.
    On,
    /// Never: fixed clocks; resets and power domains are dropped.
    Off,
}

/// `--seccomp`: what the sandbox does with a syscall outside a thread's allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SeccompMode {
    /// Stop platvmm with a message naming the syscall (the default).
    #[default]
    On,
    /// Allow it, and let the kernel log it (dmesg: audit type=1326).
    Log,
    /// No sandbox (debugging).
    Off,
}

/// `--user UID[:GID]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
}

/// Parses `UID[:GID]` (numbers; GID defaults to UID).
pub fn parse_user(s: &str) -> Result<UserSpec, String> {
    let num = |v: &str, what: &str| {
        v.parse::<u32>().map_err(|_| {
            format!("{what} '{v}' is not a number (give --user UID[:GID], e.g. 1000:1000)")
        })
    };
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (num(u, "UID")?, num(g, "GID")?),
        None => {
            let u = num(s, "UID")?;
            (u, u)
        }
    };
    if uid == 0 {
        return Err("--user 0 would keep root: give an unprivileged UID".into());
    }
    Ok(UserSpec { uid, gid })
}

/// `--user`/`--chroot`: what platvmm drops its privileges to once every fd is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JailConfig {
    pub user: Option<UserSpec>,
    pub chroot: Option<PathBuf>,
}

impl JailConfig {
    /// Whether there is anything to drop.
    pub fn active(&self) -> bool {
        self.user.is_some() || self.chroot.is_some()
    }
}

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

/// Virtio devices one VM can have: one SPI each from the emulated range (SPIs 1..=15), whose
/// last one is the power button's.
pub const MAX_DEVICES: usize = 14;

impl VirtioConfig {
    /// How many virtio devices the guest gets.
    pub fn count(&self) -> usize {
        self.disks.len()
            + self.net.len()
            + usize::from(self.vsock.is_some())
            + usize::from(self.rng)
    }
}

/// One --vfio-platform argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioSpec {
    pub path: PathBuf,
    pub compatible: Option<Vec<String>>,
    pub overlay: Option<PathBuf>,
    /// Type handler chosen by the user instead of by compatible.
    pub handler: Option<String>,
    /// `clock-rates=NAME:HZ;...`: rates of the device's host clocks (`CHILD/NAME`: of a
    /// descendant's or group member's).
    pub clock_rates: Vec<ClockRate>,
    /// `mac=`: an Ethernet controller's MAC address.
    pub mac: Option<[u8; 6]>,
    /// `fixed-link=SPEED[:half]`: a MAC's link without a PHY.
    pub fixed_link: Option<FixedLink>,
    /// `group=on`: the device's children that are host platform devices of their own are
    /// passed with it, each through VFIO, nested in its guest node.
    pub group: bool,
}

impl VfioSpec {
    /// A spec for `path` without options.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            compatible: None,
            overlay: None,
            handler: None,
            clock_rates: Vec::new(),
            mac: None,
            fixed_link: None,
            group: false,
        }
    }
}

/// The options `--vfio-platform` takes, for messages.
const VFIO_OPTIONS: &str =
    "options: compatible=, overlay=, handler=, clock-rates=, mac=, fixed-link=, group=";

/// Parses `NAME:HZ;NAME:HZ` (HZ with an optional k, M or G suffix).
pub fn parse_clock_rates(s: &str) -> Result<Vec<ClockRate>, String> {
    let mut v = Vec::new();
    for item in s.split(';').map(str::trim).filter(|x| !x.is_empty()) {
        let (name, hz) = item.split_once(':').ok_or_else(|| {
            format!("clock-rates: '{item}' is not NAME:HZ (e.g. clock-rates=pclk:125M;hclk:125M)")
        })?;
        v.push(ClockRate {
            name: name.to_string(),
            hz: parse_hz(hz).map_err(|e| format!("clock-rates: {name}: {e}"))?,
        });
    }
    if v.is_empty() {
        return Err("clock-rates= needs at least one NAME:HZ".into());
    }
    Ok(v)
}

fn parse_hz(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let mul: u64 = match &t[digits..] {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        u => return Err(format!("'{s}': unknown unit '{u}' (use k, M or G)")),
    };
    t[..digits]
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|&hz| hz > 0)
        .and_then(|hz| u32::try_from(hz).ok())
        .ok_or_else(|| format!("'{s}' is not a rate between 1 Hz and 4.29 GHz"))
}

/// Parses `02:00:5e:10:00:01`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("mac: '{s}' is not a MAC address like 02:00:5e:10:00:01");
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let mac: [u8; 6] = parts.try_into().map_err(|_| bad())?;
    if mac[0] & 1 != 0 {
        return Err(format!(
            "mac: {s} is a multicast address: use a unicast one (first byte even, e.g. 02:...)"
        ));
    }
    Ok(mac)
}

/// Parses `1000`, `100:half`, `10:full`.
pub fn parse_fixed_link(s: &str) -> Result<FixedLink, String> {
    let (speed, duplex) = s.split_once(':').unwrap_or((s, "full"));
    let speed: u32 = match speed {
        "10" | "100" | "1000" | "2500" | "10000" => speed.parse().expect("digits"),
        _ => {
            return Err(format!(
                "fixed-link: speed '{speed}' must be 10, 100, 1000, 2500 or 10000 (Mb/s)"
            ))
        }
    };
    let full_duplex = match duplex {
        "full" => true,
        "half" => false,
        d => return Err(format!("fixed-link: duplex '{d}' must be full or half")),
    };
    Ok(FixedLink { speed, full_duplex })
}

/// Checks a `handler=` value.
pub fn parse_handler(v: &str) -> Result<String, String> {
    match devices::guest_node::handlers::by_name(v) {
        Some(_) => Ok(v.to_string()),
        None => Err(format!(
            "unknown handler '{v}' (handlers: {})",
            devices::guest_node::handlers::names().join(", ")
        )),
    }
}

/// Splits a `;`-separated compatible list.
pub fn parse_compatible(s: &str) -> Result<Vec<String>, String> {
    let v: Vec<String> = s
        .split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    if v.is_empty() {
        return Err("compatible= needs at least one entry".into());
    }
    Ok(v)
}

/// Parses `PATH[,key=value...]`. Compatible strings contain commas (`arm,pl031`): a segment
/// without `=` continues the previous value. So do unit addresses (`ethernet@1,1f00000`): a
/// segment of hex digits (and what follows it in the path) right after a path whose last
/// node has a unit address continues the path.
pub fn parse_vfio(s: &str) -> Result<VfioSpec, String> {
    let mut parts = s.split(',');
    let mut path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or("missing device path")?
        .to_string();
    let mut opts: Vec<(String, String)> = Vec::new();
    for seg in parts {
        match seg.split_once('=') {
            Some((k, v)) => opts.push((k.to_string(), v.to_string())),
            None => match opts.last_mut() {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(seg);
                }
                None if continues_unit_address(&path, seg) => {
                    path.push(',');
                    path.push_str(seg);
                }
                None => return Err(format!("'{seg}' is not key=value ({VFIO_OPTIONS})")),
            },
        }
    }
    let mut spec = VfioSpec::new(PathBuf::from(path));
    for (k, v) in opts {
        match k.as_str() {
            "compatible" => spec.compatible = Some(parse_compatible(&v)?),
            "overlay" => spec.overlay = Some(PathBuf::from(v)),
            "handler" => spec.handler = Some(parse_handler(&v)?),
            "clock-rates" => spec.clock_rates = parse_clock_rates(&v)?,
            "mac" => spec.mac = Some(parse_mac(&v)?),
            "fixed-link" => spec.fixed_link = Some(parse_fixed_link(&v)?),
            "group" => spec.group = parse_on_off("group", &v)?,
            other => return Err(format!("unknown option '{other}' ({VFIO_OPTIONS})")),
        }
    }
    Ok(spec)
}

/// `on` or `off` for option `key`.
fn parse_on_off(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{key}={v}: use {key}=on or {key}=off")),
    }
}

/// Whether `seg` is the rest of a unit address cut at a comma: `path`'s last node has one
/// (`ethernet@1`) and `seg` starts with hex digits (`1f00000`, `1f00000/mdio`).
fn continues_unit_address(path: &str, seg: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let unit = seg.split('/').next().unwrap_or("");
    last.contains('@') && !unit.is_empty() && unit.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses `256M`, `1G`, `1GiB`, `512` (MiB) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!("'{s}' is not a size: use e.g. 256M or 2G"));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("'{s}' is too large"))?;
    let unit = match t[digits..].to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => MIB,
        "K" | "KB" | "KIB" => KIB,
        "G" | "GB" | "GIB" => GIB,
        "T" | "TB" | "TIB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}': use K, M, G or T"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("'{s}' is too large"))
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
            Some(("mac", v)) => mac = Some(parse_mac(v)?),
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

/// `--cpus N[,affinity=VCPU:CPUS,...][,vmm=CPUS][,policy=fifo:PRIO|rr:PRIO]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSpec {
    /// How many vCPUs the guest gets.
    pub count: u32,
    /// Where their threads, and platvmm's own, run on the host.
    pub placement: CpuPlacement,
}

/// Host CPUs: one (`2`, first == last) or a range (`2-3`, inclusive, first <= last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSet {
    pub first: u32,
    pub last: u32,
}

impl CpuSet {
    /// Every CPU of the set, in order.
    pub fn cpus(self) -> std::ops::RangeInclusive<u32> {
        self.first..=self.last
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first == self.last {
            true => write!(f, "{}", self.first),
            false => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

/// `affinity=VCPU:CPUS`: the host CPUs one vCPU's thread runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuAffinity {
    pub vcpu: u32,
    pub cpus: CpuSet,
}

impl fmt::Display for VcpuAffinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.vcpu, self.cpus)
    }
}

/// A real-time scheduling class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtClass {
    /// `fifo`: SCHED_FIFO.
    Fifo,
    /// `rr`: SCHED_RR.
    RoundRobin,
}

/// `policy=fifo:PRIO|rr:PRIO`: the vCPU threads' real-time class and priority (1..=99).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtPolicy {
    pub class: RtClass,
    pub priority: u8,
}

impl fmt::Display for RtPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            RtClass::Fifo => "fifo",
            RtClass::RoundRobin => "rr",
        };
        write!(f, "{class}:{}", self.priority)
    }
}

/// Where platvmm's threads run on the host; each thread applies its part on itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuPlacement {
    /// Pinned vCPUs (each at most once, each below the vCPU count); the others run anywhere
    /// platvmm may.
    pub affinity: Vec<VcpuAffinity>,
    /// `vmm=`: the event-loop (main) thread and the virtio worker.
    pub vmm: Option<CpuSet>,
    /// `policy=`: every vCPU thread's.
    pub policy: Option<RtPolicy>,
}

impl CpuPlacement {
    /// Where vCPU `id` is pinned, if it is.
    pub fn vcpu(&self, id: u32) -> Option<&VcpuAffinity> {
        self.affinity.iter().find(|a| a.vcpu == id)
    }
}

/// The keys `--cpus` takes after N, for messages.
const CPUS_OPTIONS: &str =
    "give N[,affinity=VCPU:CPUS,...][,vmm=CPUS][,policy=fifo:PRIO|rr:PRIO], e.g. 2,affinity=0:2,1:3";
/// How to write one `affinity=` entry, for messages.
const AFFINITY_FORM: &str = "give VCPU:CPU or VCPU:FIRST-LAST, e.g. 0:2";

/// Parses `N[,affinity=VCPU:CPUS,...][,vmm=CPUS][,policy=fifo:PRIO|rr:PRIO]`: an item
/// without `=` after `affinity=` continues its list (`affinity=0:2,1:3`).
pub fn parse_cpus(s: &str) -> Result<CpuSpec, String> {
    let mut parts = s.split(',').map(str::trim);
    let n = parts.next().unwrap_or_default();
    let count = n
        .parse::<u32>()
        .map_err(|_| format!("'{n}' is not a number of vCPUs ({CPUS_OPTIONS})"))?;
    let mut placement = CpuPlacement::default();
    let mut affinity: Option<Vec<&str>> = None;
    let mut seen: Vec<&str> = Vec::new();
    for seg in parts {
        let Some((k, v)) = seg.split_once('=') else {
            match (seen.last(), affinity.as_mut()) {
                (Some(&"affinity"), Some(items)) => items.push(seg),
                _ => return Err(format!("'{seg}' is not key=value ({CPUS_OPTIONS})")),
            }
            continue;
        };
        if seen.contains(&k) {
            return Err(format!("{k}= is given twice (give each key once)"));
        }
        seen.push(k);
        match k {
            "affinity" => affinity = Some(vec![v]),
            "vmm" => placement.vmm = Some(parse_vmm(v)?),
            "policy" => placement.policy = Some(parse_policy(v)?),
            other => return Err(format!("unknown key '{other}' ({CPUS_OPTIONS})")),
        }
    }
    if let Some(items) = affinity {
        placement.affinity = parse_affinity(&items, count)?;
    }
    Ok(CpuSpec { count, placement })
}

/// The `affinity=` entries (`VCPU:CPUS` each) of a VM with `count` vCPUs.
fn parse_affinity(items: &[&str], count: u32) -> Result<Vec<VcpuAffinity>, String> {
    let mut out: Vec<VcpuAffinity> = Vec::new();
    for &item in items {
        if item.is_empty() {
            return Err(format!(
                "affinity= has an empty entry ({AFFINITY_FORM},1:3)"
            ));
        }
        let bad = |msg: String| format!("affinity={item}: {msg} ({AFFINITY_FORM})");
        let (v, c) = item
            .split_once(':')
            .ok_or_else(|| bad(format!("'{item}' is not VCPU:CPUS")))?;
        let vcpu = v
            .parse::<u32>()
            .map_err(|_| bad(format!("'{v}' is not a vCPU number")))?;
        let cpus = parse_cpu_set(c).map_err(bad)?;
        if vcpu >= count {
            let have = match count {
                0 => "none".to_string(),
                1 => "vCPU 0".to_string(),
                n => format!("vCPUs 0-{}", n - 1),
            };
            return Err(format!(
                "affinity={item}: there is no vCPU {vcpu} (--cpus {count} gives {have})"
            ));
        }
        if out.iter().any(|a| a.vcpu == vcpu) {
            return Err(format!(
                "affinity={item}: vCPU {vcpu} is listed twice (give each vCPU once)"
            ));
        }
        out.push(VcpuAffinity { vcpu, cpus });
    }
    Ok(out)
}

/// `vmm=CPUS`.
fn parse_vmm(v: &str) -> Result<CpuSet, String> {
    if v.is_empty() {
        return Err("vmm= needs host CPUs (give vmm=CPU or vmm=FIRST-LAST, e.g. vmm=0-1)".into());
    }
    parse_cpu_set(v)
        .map_err(|e| format!("vmm={v}: {e} (give vmm=CPU or vmm=FIRST-LAST, e.g. vmm=0-1)"))
}

/// `CPU` or `FIRST-LAST` (FIRST <= LAST).
fn parse_cpu_set(s: &str) -> Result<CpuSet, String> {
    let cpu = |c: &str| {
        c.parse::<u32>()
            .map_err(|_| format!("'{c}' is not a host CPU number"))
    };
    let (first, last) = match s.split_once('-') {
        Some((a, b)) => (cpu(a)?, cpu(b)?),
        None => (cpu(s)?, cpu(s)?),
    };
    if first > last {
        return Err(format!("the range {s} ends before it starts"));
    }
    Ok(CpuSet { first, last })
}

/// `fifo:PRIO` or `rr:PRIO`, PRIO 1..=99.
fn parse_policy(v: &str) -> Result<RtPolicy, String> {
    const FORM: &str = "give fifo:PRIO or rr:PRIO with PRIO 1-99, e.g. policy=fifo:10";
    let (class, prio) = v
        .split_once(':')
        .ok_or_else(|| format!("policy={v}: no priority ({FORM})"))?;
    let class = match class {
        "fifo" => RtClass::Fifo,
        "rr" => RtClass::RoundRobin,
        other => return Err(format!("policy={v}: unknown policy '{other}' ({FORM})")),
    };
    let priority = prio
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=99).contains(p))
        .ok_or_else(|| format!("policy={v}: priority '{prio}' is not in 1-99 ({FORM})"))?;
    Ok(RtPolicy { class, priority })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 * MIB));
        assert_eq!(parse_size("256"), Ok(256 * MIB));
        assert_eq!(parse_size("2G"), Ok(2 * GIB));
        assert_eq!(parse_size("2gib"), Ok(2 * GIB));
        assert_eq!(parse_size("65536K"), Ok(64 * MIB));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn vfio_specs() {
        let s = parse_vfio("/sys/bus/amba/devices/9010000.pl031").unwrap();
        assert_eq!(s.path, PathBuf::from("/sys/bus/amba/devices/9010000.pl031"));
        assert_eq!(s.compatible, None);
        let s = parse_vfio("/d,compatible=arm,pl031;arm,primecell,overlay=/x.dtb").unwrap();
        assert_eq!(s.compatible.unwrap(), ["arm,pl031", "arm,primecell"]);
        assert_eq!(s.overlay.unwrap(), PathBuf::from("/x.dtb"));
        assert!(parse_vfio("/d,bogus=1")
            .unwrap_err()
            .contains("unknown option 'bogus'"));
        assert!(parse_vfio("/d,stray")
            .unwrap_err()
            .contains("not key=value"));
        // Unit addresses with a comma (Socionext: ethernet@1,1f00000) stay in the path.
        let s = parse_vfio("/soc/ethernet@1,1f00000,handler=ethernet").unwrap();
        assert_eq!(s.path, PathBuf::from("/soc/ethernet@1,1f00000"));
        assert_eq!(s.handler.as_deref(), Some("ethernet"));
        let s = parse_vfio("/soc/bus@1,0/mmc@5a000000").unwrap();
        assert_eq!(s.path, PathBuf::from("/soc/bus@1,0/mmc@5a000000"));
        assert!(parse_vfio("/soc/ethernet@1,zz")
            .unwrap_err()
            .contains("'zz' is not key=value"));
        assert!(parse_vfio("").is_err());
        assert!(parse_vfio("/d,compatible=").is_err());
        assert_eq!(
            parse_vfio("/d,handler=usb").unwrap().handler.as_deref(),
            Some("usb")
        );
        assert!(parse_vfio("/d,handler=gpu")
            .unwrap_err()
            .contains("handlers: sata, usb, ethernet, mmc, serial, sec, generic"));
        assert!(parse_vfio("/d,group=on").unwrap().group);
        assert!(!parse_vfio("/d,group=off").unwrap().group);
        assert!(!parse_vfio("/d").unwrap().group);
        assert!(parse_vfio("/d,group=yes")
            .unwrap_err()
            .contains("use group=on or group=off"));
    }

    #[test]
    fn dependency_options() {
        let s = parse_vfio("/d,clock-rates=pclk:125M;hclk:100000k;tx_clk:25000000,mac=02:00:5e:10:00:01,fixed-link=100:half").unwrap();
        assert_eq!(
            s.clock_rates,
            [
                ClockRate {
                    name: "pclk".into(),
                    hz: 125_000_000
                },
                ClockRate {
                    name: "hclk".into(),
                    hz: 100_000_000
                },
                ClockRate {
                    name: "tx_clk".into(),
                    hz: 25_000_000
                },
            ]
        );
        assert_eq!(s.mac, Some([2, 0, 0x5e, 0x10, 0, 1]));
        assert_eq!(
            s.fixed_link,
            Some(FixedLink {
                speed: 100,
                full_duplex: false
            })
        );
        for (bad, says) in [
            ("/d,clock-rates=pclk", "not NAME:HZ"),
            ("/d,clock-rates=pclk:5X", "unknown unit"),
            ("/d,clock-rates=pclk:5G", "between 1 Hz"),
            ("/d,clock-rates=pclk:0", "between 1 Hz"),
            ("/d,mac=01:00:5e:00:00:01", "multicast"),
            ("/d,mac=02:00:5e:00:01", "not a MAC"),
            ("/d,fixed-link=123", "must be 10, 100"),
            ("/d,fixed-link=100:quarter", "full or half"),
        ] {
            let e = parse_vfio(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

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
    fn user_specs() {
        assert_eq!(
            parse_user("1000:100"),
            Ok(UserSpec {
                uid: 1000,
                gid: 100
            })
        );
        assert_eq!(
            parse_user("65534"),
            Ok(UserSpec {
                uid: 65534,
                gid: 65534
            })
        );
        assert!(parse_user("0").unwrap_err().contains("unprivileged"));
        assert!(parse_user("bob")
            .unwrap_err()
            .contains("UID 'bob' is not a number"));
        assert!(parse_user("1:x").unwrap_err().contains("GID 'x'"));
    }

    fn set(first: u32, last: u32) -> CpuSet {
        CpuSet { first, last }
    }

    #[test]
    fn cpu_specs() {
        let s = parse_cpus("2").unwrap();
        assert_eq!(s.count, 2);
        assert_eq!(s.placement, CpuPlacement::default());
        let s = parse_cpus("2,affinity=0:2,1:3").unwrap();
        assert_eq!(
            s.placement.affinity,
            [
                VcpuAffinity {
                    vcpu: 0,
                    cpus: set(2, 2)
                },
                VcpuAffinity {
                    vcpu: 1,
                    cpus: set(3, 3)
                },
            ]
        );
        let s = parse_cpus("2,affinity=0:2-3,1:3,vmm=0-1,policy=fifo:10").unwrap();
        assert_eq!(s.placement.vcpu(0).unwrap().cpus, set(2, 3));
        assert_eq!(s.placement.vcpu(1).unwrap().to_string(), "1:3");
        assert_eq!(s.placement.vmm, Some(set(0, 1)));
        assert_eq!(
            s.placement.policy,
            Some(RtPolicy {
                class: RtClass::Fifo,
                priority: 10
            })
        );
        // Any order; a vCPU may be left unpinned.
        let s = parse_cpus("4,policy=rr:99,vmm=5,affinity=3:0").unwrap();
        assert_eq!(s.placement.policy.unwrap().to_string(), "rr:99");
        assert_eq!(s.placement.vmm.unwrap().to_string(), "5");
        assert!(s.placement.vcpu(0).is_none());
        assert_eq!(s.placement.vcpu(3).unwrap().cpus, set(0, 0));
    }

    #[test]
    fn bad_cpu_specs_name_the_fix() {
        for (bad, says) in [
            ("two", "'two' is not a number of vCPUs (give N[,affinity="),
            ("", "'' is not a number of vCPUs"),
            ("2,affinity=0:x", "affinity=0:x: 'x' is not a host CPU number (give VCPU:CPU or VCPU:FIRST-LAST, e.g. 0:2)"),
            ("2,affinity=x:1", "affinity=x:1: 'x' is not a vCPU number (give VCPU:CPU"),
            ("2,affinity=2", "affinity=2: '2' is not VCPU:CPUS (give VCPU:CPU"),
            ("2,affinity=0:3-2", "affinity=0:3-2: the range 3-2 ends before it starts"),
            ("2,affinity=0:1-", "affinity=0:1-: '' is not a host CPU number"),
            ("2,affinity=2:1", "affinity=2:1: there is no vCPU 2 (--cpus 2 gives vCPUs 0-1)"),
            ("1,affinity=1:1", "affinity=1:1: there is no vCPU 1 (--cpus 1 gives vCPU 0)"),
            ("2,affinity=0:1,0:2", "affinity=0:2: vCPU 0 is listed twice (give each vCPU once)"),
            ("2,affinity=", "affinity= has an empty entry"),
            ("2,affinity=0:1,,1:2", "affinity= has an empty entry"),
            ("2,affinity=0:1,vmm=0,1:2", "'1:2' is not key=value (give N[,affinity="),
            ("2,affinity=0:1,affinity=1:2", "affinity= is given twice"),
            ("2,0:1", "'0:1' is not key=value"),
            ("2,vmm=", "vmm= needs host CPUs (give vmm=CPU or vmm=FIRST-LAST, e.g. vmm=0-1)"),
            ("2,vmm=1-0", "vmm=1-0: the range 1-0 ends before it starts (give vmm=CPU"),
            ("2,vmm=a", "vmm=a: 'a' is not a host CPU number"),
            ("2,policy=fifo:0", "policy=fifo:0: priority '0' is not in 1-99 (give fifo:PRIO or rr:PRIO"),
            ("2,policy=rr:100", "priority '100' is not in 1-99"),
            ("2,policy=fifo", "policy=fifo: no priority (give fifo:PRIO"),
            ("2,policy=idle:1", "policy=idle:1: unknown policy 'idle'"),
            ("2,policy=", "policy=: no priority"),
            ("2,nodes=1", "unknown key 'nodes' (give N[,affinity="),
        ] {
            let e = parse_cpus(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
        assert_eq!(
            parse_cpus("2,affinity=0:x").unwrap_err(),
            "affinity=0:x: 'x' is not a host CPU number (give VCPU:CPU or VCPU:FIRST-LAST, e.g. 0:2)"
        );
    }
}
