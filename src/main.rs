//! platvmm command-line entry point.

use clap::{CommandFactory, FromArgMatches};

mod cli;

use cli::{config_file, Cli, Command};
use platvmm::commands::bind::{BindOptions, Binder};
use platvmm::commands::{inspect, list as hostlist, preview};
use platvmm::config::parse_compatible;

/// Prints one error line and exits with `status` (1: failure, 2: bad command line).
fn fail(status: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("platvmm: error: {msg}");
    std::process::exit(status);
}

/// Parses `argv`; a usage error is one line and status 2, like every other platvmm error.
fn parse(argv: &[String]) -> (Cli, clap::ArgMatches) {
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("bad command line");
            eprintln!("platvmm: {first} (see platvmm --help)");
            std::process::exit(2);
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| fail(2, e));
    (cli, matches)
}

/// The command line, with `--config`'s options under it.
fn command_line() -> Cli {
    let argv: Vec<String> = std::env::args().collect();
    let (cli, matches) = parse(&argv);
    let Some(path) = cli.config.clone() else {
        return cli;
    };
    if cli.command.is_some() {
        fail(2, "--config is for running a VM, not for subcommands");
    }
    let entries = config_file::load(&path).unwrap_or_else(|e| fail(2, e));
    let merged = config_file::merged_args(&entries, &matches, &argv[1..]);
    parse(&merged).0
}

fn main() {
    platvmm::stats::mark_main();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let mut cli = command_line();
    if let Some(cmd) = cli.command.take() {
        subcommand(cmd);
        return;
    }
    if cli.kernel.is_none() {
        eprintln!("platvmm: error: the following required arguments were not provided: --kernel <PATH> (or kernel = in --config) (see platvmm --help)");
        std::process::exit(2);
    }
    match platvmm::vm::run(cli.into()) {
        Ok(exit) => std::process::exit(exit.exit_code()),
        Err(e) => fail(1, e),
    }
}

fn subcommand(cmd: Command) {
    match cmd {
        Command::Inspect {
            mut spec,
            compatible,
            handler,
            scmi,
        } => {
            let compatible = compatible
                .as_deref()
                .map(parse_compatible)
                .transpose()
                .unwrap_or_else(|e| fail(2, e));
            spec.compatible = compatible.or(spec.compatible);
            spec.handler = handler.or(spec.handler);
            inspect::run(spec, scmi).unwrap_or_else(|e| fail(1, e));
        }
        Command::PreviewDt {
            host_dtb,
            nodes,
            compatible,
            handler,
            scmi,
            output,
        } => {
            let c = compatible
                .as_deref()
                .map(parse_compatible)
                .transpose()
                .unwrap_or_else(|e| fail(2, e));
            let report = preview::run(&host_dtb, &nodes, c, handler.as_deref(), scmi, &output)
                .unwrap_or_else(|e| fail(1, e));
            report.iter().for_each(|l| println!("{l}"));
        }
        Command::List { json } => list(json),
        Command::Ctl { socket, action } => ctl(&socket, &action),
        Command::Bind {
            paths,
            noiommu,
            group,
            children,
        } => {
            let b = Binder::default();
            for p in b.with_children(&paths, children) {
                let lines = b
                    .bind(&p, BindOptions { noiommu, group })
                    .unwrap_or_else(|e| fail(1, e));
                lines.iter().for_each(|l| eprintln!("platvmm: {l}"));
            }
        }
        Command::Unbind { paths, children } => {
            let b = Binder::default();
            for p in b.with_children(&paths, children) {
                let line = b.unbind(&p).unwrap_or_else(|e| fail(1, e));
                eprintln!("platvmm: {line}");
            }
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .unwrap_or_else(|e| fail(1, format!("cannot write the man page: {e}")));
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "platvmm",
                &mut std::io::stdout(),
            );
        }
    }
}

/// `platvmm ctl`: the reply's JSON on stdout (raw: `STATUS JSON`), an error as one line.
fn ctl(socket: &std::path::Path, action: &str) {
    use platvmm::commands::ctl;
    if action == "raw" {
        let (status, body) = ctl::raw(socket, std::io::stdin()).unwrap_or_else(|e| fail(1, e));
        println!("{status} {body}");
        return;
    }
    let Some(a) = platvmm::api::Action::from_name(action) else {
        fail(2, format!("unknown action '{action}'"));
    };
    let body = ctl::run(socket, a).unwrap_or_else(|e| fail(1, e));
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
}

fn list(json: bool) {
    let devices = hostlist::list(&platvmm::passthrough::sysfs_root());
    if json {
        let s = serde_json::to_string_pretty(&devices)
            .unwrap_or_else(|e| fail(1, format!("cannot encode the list: {e}")));
        println!("{s}");
    } else {
        hostlist::render_text(&devices)
            .iter()
            .for_each(|l| println!("{l}"));
    }
}
