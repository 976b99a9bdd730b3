//! `rpyc-serve`: parse the command line, then serve the named Python rpyc
//! service. Everything else lives in the library so that it can be tested.

use std::process::ExitCode;

use rpycd::cli::classic::Mode;
use rpycd::cli::serve::ServeArgs;
use rpycd::server::classic::{check_outcome, RunError};
use rpycd::server::serve::{check, run};

const NAME: &str = "rpyc-serve";

fn main() -> ExitCode {
    let args = match ServeArgs::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return err.report(NAME),
    };
    if args.server.check_config {
        return check_outcome(NAME, check(&args), RunError::exit_code);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // In stdio mode fd 2 may be the client's socket (inetd passes it
            // as 0, 1 and 2): then not even this line may be written there.
            if args.server.mode != Mode::Stdio || !rpycd::server::stdio::stderr_is_unsafe() {
                eprintln!("{NAME}: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
