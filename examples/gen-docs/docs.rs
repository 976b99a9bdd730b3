//! How man pages and completions are made and written; what each page
//! says is in `pages.rs`. `tests/packaging.rs` includes both files too, to
//! check what they write.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, roman, Inline, Roff};
use rpycd::cli::serve::ServeArgs;
use rpycd::cli::{ClassicArgs, RegistryArgs};

use crate::pages::{classic_sections, registry_sections, serve_sections};

/// One man page section of our own, after clap's OPTIONS.
pub(crate) struct Section {
    pub(crate) title: &'static str,
    /// Paragraphs; a paragraph that starts with a term is rendered as a
    /// tagged paragraph (`.TP`): term, then the text indented below it.
    pub(crate) paragraphs: Vec<Paragraph>,
}

pub(crate) enum Paragraph {
    Text(Vec<Inline>),
    Tagged(Vec<Inline>, Vec<Inline>),
}

pub(crate) fn text(parts: impl Into<Vec<Inline>>) -> Paragraph {
    Paragraph::Text(parts.into())
}

pub(crate) fn tagged(term: impl Into<Vec<Inline>>, parts: impl Into<Vec<Inline>>) -> Paragraph {
    Paragraph::Tagged(term.into(), parts.into())
}

/// What the two pages share: how a switch is also an environment variable.
pub(crate) fn environment_switches(prefix: &str) -> Paragraph {
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

pub(crate) fn prefix_to_name(prefix: &str) -> &'static str {
    if prefix == "RPYC_CLASSIC" {
        "rpyc-classic"
    } else {
        "rpyc-registry"
    }
}

pub(crate) fn systemd_environment() -> Vec<Paragraph> {
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

pub(crate) fn exit_status() -> Section {
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
pub(crate) fn examples(program: &str) -> Section {
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
            example(
                &format!("rpyc-classic --host :: --proxy-protocol-from 192.0.2.10 {tls}"),
                "Serve behind the load balancer 192.0.2.10 (HAProxy with send-proxy-v2, nginx \
                 with proxy_protocol on), whose connections begin with a PROXY header naming \
                 the client: the log shows the client's address, not the balancer's. Under \
                 systemd: /usr/share/doc/rpycd/examples/systemd/proxy/.",
            ),
            example(
                "cp -r /usr/share/doc/rpycd/examples/systemd/allow/. /etc/systemd/system/; \
                 systemctl daemon-reload; systemctl restart rpyc-classic.socket",
                "Accept clients from the addresses the drop-in lists only (edit its \
                 IPAddressAllow= lines first): systemd drops the packets of every other \
                 address before they reach the socket, and such a client's connection times \
                 out. Who a client is, TLS client certificates decide.",
            ),
            example(
                &format!("rpyc-classic --host :: --dnssd {tls}"),
                "Serve on every address and publish the port through DNS-SD: `avahi-browse \
                 -rt _rpyc._tcp` on another machine of the link shows \"CLASSIC on HOST\", and \
                 an rpyc-registry with --dnssd answers rpyc.discover(\"CLASSIC\") with it. \
                 Under systemd: /usr/share/doc/rpycd/examples/systemd/dnssd/ with tls/.",
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
            example(
                "rpyc-registry --dnssd --listing",
                "Answer rpyc.discover() and rpyc.list_services() from the servers that \
                 publish through DNS-SD on this machine's links (rpyc-classic --dnssd) as \
                 well as from registrations.",
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
            example(
                "rpyc-serve --path /opt/calculator --authenticator auth:check_secret \
                 calculator:CalculatorService",
                "Call check_secret(sock) of /opt/calculator/auth.py for each connection \
                 before rpyc's protocol starts, as rpyc's servers call their authenticator: \
                 it returns (sock, credentials), which the service reads as \
                 conn._config[\"credentials\"], or raises rpyc's AuthenticationError to turn \
                 the client away (logged with its address). With the --ssl switches it runs \
                 after TLS, on the decrypted bytes, and its socket has getpeercert().",
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
pub(crate) fn signals(serves_requests: bool) -> Section {
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
