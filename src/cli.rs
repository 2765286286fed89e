//! Command line.

use std::path::PathBuf;

use clap::Parser;

use crate::arch::aarch64::layout::{GIB, KIB, MIB};

const AFTER_HELP: &str = "\
Exit status:
  0  the guest powered off (PSCI SYSTEM_OFF)
  1  platvmm failed (the message says why)
  2  bad command line
  3  the guest asked for a reset (PSCI SYSTEM_RESET); platvmm does not reboot it
  4  the guest reported a crash (PSCI SYSTEM_EVENT crash) or a vCPU stopped unexpectedly

The console is the guest's ttyS0 (a 16550 UART at 0x9000000). Host stdin is forwarded to it;
when stdin is a terminal it is put in raw mode, so Ctrl-C goes to the guest: power the guest
off from inside (poweroff -f) to leave.";

/// Boot an aarch64 Linux guest under KVM.
#[derive(Debug, Parser)]
#[command(name = "platvmm", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Guest kernel: an uncompressed arm64 `Image`.
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,

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
    fn cli_parses() {
        let c = Cli::try_parse_from(["platvmm", "--kernel", "/k", "--cpus", "2", "--memory", "1G"])
            .unwrap();
        assert_eq!(c.cpus, 2);
        assert_eq!(c.memory, GIB);
        assert_eq!(c.cmdline, "console=ttyS0 panic=-1");
        assert!(
            Cli::try_parse_from(["platvmm"]).is_err(),
            "--kernel is required"
        );
        assert!(Cli::try_parse_from(["platvmm", "--kernel", "k", "--memory", "x"]).is_err());
    }
}
