//! How each program ends: sysexits(3) codes, so that init systems and
//! scripts can tell a typo in a unit file from a daemon that could not
//! start, and the one map from what went wrong to its code.

use std::fmt::Display;
use std::process::ExitCode;

use crate::cli::CliError;

/// Clean stop, or `--help`/`--version`.
pub const OK: u8 = 0;
/// EX_USAGE: a bad switch, value or combination of switches.
pub const USAGE: u8 = 64;
/// EX_UNAVAILABLE: the service cannot be provided.
pub const UNAVAILABLE: u8 = 69;
/// EX_SOFTWARE: an internal error (a bug).
pub const SOFTWARE: u8 = 70;
/// EX_CONFIG: a file named on the command line cannot be used.
pub const CONFIG: u8 = 78;

/// An error that ends a program, and the code it ends it with.
pub trait Failure: Display {
    fn exit_code(&self) -> u8;
}

impl Failure for CliError {
    fn exit_code(&self) -> u8 {
        if self.is_informational() {
            OK
        } else {
            USAGE
        }
    }
}

impl Failure for super::classic::RunError {
    fn exit_code(&self) -> u8 {
        use super::classic::RunError::*;
        match self {
            Bind { .. } | Inherit(_) => UNAVAILABLE,
            Log(_) | Tls(_) | Load(_) => CONFIG,
            Service(_) | Stdio(_) | Server(_) => SOFTWARE,
            Serve(error) => error.exit_code(),
        }
    }
}

impl Failure for crate::api::ServeError {
    fn exit_code(&self) -> u8 {
        use crate::api::ServeError::*;
        match self {
            Bind { .. } | Systemd(_) | NoSystemdSockets => UNAVAILABLE,
            Register(_) => CONFIG,
            NoListener | Signals(_) | Run(_) | ForkingInThread | DnssdInThread | Panicked => {
                SOFTWARE
            }
        }
    }
}

impl Failure for super::registry::RunError {
    fn exit_code(&self) -> u8 {
        use super::registry::RunError::*;
        match self {
            Socket(_) => UNAVAILABLE,
            Log(_) => CONFIG,
            Signals(_) | Server(_) => SOFTWARE,
        }
    }
}

/// A command line that did not parse: its message (or the help asked
/// for), and the code.
pub fn bad_command_line(program: &str, error: &CliError) -> ExitCode {
    error.print(program);
    ExitCode::from(error.exit_code())
}

/// What `--check-config` says, as `nginx -t`: "configuration ok" and 0,
/// or the error start-up would have met and the code it would have exited
/// with.
pub fn check_outcome<E: Failure>(program: &str, checked: Result<(), E>) -> ExitCode {
    match checked {
        Ok(()) => {
            println!("configuration ok");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// How a program that ran ends; `quiet` where stderr may not be written
/// (in stdio mode under inetd it is the client's socket).
pub fn run_outcome<E: Failure>(program: &str, ran: Result<(), E>, quiet: bool) -> ExitCode {
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !quiet {
                eprintln!("{program}: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_sysexits() {
        assert_eq!(USAGE, 64);
        assert_eq!(UNAVAILABLE, 69);
        assert_eq!(SOFTWARE, 70);
        assert_eq!(CONFIG, 78);
        assert_eq!(CliError::VdbRemoved.exit_code(), USAGE);
    }
}
