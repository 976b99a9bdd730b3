//! Command-line interfaces of `rpyc-classic`, `rpyc-registry` and `rpyc-serve`.
//!
//! Both binaries take the seed's switches (see `seed/servers.rst`), with the
//! defaults the issues give where they differ, and every switch can also come
//! from an environment variable so that `/etc/default/rpyc-classic` and
//! `/etc/default/rpyc-registry` (systemd `EnvironmentFile=`) can set it.
//!
//! Parsing never exits the process: it returns a [`CliError`], whose exit
//! code `crate::app::exit` knows, so the error paths are testable.

pub mod classic;
pub mod protocol;
pub mod registry;
pub mod serve;

use crate::registry::Transport;

/// `-m` of `rpyc-registry`, `--registry-type` of `rpyc-classic`: rpyc's
/// names, any case (the switches say `ignore_case`).
impl clap::ValueEnum for Transport {
    fn value_variants<'a>() -> &'a [Self] {
        &[Transport::Udp, Transport::Tcp]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// `--log-level`: the least severe lines written (Python logging's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Everything, with the traceback of every exception a request raised
    /// (as rpyc's own servers log them)
    Debug,
    /// Connections, sessions and registrations: the default
    Info,
    /// Problems the server overcame
    Warning,
    /// Errors only, as -q
    Error,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// The least severe level logged, from `-q` and `--log-level`, which
/// must not contradict each other (-q is `--log-level error`).
pub fn log_level(quiet: bool, level: Option<LogLevel>) -> Result<LogLevel, CliError> {
    match (quiet, level) {
        (true, Some(level)) if level != LogLevel::Error => {
            Err(CliError::QuietAndLogLevel { level })
        }
        (true, _) => Ok(LogLevel::Error),
        (false, level) => Ok(level.unwrap_or(LogLevel::Info)),
    }
}

use std::ffi::OsString;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

pub use classic::ClassicArgs;
pub use registry::RegistryArgs;

/// Why the command line was not turned into arguments.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Whatever clap reports: a parse error, or `--help`/`--version`, which
    /// clap models as errors because they end the program early.
    #[error("{}", one_line(.0))]
    Clap(#[from] clap::Error),
    /// `--vdb` is in the seed but rpyc dropped the VDB authenticator; refusing
    /// it loudly beats silently serving without the authentication asked for.
    #[error("--vdb is not supported: rpyc's VDB authenticator no longer exists (rpyc 6 has no --vdb); use --ssl-keyfile and --ssl-certfile instead")]
    VdbRemoved,
    /// TLS needs both halves; with one the server would silently serve plain text.
    #[error("--ssl-keyfile and --ssl-certfile must be given together (only {given} was given)")]
    SslIncomplete { given: &'static str },
    /// Client-certificate authentication is meaningless without TLS itself.
    #[error("--ssl-cafile requires --ssl-keyfile and --ssl-certfile")]
    SslCaWithoutKey,
    /// PROXY headers come over TCP connections a balancer makes; stdio
    /// has none of its own to vet.
    #[error("--proxy-protocol-from needs TCP listeners: --mode stdio has none")]
    ProxyWithoutTcp,
    /// DNS-SD publishes listening ports; an inetd-style server has none.
    #[error("--dnssd publishes TCP listeners: --mode stdio has none")]
    DnssdWithoutTcp,
    /// A protocol configuration value rpyc-serve must read itself.
    #[error("--protocol-config {key}: {reason}")]
    BadProtocolConfig { key: String, reason: String },
    /// A bad value from an environment variable, named as such.
    #[error("{0}")]
    Environment(String),
    /// `-q` keeps errors only; a --log-level asking for more contradicts it.
    #[error(
        "-q/--quiet (errors only) and --log-level {level} contradict each other: give one of them"
    )]
    QuietAndLogLevel { level: LogLevel },
    /// A TCP registry cannot be found by broadcast, so there is no default host.
    #[error("--registry-type TCP with --register requires --registry-host")]
    TcpRegistryWithoutHost,
}

impl CliError {
    /// `--help` or `--version`: not a failure, the program's answer.
    pub fn is_informational(&self) -> bool {
        matches!(self, CliError::Clap(e) if is_informational(e))
    }

    /// Prints the error the way the binaries do: help and version text to
    /// stdout, anything else as one line on stderr prefixed with the
    /// binary's name (one line, because under systemd each line becomes a
    /// separate journal entry).
    pub fn print(&self, bin: &str) {
        match self {
            CliError::Clap(e) if is_informational(e) => {
                // A closed stdout (e.g. `--help | head -1`) is not worth a failure.
                let _ = e.print();
            }
            other => eprintln!("{bin}: {other}"),
        }
    }
}

fn is_informational(e: &clap::Error) -> bool {
    matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
}

/// Squeeze clap's multi-line error (message, possible values, tip, usage)
/// into one line, dropping the usage block that `--help` already gives.
fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.starts_with("tip:") {
            parts.push(format!("({line})"));
        } else if !line.is_empty() {
            parts.push(line.to_owned());
        }
    }
    let joined = parts.join(" ");
    let message = joined.strip_prefix("error: ").unwrap_or(&joined);
    format!("{message} (see --help)")
}

/// Parse a command line (including the program name) into `T`, reading the
/// environment variables the switches name.
///
/// An environment variable set to the empty string counts as unset: an
/// `EnvironmentFile=` line such as `RPYC_CLASSIC_HOST=` is the usual way to
/// leave a setting at its default.
pub(crate) fn parse_with_env<T, I, A>(args: I) -> Result<T, CliError>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let matches = matches_with_env(T::command(), args)?;
    Ok(T::from_arg_matches(&matches)?)
}

/// [`parse_with_env`] for a command built by hand.
pub(crate) fn matches_with_env<I, A>(
    cmd: clap::Command,
    args: I,
) -> Result<clap::ArgMatches, CliError>
where
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let cmd = cmd.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.is_empty());
        if empty {
            arg.env(None)
        } else {
            arg
        }
    });
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    cmd.clone().try_get_matches_from(&args).map_err(|error| {
        match from_environment(&cmd, &args, &error) {
            Some(message) => CliError::Environment(message),
            None => error.into(),
        }
    })
}

/// For a bad value that came from an environment variable rather than the
/// command line: clap's message with the variable named instead of the
/// switch (an administrator's bad value sits in /etc/default, under the
/// variable's name; they never typed the switch).
fn from_environment(cmd: &clap::Command, args: &[OsString], error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(named)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let arg = cmd.get_arguments().find(|arg| {
        arg.get_long().is_some_and(|long| {
            named == &format!("--{long}") || named.starts_with(&format!("--{long} "))
        })
    })?;
    let variable = arg.get_env()?.to_str()?;
    std::env::var_os(variable).filter(|value| !value.is_empty())?;
    let long = arg.get_long()?;
    let typed = args.iter().skip(1).any(|given| {
        let given = given.to_string_lossy();
        given == format!("--{long}")
            || given.starts_with(&format!("--{long}="))
            || arg.get_short().is_some_and(|short| {
                given.starts_with('-') && !given.starts_with("--") && given.contains(short)
            })
    });
    if typed {
        return None;
    }
    Some(one_line(error).replacen(
        &format!("'{named}'"),
        &format!("{variable} (from the environment; the switch --{long})"),
        1,
    ))
}

/// Value parser for durations given in seconds, fractions allowed ("0.5").
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}' is not a non-negative number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' seconds is too long"))
}

/// Like [`parse_seconds`], but zero is refused: for a timeout that is off
/// unless given, zero would be ambiguous (off, or close at once?).
pub(crate) fn parse_positive_seconds(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    if d.is_zero() {
        return Err("must be more than 0 seconds (leave the switch out to disable)".into());
    }
    Ok(d)
}

/// Value parser for byte sizes: a plain number, or one with a binary suffix
/// (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`, case-insensitive), at least 1 byte.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let multiplier: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}' is not a size (examples: 1048576, 64M, 1G)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 1048576, 64M, 1G)"))?;
    let bytes = n
        .checked_mul(multiplier)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes == 0 {
        return Err("must be at least 1 byte".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("1e300").is_err());
        assert!(parse_seconds("ten").is_err());
        assert!(parse_positive_seconds("0").is_err());
        assert_eq!(parse_positive_seconds("2"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1T").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
        assert!(parse_bytes("18446744073709551615G").is_err());
    }
}
