//! platvmm command-line entry point.

use clap::Parser;

use platvmm::cli::{parse_compatible, Cli, Command};
use platvmm::{inspect, preview};

fn main() {
    platvmm::startup::mark_main();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            // One line, like every other platvmm error; usage errors keep clap's status 2.
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("bad command line");
            eprintln!("platvmm: {first} (see platvmm --help)");
            std::process::exit(2);
        }
    };
    match cli.command.take() {
        Some(Command::Inspect {
            mut spec,
            compatible,
            handler,
        }) => {
            let compatible = match compatible.as_deref().map(parse_compatible).transpose() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("platvmm: error: {e}");
                    std::process::exit(2);
                }
            };
            spec.compatible = compatible.or(spec.compatible);
            spec.handler = handler.or(spec.handler);
            if let Err(e) = inspect::run(spec) {
                eprintln!("platvmm: error: {e}");
                std::process::exit(1);
            }
            return;
        }
        Some(Command::PreviewDt {
            host_dtb,
            nodes,
            compatible,
            handler,
            output,
        }) => {
            let result = compatible
                .as_deref()
                .map(parse_compatible)
                .transpose()
                .and_then(|c| {
                    preview::run(&host_dtb, &nodes, c, handler.as_deref(), &output)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(report) => report.iter().for_each(|l| println!("{l}")),
                Err(e) => {
                    eprintln!("platvmm: error: {e}");
                    std::process::exit(1);
                }
            }
            return;
        }
        None => {}
    }
    match platvmm::run(cli.into()) {
        Ok(exit) => std::process::exit(exit.exit_code()),
        Err(e) => {
            eprintln!("platvmm: error: {e}");
            std::process::exit(1);
        }
    }
}
