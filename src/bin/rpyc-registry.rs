//! `rpyc-registry`: parse the command line, then serve. Everything else lives
//! in the library so that it can be tested.

use std::process::ExitCode;

use rpycd::cli::exit;
use rpycd::cli::registry::RegistryArgs;

const NAME: &str = "rpyc-registry";

fn main() -> ExitCode {
    if let Err(err) = RegistryArgs::parse_from(std::env::args_os()) {
        return err.report(NAME);
    }
    eprintln!("{NAME}: serving is not implemented yet (see issue 6)");
    ExitCode::from(exit::UNAVAILABLE)
}
