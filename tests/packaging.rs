//! The packaging files are code: these tests hold them to the clap
//! definitions and to Cargo.toml, so that the man pages, /etc/default
//! files, units and debian/changelog cannot drift from the binaries.
//! (tests/system/ installs the package in a booted Debian and uses it.)

#[path = "../examples/gen-docs/docs.rs"]
mod docs;
#[path = "../examples/gen-docs/pages.rs"]
mod pages;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use rpycd::cli::serve::ServeArgs;
use rpycd::cli::{ClassicArgs, RegistryArgs};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The switches a user can type: long names and aliases, hidden ones
/// (refused on purpose, like --vdb) left out.
fn long_switches(cmd: &Command) -> Vec<String> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut switches = Vec::new();
    for arg in cmd.get_arguments().filter(|arg| !arg.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            switches.push(format!("--{long}"));
        }
        for alias in arg.get_visible_aliases().into_iter().flatten() {
            switches.push(format!("--{alias}"));
        }
    }
    switches
}

fn env_vars(cmd: &Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

fn commands() -> [Command; 3] {
    [
        ClassicArgs::command(),
        RegistryArgs::command(),
        ServeArgs::command(),
    ]
}

/// Generates the docs once per test into a directory of its own.
fn generated(test: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gen-docs-{test}"));
    let _ = fs::remove_dir_all(&out);
    docs::generate(&out).expect("gen-docs writes its files");
    out
}

/// roff escapes hyphens as `\-`; undo that to search the text.
fn man_text(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("\\-", "-")
}

#[test]
fn man_pages_mention_every_long_switch_and_variable() {
    let out = generated("man");
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        let page = man_text(&out.join("man").join(format!("{name}.8")));
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{name}: no title"
        );
        assert!(
            page.contains(&format!(".TH {name} 8")),
            "{name}: not in section 8"
        );
        let switches = long_switches(&cmd);
        assert!(switches.len() > 5, "{name}: too few switches: {switches:?}");
        for switch in switches {
            assert!(page.contains(&switch), "{name}(8) lacks {switch}");
        }
        for var in env_vars(&cmd) {
            assert!(page.contains(&var), "{name}(8) lacks {var}");
        }
        for section in [
            "EXAMPLES",
            "ENVIRONMENT",
            "EXIT STATUS",
            "FILES",
            "SEE ALSO",
        ] {
            assert!(
                page.contains(&format!(".SH \"{section}\""))
                    || page.contains(&format!(".SH {section}")),
                "{name}(8) lacks {section}"
            );
        }
    }
}

#[test]
fn completions_know_every_long_switch() {
    let out = generated("completions");
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        for file in [
            format!("bash/{name}"),
            format!("zsh/_{name}"),
            format!("fish/{name}.fish"),
        ] {
            let script = fs::read_to_string(out.join(&file)).expect(&file);
            for switch in long_switches(&cmd) {
                // fish writes `-l port` rather than `--port`
                let fish = format!("-l {}", &switch[2..]);
                assert!(
                    script.contains(&switch) || script.contains(&fish),
                    "{file} lacks {switch}"
                );
            }
        }
    }
}

/// Every variable the daemon reads is in its /etc/default file, commented
/// out (so that the shipped file changes nothing), and nothing else is.
#[test]
fn default_files_list_every_variable_commented() {
    // rpyc-serve has a settings file per instance instead (see
    // serve_example_settings_list_every_variable).
    //
    // The files are conffiles that administrators edit: a new version of
    // one would make dpkg ask about it on every upgrade of an edited copy
    // (tests/system/test_upgrade.py upgrades one and checks nothing is
    // asked). So they keep the variables they listed in the first
    // release, and no variable the daemons do not read; every variable
    // is in the man pages' ENVIRONMENT section, which the files point to.
    for cmd in [ClassicArgs::command(), RegistryArgs::command()] {
        let name = cmd.get_name().to_owned();
        let file = read(&format!("packaging/default/{name}"));
        let opts = format!("{}_OPTS", env_vars(&cmd)[0].rsplit_once('_').unwrap().0);
        let prefix = opts.trim_end_matches("OPTS").to_owned();
        let mut listed = BTreeSet::new();
        for line in file.lines() {
            let line = line.trim();
            assert!(
                line.is_empty() || line.starts_with('#'),
                "{name}: an active setting in the shipped file: {line:?}"
            );
            let Some(setting) = line.strip_prefix('#') else {
                continue;
            };
            if let Some((var, _)) = setting.split_once('=') {
                if var.starts_with(&prefix) && !var.contains(' ') {
                    listed.insert(var.to_owned());
                }
            }
        }
        let mut read: BTreeSet<String> = env_vars(&cmd).into_iter().collect();
        read.insert(opts.clone());
        let stale: Vec<_> = listed.difference(&read).collect();
        assert!(
            stale.is_empty(),
            "packaging/default/{name} lists {stale:?}, which it does not read"
        );
        assert!(
            listed.contains(&opts),
            "packaging/default/{name}: {listed:?}"
        );
        assert!(
            file.contains(&format!("{name}(8)")),
            "packaging/default/{name} must point to {name}(8) for the other variables"
        );
    }
}

/// The Debian revision aside, debian/changelog's version is Cargo.toml's.
#[test]
fn debian_changelog_matches_cargo_version() {
    let changelog = read("debian/changelog");
    let first = changelog.lines().next().expect("a first line");
    let version = first
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(version, _)| version)
        .unwrap_or_else(|| panic!("no version in {first:?}"));
    let upstream = version.rsplit_once('-').map_or(version, |(up, _)| up);
    assert!(first.starts_with("rpycd ("), "{first}");
    assert_eq!(
        upstream,
        env!("CARGO_PKG_VERSION"),
        "debian/changelog: {first}"
    );
}

/// debian/copyright names the licence Cargo.toml declares.
#[test]
fn debian_copyright_matches_cargo_license() {
    let copyright = read("debian/copyright");
    let license = env!("CARGO_PKG_LICENSE");
    assert!(
        copyright.contains(&format!("License: {license}\n")),
        "debian/copyright does not license the files under {license}"
    );
}

fn units() -> Vec<String> {
    let mut units: Vec<String> = fs::read_dir(repo().join("systemd"))
        .expect("systemd/")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".socket") || name.ends_with(".service"))
        .collect();
    units.sort();
    units
}

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn units_are_the_ones_the_design_names() {
    assert_eq!(
        units(),
        [
            "rpyc-classic-stdio.socket",
            "rpyc-classic-stdio@.service",
            "rpyc-classic.service",
            "rpyc-classic.socket",
            "rpyc-registry.service",
            "rpyc-registry.socket",
            "rpyc-serve@.service",
            "rpyc-serve@.socket",
        ]
    );
}

#[test]
fn services_run_the_packaged_binaries_hardened() {
    for name in units().iter().filter(|name| name.ends_with(".service")) {
        let unit = read(&format!("systemd/{name}"));
        let exec = values(&unit, "ExecStart");
        assert_eq!(exec.len(), 1, "{name}: {exec:?}");
        let binary = exec[0].split_whitespace().next().unwrap();
        assert!(
            [
                "/usr/bin/rpyc-classic",
                "/usr/bin/rpyc-registry",
                "/usr/bin/rpyc-serve"
            ]
            .contains(&binary),
            "{name} runs {binary}"
        );
        let daemon = binary.trim_start_matches("/usr/bin/");
        let defaults = if daemon == "rpyc-serve" {
            // an instance without its settings must not start
            "/etc/rpycd/serve/%i.conf".to_owned()
        } else {
            format!("-/etc/default/{daemon}")
        };
        assert_eq!(
            values(&unit, "EnvironmentFile"),
            [defaults.as_str()],
            "{name}"
        );
        for setting in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=",
            "SystemCallFilter=@system-service",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        ] {
            assert!(
                unit.lines().any(|line| line == setting),
                "{name} lacks {setting}"
            );
        }
        if name.contains("stdio@") {
            assert!(exec[0].contains("--mode stdio"), "{name}");
            for setting in ["StandardInput=socket", "StandardError=journal"] {
                assert!(
                    unit.lines().any(|line| line == setting),
                    "{name}: {setting}"
                );
            }
        } else {
            assert_eq!(values(&unit, "Type"), ["notify"], "{name}");
            assert_eq!(values(&unit, "Restart"), ["on-failure"], "{name}");
            assert!(!values(&unit, "WatchdogSec").is_empty(), "{name}");
        }
    }
}

/// The code a service runs (clients' code, in the classic service) cannot
/// open listeners of its own, and what it may take from the machine is
/// bounded: the daemons get their sockets from systemd and need neither
/// bind() nor listen().
#[test]
fn services_deny_listeners_and_bound_tasks_and_memory() {
    for name in units().iter().filter(|name| name.ends_with(".service")) {
        let unit = read(&format!("systemd/{name}"));
        for setting in ["SystemCallFilter=~bind listen", "SocketBindDeny=any"] {
            assert!(
                unit.lines().any(|line| line == setting),
                "{name} lacks {setting}"
            );
        }
        for key in ["TasksMax", "MemoryMax"] {
            let set = values(&unit, key);
            assert!(
                set.len() == 1 && !set[0].is_empty() && set[0] != "infinity",
                "{name}: {key}={set:?}"
            );
        }
        // the registry runs nobody's code and has no network of its own
        if !name.starts_with("rpyc-registry") {
            assert_eq!(values(&unit, "LimitNPROC").len(), 1, "{name}");
        }
    }
}

/// Each example folder holds drop-in directories for units we ship.
#[test]
fn examples_are_drop_ins_for_shipped_units() {
    let units = units();
    let examples = repo().join("systemd/examples");
    let readme = read("systemd/examples/README.md");
    let mut count = 0;
    for example in fs::read_dir(&examples).expect("examples") {
        let example = example.expect("entry").path();
        if !example.is_dir() {
            continue;
        }
        let folder = example.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            readme.contains(&format!("`{folder}/`")),
            "README lacks {folder}"
        );
        for dropin_dir in fs::read_dir(&example).expect("example") {
            let dropin_dir = dropin_dir.expect("entry").path();
            let dir_name = dropin_dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // the serve example also carries its settings file (rpycd/, for
            // /etc/rpycd/), the service's code and a README; another may
            // carry a file the examples' README names (proxy/haproxy.cfg)
            if folder == "serve" && (dir_name == "rpycd" || !dropin_dir.is_dir()) {
                continue;
            }
            if !dropin_dir.is_dir() {
                assert!(
                    readme.contains(&format!("`{dir_name}`")),
                    "{folder}/{dir_name}: neither a drop-in directory nor named in the README"
                );
                continue;
            }
            let unit = dir_name
                .strip_suffix(".d")
                .unwrap_or_else(|| panic!("{folder}/{dir_name}: not a drop-in directory"));
            // a drop-in for one instance of a template: rpyc-serve@x.socket
            let template = match unit.split_once('@') {
                Some((name, rest)) => {
                    let kind = rest.rsplit_once('.').map_or("", |(_, kind)| kind);
                    format!("{name}@.{kind}")
                }
                None => unit.to_owned(),
            };
            assert!(units.contains(&template), "{folder}: no unit {unit}");
            for conf in fs::read_dir(&dropin_dir).expect("drop-ins") {
                let conf = conf.expect("entry").path();
                assert_eq!(
                    conf.extension().unwrap_or_default(),
                    "conf",
                    "{}",
                    conf.display()
                );
                count += 1;
            }
        }
    }
    assert!(count >= 5, "only {count} drop-ins");
}

#[test]
fn inetd_entries_run_stdio_mode() {
    let inetd = read("packaging/inetd.conf");
    let entries: Vec<&str> = inetd
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let fields: Vec<&str> = entries[0].split_whitespace().collect();
    assert_eq!(&fields[1..4], ["stream", "tcp", "nowait"], "{fields:?}");
    assert_eq!(fields[5], "/usr/bin/rpyc-classic");
    assert_eq!(&fields[6..9], ["rpyc-classic", "--mode", "stdio"]);
    // inetd gives fd 2 to the client too: without a log destination of
    // its own the daemon would log nothing.
    assert!(fields.contains(&"--syslog") || fields.contains(&"--logfile"));

    let xinetd = read("packaging/xinetd.d/rpyc-classic");
    let setting = |key: &str| {
        xinetd
            .lines()
            .filter_map(|line| line.trim().strip_prefix(key))
            .filter_map(|rest| rest.trim_start().strip_prefix('='))
            .map(str::trim)
            .next()
            .unwrap_or_else(|| panic!("xinetd entry lacks {key}"))
    };
    assert_eq!(setting("server"), "/usr/bin/rpyc-classic");
    assert!(setting("server_args").starts_with("--mode stdio"));
    assert_eq!(setting("wait"), "no");
    assert_eq!(setting("socket_type"), "stream");
}

/// Every file debian/rpycd.install names exists, or is made by the build.
#[test]
fn debian_install_sources_exist() {
    let install = read("debian/rpycd.install");
    for line in install
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let source = line.split_whitespace().next().unwrap();
        if source.starts_with("debian/cargo-target/") || source.starts_with("debian/generated/") {
            continue;
        }
        let dir = Path::new(source).parent().unwrap();
        let pattern = Path::new(source)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let found = fs::read_dir(repo().join(dir))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .any(|name| match pattern.split_once('*') {
                Some((head, tail)) => name.starts_with(head) && name.ends_with(tail),
                None => name == pattern,
            });
        assert!(found, "debian/rpycd.install: {source} matches nothing");
    }
}

/// The package is rpycd's binaries only: debian/rules builds the rpycd
/// package of the workspace, never bench/'s rpycd-bench, and installs no
/// rpycd-bench.
#[test]
fn debian_build_leaves_the_bench_out() {
    let rules = read("debian/rules");
    let builds: Vec<&str> = rules
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("cargo build"))
        .collect();
    assert!(!builds.is_empty(), "debian/rules runs no cargo build");
    for build in builds {
        let words: Vec<&str> = build.split_whitespace().collect();
        assert!(
            words.windows(2).any(|w| w == ["-p", "rpycd"]),
            "debian/rules: {build:?} does not select -p rpycd"
        );
        assert!(
            !words.contains(&"--workspace") && !words.contains(&"--all"),
            "debian/rules: {build:?} builds the whole workspace"
        );
    }
    assert!(!read("debian/rpycd.install").contains("rpycd-bench"));
}

/// The serve example's settings file names only variables rpyc-serve reads.
#[test]
fn serve_example_settings_name_real_variables() {
    let file = read("systemd/examples/serve/rpycd/serve/calculator.conf");
    let known: BTreeSet<String> = env_vars(&ServeArgs::command()).into_iter().collect();
    let mut active = 0;
    for line in file.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let setting = line.strip_prefix('#').unwrap_or(line);
        let Some((var, _)) = setting.split_once('=') else {
            continue;
        };
        if var.contains(' ') {
            continue;
        }
        if !line.starts_with('#') {
            active += 1;
        }
        assert!(
            known.contains(var) || var == "RPYC_SERVE_OPTS",
            "calculator.conf: {var} is not a variable of rpyc-serve"
        );
    }
    assert_eq!(active, 2, "the service and its path, nothing else");
}

/// Words a user cannot look up: the project's internal history (issue and
/// session numbers, "the seed" its first request was called). Text a user
/// reads speaks of switches, files and behaviour instead.
fn internal_words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for phrase in ["the seed", "seed's", "the seed's"] {
        if lower.contains(phrase) {
            found.push(phrase.to_owned());
        }
    }
    for word in ["issue", "session", "sessions"] {
        for (at, _) in lower.match_indices(&format!("{word} ")) {
            let before = lower[..at].chars().next_back();
            let after = &lower[at + word.len() + 1..];
            let numbered = after.starts_with(|c: char| c.is_ascii_digit());
            if numbered && !before.is_some_and(|c| c.is_alphanumeric()) {
                found.push(format!("{word} {}", &after[..after.len().min(3)]));
            }
        }
    }
    found
}

#[test]
fn user_facing_text_has_no_internal_words() {
    let mut texts: Vec<(String, String)> = Vec::new();
    for file in ["README.md", "BENCH.md", "RELIABILITY.md"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        texts.push((file.to_owned(), text));
    }
    for mut cmd in commands() {
        let name = cmd.get_name().to_owned();
        texts.push((format!("{name} --help"), cmd.render_long_help().to_string()));
    }
    let out = generated("words");
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        let page = out.join("man").join(format!("{name}.8"));
        texts.push((format!("{name}(8)"), man_text(&page)));
    }
    let offending: Vec<String> = texts
        .iter()
        .filter_map(|(what, text)| {
            let words = internal_words(text);
            (!words.is_empty()).then(|| format!("{what}: {words:?}"))
        })
        .collect();
    assert!(offending.is_empty(), "{offending:#?}");
}

#[test]
fn internal_words_are_found() {
    assert_eq!(internal_words("as the seed describes"), ["the seed"]);
    assert_eq!(internal_words("fixed in session 5."), ["session 5."]);
    assert_eq!(internal_words("(Issue 9, point 4)"), ["issue 9, "]);
    assert!(internal_words("a session 's state; tissue 5; 5 sessions").is_empty());
}

/// BENCH.md shows one run of the harness: its table is the one
/// bench/latest/results.json holds, and every chart it shows is that run's.
#[test]
fn bench_md_shows_the_published_run() {
    let bench = read("BENCH.md");
    let results: serde_json::Value =
        serde_json::from_str(&read("bench/latest/results.json")).expect("results.json is JSON");
    let table = results["table"]
        .as_str()
        .expect("results.json has the table");
    let shown = bench
        .split("```\n")
        .find(|block| block.starts_with("workload "))
        .expect("BENCH.md shows the table in a ``` block that starts with its header");
    assert_eq!(
        shown, table,
        "BENCH.md's table is not bench/latest/results.json's"
    );
    let commit = results["commit"].as_str().unwrap_or_default();
    let short = &commit[..commit.len().min(7)];
    assert!(
        !short.is_empty() && bench.contains(short),
        "BENCH.md does not name the run's commit {short}"
    );
    let images: Vec<&str> = bench
        .match_indices("](bench/latest/")
        .map(|(at, _)| {
            let rest = &bench[at + 2..];
            &rest[..rest.find(')').unwrap_or(rest.len())]
        })
        .collect();
    for chart in ["throughput.png", "startup.png", "memory.png", "bulk.png"] {
        let path = format!("bench/latest/{chart}");
        assert!(
            images.contains(&path.as_str()),
            "BENCH.md does not show {path}"
        );
        assert!(repo().join(&path).is_file(), "{path} is missing");
    }
}
