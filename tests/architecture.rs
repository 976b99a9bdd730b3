//! ARCHITECTURE.md's rules, checked on the source tree: what the compiler
//! cannot see (which module imports which) is read from the files, and
//! every path the map names must exist.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![root().join(dir)];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                found.push((path, text));
            }
        }
    }
    assert!(!found.is_empty(), "no sources under {dir}");
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The files under `dir` (but not under `allowed`) whose code mentions `what`.
fn users(dir: &str, allowed: &[&str], what: &str) -> Vec<String> {
    sources(dir)
        .into_iter()
        .filter(|(path, _)| {
            let path = relative(path);
            !allowed.iter().any(|allowed| path.starts_with(allowed))
        })
        .filter(|(_, text)| {
            text.lines()
                .any(|line| !line.trim_start().starts_with("//") && line.contains(what))
        })
        .map(|(path, _)| relative(&path))
        .collect()
}

#[test]
fn only_the_programs_use_the_command_line() {
    let users = users("src", &["src/app/", "src/cli/", "src/bin/"], "crate::cli");
    assert!(users.is_empty(), "outside app/ and bin/: {users:?}");
}

#[test]
fn only_app_exit_maps_errors_to_exit_codes() {
    let users = users("src", &["src/app/exit.rs"], "fn exit_code(");
    assert!(users.is_empty(), "exit codes chosen in {users:?}");
}

#[test]
fn the_registry_and_the_daemon_plumbing_do_not_import_the_server() {
    let registry = users("src/registry", &[], "crate::server");
    assert!(registry.is_empty(), "{registry:?}");
    let daemon = users("src/daemon", &[], "crate::server");
    let daemon_registry = users("src/daemon", &[], "crate::registry");
    assert!(
        daemon.is_empty() && daemon_registry.is_empty(),
        "{daemon:?} {daemon_registry:?}"
    );
}

#[test]
fn only_the_python_services_use_python() {
    let users = users("src", &["src/service/python/"], "pyo3");
    assert!(users.is_empty(), "{users:?}");
}

#[test]
fn services_know_nothing_of_servers_or_programs() {
    for above in [
        "crate::server",
        "crate::api",
        "crate::app",
        "crate::registry",
    ] {
        let users = users("src/service", &[], above);
        assert!(users.is_empty(), "{above} imported by {users:?}");
    }
}

/// A file over this many lines holds more than one idea; split it (a big
/// module's unit tests go beside it in `tests.rs`, which may be longer).
const MOST_LINES: usize = 620;

#[test]
fn no_source_file_outgrows_one_idea() {
    let mut too_long = Vec::new();
    for dir in ["src", "proto/src", "bench/src", "examples"] {
        for (path, text) in sources(dir) {
            let is_tests = path.file_name().is_some_and(|name| name == "tests.rs");
            let lines = text.lines().count();
            if !is_tests && lines > MOST_LINES {
                too_long.push(format!("{} ({lines} lines)", relative(&path)));
            }
        }
    }
    assert!(too_long.is_empty(), "{too_long:?}");
}

#[test]
fn the_protocol_crate_forbids_unsafe_code_and_knows_nothing_of_the_daemon() {
    let lib = std::fs::read_to_string(root().join("proto/src/lib.rs")).expect("proto's lib.rs");
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    let manifest =
        std::fs::read_to_string(root().join("proto/Cargo.toml")).expect("proto's manifest");
    for crate_name in ["pyo3", "nix", "libc", "rpycd ="] {
        assert!(
            !manifest.contains(crate_name),
            "proto depends on {crate_name}"
        );
    }
    let fuzz = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz's manifest");
    assert!(fuzz.contains("rpycd-proto") && !fuzz.contains("rpycd = "));
}

/// The map is only useful while it is true: every path it names exists.
#[test]
fn every_path_in_the_map_exists() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut checked = 0;
    for (at, quoted) in map.split('`').enumerate() {
        // odd pieces are inside backticks
        let looks_like_a_path = quoted.contains('/')
            && !quoted.contains(' ')
            && !quoted.contains("::")
            && [
                "src/",
                "proto/",
                "bench/",
                "fuzz/",
                "tests/",
                "systemd/",
                "debian/",
                "packaging/",
                "examples/",
            ]
            .iter()
            .any(|top| quoted.starts_with(top));
        if at % 2 == 1 && looks_like_a_path {
            assert!(
                root().join(quoted.trim_end_matches('*')).exists(),
                "ARCHITECTURE.md names {quoted}, which does not exist"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} paths found in ARCHITECTURE.md"
    );
}
