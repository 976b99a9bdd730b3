//! `rpyc-serve`: parse the command line, then serve the named Python rpyc
//! service. Everything else lives in the library so that it can be tested.

fn main() -> std::process::ExitCode {
    rpycd::app::serve::main("rpyc-serve")
}
