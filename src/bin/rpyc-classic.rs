//! `rpyc-classic`: parse the command line, then serve. Everything else lives
//! in the library so that it can be tested.

fn main() -> std::process::ExitCode {
    rpycd::app::classic::main("rpyc-classic")
}
