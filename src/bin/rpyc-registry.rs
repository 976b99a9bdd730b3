//! `rpyc-registry`: parse the command line, then serve. Everything else lives
//! in the library so that it can be tested.

use std::process::ExitCode;

use rpycd::cli::registry::RegistryArgs;
use rpycd::registry::server::{check, run, RunError};
use rpycd::server::classic::check_outcome;

const NAME: &str = "rpyc-registry";

fn main() -> ExitCode {
    let args = match RegistryArgs::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return err.report(NAME),
    };
    if args.check_config {
        return check_outcome(NAME, check(&args), RunError::exit_code);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
