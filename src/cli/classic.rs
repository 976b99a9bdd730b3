//! `rpyc-classic`: the seed's classic-server switches plus the daemon ones.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};

use super::{
    log_level, parse_bytes, parse_positive_seconds, parse_seconds, parse_with_env, CliError,
    LogLevel,
};
use crate::registry::Transport;
use crate::server::proxy::Cidr;

/// The classic server's default port (rpyc's `DEFAULT_SERVER_PORT`).
pub const DEFAULT_PORT: u16 = 18812;
/// The default port with TLS (rpyc's `DEFAULT_SERVER_SSL_PORT`).
pub const DEFAULT_TLS_PORT: u16 = 18821;
/// The registry's default port (rpyc's `REGISTRY_PORT`).
pub const DEFAULT_REGISTRY_PORT: u16 = 18811;
/// Where a UDP registrar sends when no `--registry-host` is given.
pub const DEFAULT_UDP_REGISTRY_HOST: &str = "255.255.255.255";
/// The deepest --max-depth: every path a message's value takes (decoding,
/// conversion to Python and back, the reply's encoding, dropping it)
/// holds at this depth on a connection thread's 2 MiB stack, in debug
/// builds too, as tests/daemon/test_hostile.py shows; rpyc's own brine,
/// recursive in Python, gives up near 500.
pub const MAX_DEPTH_ALLOWED: i64 = 1024;
/// Workers in `-m threadpool`: rpyc's `ThreadPoolServer` default `nbThreads`.
pub const DEFAULT_POOL_SIZE: u32 = 20;
/// Largest frame, compressed or decompressed: big enough for real bulk
/// transfers, small enough that one client cannot take all memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 30;
pub use crate::server::{DEFAULT_BACKLOG, DEFAULT_SHUTDOWN_TIMEOUT};

/// How connections are served (`-m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A thread per connection while it is busy; a connection whose
    /// client has been quiet for 250 ms waits without one, in one poll
    /// set, until the client sends again.
    Threaded,
    /// A process per connection, forked from a warm single-threaded parent.
    Forking,
    /// A fixed pool of worker threads (--pool-size), each serving one
    /// connection for the whole of its life: a connection that arrives
    /// while every worker has one is closed at once, and logged.
    Threadpool,
    /// Serve one connection, then exit; prints `rpyc-oneshot` and the
    /// address on stdout first.
    Oneshot,
    /// One connection over stdin/stdout (inetd, systemd `Accept=yes`).
    Stdio,
}

/// Serve RPyC's classic service (full remote Python) to stock rpyc clients.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "rpyc-classic",
    version,
    disable_version_flag = true,
    after_help = "Every switch can also be set with the environment variable shown beside it \
                  (flags take true/false/1/0); an empty variable counts as unset. \
                  The command line wins over the environment."
)]
pub struct ClassicArgs {
    /// Print the version and exit (-v as rpyc's own servers take it, or -V)
    #[arg(short = 'v', short_alias = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,

    /// The serving mode
    #[arg(short, long, value_enum, ignore_case = true, default_value_t = Mode::Threaded,
          env = "RPYC_CLASSIC_MODE")]
    pub mode: Mode,

    /// Worker threads in threadpool mode, and so the most connections it serves at once; one more is closed at once (ignored in other modes)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..), env = "RPYC_CLASSIC_POOL_SIZE")]
    pub pool_size: u32,

    /// The TCP port to listen on; 0 picks a free one [default: 18812, or 18821 with TLS]
    #[arg(
        short,
        long,
        help_heading = "Socket Options",
        env = "RPYC_CLASSIC_PORT"
    )]
    pub port: Option<u16>,

    /// The address to bind to [default: 127.0.0.1, or ::1 with --ipv6]
    #[arg(
        long,
        value_name = "HOST",
        help_heading = "Socket Options",
        env = "RPYC_CLASSIC_HOST"
    )]
    pub host: Option<String>,

    /// Bind an IPv6 socket instead of IPv4
    #[arg(long, help_heading = "Socket Options", value_parser = BoolishValueParser::new(),
          env = "RPYC_CLASSIC_IPV6")]
    pub ipv6: bool,

    /// Listen on this Unix stream socket instead of TCP
    #[arg(long, value_name = "PATH", help_heading = "Socket Options",
          conflicts_with_all = ["port", "host", "ipv6"], env = "RPYC_CLASSIC_UNIX_SOCKET")]
    pub unix_socket: Option<PathBuf>,

    /// A TCP load balancer's address, or an ADDRESS/BITS block, whose connections begin with a PROXY protocol header (version 1 or 2, as HAProxy's send-proxy-v2 or nginx's proxy_protocol send it) naming the client, which the log and the service then see; from other addresses a PROXY header is refused (repeatable, or comma-separated)
    #[arg(
        long,
        value_name = "CIDR",
        help_heading = "Socket Options",
        value_delimiter = ',',
        env = "RPYC_CLASSIC_PROXY_PROTOCOL_FROM"
    )]
    pub proxy_protocol_from: Vec<Cidr>,

    /// The listen() backlog of sockets this server binds
    #[arg(long, value_name = "N", help_heading = "Socket Options", default_value_t = DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64),
          env = "RPYC_CLASSIC_BACKLOG")]
    pub backlog: u32,

    /// Append log lines to this file instead of stderr [default: stderr]
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Logging",
        env = "RPYC_CLASSIC_LOGFILE"
    )]
    pub logfile: Option<PathBuf>,

    /// Quiet mode: log errors only
    #[arg(short, long, help_heading = "Logging", value_parser = BoolishValueParser::new(),
          env = "RPYC_CLASSIC_QUIET")]
    pub quiet: bool,

    /// Log to syslog (facility daemon) instead of stderr; with --logfile, to both
    #[arg(long, help_heading = "Logging", value_parser = BoolishValueParser::new(),
          env = "RPYC_CLASSIC_SYSLOG")]
    pub syslog: bool,

    /// A key of rpyc's protocol configuration, as KEY=PYTHON_LITERAL (repeatable, or several separated by ';'): include_local_traceback, include_local_version, log_exceptions, propagate_KeyboardInterrupt_locally, propagate_SystemExit_locally, sync_request_timeout; rpyc-serve also takes the attribute rules (allow_*_attrs, safe_attrs, exposed_prefix, allow_getattr/setattr/delattr, allow_pickle) and import_custom_exceptions, instantiate_custom_exceptions. Other keys are refused, saying why
    #[arg(long = "protocol-config", value_name = "KEY=VALUE", help_heading = "Protocol",
          value_parser = super::protocol::parse_item, value_delimiter = ';',
          env = "RPYC_CLASSIC_PROTOCOL_CONFIG")]
    pub protocol_config: Vec<(String, String)>,

    /// The least severe lines to log [default: info; error with -q]
    #[arg(
        long,
        value_name = "LEVEL",
        help_heading = "Logging",
        value_enum,
        ignore_case = true,
        env = "RPYC_CLASSIC_LOG_LEVEL"
    )]
    pub log_level: Option<LogLevel>,

    /// Register with a registry server
    #[arg(long, help_heading = "Registry", value_parser = BoolishValueParser::new(),
          env = "RPYC_CLASSIC_REGISTER")]
    pub register: bool,

    /// The registry's transport
    #[arg(long, value_name = "REGTYPE", help_heading = "Registry", value_enum, ignore_case = true,
          default_value_t = Transport::Udp, env = "RPYC_CLASSIC_REGISTRY_TYPE")]
    pub registry_type: Transport,

    /// The registry's UDP/TCP port
    #[arg(long, value_name = "REGPORT", help_heading = "Registry",
          default_value_t = DEFAULT_REGISTRY_PORT, env = "RPYC_CLASSIC_REGISTRY_PORT")]
    pub registry_port: u16,

    /// The registry's host; repeatable (or comma-separated) to register with each of several registries, and to unregister from each on stop [default: 255.255.255.255 for UDP; required for TCP]
    #[arg(
        long,
        value_name = "REGHOST",
        help_heading = "Registry",
        value_delimiter = ',',
        env = "RPYC_CLASSIC_REGISTRY_HOST"
    )]
    pub registry_host: Vec<String>,

    /// Register as HOST, HOST:PORT or :PORT instead of the listening socket's own address and port: a registry records the address a registration comes from, so HOST must be an address of this machine (the one clients reach it by, rather than 127.0.0.1 when the registry runs here too); :PORT announces the port a NAT forwards to this one
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Registry",
          value_parser = parse_register_address, env = "RPYC_CLASSIC_REGISTER_ADDRESS")]
    pub register_address: Option<RegisterAddress>,

    /// Publish each TCP port through DNS-SD (Avahi's daemon, over the system D-Bus) as a `_rpyc._tcp` service named "ALIAS on HOST", with the TXT strings txtvers=1, aliases=ALIAS,... and tls=0|1; withdrawn on stop. Without Avahi the server logs one warning, serves on, and publishes once Avahi starts
    #[arg(long, help_heading = "Registry", value_parser = BoolishValueParser::new(),
          env = "RPYC_CLASSIC_DNSSD")]
    pub dnssd: bool,

    /// The server's private key (PEM); enables TLS together with --ssl-certfile
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "SSL",
        env = "RPYC_CLASSIC_SSL_KEYFILE"
    )]
    pub ssl_keyfile: Option<PathBuf>,

    /// The server's certificate chain (PEM); enables TLS together with --ssl-keyfile
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "SSL",
        env = "RPYC_CLASSIC_SSL_CERTFILE"
    )]
    pub ssl_certfile: Option<PathBuf>,

    /// CA certificates (PEM); if given, clients must present a certificate signed by one.
    /// Every certificate in the file must be able to act as a CA (basicConstraints CA:TRUE,
    /// or keyUsage keyCertSign, or a self-signed v1 root) and lead to a self-signed root in
    /// the file, or the server does not start; a CA outside its validity period, or below
    /// one that is, vouches for no one. With $CREDENTIALS_DIRECTORY
    /// set, bare file names for all three TLS files are looked up there and nowhere else
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "SSL",
        env = "RPYC_CLASSIC_SSL_CAFILE"
    )]
    pub ssl_cafile: Option<PathBuf>,

    /// Accept at most N connections at once; more are closed at once [default: unlimited]
    #[arg(long, value_name = "N", help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(1..), env = "RPYC_CLASSIC_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,

    /// Close connections idle for this long, counting part of a message that stops coming as idle, and one that takes longer than this at under 500 bytes/s [default: never]
    #[arg(long, value_name = "SECONDS", help_heading = "Limits", value_parser = parse_positive_seconds,
          env = "RPYC_CLASSIC_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Duration>,

    /// How long a client has to finish the TLS handshake, and then to send its first whole message
    #[arg(long, value_name = "SECONDS", help_heading = "Limits", value_parser = parse_positive_seconds,
          default_value = "10", env = "RPYC_CLASSIC_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Duration,

    /// Deepest nesting of tuples a message may have, at most 1024 (rpyc's own brine gives up near 500)
    #[arg(long, value_name = "N", help_heading = "Limits", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(8..=MAX_DEPTH_ALLOWED), env = "RPYC_CLASSIC_MAX_DEPTH")]
    pub max_depth: u32,

    /// After SIGTERM, how long in-flight requests may run before connections are closed
    #[arg(long, value_name = "SECONDS", help_heading = "Limits", value_parser = parse_seconds,
          default_value = "10", env = "RPYC_CLASSIC_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,

    /// Largest message accepted, compressed or decompressed; K, M, G suffixes allowed
    #[arg(long, value_name = "BYTES", help_heading = "Limits", value_parser = parse_bytes,
          default_value = "1G", env = "RPYC_CLASSIC_MAX_MESSAGE_SIZE")]
    pub max_message_size: u64,

    /// Check the switches and open what start-up would (TLS files, the log destination, the service), as `nginx -t` or `sshd -t` do; print "configuration ok" and exit
    #[arg(long)]
    pub check_config: bool,

    // Recognised only to be refused: see `CliError::VdbRemoved`.
    #[arg(long, hide = true, value_parser = BoolishValueParser::new(), env = "RPYC_CLASSIC_VDB")]
    pub vdb: bool,
}

impl ClassicArgs {
    /// Parse a command line (program name first) and the `RPYC_CLASSIC_*`
    /// environment, then check the combinations clap cannot express.
    pub fn parse_from<I, A>(args: I) -> Result<Self, CliError>
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString> + Clone,
    {
        let args: Self = parse_with_env(args)?;
        args.validate()?;
        super::protocol::server_keys(&args.protocol_config, false)?;
        Ok(args)
    }

    /// What the server applies of `--protocol-config` (checked when the
    /// switches were read; anything else gives rpyc's defaults).
    pub fn protocol(&self) -> super::protocol::ServerKeys {
        super::protocol::server_keys(&self.protocol_config, true).unwrap_or_default()
    }

    pub(crate) fn validate(&self) -> Result<(), CliError> {
        if self.vdb {
            return Err(CliError::VdbRemoved);
        }
        match (&self.ssl_keyfile, &self.ssl_certfile) {
            (Some(_), None) => {
                return Err(CliError::SslIncomplete {
                    given: "--ssl-keyfile",
                })
            }
            (None, Some(_)) => {
                return Err(CliError::SslIncomplete {
                    given: "--ssl-certfile",
                })
            }
            (None, None) if self.ssl_cafile.is_some() => return Err(CliError::SslCaWithoutKey),
            _ => {}
        }
        if self.register && self.effective_registry_hosts().is_empty() {
            return Err(CliError::TcpRegistryWithoutHost);
        }
        if self.mode == Mode::Stdio && !self.proxy_protocol_from.is_empty() {
            return Err(CliError::ProxyWithoutTcp);
        }
        if self.mode == Mode::Stdio && self.dnssd {
            return Err(CliError::DnssdWithoutTcp);
        }
        log_level(self.quiet, self.log_level)?;
        Ok(())
    }

    /// Whether TLS is on (validation guarantees key and certificate come together).
    pub fn tls(&self) -> bool {
        self.ssl_keyfile.is_some() && self.ssl_certfile.is_some()
    }

    /// The port to bind: `--port`, else 18812, or 18821 with TLS.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.tls() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        })
    }

    /// The address to bind: `--host`, else the loopback address of the
    /// family chosen, because the classic service is remote code execution.
    /// An empty `--host` means the default, as it does for rpyc.
    pub fn effective_host(&self) -> &str {
        match self.host.as_deref().filter(|host| !host.is_empty()) {
            Some(host) => host,
            None if self.ipv6 => "::1",
            None => "127.0.0.1",
        }
    }

    /// The registry hosts: `--registry-host`, else broadcast for UDP. None
    /// only for TCP without a host, which validation refuses with `--register`.
    pub fn effective_registry_hosts(&self) -> Vec<&str> {
        let given: Vec<&str> = self
            .registry_host
            .iter()
            .map(|host| host.trim())
            .filter(|host| !host.is_empty())
            .collect();
        match (given.is_empty(), self.registry_type) {
            (false, _) => given,
            (true, Transport::Udp) => vec![DEFAULT_UDP_REGISTRY_HOST],
            (true, Transport::Tcp) => Vec::new(),
        }
    }
}

/// What `--register-address` announces in place of the listener's own
/// address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegisterAddress {
    pub host: Option<std::net::IpAddr>,
    pub port: Option<u16>,
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT`, a bare IPv6 address, or `:PORT`.
fn parse_register_address(text: &str) -> Result<RegisterAddress, String> {
    use std::net::{IpAddr, SocketAddr};
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{p:?} is not a port (1 to 65535)"))
    };
    if let Some(only) = text.strip_prefix(':') {
        if !only.contains(':') {
            return Ok(RegisterAddress {
                host: None,
                port: Some(port(only)?),
            });
        }
    }
    if let Ok(host) = text.parse::<IpAddr>() {
        return Ok(RegisterAddress {
            host: Some(host),
            port: None,
        });
    }
    if let Ok(both) = text.parse::<SocketAddr>() {
        return Ok(RegisterAddress {
            host: Some(both.ip()),
            port: Some(port(&both.port().to_string())?),
        });
    }
    Err(format!(
        "{text:?} is not HOST, HOST:PORT or :PORT with HOST an IP address \
         ([ADDRESS]:PORT for IPv6)"
    ))
}

#[cfg(test)]
mod tests;
