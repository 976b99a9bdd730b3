//! What each man page says beyond clap's OPTIONS: the description and
//! the sections of `rpyc-classic(8)`, `rpyc-registry(8)` and
//! `rpyc-serve(8)`.

use roff::{bold, italic, roman};

use crate::docs::{
    environment_switches, examples, exit_status, signals, systemd_environment, tagged, text,
    Paragraph, Section,
};

pub fn classic_sections() -> (Vec<Paragraph>, Vec<Section>) {
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
        text([
            roman(
                "The server does not need rpyc itself, but what rpyc runs on the server's \
                 side does: rpyc.utils.classic.teleport_function and deliver, and client \
                 code that imports rpyc, need the rpyc module importable by the daemon's \
                 Python (Debian's ",
            ),
            bold("python3-rpyc"),
            roman(", which the package recommends)."),
        ]),
        text([roman(
            "Clients of rpyc 6, 5 and 4 share a port, and so do rpyc 6 clients with              bind_threads on (RPYC_BIND_THREADS=true in the client's environment): their              callbacks run on the client thread that waits for them, and a request from              another client thread meanwhile is served beside the waiting one. An exception              that a client's code raises goes back to the client, as with rpyc's servers,              except KeyboardInterrupt, which ends that client's connection              (propagate_KeyboardInterrupt_locally); with --log-level debug each is logged              with its traceback.",
        )]),
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
                 a certificate from your CA can connect. The packaged units run it in the \
                 sandbox of a dynamic user (as the system user rpyc-classic, which the \
                 package makes so that the system D-Bus knows it) with a read-only view of \
                 the system.",
            )])],
        },
        Section {
            title: "DNS-SD",
            paragraphs: vec![text([roman(
                "With --dnssd the server asks the Avahi daemon (over the system D-Bus) to \
                 publish each TCP port it listens on as a _rpyc._tcp service named \"ALIAS \
                 on HOST\" (the first of the service's aliases, and Avahi's host name), \
                 with the TXT strings txtvers=1, aliases= (every alias, comma-separated: \
                 CLASSIC,SLAVE for the classic service) and tls=1 or tls=0. Ports on a \
                 loopback address are not published (other machines cannot reach them; \
                 the log says so), nor Unix sockets. A name another machine or program \
                 holds is changed as Avahi proposes (\"CLASSIC on HOST #2\"), and logged. \
                 The services are withdrawn when the server stops, published again when \
                 avahi-daemon restarts, and published once it starts if it was not \
                 running (one warning). Publishing runs in a process of its own, beside \
                 the server's.",
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
                        "Settings for the systemd units, commented out: the common ones; \
                         any variable of ENVIRONMENT may be added. The file is kept as it was \
                         first shipped, so that upgrading an edited copy asks nothing.",
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
                            registration, DNS-SD publishing, a logfile, higher task and \
                            memory bounds, listening sockets for clients' code) and \
                            inetd.conf and xinetd entries.",
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

pub fn registry_sections() -> (Vec<Paragraph>, Vec<Section>) {
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
            title: "DNS-SD",
            paragraphs: vec![
                text([roman(
                    "With --dnssd the registry also answers from DNS-SD: it asks the Avahi \
                     daemon (over the system D-Bus) to browse for _rpyc._tcp services, on \
                     every interface and protocol of this machine in Avahi's default domain \
                     (local, by multicast DNS on the links), or in each --dnssd-domain \
                     (a wide-area domain, by unicast DNS, as avahi-daemon.conf allows). \
                     Each service found is resolved to its address, port and TXT strings; \
                     its aliases= string names the services it answers for.",
                )]),
                text([roman(
                    "A QUERY (rpyc.discover) is answered with the registered servers first, \
                     then the found ones not among them; a LIST (rpyc.list_services, with \
                     --listing) with the registered names, then the found ones. A found \
                     service is answered for as long as Avahi reports it there (no pruning \
                     timeout): it goes when its server withdraws it or Avahi sees it expire, \
                     and all go while Avahi is not running. IPv6 link-local addresses are \
                     not answered (a client could not use them without their interface). \
                     Each service found and gone is logged. Without Avahi the registry \
                     logs one warning and answers from registrations until Avahi starts.",
                )]),
            ],
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
                        "Settings for the systemd units, commented out: the common ones; \
                         any variable of ENVIRONMENT may be added. The file is kept as it was \
                         first shipped, so that upgrading an edited copy asks nothing.",
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
                tagged(
                    [bold("/usr/share/doc/rpycd/examples/systemd/dnssd/")],
                    [roman(
                        "Drop-ins that turn on the DNS-SD gateway (and the classic \
                         server's publishing).",
                    )],
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
                bold("avahi-daemon"),
                roman("(8), "),
                bold("avahi-browse"),
                roman("(1), "),
                italic("https://rpyc.readthedocs.io/"),
            ])],
        },
    ];
    (description, sections)
}

pub fn serve_sections() -> (Vec<Paragraph>, Vec<Section>) {
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
        text([
            roman(
                "A service class that imports rpyc (class MyService(rpyc.Service), as \
                 rpyc's documentation writes them) needs the rpyc module importable by the \
                 daemon's Python: Debian's ",
            ),
            bold("python3-rpyc"),
            roman(", which the package recommends, or a --path directory that has it."),
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
