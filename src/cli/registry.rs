//! `rpyc-registry`: the seed's registry-server switches plus rpyc 6's and
//! the daemon ones.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::Parser;

use super::{log_level, parse_with_env, CliError, LogLevel};
use crate::registry::Transport;

/// rpyc's `REGISTRY_PORT`.
pub const DEFAULT_PORT: u16 = 18811;
/// rpyc's `DEFAULT_PRUNING_TIMEOUT`: four minutes.
pub const DEFAULT_PRUNING_TIMEOUT_SECS: u64 = 240;

/// Keep track of which hosts serve which RPyC services, for rpyc.discover().
#[derive(Clone, Debug, Parser)]
#[command(
    name = "rpyc-registry",
    version,
    disable_version_flag = true,
    after_help = "Every switch can also be set with the environment variable shown beside it \
                  (flags take true/false/1/0); an empty variable counts as unset. \
                  The command line wins over the environment."
)]
pub struct RegistryArgs {
    /// Print the version and exit (-v as rpyc's own servers take it, or -V)
    #[arg(short = 'v', short_alias = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,

    /// The registry's transport
    #[arg(short, long, value_enum, ignore_case = true, default_value_t = Transport::Udp,
          env = "RPYC_REGISTRY_MODE")]
    pub mode: Transport,

    /// The UDP/TCP port to listen on
    #[arg(short, long, default_value_t = DEFAULT_PORT, env = "RPYC_REGISTRY_PORT")]
    pub port: u16,

    /// The address to bind [default: all addresses, 0.0.0.0, or :: with --ipv6]
    #[arg(long, value_name = "HOST", env = "RPYC_REGISTRY_HOST")]
    pub host: Option<String>,

    /// Use IPv6 instead of IPv4
    #[arg(short = '6', long, value_parser = BoolishValueParser::new(), env = "RPYC_REGISTRY_IPV6")]
    pub ipv6: bool,

    /// Append log lines to this file instead of stderr [default: stderr]
    #[arg(
        short = 'f',
        long = "file",
        visible_alias = "logfile",
        value_name = "FILE",
        env = "RPYC_REGISTRY_LOGFILE"
    )]
    pub logfile: Option<PathBuf>,

    /// Quiet mode: log errors only
    // rpyc 6 made -q take a value (`-q 1`); accepting an optional one keeps
    // its command lines working while `-q` alone stays the seed's flag.
    #[arg(short, long, num_args = 0..=1, default_value = "false",
          default_missing_value = "true", value_name = "BOOL", hide_possible_values = true,
          value_parser = BoolishValueParser::new(),
          env = "RPYC_REGISTRY_QUIET")]
    pub quiet: bool,

    /// Pruning timeout: forget a service this many seconds after its last registration
    #[arg(short, long, value_name = "SECONDS", default_value_t = DEFAULT_PRUNING_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..), env = "RPYC_REGISTRY_TIMEOUT")]
    pub timeout: u64,

    /// Answer LIST queries (rpyc.list_services); `-l`, `-l true` and `-l false` all work
    #[arg(short, long, num_args = 0..=1, default_value = "false", default_missing_value = "true",
          value_name = "BOOL", hide_possible_values = true,
          value_parser = BoolishValueParser::new(), env = "RPYC_REGISTRY_LISTING")]
    pub listing: bool,

    /// Answer QUERY (and LIST, with --listing) from the `_rpyc._tcp` services Avahi finds through DNS-SD as well as from registrations: a server that only publishes (rpyc-classic --dnssd) is found by an unchanged rpyc.discover(). Entries go when Avahi reports the service gone
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_REGISTRY_DNSSD")]
    pub dnssd: bool,

    /// With --dnssd, browse this DNS-SD domain (repeatable or comma-separated) instead of Avahi's default (local, the machine's links); a wide-area domain is browsed by unicast DNS, as avahi-daemon.conf allows
    #[arg(
        long,
        value_name = "DOMAIN",
        value_delimiter = ',',
        requires = "dnssd",
        env = "RPYC_REGISTRY_DNSSD_DOMAIN"
    )]
    pub dnssd_domain: Vec<String>,

    /// Log to syslog (facility daemon) instead of stderr; with --logfile, to both
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_REGISTRY_SYSLOG")]
    pub syslog: bool,

    /// The least severe lines to log [default: info; error with -q]
    #[arg(
        long,
        value_name = "LEVEL",
        value_enum,
        ignore_case = true,
        env = "RPYC_REGISTRY_LOG_LEVEL"
    )]
    pub log_level: Option<LogLevel>,

    /// Check the switches and open what start-up would (the log destination), as `nginx -t` or `sshd -t` do; print "configuration ok" and exit
    #[arg(long)]
    pub check_config: bool,
}

impl RegistryArgs {
    /// Parse a command line (program name first) and the `RPYC_REGISTRY_*`
    /// environment.
    pub fn parse_from<I, A>(args: I) -> Result<Self, CliError>
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString> + Clone,
    {
        let args: RegistryArgs = parse_with_env(args)?;
        log_level(args.quiet, args.log_level)?;
        Ok(args)
    }

    /// The address to bind: `--host`, else every address of the family,
    /// because a registry must hear broadcasts from the whole network.
    /// An empty `--host` means the default.
    pub fn effective_host(&self) -> &str {
        match self.host.as_deref().filter(|host| !host.is_empty()) {
            Some(host) => host,
            None if self.ipv6 => "::",
            None => "0.0.0.0",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::exit::{self, Failure};

    fn parse(args: &[&str]) -> Result<RegistryArgs, CliError> {
        RegistryArgs::parse_from(std::iter::once("rpyc-registry").chain(args.iter().copied()))
    }

    fn usage_error(args: &[&str]) {
        match parse(args) {
            Ok(parsed) => panic!("{args:?} parsed as {parsed:?}"),
            Err(err) => {
                assert_eq!(err.exit_code(), exit::USAGE, "{args:?}: {err}");
                assert!(!err.to_string().contains('\n'), "{err}");
            }
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        RegistryArgs::command().debug_assert();
    }

    // Holds only when no RPYC_REGISTRY_* variable is set; tests/cli.rs
    // checks the environment form on child processes.
    #[test]
    fn defaults() {
        let a = parse(&[]).expect("no switches");
        assert_eq!(a.mode, Transport::Udp);
        assert_eq!(a.port, 18811);
        assert_eq!(a.effective_host(), "0.0.0.0");
        assert!(!a.ipv6 && !a.quiet && !a.listing && !a.syslog);
        assert_eq!(a.logfile, None);
        assert_eq!(a.timeout, 240);
    }

    #[test]
    fn switches() {
        let a = parse(&["-m", "tcp", "-p", "0", "-6", "-t", "5", "-f", "reg.log"]).expect("short");
        assert_eq!(a.mode, Transport::Tcp);
        assert_eq!(a.port, 0);
        assert!(a.ipv6);
        assert_eq!(a.effective_host(), "::");
        assert_eq!(a.timeout, 5);
        assert_eq!(a.logfile, Some(PathBuf::from("reg.log")));
        let a = parse(&[
            "--mode=UDP",
            "--logfile",
            "x.log",
            "--host",
            "127.0.0.1",
            "--syslog",
        ])
        .expect("long");
        assert_eq!(a.mode, Transport::Udp);
        assert_eq!(a.logfile, Some(PathBuf::from("x.log")));
        assert_eq!(a.effective_host(), "127.0.0.1");
        assert!(a.syslog);
        assert_eq!(
            parse(&["--host="]).expect("empty").effective_host(),
            "0.0.0.0"
        );
        assert_eq!(
            parse(&["--file=y.log"]).expect("file").logfile,
            Some("y.log".into())
        );
    }

    #[test]
    fn listing_takes_flag_and_value_forms() {
        for (args, want) in [
            (&["-l"][..], true),
            (&["--listing"], true),
            (&["-l", "true"], true),
            (&["-l", "false"], false),
            (&["-l", "1"], true),
            (&["-l", "0"], false),
            (&["--listing=false"], false),
            (&["-l", "-p", "1"], true),
            (&["-p", "1", "-l"], true),
        ] {
            assert_eq!(parse(args).expect("listing").listing, want, "{args:?}");
        }
        usage_error(&["-l", "maybe"]);
    }

    #[test]
    fn quiet_takes_flag_and_rpyc6_value_forms() {
        for (args, want) in [
            (&["-q"][..], true),
            (&["--quiet"], true),
            (&["-q", "1"], true),
            (&["-q", "false"], false),
            (&["-q", "-l"], true),
        ] {
            assert_eq!(parse(args).expect("quiet").quiet, want, "{args:?}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["-m", "HTTP"][..],
            &["-p", "70000"],
            &["-t", "0"],
            &["-t", "forever"],
            &["--vdb"],
            &["stray"],
        ] {
            usage_error(args);
        }
    }

    #[test]
    fn help_and_version_exit_zero() {
        for flag in ["-h", "--help", "--version"] {
            assert_eq!(parse(&[flag]).expect_err(flag).exit_code(), exit::OK);
        }
    }
}
