//! platvmm command-line entry point.

use clap::Parser;

use platvmm::cli::{parse_compatible, Cli, Command};
use platvmm::{inspect, vmm};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let mut cli = Cli::parse();
    if let Some(Command::Inspect { path, compatible }) = cli.command.take() {
        let compatible = match compatible.as_deref().map(parse_compatible).transpose() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("platvmm: error: {e}");
                std::process::exit(2);
            }
        };
        if let Err(e) = inspect::run(&path, compatible) {
            eprintln!("platvmm: error: {e}");
            std::process::exit(1);
        }
        return;
    }
    match vmm::run(cli.into()) {
        Ok(exit) => std::process::exit(exit.exit_code()),
        Err(e) => {
            eprintln!("platvmm: error: {e}");
            std::process::exit(1);
        }
    }
}
