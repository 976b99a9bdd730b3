//! `rpyc-classic`: parse the command line, then serve. Everything else lives
//! in the library so that it can be tested.

use std::net::TcpListener;
use std::process::ExitCode;

use rpycd::cli::classic::{ClassicArgs, Mode};
use rpycd::cli::exit;
use rpycd::connection::Config;
use rpycd::daemon::log::Logger;
use rpycd::server::Server;
use rpycd::service::classic::ClassicService;

const NAME: &str = "rpyc-classic";

fn main() -> ExitCode {
    let args = match ClassicArgs::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return err.report(NAME),
    };
    if args.mode != Mode::Threaded {
        // In stdio mode fd 2 may be the client's socket (inetd passes it as
        // 0, 1 and 2), so not even this line may be written there.
        if args.mode != Mode::Stdio {
            eprintln!(
                "{NAME}: mode {:?} is not implemented yet (see issue 5)",
                args.mode
            );
        }
        return ExitCode::from(exit::UNAVAILABLE);
    }
    let host = args.effective_host().to_owned();
    let listener = match TcpListener::bind((host.as_str(), args.effective_port())) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "{NAME}: cannot listen on [{host}]:{}: {error}",
                args.effective_port()
            );
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    let port = listener
        .local_addr()
        .map_or(args.effective_port(), |addr| addr.port());
    let log = Logger::stderr(format!("SLAVE/{port}"), args.quiet);
    let service = match ClassicService::new() {
        Ok(service) => service,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let server = Server::new(listener, service, Config::default(), log.clone());
    log.info(format_args!("server started on [{host}]:{port}"));
    match server.serve_threaded() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log.error(format_args!("listener failed: {error}"));
            ExitCode::from(exit::SOFTWARE)
        }
    }
}
