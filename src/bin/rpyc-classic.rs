//! `rpyc-classic`: parse the command line, then serve. Everything else lives
//! in the library so that it can be tested.

use std::process::ExitCode;

use rpycd::cli::classic::{ClassicArgs, Mode};
use rpycd::server::classic::{check, check_outcome, run, RunError};

const NAME: &str = "rpyc-classic";

fn main() -> ExitCode {
    let args = match ClassicArgs::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return err.report(NAME),
    };
    if args.check_config {
        // as nginx -t: what start-up opens and loads, by the same code
        return check_outcome(NAME, check(&args), RunError::exit_code);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // In stdio mode fd 2 may be the client's socket (inetd passes it
            // as 0, 1 and 2): then not even this line may be written there.
            if args.mode != Mode::Stdio || !rpycd::server::stdio::stderr_is_unsafe() {
                eprintln!("{NAME}: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
