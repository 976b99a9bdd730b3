//! The logger's unit tests: line shapes, levels, destinations.

use super::*;
use std::path::Path;

fn temp_path(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rpycd-log-unit-{}-{test}.log", std::process::id()))
}

/// The lines of a logfile without their timestamps.
fn bodies(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read logfile");
    text.lines()
        .map(|line| line.split_once(' ').expect("timestamp").1.to_owned())
        .collect()
}

#[test]
fn logger_is_shareable_between_threads() {
    fn assert_shareable<T: Clone + Send + Sync>() {}
    assert_shareable::<Logger>();
}

#[test]
fn lines_have_the_seeds_shape_and_quiet_keeps_errors_only() {
    let path = temp_path("quiet");
    let _ = std::fs::remove_file(&path);
    let quiet =
        Logger::open("SLAVE/18812", Destination::File(path.clone()), true).expect("open logfile");
    let loud = quiet.renamed("REGSRV/UDP/18811").with_level(Level::Info);
    for log in [&quiet, &loud] {
        log.debug(format_args!("hidden"));
        log.info(format_args!("accepted {}:{}", "127.0.0.1", 34044));
        log.warning(format_args!("keyboard interrupt!"));
        log.error(format_args!("boom"));
    }
    let lines = bodies(&path);
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(
        lines,
        [
            "ERROR:SLAVE/18812:boom",
            "INFO:REGSRV/UDP/18811:accepted 127.0.0.1:34044",
            "WARNING:REGSRV/UDP/18811:keyboard interrupt!",
            "ERROR:REGSRV/UDP/18811:boom",
        ]
    );
}

#[test]
fn a_peer_chosen_newline_cannot_forge_a_line() {
    let path = temp_path("forged");
    let _ = std::fs::remove_file(&path);
    let log =
        Logger::open("REGSRV/UDP/1", Destination::File(path.clone()), false).expect("open logfile");
    let alias = "X\nERROR:REGSRV/UDP/1:forged line\u{0}\u{7f}";
    log.info(format_args!("registering 127.0.0.1:1 as {alias}"));
    log.info(format_args!("plain ünïcode stays, 中文 too"));
    log.info(format_args!("a\u{2028}b\u{2029}c, txt.\u{202e}exe"));
    let lines = bodies(&path);
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(
        lines,
        [
            "INFO:REGSRV/UDP/1:registering 127.0.0.1:1 as X\\nERROR:REGSRV/UDP/1:forged line\\0\\u{7f}",
            "INFO:REGSRV/UDP/1:plain ünïcode stays, 中文 too",
            "INFO:REGSRV/UDP/1:a\\u{2028}b\\u{2029}c, txt.\\u{202e}exe",
        ]
    );
}

#[test]
fn debug_lines_need_the_debug_level() {
    let path = temp_path("debug");
    let _ = std::fs::remove_file(&path);
    let log =
        Logger::open("SLAVE/1", Destination::File(path.clone()), false).expect("open logfile");
    log.debug(format_args!("off by default"));
    log.with_level(Level::Debug)
        .debug(format_args!("seq {}", 7));
    let lines = bodies(&path);
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(lines, ["DEBUG:SLAVE/1:seq 7"]);
}

fn limited_logger(path: &Path, burst: u32) -> Logger {
    let file = LogFile::open(path.to_owned()).expect("open logfile");
    let rule = Rule {
        interval: std::time::Duration::from_secs(30),
        burst,
    };
    Logger::with_rule("SLAVE/1", Sink::File(Mutex::new(file)), false, rule)
}

fn at(start: Instant, secs: u64) -> Instant {
    start + std::time::Duration::from_secs(secs)
}

#[test]
fn a_flood_writes_its_burst_then_one_count_when_the_interval_ends() {
    let path = temp_path("flood");
    let _ = std::fs::remove_file(&path);
    let log = limited_logger(&path, 2);
    let start = Instant::now();
    for port in 1..=5 {
        log.emit(
            Some(Flood::Accepted),
            Level::Info,
            format_args!("accepted 127.0.0.1:{port}"),
            at(start, 1),
        );
    }
    // other lines go on meanwhile, limited or not
    log.emit(
        Some(Flood::Refused),
        Level::Warning,
        format_args!("refusing 127.0.0.1:9"),
        at(start, 2),
    );
    log.emit(None, Level::Info, format_args!("unlimited"), at(start, 3));
    // the first line after the interval carries the count
    log.emit(None, Level::Info, format_args!("later"), at(start, 31));
    log.emit(
        Some(Flood::Accepted),
        Level::Info,
        format_args!("accepted 127.0.0.1:6"),
        at(start, 32),
    );
    let lines = bodies(&path);
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(
        lines,
        [
            "INFO:SLAVE/1:accepted 127.0.0.1:1",
            "INFO:SLAVE/1:accepted 127.0.0.1:2",
            "WARNING:SLAVE/1:refusing 127.0.0.1:9",
            "INFO:SLAVE/1:unlimited",
            "WARNING:SLAVE/1:3 similar messages suppressed (accepted connections: more than 2 in 30s)",
            "INFO:SLAVE/1:later",
            "INFO:SLAVE/1:accepted 127.0.0.1:6",
        ]
    );
}

#[test]
fn counts_are_written_when_the_daemon_stops_or_the_last_clone_goes() {
    let path = temp_path("flush");
    let _ = std::fs::remove_file(&path);
    let log = limited_logger(&path, 1);
    let renamed = log.renamed("REGSRV/UDP/1");
    for _ in 0..3 {
        log.limited(Flood::Goodbye)
            .info(format_args!("goodbye 127.0.0.1:1"));
        renamed
            .limited(Flood::Registered)
            .info(format_args!("registering 127.0.0.1:1 as A"));
    }
    log.flush_suppressed();
    log.flush_suppressed();
    renamed
        .limited(Flood::Registered)
        .warning(format_args!("registering 127.0.0.1:1 as B"));
    drop(log);
    drop(renamed);
    let lines = bodies(&path);
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(
        lines,
        [
            "INFO:SLAVE/1:goodbye 127.0.0.1:1",
            "INFO:REGSRV/UDP/1:registering 127.0.0.1:1 as A",
            "WARNING:SLAVE/1:2 similar messages suppressed (goodbyes: more than 1 in 30s)",
            "WARNING:REGSRV/UDP/1:2 similar messages suppressed (registrations: more than 1 in 30s)",
            "WARNING:REGSRV/UDP/1:1 similar messages suppressed (registrations: more than 1 in 30s)",
        ]
    );
}

#[test]
fn lines_below_the_level_are_not_counted() {
    let path = temp_path("quiet-flood");
    let _ = std::fs::remove_file(&path);
    let file = LogFile::open(path.clone()).expect("open logfile");
    let rule = Rule {
        interval: std::time::Duration::from_secs(30),
        burst: 1,
    };
    let log = Logger::with_rule("SLAVE/1", Sink::File(Mutex::new(file)), true, rule);
    for _ in 0..5 {
        log.limited(Flood::Accepted)
            .info(format_args!("accepted 127.0.0.1:1"));
    }
    log.flush_suppressed();
    drop(log);
    let text = std::fs::read_to_string(&path).expect("read logfile");
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(text, "");
}

#[test]
fn a_forked_child_forgets_the_parents_counts() {
    let path = temp_path("forget");
    let _ = std::fs::remove_file(&path);
    let log = limited_logger(&path, 1);
    for _ in 0..3 {
        log.limited(Flood::Welcome)
            .info(format_args!("welcome 127.0.0.1:1"));
    }
    log.forget_suppressed();
    log.limited(Flood::Welcome)
        .info(format_args!("welcome 127.0.0.1:2"));
    drop(log);
    let lines = bodies(&path);
    std::fs::remove_file(&path).expect("remove logfile");
    assert_eq!(
        lines,
        [
            "INFO:SLAVE/1:welcome 127.0.0.1:1",
            "INFO:SLAVE/1:welcome 127.0.0.1:2",
        ]
    );
}

#[test]
fn silent_logs_nothing_and_reopens_nothing() {
    let log = Logger::silent();
    log.error(format_args!("nowhere"));
    log.reopen();
}
