//! The real `rpyc-classic` and `rpyc-registry` binaries: help, version,
//! exit codes, and the environment-variable form of the switches (which
//! unit tests cannot check safely, the process environment being shared
//! by test threads).

use std::process::{Command, Output};

const CLASSIC: &str = env!("CARGO_BIN_EXE_rpyc-classic");
const REGISTRY: &str = env!("CARGO_BIN_EXE_rpyc-registry");

const EX_USAGE: i32 = 64;
const EX_UNAVAILABLE: i32 = 69;

/// Run a binary with the given arguments and environment, and no
/// RPYC_* variables inherited from whoever runs the tests.
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RPYC_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    match cmd.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {bin}: {e}"),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert a usage error: exit 64 and exactly one line on stderr, naming
/// the binary, and nothing on stdout.
fn assert_usage_error(bin: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(bin, args, env);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(EX_USAGE),
        "{args:?} {env:?}: stderr {err:?}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?} {env:?}: not one line: {err:?}"
    );
    let name = bin.rsplit('/').next().unwrap_or(bin);
    assert!(err.starts_with(&format!("{name}: ")), "{err:?}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", stdout(&out));
    err
}

/// `--check-config` with `args`: it checks the switches and opens what
/// start-up would, before anything is bound. Asserts its exit code.
fn check_config(bin: &str, args: &[&str], env: &[(&str, &str)], code: i32) -> Output {
    let mut args = args.to_vec();
    args.push("--check-config");
    let out = run(bin, &args, env);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?} {env:?}: stderr {:?}",
        stderr(&out)
    );
    out
}

/// Assert the switches are accepted, though a file they name does not
/// exist: the check gets past the switches and stops at the file (exit
/// 78, naming it), as start-up would.
fn assert_parses_to_the_missing_file(bin: &str, args: &[&str], env: &[(&str, &str)], file: &str) {
    let out = check_config(bin, args, env, 78);
    assert!(stderr(&out).contains(file), "{:?}", stderr(&out));
}

/// Assert the switches are accepted and what they name can be used.
fn assert_parses(bin: &str, args: &[&str], env: &[(&str, &str)]) {
    let out = check_config(bin, args, env, 0);
    assert_eq!(stdout(&out), "configuration ok\n", "{args:?}");
}

#[test]
fn classic_help_lists_every_switch_with_defaults() {
    for flag in ["-h", "--help"] {
        let out = run(CLASSIC, &[flag], &[]);
        assert_eq!(out.status.code(), Some(0));
        // Collapse the wrapping, which depends on the terminal width.
        let help = stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for switch in [
            "-m, --mode",
            "--pool-size",
            "-p, --port",
            "--host",
            "--ipv6",
            "--unix-socket",
            "--backlog",
            "--logfile",
            "-q, --quiet",
            "--syslog",
            "--register",
            "--registry-type",
            "--registry-port",
            "--registry-host",
            "--ssl-keyfile",
            "--ssl-certfile",
            "--ssl-cafile",
            "--max-connections",
            "--idle-timeout",
            "--shutdown-timeout",
            "--max-message-size",
            "-v, --version",
        ] {
            assert!(
                help.contains(switch),
                "{flag}: {switch} missing from\n{help}"
            );
        }
        for default in [
            "threaded",
            "18812",
            "18821",
            "127.0.0.1",
            "::1",
            "18811",
            "255.255.255.255",
            "[default: 20]",
            "[default: 4096]",
            "[default: 10]",
            "[default: 1G]",
            "RPYC_CLASSIC_PORT",
            "RPYC_CLASSIC_SSL_KEYFILE",
        ] {
            assert!(
                help.contains(default),
                "{flag}: {default} missing from\n{help}"
            );
        }
        assert!(!help.contains("vdb"), "--vdb is refused, not offered");
    }
}

#[test]
fn registry_help_lists_every_switch_with_defaults() {
    let out = run(REGISTRY, &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for switch in [
        "-m, --mode",
        "-p, --port",
        "--host",
        "-6, --ipv6",
        "-f, --file",
        "--logfile",
        "-q, --quiet",
        "-t, --timeout",
        "-l, --listing",
        "--syslog",
        "-v, --version",
        "UDP",
        "18811",
        "240",
        "0.0.0.0",
        "RPYC_REGISTRY_TIMEOUT",
    ] {
        assert!(help.contains(switch), "{switch} missing from\n{help}");
    }
}

#[test]
fn version() {
    let version = env!("CARGO_PKG_VERSION");
    let serve = env!("CARGO_BIN_EXE_rpyc-serve");
    for (bin, name) in [
        (CLASSIC, "rpyc-classic"),
        (REGISTRY, "rpyc-registry"),
        (serve, "rpyc-serve"),
    ] {
        // -v as rpyc's own servers take it; -V as clap's programs do
        for flag in ["--version", "-v", "-V"] {
            let out = run(bin, &[flag], &[]);
            assert_eq!(out.status.code(), Some(0), "{name} {flag}");
            assert_eq!(stdout(&out).trim(), format!("{name} {version}"), "{flag}");
        }
    }
}

#[test]
fn classic_usage_errors_exit_64_with_one_line() {
    for args in [
        &["-p", "70000"][..],
        &["--port=-1"],
        &["-m", "bogus"],
        &["--ssl-keyfile", "key.pem"],
        &["--ssl-certfile", "cert.pem"],
        &["--ssl-cafile", "ca.pem"],
        &["--register", "--registry-type", "TCP"],
        &["--registry-type", "carrier-pigeon"],
        &["--pool-size", "0"],
        &["--max-message-size", "0"],
        &["--idle-timeout", "never"],
        &["--unix-socket", "/tmp/x.sock", "--port", "1"],
        &["--no-such-switch"],
        &["-p"],
    ] {
        assert_usage_error(CLASSIC, args, &[]);
    }
}

#[test]
fn vdb_is_refused_with_an_explanation() {
    let err = assert_usage_error(CLASSIC, &["--vdb"], &[]);
    assert!(err.contains("--vdb") && err.contains("rpyc"), "{err}");
    assert_usage_error(CLASSIC, &[], &[("RPYC_CLASSIC_VDB", "1")]);
}

#[test]
fn classic_environment_form() {
    // a bad value from the environment names its variable: that is what
    // the administrator wrote, in /etc/default/rpyc-classic
    for (variable, value, switch) in [
        ("RPYC_CLASSIC_PORT", "70000", "--port"),
        ("RPYC_CLASSIC_MODE", "bogus", "--mode"),
        ("RPYC_CLASSIC_QUIET", "perhaps", "--quiet"),
        ("RPYC_CLASSIC_MAX_DEPTH", "5000", "--max-depth"),
    ] {
        let message = assert_usage_error(CLASSIC, &[], &[(variable, value)]);
        assert!(
            message.contains(&format!(
                "'{value}' for {variable} (from the environment; the switch {switch})"
            )),
            "{message}"
        );
    }
    // ...and a bad value typed on the command line, its switch
    let message = assert_usage_error(CLASSIC, &["--port", "x"], &[("RPYC_CLASSIC_PORT", "1")]);
    assert!(message.contains("'--port <PORT>'"), "{message}");
    let message = assert_usage_error(REGISTRY, &[], &[("RPYC_REGISTRY_TIMEOUT", "soon")]);
    assert!(
        message.contains("RPYC_REGISTRY_TIMEOUT (from the environment"),
        "{message}"
    );
    assert_usage_error(CLASSIC, &[], &[("RPYC_CLASSIC_SSL_KEYFILE", "key.pem")]);
    assert_usage_error(
        CLASSIC,
        &["--register"],
        &[("RPYC_CLASSIC_REGISTRY_TYPE", "tcp")],
    );
    assert_parses_to_the_missing_file(
        CLASSIC,
        &[],
        &[
            ("RPYC_CLASSIC_PORT", "0"),
            ("RPYC_CLASSIC_MODE", "forking"),
            ("RPYC_CLASSIC_SSL_KEYFILE", "key.pem"),
            ("RPYC_CLASSIC_SSL_CERTFILE", "cert.pem"),
            ("RPYC_CLASSIC_QUIET", "true"),
            ("RPYC_CLASSIC_IPV6", "0"),
            ("RPYC_CLASSIC_MAX_MESSAGE_SIZE", "64M"),
        ],
        "key.pem",
    );
    // The command line wins over the environment.
    assert_parses(CLASSIC, &["-p", "1234"], &[("RPYC_CLASSIC_PORT", "70000")]);
    // An empty variable (`RPYC_CLASSIC_PORT=` in an EnvironmentFile) is unset.
    assert_parses(
        CLASSIC,
        &[],
        &[("RPYC_CLASSIC_PORT", ""), ("RPYC_CLASSIC_QUIET", "")],
    );
}

#[test]
fn classic_valid_command_lines_are_accepted() {
    for args in [
        &[][..],
        &["-m", "threadpool", "--pool-size", "4"],
        &["--mode=oneshot", "--host=localhost", "-p0"],
        &["-q", "-m", "forking"],
        &[
            "--register",
            "--registry-type",
            "TCP",
            "--registry-host",
            "127.0.0.1",
        ],
        &["--unix-socket", "/tmp/rpyc.sock"],
    ] {
        assert_parses(CLASSIC, args, &[]);
    }
    assert_parses_to_the_missing_file(
        CLASSIC,
        &[
            "--ssl-keyfile",
            "k.pem",
            "--ssl-certfile",
            "c.pem",
            "--ssl-cafile",
            "ca.pem",
        ],
        &[],
        "k.pem",
    );
}

#[test]
fn classic_stdio_mode_writes_nothing_to_stderr() {
    // fd 2 may be the client's socket under inetd.
    // stdin is empty: the client hangs up at once and the server ends
    let out = run(CLASSIC, &["-q", "-m", "stdio"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{:?}", stderr(&out));
    assert!(out.stdout.is_empty(), "{:?}", stdout(&out));
}

#[test]
fn registry_on_a_busy_port_is_unavailable() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let port = taken
        .local_addr()
        .expect("local address")
        .port()
        .to_string();
    let out = run(REGISTRY, &["--host", "127.0.0.1", "-p", &port], &[]);
    assert_eq!(out.status.code(), Some(EX_UNAVAILABLE));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "rpyc-registry: cannot listen on [127.0.0.1]:{port}: "
        )) && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn registry_listing_forms() {
    for args in [
        &["-l"][..],
        &["-l", "true"],
        &["-l", "false"],
        &["--listing"],
        &["--listing=false"],
        &["-l", "-m", "TCP"],
        &["-q", "-l", "true", "-t", "5"],
        &["-q", "1"],
        &["-f", "/tmp/registry.log"],
        &["--logfile", "/tmp/registry.log"],
        &["-6", "-m", "udp", "-p", "0"],
    ] {
        assert_parses(REGISTRY, args, &[]);
    }
    assert_usage_error(REGISTRY, &["-l", "maybe"], &[]);
}

#[test]
fn registry_usage_errors_and_environment_form() {
    for args in [
        &["-m", "HTTP"][..],
        &["-p", "70000"],
        &["-t", "0"],
        &["-t", "soon"],
        &["--no-such-switch"],
    ] {
        assert_usage_error(REGISTRY, args, &[]);
    }
    assert_usage_error(REGISTRY, &[], &[("RPYC_REGISTRY_TIMEOUT", "soon")]);
    assert_usage_error(REGISTRY, &[], &[("RPYC_REGISTRY_MODE", "bogus")]);
    assert_usage_error(REGISTRY, &[], &[("RPYC_REGISTRY_PORT", "70000")]);
    assert_parses(
        REGISTRY,
        &[],
        &[
            ("RPYC_REGISTRY_MODE", "tcp"),
            ("RPYC_REGISTRY_TIMEOUT", "60"),
            ("RPYC_REGISTRY_LISTING", "true"),
            ("RPYC_REGISTRY_LOGFILE", "/tmp/registry.log"),
        ],
    );
}
