//! The man pages and completions themselves; `tests/packaging.rs` includes
//! this file too, to check what it writes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, italic, roman, Inline, Roff};
use rpycd::cli::serve::ServeArgs;
use rpycd::cli::{ClassicArgs, RegistryArgs};

/// One man page section of our own, after clap's OPTIONS.
struct Section {
    title: &'static str,
    /// Paragraphs; a paragraph that starts with a term is rendered as a
    /// tagged paragraph (`.TP`): term, then the text indented below it.
    paragraphs: Vec<Paragraph>,
}

enum Paragraph {
    Text(Vec<Inline>),
    Tagged(Vec<Inline>, Vec<Inline>),
}

fn text(parts: impl Into<Vec<Inline>>) -> Paragraph {
    Paragraph::Text(parts.into())
}

fn tagged(term: impl Into<Vec<Inline>>, parts: impl Into<Vec<Inline>>) -> Paragraph {
    Paragraph::Tagged(term.into(), parts.into())
}

/// What the two pages share: how a switch is also an environment variable.
fn environment_switches(prefix: &str) -> Paragraph {
    let file = match prefix {
        "RPYC_SERVE" => "/etc/rpycd/serve/INSTANCE.conf".to_owned(),
        _ => format!("/etc/default/{}", prefix_to_name(prefix)),
    };
    text([
        roman(
            "Every switch can also be set with the environment variable named beside it \
               (for example ",
        ),
        bold(format!("{prefix}_PORT")),
        roman(
            "); flags take true, false, 1 or 0, and an empty variable counts as unset. \
               The command line wins over the environment. The systemd units read these \
               variables from ",
        ),
        bold(file),
        roman("."),
    ])
}

fn prefix_to_name(prefix: &str) -> &'static str {
    if prefix == "RPYC_CLASSIC" {
        "rpyc-classic"
    } else {
        "rpyc-registry"
    }
}

fn systemd_environment() -> Vec<Paragraph> {
    vec![
        tagged(
            [bold("LISTEN_FDS"), roman(", "), bold("LISTEN_PID")],
            [
                roman(
                    "Set by systemd for a socket-activated service: the daemon serves the \
                       sockets it is given instead of binding its own, and the address \
                       switches are then ignored (see ",
                ),
                bold("sd_listen_fds"),
                roman("(3))."),
            ],
        ),
        tagged(
            [bold("NOTIFY_SOCKET"), roman(", "), bold("WATCHDOG_USEC")],
            [roman(
                "Set by systemd for a Type=notify service: the daemon reports READY=1 \
                    once it serves, its status, STOPPING=1, and watchdog keep-alives.",
            )],
        ),
    ]
}

fn exit_status() -> Section {
    Section {
        title: "EXIT STATUS",
        paragraphs: vec![
            tagged(
                [bold("0")],
                [roman("A clean stop, --help, --version or --check-config.")],
            ),
            tagged(
                [bold("64")],
                [roman(
                    "A bad switch, value or combination of switches (EX_USAGE).",
                )],
            ),
            tagged(
                [bold("69")],
                [roman(
                    "The service cannot be provided, e.g. the address cannot be bound \
                        (EX_UNAVAILABLE).",
                )],
            ),
            tagged([bold("70")], [roman("An internal error (EX_SOFTWARE).")]),
            tagged(
                [bold("78")],
                [roman(
                    "A file named on the command line cannot be used (EX_CONFIG). \
                        The systemd units do not restart the daemon after 64 or 78.",
                )],
            ),
        ],
    }
}

/// Commands as a user types them; the TLS ones use the files that the
/// README's "TLS between a server and its clients" shows how to make.
fn examples(program: &str) -> Section {
    let example =
        |command: &str, what: &str| tagged([bold(command.to_owned())], [roman(what.to_owned())]);
    let tls = "--ssl-keyfile server.key --ssl-certfile server.crt --ssl-cafile ca.crt";
    let paragraphs = match program {
        "classic" => vec![
            example("rpyc-classic", "Serve on 127.0.0.1, port 18812."),
            example(
                &format!("rpyc-classic --check-config {tls}"),
                "Check the TLS files before a restart: the key fits the certificate, and every \
                 entry of ca.crt can issue client certificates.",
            ),
            example(
                &format!("rpyc-classic --host :: -m forking {tls}"),
                "Serve on every address, port 18821, a process per connection, to clients \
                 with a certificate from ca.crt only.",
            ),
            example(
                "python3 -c 'import rpyc; c = rpyc.classic.ssl_connect(\"localhost\", 18821, \
                 keyfile=\"alice.key\", certfile=\"alice.crt\", ca_certs=\"ca.crt\"); \
                 print(c.modules.sys.platform)'",
                "A stock rpyc client of that server, with alice's certificate.",
            ),
        ],
        "registry" => vec![
            example(
                "rpyc-registry",
                "Answer UDP registry requests on port 18811.",
            ),
            example(
                "rpyc-registry -m TCP --listing",
                "Answer over TCP instead, and let clients list every registered name.",
            ),
        ],
        _ => vec![
            example(
                "rpyc-serve --path /opt/calculator calculator:CalculatorService",
                "Serve the class CalculatorService of /opt/calculator/calculator.py.",
            ),
            example(
                &format!("rpyc-serve --path /opt/calculator {tls} calculator:CalculatorService"),
                "The same over TLS, to clients with a certificate from ca.crt only; they \
                 connect with rpyc.ssl_connect(host, port, keyfile=..., certfile=..., \
                 ca_certs=...).",
            ),
        ],
    };
    Section {
        title: "EXAMPLES",
        paragraphs,
    }
}

/// `serves_requests`: the daemon runs clients' requests (rpyc-classic,
/// rpyc-serve), which SIGTERM lets finish for up to --shutdown-timeout;
/// the registry answers each request at once.
fn signals(serves_requests: bool) -> Section {
    let stop = if serves_requests {
        "Stop accepting connections, let requests in flight finish (for up to \
            --shutdown-timeout), then exit."
    } else {
        "Stop answering and exit."
    };
    let stdio_note = serves_requests;
    let mut paragraphs = vec![
        tagged([bold("SIGTERM")], [roman(stop)]),
        tagged([bold("SIGINT")], [roman("Stop now.")]),
        tagged(
            [bold("SIGHUP")],
            [roman(
                "Reopen the logfile (after logrotate has moved it away).",
            )],
        ),
    ];
    if stdio_note {
        paragraphs.push(text([roman(
            "In stdio mode (one connection, as inetd starts it) the daemon keeps the \
             default actions: any of these signals ends the session. A stdio session \
             opens the logfile when it starts, so it needs no SIGHUP after a rotation.",
        )]));
    }
    Section {
        title: "SIGNALS",
        paragraphs,
    }
}

fn classic_sections() -> (Vec<Paragraph>, Vec<Section>) {
    let description = vec![
        text([roman(
            "rpyc-classic is the classic server of RPyC: stock Python RPyC clients \
             (rpyc.classic.connect, rpyc.ssl_connect, rpyc.discover) use it to run Python \
             on this machine. It serves connections with a thread each (a connection quiet \
             for 250 ms gives its thread back until its client sends again), from a thread \
             pool, in a process each (forked from a warm parent), one connection only (oneshot), \
             or over its standard input and output (stdio), as inetd and systemd's \
             Accept=yes sockets start it.",
        )]),
        text([
            roman("As a system service it is socket-activated: "),
            bold("systemctl start rpyc-classic.socket"),
            roman(
                " listens on 127.0.0.1 and ::1, port 18812, and starts one daemon for all \
                   connections; ",
            ),
            bold("rpyc-classic-stdio.socket"),
            roman(
                " listens on port 18813 and starts a process per connection. Neither is \
                   enabled or started when the package is installed.",
            ),
        ]),
    ];
    let mut environment = vec![environment_switches("RPYC_CLASSIC")];
    environment.push(tagged(
        [bold("RPYC_CLASSIC_OPTS")],
        [roman(
            "Not read by the daemon: rpyc-classic.service and rpyc-classic-stdio@.service \
                pass it on the command line, for anything else.",
        )],
    ));
    environment.extend(systemd_environment());
    environment.push(tagged(
        [bold("CREDENTIALS_DIRECTORY")],
        [
            roman(
                "A bare file name given to --ssl-keyfile, --ssl-certfile or --ssl-cafile \
                   (no directory part) is looked up here first, so that a unit can hand over \
                   TLS files with ",
            ),
            bold("LoadCredential="),
            roman(" (see "),
            bold("systemd.exec"),
            roman("(5))."),
        ],
    ));
    environment.push(tagged(
        [bold("PYTHONPATH")],
        [roman(
            "Honoured by the embedded Python, like any other Python's.",
        )],
    ));
    let sections = vec![
        Section {
            title: "SECURITY",
            paragraphs: vec![text([roman(
                "The classic service runs any code its clients send, as the user the \
                 daemon runs as. By default it listens on loopback addresses only, and it \
                 logs a warning when it listens elsewhere without TLS. On a network, use \
                 --ssl-keyfile, --ssl-certfile and --ssl-cafile so that only clients with \
                 a certificate from your CA can connect. The packaged units run it as a \
                 dynamic user with a read-only view of the system.",
            )])],
        },
        Section {
            title: "ENVIRONMENT",
            paragraphs: environment,
        },
        signals(true),
        exit_status(),
        examples("classic"),
        Section {
            title: "FILES",
            paragraphs: vec![
                tagged(
                    [bold("/etc/default/rpyc-classic")],
                    [roman(
                        "Settings for the systemd units, every one commented out.",
                    )],
                ),
                tagged(
                    [
                        bold("/usr/lib/systemd/system/rpyc-classic.socket"),
                        roman(", "),
                        bold("rpyc-classic.service"),
                        roman(", "),
                        bold("rpyc-classic-stdio.socket"),
                        roman(", "),
                        bold("rpyc-classic-stdio@.service"),
                    ],
                    [roman(
                        "The units; change them with drop-ins (systemctl edit). Code that \
                         clients run there cannot open listening sockets of its own (bind() \
                         and listen() are denied), and its tasks and memory are bounded \
                         (TasksMax=, LimitNPROC=, MemoryMax=).",
                    )],
                ),
                tagged(
                    [bold("/usr/share/doc/rpycd/examples/")],
                    [roman(
                        "Drop-ins (another port, TLS on the network, a named user, \
                            registration, a logfile, higher task and memory bounds, \
                            listening sockets for clients' code) and inetd.conf and \
                            xinetd entries.",
                    )],
                ),
            ],
        },
        Section {
            title: "SEE ALSO",
            paragraphs: vec![text([
                bold("rpyc-registry"),
                roman("(8), "),
                bold("systemd.socket"),
                roman("(5), "),
                bold("systemd.exec"),
                roman("(5), "),
                bold("inetd.conf"),
                roman("(5), "),
                bold("xinetd.conf"),
                roman("(5), "),
                italic("https://rpyc.readthedocs.io/"),
            ])],
        },
    ];
    (description, sections)
}

/// The registry's limits, from the values the daemon uses.
fn registry_limits() -> Vec<Paragraph> {
    use rpycd::registry::{budget, table, tcp};
    let replies = budget::Limits::default();
    let entries = table::Limits::default();
    vec![
        text([roman(
            "Anyone who can reach the registry can register, and over UDP a request's \
             source address can be forged, so the registry bounds what any one source \
             gets and holds:",
        )]),
        tagged(
            [bold("Replies over UDP")],
            [roman(format!(
                "A source gets back at most {} times the bytes it sent, plus {} KiB when it \
                 is new or has been silent for {} seconds, drawn from {} KiB shared by all \
                 sources and refilled at {} bytes a second. A QUERY or LIST answer that does \
                 not fit is cut to the servers or names that do, so a client that asks for \
                 large lists again and again gets shorter ones. Over TCP, where addresses \
                 cannot be forged, answers are not cut.",
                replies.ratio,
                replies.source_burst / 1024,
                replies.renewal.as_secs(),
                replies.pool_burst / 1024,
                replies.pool_rate,
            ))],
        ),
        tagged(
            [bold("Registrations")],
            [roman(format!(
                "At most {} entries (a name at a port) per source address and {} in all; a \
                 registration that would pass a limit is refused whole, with no OK and a \
                 warning in the log. The last {} entries are kept for hosts that hold entries \
                 or unregistered within the pruning timeout (a server restarting), up to {} \
                 each, so a flood of new sources cannot lock out servers registered before it.",
                entries.per_host, entries.total, entries.reserved, entries.reserved_per_host,
            ))],
        ),
        tagged(
            [bold("TCP connections")],
            [roman(format!(
                "At most {} connections waiting for their request, {} of them from one \
                 address; when all are taken, a connection from a less busy address closes \
                 the oldest one of the busiest. A connection has {} seconds to send its request.",
                tcp::MAX_CLIENTS,
                tcp::MAX_PER_SOURCE,
                tcp::REQUEST_DEADLINE.as_secs(),
            ))],
        ),
    ]
}

fn registry_sections() -> (Vec<Paragraph>, Vec<Section>) {
    let description = vec![
        text([roman(
            "rpyc-registry is RPyC's registry server: RPyC servers register their service \
             names and ports with it, and clients ask it where a service is \
             (rpyc.discover, rpyc.list_services). It listens on UDP, where it hears \
             broadcasts, or on TCP. A service is forgotten when it has not registered again \
             within the pruning timeout.",
        )]),
        text([
            roman("As a system service it is socket-activated: "),
            bold("systemctl start rpyc-registry.socket"),
            roman(
                " listens on UDP port 18811 on every address. It is not enabled or \
                   started when the package is installed.",
            ),
        ]),
    ];
    let mut environment = vec![environment_switches("RPYC_REGISTRY")];
    environment.push(tagged(
        [bold("RPYC_REGISTRY_OPTS")],
        [roman(
            "Not read by the daemon: rpyc-registry.service passes it on the command line, \
                for anything else.",
        )],
    ));
    environment.extend(systemd_environment());
    let sections = vec![
        Section {
            title: "LIMITS",
            paragraphs: registry_limits(),
        },
        Section {
            title: "ENVIRONMENT",
            paragraphs: environment,
        },
        signals(false),
        exit_status(),
        examples("registry"),
        Section {
            title: "FILES",
            paragraphs: vec![
                tagged(
                    [bold("/etc/default/rpyc-registry")],
                    [roman(
                        "Settings for the systemd units, every one commented out.",
                    )],
                ),
                tagged(
                    [
                        bold("/usr/lib/systemd/system/rpyc-registry.socket"),
                        roman(", "),
                        bold("rpyc-registry.service"),
                    ],
                    [roman(
                        "The units; change them with drop-ins (systemctl edit).",
                    )],
                ),
                tagged(
                    [bold("/usr/share/doc/rpycd/examples/systemd/registry-tcp/")],
                    [roman("Drop-ins for a TCP registry.")],
                ),
            ],
        },
        Section {
            title: "SEE ALSO",
            paragraphs: vec![text([
                bold("rpyc-classic"),
                roman("(8), "),
                bold("systemd.socket"),
                roman("(5), "),
                italic("https://rpyc.readthedocs.io/"),
            ])],
        },
    ];
    (description, sections)
}

fn serve_sections() -> (Vec<Paragraph>, Vec<Section>) {
    let description = vec![
        text([roman(
            "rpyc-serve serves a Python rpyc Service class, named as \
             package.module:ClassName, to stock rpyc clients (rpyc.connect, \
             rpyc.ssl_connect, rpyc.connect_by_service), with rpyc 6's service semantics: \
             each connection gets a new instance of the class as its root, whose \
             on_connect and on_disconnect are called; clients reach the names the \
             protocol configuration allows (by default those with the exposed_ prefix \
             and the safe special methods); the service registers under its ALIASES. \
             Every serving mode, socket option, TLS and registry switch of \
             rpyc-classic(8) works the same here. The class is imported once, before \
             anything is served, so a forking server's children start warm.",
        )]),
        text([
            roman("As a system service each instance is socket-activated: "),
            bold("systemctl start rpyc-serve@NAME.socket"),
            roman(
                " listens on /run/rpyc-serve/NAME.sock (a drop-in adds TCP addresses) and \
                   starts rpyc-serve@NAME.service, which reads its settings from ",
            ),
            bold("/etc/rpycd/serve/NAME.conf"),
            roman("."),
        ]),
    ];
    let mut environment = vec![environment_switches("RPYC_SERVE")];
    environment.push(tagged(
        [bold("RPYC_SERVE_OPTS")],
        [roman(
            "Not read by the daemon: rpyc-serve@.service passes it on the command line, \
                for anything else.",
        )],
    ));
    environment.extend(systemd_environment());
    environment.push(tagged(
        [bold("PYTHONPATH")],
        [roman(
            "Honoured by the embedded Python, like any other Python's; --path puts \
             directories before it.",
        )],
    ));
    let sections = vec![
        Section {
            title: "SECURITY",
            paragraphs: vec![text([roman(
                "Clients reach what the service exposes, and with --allow-public-attrs or \
                 --allow-all-attrs much more: review the class before opening it to a \
                 network, and use TLS with client certificates there. The daemon warns \
                 when it listens on a non-loopback address without TLS.",
            )])],
        },
        Section {
            title: "ENVIRONMENT",
            paragraphs: environment,
        },
        signals(true),
        exit_status(),
        examples("serve"),
        Section {
            title: "FILES",
            paragraphs: vec![
                tagged(
                    [bold("/etc/rpycd/serve/NAME.conf")],
                    [roman(
                        "The settings of instance NAME: RPYC_SERVE_SERVICE and any other \
                         variable above, one per line (systemd's EnvironmentFile= format).",
                    )],
                ),
                tagged(
                    [
                        bold("/usr/lib/systemd/system/rpyc-serve@.socket"),
                        roman(", "),
                        bold("rpyc-serve@.service"),
                    ],
                    [roman(
                        "The unit templates; give an instance its addresses and user with \
                         drop-ins (rpyc-serve@NAME.socket.d/, rpyc-serve@NAME.service.d/). \
                         The service's code cannot open listening sockets of its own (bind() \
                         and listen() are denied), and its tasks and memory are bounded \
                         (TasksMax=, LimitNPROC=, MemoryMax=); the classic server's bind/ and \
                         limits/ examples show the drop-ins that change that.",
                    )],
                ),
                tagged(
                    [bold("/usr/share/doc/rpycd/examples/systemd/serve/")],
                    [roman(
                        "A worked example: a calculator service, its settings and drop-ins.",
                    )],
                ),
            ],
        },
        Section {
            title: "SEE ALSO",
            paragraphs: vec![text([
                bold("rpyc-classic"),
                roman("(8), "),
                bold("rpyc-registry"),
                roman("(8), "),
                bold("systemd.socket"),
                roman("(5), "),
                italic("https://rpyc.readthedocs.io/en/latest/docs/services.html"),
            ])],
        },
    ];
    (description, sections)
}

fn render_paragraphs(roff: &mut Roff, paragraphs: &[Paragraph]) {
    for paragraph in paragraphs {
        match paragraph {
            Paragraph::Text(parts) => {
                roff.control("PP", []).text(parts.clone());
            }
            Paragraph::Tagged(term, parts) => {
                roff.control("TP", [])
                    .text(term.clone())
                    .text(parts.clone());
            }
        }
    }
}

/// The whole page: clap's title, name, synopsis, description and options,
/// our paragraphs and sections, then clap's version.
fn man_page(cmd: Command, description: &[Paragraph], sections: &[Section]) -> io::Result<Vec<u8>> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    // clap_mangen leaves visible aliases out (--help shows them): add them
    // to the help text, so that the page names every switch that works.
    let cmd = cmd.mut_args(|arg| {
        let aliases: Vec<String> = arg
            .get_visible_aliases()
            .into_iter()
            .flatten()
            .map(|alias| format!("--{alias}"))
            .collect();
        if aliases.is_empty() {
            return arg;
        }
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        arg.help(format!("{help} [alias: {}]", aliases.join(", ")))
    });
    let man = Man::new(cmd)
        .section("8")
        .manual("System Manager's Manual")
        .source(format!("rpycd {version}"));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    let mut ours = Roff::new();
    render_paragraphs(&mut ours, description);
    ours.to_writer(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut ours = Roff::new();
    for section in sections {
        ours.control("SH", [section.title]);
        render_paragraphs(&mut ours, &section.paragraphs);
    }
    ours.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn write(path: PathBuf, contents: &[u8], written: &mut Vec<PathBuf>) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, contents)?;
    written.push(path);
    Ok(())
}

/// Writes every page and completion under `out`; returns the paths written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let pages = [
        (ClassicArgs::command(), classic_sections()),
        (RegistryArgs::command(), registry_sections()),
        (ServeArgs::command(), serve_sections()),
    ];
    for (cmd, (description, sections)) in pages {
        let name = cmd.get_name().to_owned();
        let page = man_page(cmd.clone(), &description, &sections)?;
        write(
            out.join("man").join(format!("{name}.8")),
            &page,
            &mut written,
        )?;
        for (shell, dir, file) in [
            (Shell::Bash, "bash", name.clone()),
            (Shell::Zsh, "zsh", format!("_{name}")),
            (Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut script);
            write(out.join(dir).join(file), &script, &mut written)?;
        }
    }
    Ok(written)
}
