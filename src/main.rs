//! platvmm command-line entry point.

use clap::Parser;

use platvmm::cli::Cli;
use platvmm::vmm;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    match vmm::run(cli.into()) {
        Ok(exit) => std::process::exit(exit.exit_code()),
        Err(e) => {
            eprintln!("platvmm: error: {e}");
            std::process::exit(1);
        }
    }
}
