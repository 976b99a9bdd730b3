//! `rpyc-serve`: parse the command line, then serve the named Python rpyc
//! service. Everything else lives in the library so that it can be tested.

use std::process::ExitCode;

use rpycd::cli::classic::Mode;
use rpycd::cli::serve::ServeArgs;
use rpycd::server::serve::run;

const NAME: &str = "rpyc-serve";

fn main() -> ExitCode {
    let args = match ServeArgs::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return err.report(NAME),
    };
    if args.server.check_config {
        // as nginx -t: the service is imported too, so a typo in its name
        // or a bad protocol config key is found before a restart
        return match rpycd::service::python::PythonService::load(&rpycd::server::serve::spec_of(
            &args,
        )) {
            Ok(_) => {
                println!("configuration ok");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{NAME}: {error}");
                ExitCode::from(rpycd::cli::exit::CONFIG)
            }
        };
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
