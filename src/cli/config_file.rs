//! `--config FILE` (TOML): every option of a VM run, keyed by its long name without the dashes
//! (`kernel = "/boot/Image"`, `vfio-platform = ["/sys/bus/amba/devices/9010000.pl031"]`,
//! `stats = true`). An option given on the command line replaces the file's (a repeatable one
//! wholly). Each value is checked by the command line's own parser, so the file accepts exactly
//! what the command line does; an error names the file, the line and the key.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory};

use super::Cli;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--config {path}: {source}")]
    Read {
        path: PathBuf,
        source: platvmm::host::input::InputError,
    },
    #[error("--config {path}: not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("--config {path}:{line}: {msg}")]
    Syntax {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("--config {path}:{line}: unknown key '{key}' (keys are the long options without their dashes: {known})")]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        known: String,
    },
    #[error("--config {path}:{line}: {key}: {msg}")]
    Value {
        path: PathBuf,
        line: usize,
        key: String,
        msg: String,
    },
}

/// One key of the file, as command-line words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The clap argument id (`vfio_platform`).
    pub id: String,
    /// `--vfio-platform VALUE --vfio-platform VALUE`, or `--stats`, or nothing (`stats = false`).
    pub words: Vec<String>,
}

/// The line (1-based) where `key` is assigned, or the line of byte `offset`.
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads and checks `path`: each key becomes command-line words.
pub fn load(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let bytes = platvmm::host::input::read_regular(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotText {
        path: path.to_path_buf(),
    })?;
    parse(path, &text)
}

/// Checks a config held in memory (`path` names it in messages).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map_or(1, |s| line_of_offset(text, s.start)),
            msg: e.message().to_string(),
        })?;
    let cmd = Cli::command();
    let mut out = Vec::new();
    for (key, value) in &table {
        let line = line_of_key(text, key);
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !a.is_hide_set() && key != "config")
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.to_path_buf(),
                line,
                key: key.clone(),
                known: known_keys(&cmd),
            })?;
        let value_err = |msg: String| ConfigError::Value {
            path: path.to_path_buf(),
            line,
            key: key.clone(),
            msg,
        };
        let words = words(key, value, arg.get_action()).map_err(value_err)?;
        check_words(&words).map_err(value_err)?;
        out.push(Entry {
            id: arg.get_id().to_string(),
            words,
        });
    }
    Ok(out)
}

fn known_keys(cmd: &clap::Command) -> String {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "config" | "help" | "version"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TOML value as the words `--key VALUE...` (flags: `--key` for true, nothing for false).
fn words(key: &str, v: &toml::Value, action: &ArgAction) -> Result<Vec<String>, String> {
    let flag = format!("--{key}");
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        other => Err(format!(
            "expected a string or a number, found {}",
            other.type_str()
        )),
    };
    match (action, v) {
        (ArgAction::SetTrue, toml::Value::Boolean(b)) => Ok(if *b { vec![flag] } else { vec![] }),
        (ArgAction::SetTrue, other) => Err(format!(
            "expected true or false, found {}",
            other.type_str()
        )),
        (ArgAction::Append, toml::Value::Array(items)) => items
            .iter()
            .map(|i| scalar(i).map(|s| [flag.clone(), s]))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat()),
        (ArgAction::Append, other) => Ok(vec![flag, scalar(other)?]),
        (_, toml::Value::Array(_)) => Err("takes one value, not a list".into()),
        (_, other) => Ok(vec![flag, scalar(other)?]),
    }
}

/// Runs the command line's parser on `words` alone: its first error line, if any.
fn check_words(words: &[String]) -> Result<(), String> {
    let argv = std::iter::once("platvmm".to_string()).chain(words.iter().cloned());
    match Cli::command().try_get_matches_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => {
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("invalid value").to_string();
            Err(first.trim_start_matches("error: ").to_string())
        }
    }
}

/// The command line to parse: the file's entries the command line does not set, then the
/// command line's own words (`args` without the program name).
pub fn merged_args(entries: &[Entry], matches: &ArgMatches, args: &[String]) -> Vec<String> {
    let from_cli = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let mut argv = vec!["platvmm".to_string()];
    for e in entries.iter().filter(|e| !from_cli(&e.id)) {
        argv.extend(e.words.iter().cloned());
    }
    argv.extend(args.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn p(text: &str) -> Result<Vec<Entry>, String> {
        parse(Path::new("vm.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_of_option_becomes_words() {
        let e = p(r#"
kernel = "/boot/Image"
cpus = 2
memory = "512M"
stats = true
identity-map-ram = false
vfio-platform = ["/sys/bus/amba/devices/9010000.pl031", "/sys/bus/platform/devices/9020000.fw-cfg"]
"#)
        .unwrap();
        let words: Vec<String> = e.iter().flat_map(|e| e.words.clone()).collect();
        assert_eq!(
            words.join(" "),
            "--cpus 2 --kernel /boot/Image --memory 512M --stats --vfio-platform /sys/bus/amba/devices/9010000.pl031 --vfio-platform /sys/bus/platform/devices/9020000.fw-cfg"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = p("kernel = \"/boot/Image\"\nkernal = \"x\"\n").unwrap_err();
        assert!(e.starts_with("--config vm.toml:2: unknown key 'kernal' (keys are the long options without their dashes: kernel, initramfs"), "{e}");
        let e = p("cpus = 2\nmemory = \"lots\"\n").unwrap_err();
        assert!(
            e.starts_with("--config vm.toml:2: memory: invalid value 'lots'"),
            "{e}"
        );
        let e = p("stats = \"yes\"\n").unwrap_err();
        assert_eq!(
            e,
            "--config vm.toml:1: stats: expected true or false, found string"
        );
        let e = p("kernel = [\"a\", \"b\"]\n").unwrap_err();
        assert_eq!(e, "--config vm.toml:1: kernel: takes one value, not a list");
        let e = p("cpus = 2\nkernel = \n").unwrap_err();
        assert!(e.starts_with("--config vm.toml:2: "), "{e}");
        let e = p("vfio-platform = [\"/x,colour=blue\"]\n").unwrap_err();
        assert!(e.contains("unknown option 'colour'"), "{e}");
        let e = p("test-denied-syscall = true\n").unwrap_err();
        assert!(e.contains("unknown key 'test-denied-syscall'"), "{e}");
    }

    #[test]
    fn the_example_files_are_valid() {
        for (name, text) in [
            (
                "rtc-vm.toml",
                include_str!("../../docs/examples/rtc-vm.toml"),
            ),
            (
                "net-vm.toml",
                include_str!("../../docs/examples/net-vm.toml"),
            ),
            (
                "complete-vm.toml",
                include_str!("../../docs/examples/complete-vm.toml"),
            ),
        ] {
            let e = parse(Path::new(name), text).unwrap_or_else(|e| panic!("{e}"));
            assert!(e.iter().any(|e| e.id == "vfio_platform"), "{name}");
        }
    }

    #[test]
    fn cpus_is_a_number_or_a_string_with_its_placement() {
        let cli = |text: &str| {
            let words: Vec<String> = p(text).unwrap().into_iter().flat_map(|e| e.words).collect();
            Cli::try_parse_from(std::iter::once("platvmm".to_string()).chain(words)).unwrap()
        };
        assert_eq!(cli("cpus = 2\n").cpus.count, 2);
        let c = cli("cpus = \"2,affinity=0:1,1:0-1,policy=rr:5\"\n").cpus;
        assert_eq!(c.count, 2);
        assert_eq!(c.placement.affinity.len(), 2);
        assert_eq!(c.placement.policy.unwrap().to_string(), "rr:5");
        let e = p("cpus = \"2,affinity=2:1\"\n").unwrap_err();
        assert!(
            e.starts_with("--config vm.toml:1: cpus: invalid value '2,affinity=2:1'")
                && e.contains("there is no vCPU 2 (--cpus 2 gives vCPUs 0-1)"),
            "{e}"
        );
    }

    #[test]
    fn lifecycle_keys_reach_their_options() {
        let words: Vec<String> =
            p("api-socket = \"/run/vm.sock\"\nshutdown-timeout = 3\non-reboot = \"exit\"\n")
                .unwrap()
                .into_iter()
                .flat_map(|e| e.words)
                .collect();
        let c = Cli::try_parse_from(std::iter::once("platvmm".to_string()).chain(words)).unwrap();
        assert_eq!(c.api_socket, Some(PathBuf::from("/run/vm.sock")));
        assert_eq!(c.shutdown_timeout, 3);
        assert_eq!(c.on_reboot, platvmm::config::OnReboot::Exit);
        let e = p("on-reboot = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("on-reboot"), "{e}");
    }

    #[test]
    fn the_command_line_wins() {
        let entries =
            p("kernel = \"/file/Image\"\ncpus = 4\nvfio-platform = [\"/a\", \"/b\"]\n").unwrap();
        let args: Vec<String> = ["--cpus", "1", "--vfio-platform", "/c"]
            .map(String::from)
            .to_vec();
        let argv0 = std::iter::once("platvmm".to_string()).chain(args.iter().cloned());
        let m = Cli::command().try_get_matches_from(argv0).unwrap();
        let argv = merged_args(&entries, &m, &args);
        let cli = Cli::try_parse_from(&argv).unwrap();
        assert_eq!(cli.kernel.as_deref(), Some(Path::new("/file/Image")));
        assert_eq!(cli.cpus.count, 1);
        let paths: Vec<_> = cli.vfio_platform.iter().map(|v| v.path.clone()).collect();
        assert_eq!(paths, [PathBuf::from("/c")]);
    }
}
