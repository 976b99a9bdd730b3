//! The switches of rpyc-classic: defaults, combinations, values.
use super::*;
use crate::app::exit::{self, Failure};

fn parse(args: &[&str]) -> Result<ClassicArgs, CliError> {
    ClassicArgs::parse_from(std::iter::once("rpyc-classic").chain(args.iter().copied()))
}

fn usage_error(args: &[&str]) -> CliError {
    let err = match parse(args) {
        Ok(parsed) => panic!("{args:?} parsed as {parsed:?}"),
        Err(err) => err,
    };
    assert_eq!(err.exit_code(), exit::USAGE, "{args:?}: {err}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "not one line: {message:?}");
    err
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    ClassicArgs::command().debug_assert();
}

// The environment of the test process is not controlled, so the
// defaults tests only hold when no RPYC_CLASSIC_* variable is set;
// tests/cli.rs checks the environment form on child processes.
#[test]
fn defaults() {
    let a = parse(&[]).expect("no switches");
    assert_eq!(a.mode, Mode::Threaded);
    assert_eq!(a.pool_size, 20);
    assert_eq!(a.port, None);
    assert_eq!(a.effective_port(), 18812);
    assert_eq!(a.effective_host(), "127.0.0.1");
    assert!(!a.ipv6 && !a.quiet && !a.syslog && !a.register && !a.tls());
    assert_eq!(a.unix_socket, None);
    assert_eq!(a.backlog, 4096);
    assert_eq!(a.logfile, None);
    assert_eq!(a.registry_type, Transport::Udp);
    assert_eq!(a.registry_port, 18811);
    assert_eq!(a.effective_registry_hosts(), ["255.255.255.255"]);
    assert_eq!(a.max_connections, None);
    assert_eq!(a.idle_timeout, None);
    assert_eq!(a.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(a.handshake_timeout, Duration::from_secs(10));
    assert_eq!(a.max_depth, 512);
    assert_eq!(a.max_message_size, 1 << 30);
}

#[test]
fn every_mode_parses_case_insensitively() {
    for (name, mode) in [
        ("threaded", Mode::Threaded),
        ("forking", Mode::Forking),
        ("threadpool", Mode::Threadpool),
        ("oneshot", Mode::Oneshot),
        ("stdio", Mode::Stdio),
        ("STDIO", Mode::Stdio),
    ] {
        assert_eq!(parse(&["-m", name]).expect(name).mode, mode);
    }
    assert_eq!(
        parse(&["--mode=forking"]).expect("long").mode,
        Mode::Forking
    );
}

#[test]
fn port_resolution() {
    assert_eq!(parse(&["-p", "12333"]).expect("p").effective_port(), 12333);
    assert_eq!(parse(&["--port=0"]).expect("0").effective_port(), 0);
    let tls = ["--ssl-keyfile", "k.pem", "--ssl-certfile", "c.pem"];
    let a = parse(&tls).expect("tls");
    assert!(a.tls());
    assert_eq!(a.effective_port(), 18821);
    let mut explicit = tls.to_vec();
    explicit.extend(["-p", "9999"]);
    assert_eq!(parse(&explicit).expect("tls port").effective_port(), 9999);
    let mut with_ca = tls.to_vec();
    with_ca.extend(["--ssl-cafile", "ca.pem"]);
    assert_eq!(parse(&with_ca).expect("ca").effective_port(), 18821);
}

#[test]
fn host_resolution() {
    assert_eq!(parse(&["--ipv6"]).expect("v6").effective_host(), "::1");
    assert_eq!(
        parse(&["--host", "0.0.0.0"]).expect("any").effective_host(),
        "0.0.0.0"
    );
    assert_eq!(
        parse(&["--ipv6", "--host", "::"])
            .expect("v6 any")
            .effective_host(),
        "::"
    );
    assert_eq!(
        parse(&["--host=localhost"]).expect("name").effective_host(),
        "localhost"
    );
    assert_eq!(
        parse(&["--host="]).expect("empty").effective_host(),
        "127.0.0.1"
    );
    assert_eq!(
        parse(&["--ipv6", "--host", ""])
            .expect("empty v6")
            .effective_host(),
        "::1"
    );
}

#[test]
fn registry_switches() {
    let a = parse(&[
        "--register",
        "--registry-type",
        "tcp",
        "--registry-host",
        "reg",
    ])
    .expect("tcp");
    assert!(a.register);
    assert_eq!(a.registry_type, Transport::Tcp);
    assert_eq!(a.effective_registry_hosts(), ["reg"]);
    let a = parse(&[
        "--register",
        "--registry-host",
        "10.0.0.255",
        "--registry-port",
        "1",
    ])
    .expect("udp");
    assert_eq!(a.effective_registry_hosts(), ["10.0.0.255"]);
    assert_eq!(a.registry_port, 1);
    let a = parse(&["--registry-host", "a,b", "--registry-host", "c"]).expect("several");
    assert_eq!(a.effective_registry_hosts(), ["a", "b", "c"]);
    // Without --register the registry switches are inert, so a TCP type
    // without a host is no error (an EnvironmentFile may preset it).
    let a = parse(&["--registry-type", "TCP"]).expect("inert");
    assert!(a.effective_registry_hosts().is_empty());
}

#[test]
fn register_addresses() {
    let of = |text: &str| parse_register_address(text);
    let host = |ip: &str| Some(ip.parse().expect("ip"));
    assert_eq!(
        of("192.0.2.5"),
        Ok(RegisterAddress {
            host: host("192.0.2.5"),
            port: None
        })
    );
    assert_eq!(
        of("192.0.2.5:28812"),
        Ok(RegisterAddress {
            host: host("192.0.2.5"),
            port: Some(28812)
        })
    );
    assert_eq!(
        of("[2001:db8::5]:28812"),
        Ok(RegisterAddress {
            host: host("2001:db8::5"),
            port: Some(28812)
        })
    );
    assert_eq!(
        of("2001:db8::5"),
        Ok(RegisterAddress {
            host: host("2001:db8::5"),
            port: None
        })
    );
    assert_eq!(
        of(":28812"),
        Ok(RegisterAddress {
            host: None,
            port: Some(28812)
        })
    );
    for bad in [
        "",
        ":",
        ":0",
        "192.0.2.5:0",
        "host.example",
        "192.0.2.5:99999",
        "::1:x",
    ] {
        assert!(of(bad).is_err(), "{bad}");
    }
}

#[test]
fn limits_and_logging() {
    let a = parse(&[
        "-m",
        "threadpool",
        "--pool-size",
        "4",
        "--max-connections",
        "100",
        "--idle-timeout",
        "1.5",
        "--shutdown-timeout",
        "0",
        "--max-message-size",
        "64M",
        "--backlog",
        "16",
        "--logfile",
        "/var/log/rpyc.log",
        "--syslog",
        "-q",
    ])
    .expect("all");
    assert_eq!(a.pool_size, 4);
    assert_eq!(a.max_connections, Some(100));
    assert_eq!(a.idle_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(a.shutdown_timeout, Duration::ZERO);
    assert_eq!(a.max_message_size, 64 << 20);
    assert_eq!(a.backlog, 16);
    assert_eq!(a.logfile, Some(PathBuf::from("/var/log/rpyc.log")));
    assert!(a.syslog && a.quiet);
}

#[test]
fn unix_socket() {
    let a = parse(&["--unix-socket", "/run/rpyc.sock"]).expect("unix");
    assert_eq!(a.unix_socket, Some(PathBuf::from("/run/rpyc.sock")));
    for other in [&["-p", "1"][..], &["--host", "::"], &["--ipv6"]] {
        let mut args = vec!["--unix-socket", "/run/rpyc.sock"];
        args.extend_from_slice(other);
        usage_error(&args);
    }
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["-p", "70000"][..],
        &["-p", "-1"],
        &["-p", "http"],
        &["-m", "bogus"],
        &["-m"],
        &["--pool-size", "0"],
        &["--backlog", "0"],
        &["--registry-type", "SCTP"],
        &["--registry-port", "65536"],
        &["--max-connections", "0"],
        &["--idle-timeout", "0"],
        &["--idle-timeout", "-3"],
        &["--shutdown-timeout", "soon"],
        &["--max-message-size", "0"],
        &["--max-message-size", "lots"],
        &["--no-such-switch"],
        &["stray"],
    ] {
        assert!(matches!(usage_error(args), CliError::Clap(_)), "{args:?}");
    }
}

#[test]
fn bad_combinations_are_usage_errors() {
    assert!(matches!(
        usage_error(&["--ssl-keyfile", "k.pem"]),
        CliError::SslIncomplete {
            given: "--ssl-keyfile"
        }
    ));
    assert!(matches!(
        usage_error(&["--ssl-certfile", "c.pem"]),
        CliError::SslIncomplete {
            given: "--ssl-certfile"
        }
    ));
    assert!(matches!(
        usage_error(&["--ssl-cafile", "ca.pem"]),
        CliError::SslCaWithoutKey
    ));
    assert!(matches!(
        usage_error(&["--ssl-keyfile", "k.pem", "--ssl-cafile", "ca.pem"]),
        CliError::SslIncomplete { .. }
    ));
    assert!(matches!(
        usage_error(&["--register", "--registry-type", "TCP"]),
        CliError::TcpRegistryWithoutHost
    ));
    assert!(matches!(
        usage_error(&["--register", "--registry-type=TCP", "--registry-host="]),
        CliError::TcpRegistryWithoutHost
    ));
    assert!(matches!(usage_error(&["--vdb"]), CliError::VdbRemoved));
}

#[test]
fn clap_errors_become_one_line() {
    let message = usage_error(&["-m", "bogus"]).to_string();
    assert!(message.contains("bogus"), "{message}");
    assert!(message.contains("threadpool"), "lists the modes: {message}");
    assert!(!message.starts_with("error:"), "{message}");
    let message = usage_error(&["-p", "70000"]).to_string();
    assert!(message.contains("70000"), "{message}");
    let message = usage_error(&["--prot", "1"]).to_string();
    assert!(message.contains("(tip: "), "{message}");
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["-h", "--help", "--version", "-V"] {
        let err = parse(&[flag]).expect_err(flag);
        assert_eq!(err.exit_code(), exit::OK, "{flag}");
    }
}
