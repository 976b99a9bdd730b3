//! Log lines in the seed's shape: `INFO:SLAVE/18812:accepted 127.0.0.1:34044`,
//! written to stderr, a logfile or syslog, chosen once at start-up.
//!
//! A [`Logger`] is a name plus a shared destination; clones go into every
//! connection thread. Each line reaches its destination in one write under a
//! lock, so lines of concurrent threads never interleave, and a failed write
//! is dropped: a full disk or a stopped syslog daemon must not stop serving.
//! What peers choose is escaped ([`escape`]), and the lines they can cause
//! at will are kept to a rate ([`ratelimit`]).

mod escape;
mod journal;
mod logfile;
mod ratelimit;
mod syslog;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sync::lock;
use logfile::LogFile;
use ratelimit::{Admission, Limiter, Rule, Suppressed};

pub use ratelimit::{Flood, BURST, INTERVAL};

/// Whether fd 2 is systemd's journal (`JOURNAL_STREAM`): a socket, but
/// never a client's, so stdio mode may log there.
pub fn stderr_is_journal() -> bool {
    journal::stderr_is_journal()
}

/// The local syslog daemon's socket (journald's or rsyslog's on Linux).
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Python logging's level names, which the seed's lines carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        })
    }
}

/// Where log lines go; one per process, picked from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Stderr, with journal priority prefixes when it is systemd's journal.
    Stderr,
    /// A file appended to, each line prefixed with a UTC timestamp.
    File(PathBuf),
    /// The local syslog daemon through [`SYSLOG_SOCKET`], facility daemon;
    /// `ident` is the program name syslog shows (the binary's name).
    Syslog { ident: String },
    /// Both a file and syslog, when both were asked for (one given in
    /// /etc/default, the other by a unit, say): neither is dropped.
    FileAndSyslog { path: PathBuf, ident: String },
    /// Nowhere: for stdio mode, where stderr may be the client's socket.
    Silent,
}

impl Destination {
    /// Where `--logfile` and `--syslog` send lines; `otherwise` without
    /// either.
    pub fn chosen(
        logfile: Option<&std::path::Path>,
        syslog: bool,
        ident: &str,
        otherwise: Destination,
    ) -> Destination {
        let ident = ident.to_owned();
        match (logfile, syslog) {
            (Some(path), true) => Destination::FileAndSyslog {
                path: path.to_owned(),
                ident,
            },
            (Some(path), false) => Destination::File(path.to_owned()),
            (None, true) => Destination::Syslog { ident },
            (None, false) => otherwise,
        }
    }
}

/// A destination that cannot be used; found before the daemon binds anything.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open logfile {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to syslog at {}: {source}", socket.display())]
    Syslog {
        socket: PathBuf,
        source: ::syslog::Error,
    },
}

enum Sink {
    Stderr { journal: bool },
    File(Mutex<LogFile>),
    Syslog(Mutex<syslog::SyslogSink>),
    Both(Box<[Sink; 2]>),
    Silent,
}

impl Sink {
    fn write(&self, level: Level, name: &str, message: &str) {
        match self {
            Sink::Stderr { journal } => {
                let prefix = if *journal {
                    journal::priority_prefix(level)
                } else {
                    ""
                };
                let line = format!("{prefix}{level}:{name}:{message}\n");
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::File(file) => {
                let line = format!("{level}:{name}:{message}\n");
                lock(file).write_line(&line);
            }
            Sink::Syslog(syslog) => {
                lock(syslog).send(level, format_args!("{name}:{message}"));
            }
            Sink::Both(sinks) => {
                for sink in sinks.iter() {
                    sink.write(level, name, message);
                }
            }
            Sink::Silent => {}
        }
    }
}

/// What a logger's clones share: the destination, and the rate of the
/// lines peers can cause.
struct Shared {
    sink: Sink,
    limiter: Limiter,
}

impl Shared {
    fn write_suppressed(&self, suppressed: &Suppressed) {
        let message = suppressed.message(self.limiter.rule());
        self.sink
            .write(suppressed.level, &suppressed.name, &message);
    }
}

impl Drop for Shared {
    /// The last clone is gone (the daemon is stopping): the counts not
    /// written yet are written now.
    fn drop(&mut self) {
        for suppressed in self.limiter.take_all() {
            self.write_suppressed(&suppressed);
        }
    }
}

/// A named logger (`SLAVE/18812`), cheap to clone into every connection thread.
/// Clones and renamed copies share one destination.
#[derive(Clone)]
pub struct Logger {
    name: Arc<str>,
    min_level: Level,
    shared: Arc<Shared>,
}

/// A logger's lines of one [`Flood`] kind: written up to the kind's rate,
/// counted beyond it.
pub struct Limited<'a> {
    log: &'a Logger,
    kind: Flood,
}

impl Limited<'_> {
    pub fn info(&self, message: fmt::Arguments<'_>) {
        self.log
            .emit(Some(self.kind), Level::Info, message, Instant::now());
    }

    pub fn warning(&self, message: fmt::Arguments<'_>) {
        self.log
            .emit(Some(self.kind), Level::Warning, message, Instant::now());
    }

    pub fn error(&self, message: fmt::Arguments<'_>) {
        self.log
            .emit(Some(self.kind), Level::Error, message, Instant::now());
    }
}

impl Logger {
    /// Opens `destination` now, so that an unusable logfile or syslog is an
    /// error before anything is bound. `quiet` keeps errors only, as the
    /// seed's `-q` does.
    pub fn open(
        name: impl Into<Arc<str>>,
        destination: Destination,
        quiet: bool,
    ) -> Result<Logger, LogError> {
        Logger::open_with_syslog_at(name, destination, quiet, Path::new(SYSLOG_SOCKET))
    }

    /// [`Logger::open`] with syslog's socket at `syslog_socket`.
    fn open_with_syslog_at(
        name: impl Into<Arc<str>>,
        destination: Destination,
        quiet: bool,
        syslog_socket: &Path,
    ) -> Result<Logger, LogError> {
        let syslog = |ident| syslog::SyslogSink::connect(ident, syslog_socket.to_owned());
        let sink = match destination {
            Destination::Stderr => Sink::Stderr {
                journal: journal::stderr_is_journal(),
            },
            Destination::File(path) => Sink::File(Mutex::new(LogFile::open(path)?)),
            Destination::Syslog { ident } => Sink::Syslog(Mutex::new(syslog(ident)?)),
            Destination::FileAndSyslog { path, ident } => Sink::Both(Box::new([
                Sink::File(Mutex::new(LogFile::open(path)?)),
                Sink::Syslog(Mutex::new(syslog(ident)?)),
            ])),
            Destination::Silent => Sink::Silent,
        };
        Ok(Logger::with_sink(name, sink, quiet))
    }

    /// Stderr, which cannot fail to open.
    pub fn stderr(name: impl Into<Arc<str>>, quiet: bool) -> Logger {
        Logger::with_sink(
            name,
            Sink::Stderr {
                journal: journal::stderr_is_journal(),
            },
            quiet,
        )
    }

    /// Logs nothing: for stdio mode, where stderr may be the client's socket.
    pub fn silent() -> Logger {
        Logger::with_sink("", Sink::Silent, true)
    }

    fn with_sink(name: impl Into<Arc<str>>, sink: Sink, quiet: bool) -> Logger {
        Logger::with_rule(name, sink, quiet, Rule::default())
    }

    fn with_rule(name: impl Into<Arc<str>>, sink: Sink, quiet: bool, rule: Rule) -> Logger {
        Logger {
            name: name.into(),
            min_level: if quiet { Level::Error } else { Level::Info },
            shared: Arc::new(Shared {
                sink,
                limiter: Limiter::new(rule, Instant::now()),
            }),
        }
    }

    /// The same destination under another name (once the port is known).
    pub fn renamed(&self, name: impl Into<Arc<str>>) -> Logger {
        Logger {
            name: name.into(),
            ..self.clone()
        }
    }

    /// The same destination and name, keeping lines of `min_level` and above
    /// (for example [`Level::Debug`] to see debug lines, which are off by default).
    pub fn with_level(&self, min_level: Level) -> Logger {
        Logger {
            min_level,
            ..self.clone()
        }
    }

    /// Reopens the logfile by its path, so that logrotate can move the old one
    /// away (on SIGHUP). If the path cannot be opened, lines keep going to the
    /// old file, which gets an error line saying so. Other destinations have
    /// nothing to reopen.
    pub fn reopen(&self) {
        if let Sink::File(file) = &self.shared.sink {
            // bound first: in an `if let` scrutinee the guard would live on
            // into the block, and logging there would wait for it forever
            let reopened = lock(file).reopen();
            if let Err(error) = reopened {
                self.error(format_args!("{error}; logging to the old file"));
            }
        }
    }

    pub fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        self.emit(None, level, message, Instant::now());
    }

    /// This logger's lines of `kind`, which a peer can cause at will:
    /// `log.limited(Flood::Accepted).info(...)`.
    pub fn limited(&self, kind: Flood) -> Limited<'_> {
        Limited { log: self, kind }
    }

    /// Writes the counts of lines suppressed so far, ended interval or
    /// not: for a daemon about to stop.
    pub fn flush_suppressed(&self) {
        for suppressed in self.shared.limiter.take_all() {
            self.shared.write_suppressed(&suppressed);
        }
    }

    /// Forgets the counts and intervals so far: a forked child calls it,
    /// since its copy of them is the parent's to write.
    pub fn forget_suppressed(&self) {
        self.shared.limiter.forget();
    }

    fn emit(&self, kind: Option<Flood>, level: Level, message: fmt::Arguments<'_>, now: Instant) {
        if level < self.min_level {
            return;
        }
        let shared = &*self.shared;
        for suppressed in shared.limiter.expired(now) {
            shared.write_suppressed(&suppressed);
        }
        if let Some(kind) = kind {
            // decided before the message is formatted: a suppressed line
            // costs a lock and a count, no text
            match shared.limiter.admit(kind, level, &self.name, now) {
                Admission::Suppress => return,
                Admission::Pass(last) => {
                    if let Some(suppressed) = last {
                        shared.write_suppressed(&suppressed);
                    }
                }
            }
        }
        let message = escape::one_line(message.to_string());
        shared.sink.write(level, &self.name, &message);
    }

    pub fn debug(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Debug, message);
    }

    pub fn info(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Info, message);
    }

    pub fn warning(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Warning, message);
    }

    pub fn error(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Error, message);
    }
}

// Nothing panics while holding these locks; should something ever do so, the
// sink is still usable and logging must carry on regardless.

#[cfg(test)]
mod tests {
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
        let quiet = Logger::open("SLAVE/18812", Destination::File(path.clone()), true)
            .expect("open logfile");
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
        let log = Logger::open("REGSRV/UDP/1", Destination::File(path.clone()), false)
            .expect("open logfile");
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
}
