//! Command line.

use std::path::PathBuf;

use clap::Parser;
use devices::vfio::clocks::ClockRate;
use devices::vfio::node::FixedLink;

use crate::arch::aarch64::layout::{GIB, KIB, MIB};
use crate::seccomp::SeccompMode;

const AFTER_HELP: &str = "\
Exit status:
  0  the guest powered off (PSCI SYSTEM_OFF)
  1  platvmm failed (the message says why)
  2  bad command line
  3  the guest asked for a reset (PSCI SYSTEM_RESET); platvmm does not reboot it
  4  the guest reported a crash (PSCI SYSTEM_EVENT crash) or a vCPU stopped unexpectedly
  128+N  platvmm stopped the VM on signal N (143 SIGTERM, 130 SIGINT, 129 SIGHUP); the
     vCPUs are stopped and the passed-through devices released first
  159  the seccomp sandbox denied a syscall (the message names it); the VM was stopped and
     the devices released

Every option can also come from --config FILE (TOML, keys are the long option names:
kernel = \"/boot/Image\", cpus = 2, stats = true, vfio-platform = [\"/sys/...\"]); the
command line overrides the file.

The console is the guest's ttyS0 (a 16550 UART at 0x9000000). Host stdin is forwarded to it;
when stdin is a terminal it is put in raw mode, so Ctrl-C goes to the guest: power the guest
off from inside (poweroff -f) to leave.";

/// Boot an aarch64 Linux guest under KVM, with host platform devices passed through.
#[derive(Debug, Parser)]
#[command(
    name = "platvmm",
    version,
    about,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Read options from a TOML file (keys: the long option names); the command line
    /// overrides it. Examples in docs/examples/.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,

    /// Guest kernel: an uncompressed arm64 `Image` (required, here or in --config).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Initramfs (cpio, optionally compressed) handed to the kernel.
    #[arg(long, value_name = "PATH")]
    pub initramfs: Option<PathBuf>,

    /// Kernel command line.
    #[arg(long, value_name = "ARGS", default_value = "console=ttyS0 panic=-1")]
    pub cmdline: String,

    /// Number of vCPUs (vCPU 0 boots; the others start when the guest calls PSCI CPU_ON).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,

    /// Guest RAM: a number with an optional K, M, G or T suffix (binary units); a bare number
    /// is MiB.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub memory: u64,

    /// Write the guest device tree blob to FILE before booting.
    #[arg(long, value_name = "FILE")]
    pub dump_dtb: Option<PathBuf>,

    /// Pass a host platform or AMBA device through (repeatable):
    /// PATH[,compatible=A;B...][,overlay=FILE.dtb][,handler=NAME][,clock-rates=NAME:HZ;...]
    /// [,mac=XX:XX:XX:XX:XX:XX][,fixed-link=SPEED[:half]].
    /// PATH is /sys/bus/platform/devices/<dev> or /sys/bus/amba/devices/<dev>, bound to
    /// vfio-platform / vfio-amba. compatible= replaces the guest node's compatible list
    /// (entries separated by ';'); overlay= merges the root node of a DTB fragment
    /// (dtc -I dts -O dtb) into the guest node: its properties replace generated ones, its
    /// children are added. handler= picks the guest-node handler (sata, usb, ethernet, mmc,
    /// serial, sec, generic) instead of letting the host compatible choose. clock-rates= gives
    /// the rate of host clocks (by clock-names entry, HZ with k/M/G) the host tree and
    /// /sys/kernel/debug/clk do not tell; each becomes a guest fixed clock. mac= sets an Ethernet
    /// controller's local-mac-address; fixed-link= replaces a PHY the guest does not get.
    #[arg(long = "vfio-platform", value_name = "PATH[,OPTS]", value_parser = parse_vfio)]
    pub vfio_platform: Vec<VfioSpec>,

    /// Merge the root of a DTB fragment into the guest device tree (repeatable): its nodes
    /// are added at the root, e.g. a gpio-keys node whose `gpios` use a phandle given to a
    /// passed-through GPIO controller with its own overlay= (`phandle = <0x100>;` — platvmm
    /// uses phandles below 0x100).
    #[arg(long = "dt-overlay", value_name = "FILE.dtb")]
    pub dt_overlay: Vec<PathBuf>,

    /// Give the guest an NXP SEC (CAAM) controller node backed by platvmm's emulated controller
    /// page, even with no job ring passed through (its caam driver then probes the controller
    /// alone). SEC job rings given with --vfio-platform go under it.
    #[arg(long)]
    pub sec_controller: bool,

    /// Back guest RAM with hugepages placed at guest-physical == host-physical addresses, so
    /// devices passed through without an IOMMU (VFIO no-IOMMU mode) can DMA to guest memory.
    /// Needs root and free hugepages (e.g. hugepagesz=32M hugepages=8 on the host kernel
    /// command line for 256 MiB).
    #[arg(long)]
    pub identity_map_ram: bool,

    /// The seccomp sandbox, installed by every thread once setup is over: `on` stops platvmm
    /// with a message naming any syscall outside the thread's allowlist (status 159), `log`
    /// allows such syscalls and leaves them to the kernel log (dmesg), `off` has no sandbox.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SeccompMode::On)]
    pub seccomp: SeccompMode,

    /// Drop to this user (numbers; GID defaults to UID) once every device, image and KVM fd is
    /// open: platvmm enters an empty root (or --chroot DIR), sets no_new_privs, empties every
    /// capability set and switches user before any vCPU runs. The user needs nothing on the
    /// host: the fds are already open.
    #[arg(long, value_name = "UID[:GID]", value_parser = crate::jail::parse_user)]
    pub user: Option<crate::jail::UserSpec>,

    /// The root platvmm enters when it drops privileges (default with --user: an empty,
    /// deleted directory). Alone, it drops every capability but keeps the user.
    #[arg(long, value_name = "DIR")]
    pub chroot: Option<PathBuf>,

    /// Test only: on SIGUSR1 the event loop also makes a syscall no allowlist has.
    #[arg(long, hide = true)]
    pub test_denied_syscall: bool,

    /// A virtio-blk disk on a raw image file or block device (repeatable; the guest sees
    /// /dev/vda, /dev/vdb... in this order): PATH[,readonly][,serial=S]. A read-write image is
    /// locked exclusively (flock), a read-only one shared, so two VMs cannot write one image.
    #[arg(long = "disk", value_name = "PATH[,OPTS]", value_parser = crate::virtio::parse_disk)]
    pub disk: Vec<crate::virtio::DiskSpec>,

    /// A virtio-net interface on host tap NAME (created if missing, gone when platvmm exits):
    /// tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,vhost=on|off]. Frames go through the kernel's
    /// vhost-net when /dev/vhost-net exists, else through platvmm (said at start).
    #[arg(long = "net", value_name = "tap=NAME[,OPTS]", value_parser = crate::virtio::parse_net)]
    pub net: Vec<crate::virtio::NetSpec>,

    /// A virtio-vsock device on the kernel's vhost-vsock, with guest context id N (3 and up):
    /// host programs reach the guest at AF_VSOCK CID N, the guest reaches the host at CID 2.
    #[arg(long, value_name = "cid=N", value_parser = crate::virtio::parse_vsock)]
    pub vsock: Option<crate::virtio::VsockSpec>,

    /// A virtio-rng entropy source fed from the host's getrandom(2).
    #[arg(long)]
    pub rng: bool,

    /// Print VM exit counts and per-device counters to stderr at exit (they are also printed
    /// whenever platvmm receives SIGUSR1).
    #[arg(long)]
    pub stats: bool,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the host's platform and AMBA devices: driver, IOMMU group, compatible, regions
    /// (mapped/trapped), IRQs (level/edge), the guest-node handler, and whether each can be
    /// passed through (ready / needs `platvmm bind` / cannot, with the reason). Opens no VFIO
    /// state.
    List {
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Hand devices to vfio-platform / vfio-amba (loading it if needed): unbind the host
    /// driver, set driver_override, bind; the original driver is recorded under
    /// /run/platvmm/bound for `platvmm unbind`. Idempotent.
    Bind {
        /// /sys/bus/platform/devices/<dev> or /sys/bus/amba/devices/<dev>.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// Allow devices without an IOMMU, through VFIO's unsafe no-IOMMU mode (the device can
        /// DMA to any host memory).
        #[arg(long)]
        noiommu: bool,
        /// Also move the other devices of each device's IOMMU group.
        #[arg(long)]
        group: bool,
    },
    /// Give devices back: unbind from VFIO, clear driver_override, bind the driver `platvmm
    /// bind` recorded (or let the kernel pick one). Idempotent.
    Unbind {
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write platvmm's man page (roff) to stdout: platvmm man > /usr/local/share/man/man1/platvmm.1
    Man,
    /// Write a shell completion script to stdout, e.g. platvmm completions bash >
    /// /etc/bash_completion.d/platvmm
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Show what platvmm sees of a host device (regions, IRQs, host DT node) and the guest
    /// node it would generate, as DTS, without starting a VM.
    Inspect {
        /// /sys/bus/platform/devices/<dev> or /sys/bus/amba/devices/<dev>, with the options of
        /// --vfio-platform after it.
        #[arg(value_name = "PATH[,OPTS]", value_parser = parse_vfio)]
        spec: VfioSpec,
        /// As for --vfio-platform.
        #[arg(long, value_name = "A;B")]
        compatible: Option<String>,
        /// As for --vfio-platform.
        #[arg(long, value_name = "NAME", value_parser = parse_handler)]
        handler: Option<String>,
    },
    /// Write the guest device tree platvmm would build for nodes of a host DTB (e.g. a board's
    /// upstream tree compiled with dtc), without VFIO or KVM; prints the handler chosen for each.
    PreviewDt {
        /// The host device tree blob.
        #[arg(long, value_name = "FILE")]
        host_dtb: PathBuf,
        /// Path of a host node to pass through (repeatable), e.g. /soc/sata@3200000, with the
        /// options of --vfio-platform after it (/axi/ethernet@ff0e0000,clock-rates=pclk:125M).
        #[arg(long = "node", value_name = "PATH[,OPTS]", required = true, value_parser = parse_vfio)]
        nodes: Vec<VfioSpec>,
        /// Replace the compatible list of every node (entries separated by ';').
        #[arg(long, value_name = "A;B")]
        compatible: Option<String>,
        /// Use this handler for every node.
        #[arg(long, value_name = "NAME", value_parser = parse_handler)]
        handler: Option<String>,
        /// Where to write the guest DTB.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
}

/// One --vfio-platform argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioSpec {
    pub path: PathBuf,
    pub compatible: Option<Vec<String>>,
    pub overlay: Option<PathBuf>,
    /// Type handler chosen by the user instead of by compatible.
    pub handler: Option<String>,
    /// `clock-rates=NAME:HZ;...`: rates of the device's host clocks.
    pub clock_rates: Vec<ClockRate>,
    /// `mac=`: an Ethernet controller's MAC address.
    pub mac: Option<[u8; 6]>,
    /// `fixed-link=SPEED[:half]`: a MAC's link without a PHY.
    pub fixed_link: Option<FixedLink>,
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
        }
    }
}

/// The options `--vfio-platform` takes, for messages.
const VFIO_OPTIONS: &str =
    "options: compatible=, overlay=, handler=, clock-rates=, mac=, fixed-link=";

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
    match devices::vfio::handlers::by_name(v) {
        Some(_) => Ok(v.to_string()),
        None => Err(format!(
            "unknown handler '{v}' (handlers: {})",
            devices::vfio::handlers::names().join(", ")
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
/// without `=` continues the previous value.
pub fn parse_vfio(s: &str) -> Result<VfioSpec, String> {
    let mut parts = s.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or("missing device path")?;
    let mut opts: Vec<(String, String)> = Vec::new();
    for seg in parts {
        match seg.split_once('=') {
            Some((k, v)) => opts.push((k.to_string(), v.to_string())),
            None => match opts.last_mut() {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(seg);
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
            other => return Err(format!("unknown option '{other}' ({VFIO_OPTIONS})")),
        }
    }
    Ok(spec)
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
        assert!(parse_vfio("").is_err());
        assert!(parse_vfio("/d,compatible=").is_err());
        assert_eq!(
            parse_vfio("/d,handler=usb").unwrap().handler.as_deref(),
            Some("usb")
        );
        assert!(parse_vfio("/d,handler=gpu")
            .unwrap_err()
            .contains("handlers: sata, usb, ethernet, mmc, serial, sec, generic"));
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
    fn inspect_needs_no_kernel() {
        let c = Cli::try_parse_from(["platvmm", "inspect", "/sys/x"]).unwrap();
        assert!(matches!(c.command, Some(Command::Inspect { .. })));
        assert!(c.kernel.is_none());
    }

    #[test]
    fn cli_parses() {
        let c = Cli::try_parse_from(["platvmm", "--kernel", "/k", "--cpus", "2", "--memory", "1G"])
            .unwrap();
        assert_eq!(c.cpus, 2);
        assert_eq!(c.kernel, Some(PathBuf::from("/k")));
        assert_eq!(c.memory, GIB);
        assert_eq!(c.cmdline, "console=ttyS0 panic=-1");
        // --kernel may come from --config: main checks it after merging (integration test).
        assert!(Cli::try_parse_from(["platvmm"]).unwrap().kernel.is_none());
        assert!(Cli::try_parse_from(["platvmm", "--kernel", "k", "--memory", "x"]).is_err());
    }
}
