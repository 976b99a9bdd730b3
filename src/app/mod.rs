//! The three programs: what `rpyc-classic`, `rpyc-serve` and
//! `rpyc-registry` do with their parsed command lines. The only users of
//! [`crate::cli`]: the layers below take plain values, never switches.
//!
//! Every program starts the same way ([`start`]): parse the command line
//! and the environment, then either check the configuration
//! (`--check-config`) or run, and end with the code [`exit`] maps the
//! outcome to. What differs is a [`Program`]'s own.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::cli::{CliError, LogLevel};
use crate::daemon::log::Level;

pub mod classic;
pub mod exit;
pub mod registry;
pub mod serve;

/// What makes one of the three programs what it is.
pub trait Program {
    /// Its parsed command line.
    type Args;
    /// What can stop it from starting or serving on.
    type Error: exit::Failure;

    /// The command line (program name first) and the environment, parsed
    /// and validated.
    fn parse(args: Vec<OsString>) -> Result<Self::Args, CliError>;
    /// Whether the switches ask for `--check-config` rather than a run.
    fn checks_only(args: &Self::Args) -> bool;
    /// Opens and loads what start-up would, binds nothing.
    fn check(args: &Self::Args) -> Result<(), Self::Error>;
    /// Serves until stopped.
    fn run(args: &Self::Args) -> Result<(), Self::Error>;
    /// Whether stderr may be the client's socket (inetd's stdio mode), so
    /// that not even an error line may be written there.
    fn stderr_is_the_client(_args: &Self::Args) -> bool {
        false
    }
}

/// A program, start to end: the one start-up path of the three daemons.
pub fn start<P: Program>(program: &str) -> ExitCode {
    let args = match P::parse(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(error) => return exit::bad_command_line(program, &error),
    };
    if P::checks_only(&args) {
        // as nginx -t: what start-up opens and loads, by the same code
        return exit::check_outcome(program, P::check(&args));
    }
    let ran = P::run(&args);
    exit::run_outcome(program, ran, P::stderr_is_the_client(&args))
}

/// The least severe level a program logs, from `-q` and `--log-level`
/// (which the switches' check found consistent).
pub(crate) fn log_level(quiet: bool, level: Option<LogLevel>) -> Level {
    match crate::cli::log_level(quiet, level) {
        Ok(LogLevel::Debug) => Level::Debug,
        Ok(LogLevel::Info) => Level::Info,
        Ok(LogLevel::Warning) => Level::Warning,
        Ok(LogLevel::Error) | Err(_) => Level::Error,
    }
}
