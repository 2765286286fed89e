//! Command line.

use std::path::PathBuf;

use clap::Parser;
use platvmm::config::{
    parse_cpus, parse_disk, parse_handler, parse_net, parse_size, parse_user, parse_vfio,
    parse_vsock, CpuSpec, DiskSpec, JailConfig, NetSpec, OnReboot, ScmiMode, SeccompMode, UserSpec,
    VfioSpec, VirtioConfig, VmConfig, VsockSpec,
};

pub mod config_file;

const AFTER_HELP: &str = "\
Exit status:
  0  the guest powered off (PSCI SYSTEM_OFF)
  1  platvmm failed (the message says why)
  2  bad command line
  3  the guest asked for a reset (PSCI SYSTEM_RESET) with --on-reboot exit, or before its
     first console output, or 5 times within 60 s (else the guest restarts in place)
  4  the guest reported a crash (PSCI SYSTEM_EVENT crash) or a vCPU stopped unexpectedly
  128+N  platvmm stopped the VM on signal N (143 SIGTERM, 130 SIGINT, 129 SIGHUP); the
     vCPUs are stopped and the passed-through devices released first
  159  the seccomp sandbox denied a syscall (the message names it); the VM was stopped and
     the devices released

Every option can also come from --config FILE (TOML, keys are the long option names:
kernel = \"/boot/Image\", cpus = 2 (or \"2,affinity=0:2,1:3\"), stats = true,
vfio-platform = [\"/sys/...\"]); the command line overrides the file.

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

    /// Number of vCPUs (vCPU 0 boots; the others start when the guest calls PSCI CPU_ON), and
    /// where threads run on the host: N[,affinity=VCPU:CPUS,...][,vmm=CPUS][,policy=fifo:PRIO|rr:PRIO].
    /// CPUS is one host CPU or a range FIRST-LAST. affinity= pins vCPU threads (2,affinity=0:2,1:3
    /// runs vCPU 0 on host CPU 2 and vCPU 1 on CPU 3; a vCPU not listed runs on any CPU platvmm
    /// may use). vmm= pins platvmm's own threads (the event loop and the virtio worker). policy=
    /// runs the vCPU threads SCHED_FIFO or SCHED_RR at priority PRIO (1-99; needs root or
    /// RLIMIT_RTPRIO): keep vmm= off those vCPUs' CPUs. Checked before KVM is opened.
    #[arg(long, value_name = "N[,OPTS]", default_value = "1", value_parser = parse_cpus)]
    pub cpus: CpuSpec,

    /// Guest RAM: a number with an optional K, M, G or T suffix (binary units); a bare number
    /// is MiB.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub memory: u64,

    /// Write the guest device tree blob to FILE before booting.
    #[arg(long, value_name = "FILE")]
    pub dump_dtb: Option<PathBuf>,

    /// Pass a host platform or AMBA device through (repeatable):
    /// PATH[,compatible=A;B...][,overlay=FILE.dtb][,handler=NAME][,clock-rates=NAME:HZ;...]
    /// [,mac=XX:XX:XX:XX:XX:XX][,fixed-link=SPEED[:half]][,group=on].
    /// PATH is /sys/bus/platform/devices/<dev> or /sys/bus/amba/devices/<dev>, bound to
    /// vfio-platform / vfio-amba. compatible= replaces the guest node's compatible list
    /// (entries separated by ';'); overlay= merges the root node of a DTB fragment
    /// (dtc -I dts -O dtb) into the guest node: its properties replace generated ones, its
    /// children are added. handler= picks the guest-node handler (sata, usb, ethernet, mmc,
    /// serial, sec, generic) instead of letting the host compatible choose. clock-rates= gives
    /// the rate of host clocks (by clock-names entry, HZ with k/M/G) the host tree and
    /// /sys/kernel/debug/clk do not tell; each becomes a guest fixed clock; CHILD/NAME names a
    /// clock of a descendant or group member (CHILD: its path from the device's node). mac= sets an Ethernet
    /// controller's local-mac-address; fixed-link= replaces a PHY the guest does not get.
    /// group=on also passes the device's children that are host platform devices of their
    /// own (each bound to vfio-platform), nested in its guest node behind translated ranges.
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

    /// The guest's SCMI system controller (Arm SCMI over SMC where the host's KVM forwards it,
    /// Linux 6.4 and later, else over a mailbox platvmm emulates): the passed devices' clocks,
    /// reset lines and power domains point at it. `auto` gives it when a device references a
    /// reset line or power domain (nothing else can), `on` always, `off` never (fixed clocks;
    /// resets and power domains dropped). The guest kernel needs ARM_SCMI_PROTOCOL, the SMC or
    /// mailbox transport (ARM_SCMI_TRANSPORT_SMC; ARM_SCMI_TRANSPORT_MAILBOX and BCM2835_MBOX)
    /// and the SCMI clock, reset and power-domain drivers (Debian's arm64 kernels build them in).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ScmiMode::Auto)]
    pub scmi: ScmiMode,

    /// Drop to this user (numbers; GID defaults to UID) once every device, image and KVM fd is
    /// open: platvmm enters an empty root (or --chroot DIR), sets no_new_privs, empties every
    /// capability set and switches user before any vCPU runs. The user needs nothing on the
    /// host: the fds are already open.
    #[arg(long, value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<UserSpec>,

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
    #[arg(long = "disk", value_name = "PATH[,OPTS]", value_parser = parse_disk)]
    pub disk: Vec<DiskSpec>,

    /// A virtio-net interface on host tap NAME (created if missing, gone when platvmm exits):
    /// tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,vhost=on|off]. Frames go through the kernel's
    /// vhost-net when /dev/vhost-net exists, else through platvmm (said at start).
    #[arg(long = "net", value_name = "tap=NAME[,OPTS]", value_parser = parse_net)]
    pub net: Vec<NetSpec>,

    /// A virtio-vsock device on the kernel's vhost-vsock, with guest context id N (3 and up):
    /// host programs reach the guest at AF_VSOCK CID N, the guest reaches the host at CID 2.
    #[arg(long, value_name = "cid=N", value_parser = parse_vsock)]
    pub vsock: Option<VsockSpec>,

    /// A virtio-rng entropy source fed from the host's getrandom(2).
    #[arg(long)]
    pub rng: bool,

    /// Print VM exit counts and per-device counters to stderr at exit (they are also printed
    /// whenever platvmm receives SIGUSR1).
    #[arg(long)]
    pub stats: bool,

    /// Serve the VM's control plane on a Unix socket at PATH (HTTP/1.1 with JSON bodies; the
    /// client is `platvmm ctl PATH ACTION`, or `curl --unix-socket PATH`): info, stats, pause,
    /// resume, stop. Created mode 0600 before the sandbox; only its owner (and root) may
    /// connect. A stale socket (nothing listening) is replaced, a live one refused.
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,

    /// SIGTERM presses the guest's power button (a PL061 GPIO line with a gpio-keys KEY_POWER
    /// node: a stock Linux guest shuts down cleanly) and stops the VM if the guest has not
    /// powered off after SECS; a guest that does not listen to the button (no gpio-pl061 and
    /// gpio_keys driver), a second SIGTERM, SIGINT and SIGHUP stop it at once. 0: SIGTERM
    /// stops at once too.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// What a guest reboot (PSCI SYSTEM_RESET) does: `restart` the guest in the same platvmm
    /// (vCPUs reset, RAM cleared, kernel, initramfs and device tree loaded again, virtio and
    /// passed devices reset, VFIO groups kept open), or `exit` with status 3. A guest that
    /// reboots before writing to the console, or 5 times within 60 s, ends with status 3
    /// either way.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OnReboot::Restart)]
    pub on_reboot: OnReboot,
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
        /// Also bind each device's child platform devices (the members `--vfio-platform
        /// PATH,group=on` passes with it).
        #[arg(long)]
        children: bool,
    },
    /// Give devices back: unbind from VFIO, clear driver_override, bind the driver `platvmm
    /// bind` recorded (or let the kernel pick one). Idempotent.
    Unbind {
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// Also give back each device's child platform devices.
        #[arg(long)]
        children: bool,
    },
    /// Talk to a running VM through its --api-socket: ACTION is info (configuration, state,
    /// uptime, devices with guest addresses and IRQs), stats (the --stats figures), pause
    /// (vCPUs stopped; interrupts stay pending), resume, power-button (pressed; the reply says
    /// whether the guest listens), reboot (the guest restarted in place), stop (the VM ends at
    /// once, exit status 0), or raw (standard input sent as the request, the reply printed: for testing). Prints
    /// the JSON reply; an error reply is one line and status 1.
    Ctl {
        /// The VM's --api-socket.
        #[arg(value_name = "SOCKET")]
        socket: PathBuf,
        #[arg(value_name = "ACTION", value_parser = ["info", "stats", "pause", "resume", "power-button", "reboot", "stop", "raw"])]
        action: String,
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
        /// As for a VM (the SCMI identifiers the device would get).
        #[arg(long, value_enum, value_name = "MODE", default_value_t = ScmiMode::Auto)]
        scmi: ScmiMode,
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
        /// As for a VM: the guest's SCMI system controller (auto, on, off).
        #[arg(long, value_enum, value_name = "MODE", default_value_t = ScmiMode::Auto)]
        scmi: ScmiMode,
        /// Where to write the guest DTB.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
}

impl From<Cli> for VmConfig {
    fn from(c: Cli) -> Self {
        Self {
            kernel: c.kernel.unwrap_or_default(),
            initramfs: c.initramfs,
            cmdline: c.cmdline,
            cpus: c.cpus.count,
            placement: c.cpus.placement,
            mem_size: c.memory,
            dump_dtb: c.dump_dtb,
            vfio: c.vfio_platform,
            dt_overlays: c.dt_overlay,
            stats: c.stats,
            identity_ram: c.identity_map_ram,
            sec_controller: c.sec_controller,
            seccomp: c.seccomp,
            scmi: c.scmi,
            jail: JailConfig {
                user: c.user,
                chroot: c.chroot,
            },
            virtio: VirtioConfig {
                disks: c.disk,
                net: c.net,
                vsock: c.vsock,
                rng: c.rng,
            },
            test_denied_syscall: c.test_denied_syscall,
            api_socket: c.api_socket,
            shutdown_timeout: std::time::Duration::from_secs(c.shutdown_timeout),
            on_reboot: c.on_reboot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platvmm::arch::aarch64::layout::GIB;

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
        assert_eq!(c.cpus.count, 2);
        assert!(c.cpus.placement.affinity.is_empty());
        assert_eq!(c.kernel, Some(PathBuf::from("/k")));
        assert_eq!(c.memory, GIB);
        assert_eq!(c.cmdline, "console=ttyS0 panic=-1");
        // --kernel may come from --config: main checks it after merging (integration test).
        assert!(Cli::try_parse_from(["platvmm"]).unwrap().kernel.is_none());
        assert!(Cli::try_parse_from(["platvmm", "--kernel", "k", "--memory", "x"]).is_err());
        assert_eq!(Cli::try_parse_from(["platvmm"]).unwrap().cpus.count, 1);
    }

    #[test]
    fn cpus_carry_the_placement_into_the_config() {
        let c = Cli::try_parse_from([
            "platvmm",
            "--kernel",
            "/k",
            "--cpus",
            "2,affinity=0:2-3,1:3,vmm=0-1,policy=fifo:10",
        ])
        .unwrap();
        let cfg = VmConfig::from(c);
        assert_eq!(cfg.cpus, 2);
        let a: Vec<String> = cfg
            .placement
            .affinity
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(a, ["0:2-3", "1:3"]);
        assert_eq!(cfg.placement.vmm.unwrap().to_string(), "0-1");
        assert_eq!(cfg.placement.policy.unwrap().to_string(), "fifo:10");
        let e = Cli::try_parse_from(["platvmm", "--cpus", "2,affinity=0:x"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("affinity=0:x: 'x' is not a host CPU number (give VCPU:CPU or VCPU:FIRST-LAST, e.g. 0:2)"),
            "{e}"
        );
    }
}
