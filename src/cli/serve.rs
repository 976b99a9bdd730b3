//! `rpyc-serve`: every `rpyc-classic` switch (with `RPYC_SERVE_*`
//! environment variables), plus what names the service and its protocol
//! configuration.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Command, CommandFactory, FromArgMatches};

use super::classic::ClassicArgs;
use super::{parse_positive_seconds, CliError};
use crate::connection::DEFAULT_SYNC_REQUEST_TIMEOUT;

/// A custom service's default port: the one rpyc's documentation serves
/// its examples on (`ThreadedServer(MyService, port=18861)`), so that it
/// does not clash with a classic server on 18812.
pub const DEFAULT_PORT: u16 = 18861;

/// What to serve, and its rpyc protocol configuration.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Service")]
pub struct ServiceArgs {
    /// The rpyc Service class to serve, as package.module:ClassName
    #[arg(value_name = "MODULE:CLASS", env = "RPYC_SERVE_SERVICE")]
    pub service: String,

    /// A directory to import the service from, before sys.path (repeatable; ':'-separated in the environment)
    #[arg(
        long = "path",
        value_name = "DIR",
        env = "RPYC_SERVE_PATH",
        value_delimiter = ':'
    )]
    pub paths: Vec<PathBuf>,

    /// A Python callable that vets each connection before the protocol starts, as rpyc's servers' authenticator: given the socket, it returns (socket, credentials) or raises AuthenticationError
    #[arg(long, value_name = "MODULE:CALLABLE", env = "RPYC_SERVE_AUTHENTICATOR")]
    pub authenticator: Option<String>,

    /// Let clients reach attributes not starting with '_' (rpyc's allow_public_attrs)
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_SERVE_ALLOW_PUBLIC_ATTRS")]
    pub allow_public_attrs: bool,

    /// Let clients reach every attribute (rpyc's allow_all_attrs)
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_SERVE_ALLOW_ALL_ATTRS")]
    pub allow_all_attrs: bool,

    /// Let clients set attributes that the rules above allow (rpyc's allow_setattr)
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_SERVE_ALLOW_SETATTR")]
    pub allow_setattr: bool,

    /// Let clients delete attributes that the rules above allow (rpyc's allow_delattr)
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_SERVE_ALLOW_DELATTR")]
    pub allow_delattr: bool,

    /// Let clients pickle the service's objects (rpyc's allow_pickle)
    #[arg(long, value_parser = BoolishValueParser::new(), env = "RPYC_SERVE_ALLOW_PICKLE")]
    pub allow_pickle: bool,

    /// How long the service waits for the client to answer a callback (rpyc's sync_request_timeout) [default: 30]
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive_seconds,
          env = "RPYC_SERVE_SYNC_REQUEST_TIMEOUT")]
    pub sync_request_timeout: Option<Duration>,
}

/// `rpyc-serve`'s whole command line.
#[derive(Clone, Debug)]
pub struct ServeArgs {
    /// The serving switches, as `rpyc-classic` has them.
    pub server: ClassicArgs,
    pub service: ServiceArgs,
}

impl ServeArgs {
    /// The command: `rpyc-classic`'s switches under `RPYC_SERVE_*`
    /// variables, and the service's.
    pub fn command() -> Command {
        let classic = ClassicArgs::command()
            .name("rpyc-serve")
            .bin_name("rpyc-serve")
            .mut_args(|arg| match arg.get_env().and_then(|env| env.to_str()) {
                Some(env) if env.starts_with("RPYC_CLASSIC_") => {
                    let renamed = env.replacen("RPYC_CLASSIC_", "RPYC_SERVE_", 1);
                    arg.env(renamed)
                }
                _ => arg,
            })
            .mut_arg("port", |arg| {
                arg.help("The TCP port to listen on; 0 picks a free one [default: 18861]")
            })
            .mut_arg("host", |arg| {
                arg.help("The address to bind to [default: 127.0.0.1, or ::1 with --ipv6]")
            });
        // after augment_args, which would make ServiceArgs' doc the about
        ServiceArgs::augment_args(classic)
            .about("Serve a Python rpyc Service class to stock rpyc clients, as a system daemon")
    }

    /// Parse a command line (program name first) and the `RPYC_SERVE_*`
    /// environment.
    pub fn parse_from<I, A>(args: I) -> Result<Self, CliError>
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString> + Clone,
    {
        let matches = super::matches_with_env(Self::command(), args)?;
        let mut server = ClassicArgs::from_arg_matches(&matches)?;
        if server.port.is_none() {
            server.port = Some(DEFAULT_PORT);
        }
        server.validate()?;
        super::protocol::server_keys(&server.protocol_config, true)?;
        let service = ServiceArgs::from_arg_matches(&matches)?;
        let args = ServeArgs { server, service };
        args.sync_request_timeout()?;
        Ok(args)
    }

    /// How long a callback may take: `--sync-request-timeout`, else a
    /// `sync_request_timeout` given with `--protocol-config` (`None`:
    /// forever, as rpyc allows), else rpyc's 30 s.
    pub fn sync_request_timeout(&self) -> Result<Option<Duration>, CliError> {
        if let Some(timeout) = self.service.sync_request_timeout {
            return Ok(Some(timeout));
        }
        let keys = super::protocol::server_keys(&self.server.protocol_config, true)?;
        Ok(keys
            .sync_request_timeout
            .unwrap_or(Some(DEFAULT_SYNC_REQUEST_TIMEOUT)))
    }

    /// The protocol configuration the switches ask for, as
    /// `(key, Python literal)` pairs; the named switches win over
    /// `--protocol-config`.
    pub fn protocol_config(&self) -> Vec<(String, String)> {
        let service = &self.service;
        let mut config = self.server.protocol_config.clone();
        let flag = |on: bool| if on { "True" } else { "False" }.to_owned();
        for (key, on) in [
            ("allow_public_attrs", service.allow_public_attrs),
            ("allow_all_attrs", service.allow_all_attrs),
            ("allow_setattr", service.allow_setattr),
            ("allow_delattr", service.allow_delattr),
            ("allow_pickle", service.allow_pickle),
        ] {
            if on {
                config.push((key.to_owned(), flag(on)));
            }
        }
        // what conn._config shows the service: the timeout in effect
        config.retain(|(key, _)| key != "sync_request_timeout");
        let timeout = match self.sync_request_timeout() {
            Ok(Some(timeout)) => format!("{}", timeout.as_secs_f64()),
            _ => "None".to_owned(),
        };
        config.push(("sync_request_timeout".to_owned(), timeout));
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::exit::{self, Failure};

    fn parse(args: &[&str]) -> Result<ServeArgs, CliError> {
        ServeArgs::parse_from(std::iter::once("rpyc-serve").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        ServeArgs::command().debug_assert();
        let about = ServeArgs::command().get_about().map(ToString::to_string);
        assert_eq!(
            about.as_deref(),
            Some("Serve a Python rpyc Service class to stock rpyc clients, as a system daemon")
        );
    }

    #[test]
    fn service_and_defaults() {
        let args = parse(&["calc:CalculatorService"]).expect("service only");
        assert_eq!(args.service.service, "calc:CalculatorService");
        assert_eq!(args.server.effective_port(), DEFAULT_PORT);
        assert_eq!(args.server.effective_host(), "127.0.0.1");
        assert!(!args.service.allow_public_attrs && !args.service.allow_pickle);
        assert_eq!(
            args.protocol_config(),
            vec![("sync_request_timeout".to_owned(), "30".to_owned())]
        );
    }

    #[test]
    fn server_switches_and_config() {
        let args = parse(&[
            "-m",
            "forking",
            "-p",
            "0",
            "--path",
            "/opt/app",
            "--path",
            "/opt/lib",
            "--allow-public-attrs",
            "--allow-pickle",
            "--sync-request-timeout",
            "2.5",
            "--protocol-config",
            "exposed_prefix='api_'",
            "app.services:Calc",
        ])
        .expect("all");
        assert_eq!(args.server.mode, crate::cli::classic::Mode::Forking);
        assert_eq!(args.server.effective_port(), 0);
        assert_eq!(
            args.service.paths,
            vec![PathBuf::from("/opt/app"), PathBuf::from("/opt/lib")]
        );
        let config = args.protocol_config();
        for item in [
            ("exposed_prefix", "'api_'"),
            ("allow_public_attrs", "True"),
            ("allow_pickle", "True"),
            ("sync_request_timeout", "2.5"),
        ] {
            assert!(
                config.contains(&(item.0.to_owned(), item.1.to_owned())),
                "{item:?} in {config:?}"
            );
        }
    }

    #[test]
    fn sync_request_timeout_from_either_place() {
        let seconds = |args: &[&str]| {
            parse(args)
                .expect("parses")
                .sync_request_timeout()
                .expect("valid")
        };
        assert_eq!(seconds(&["c:C"]), Some(Duration::from_secs(30)));
        assert_eq!(
            seconds(&["c:C", "--protocol-config", "sync_request_timeout=1.5"]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            seconds(&["c:C", "--protocol-config", "sync_request_timeout=None"]),
            None
        );
        // the switch wins over the generic form
        assert_eq!(
            seconds(&[
                "c:C",
                "--sync-request-timeout",
                "2",
                "--protocol-config",
                "sync_request_timeout=9"
            ]),
            Some(Duration::from_secs(2))
        );
        let args = parse(&["c:C", "--sync-request-timeout", "2"]).expect("parses");
        assert!(args
            .protocol_config()
            .contains(&("sync_request_timeout".to_owned(), "2".to_owned())));
    }

    #[test]
    fn errors_are_usage_errors() {
        for args in [
            &[][..],
            &["calc:Calc", "--protocol-config", "novalue"],
            &["calc:Calc", "--protocol-config", "bad key=1"],
            &["calc:Calc", "--sync-request-timeout", "0"],
            &[
                "calc:Calc",
                "--protocol-config",
                "sync_request_timeout=soon",
            ],
            &["calc:Calc", "--ssl-keyfile", "k.pem"],
        ] {
            let error = parse(args).expect_err("must fail");
            assert_eq!(error.exit_code(), exit::USAGE, "{args:?}: {error}");
        }
    }
}
