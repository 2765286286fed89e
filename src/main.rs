//! platvmm command-line entry point.

use clap::Parser;

use platvmm::cli::{parse_compatible, Cli, Command};
use platvmm::{inspect, vmm};

fn main() {
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
    if let Some(Command::Inspect {
        path,
        compatible,
        handler,
    }) = cli.command.take()
    {
        let compatible = match compatible.as_deref().map(parse_compatible).transpose() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("platvmm: error: {e}");
                std::process::exit(2);
            }
        };
        if let Err(e) = inspect::run(&path, compatible, handler.as_deref()) {
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
