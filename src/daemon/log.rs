//! Log lines in the seed's shape: `INFO:SLAVE/18812:accepted 127.0.0.1:34044`,
//! written to stderr, a logfile or syslog, chosen once at start-up.
//!
//! A [`Logger`] is a name plus a shared destination; clones go into every
//! connection thread. Each line reaches its destination in one write under a
//! lock, so lines of concurrent threads never interleave, and a failed write
//! is dropped: a full disk or a stopped syslog daemon must not stop serving.
//! What peers choose is escaped (`escape`), and the lines they can cause
//! at will are kept to a rate (`ratelimit`).

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
    pub fn debug(&self, message: fmt::Arguments<'_>) {
        self.log
            .emit(Some(self.kind), Level::Debug, message, Instant::now());
    }

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

    /// Whether lines of `level` are written.
    pub fn logs(&self, level: Level) -> bool {
        level >= self.min_level
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
mod tests;
