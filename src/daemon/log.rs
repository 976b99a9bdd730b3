//! Log lines in the seed's shape: `INFO:SLAVE/18812:accepted 127.0.0.1:34044`.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

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

/// A named logger (`SLAVE/18812`), cheap to clone into every connection thread.
#[derive(Clone)]
pub struct Logger {
    name: Arc<str>,
    min_level: Level,
    silent: bool,
}

impl Logger {
    /// `quiet` keeps errors only, as the seed's `-q` does.
    pub fn stderr(name: impl Into<Arc<str>>, quiet: bool) -> Logger {
        Logger {
            name: name.into(),
            min_level: if quiet { Level::Error } else { Level::Info },
            silent: false,
        }
    }

    /// Logs nothing: for stdio mode, where stderr may be the client's socket.
    pub fn silent() -> Logger {
        Logger {
            name: "".into(),
            min_level: Level::Error,
            silent: true,
        }
    }

    /// The same destination under another name (once the port is known).
    pub fn renamed(&self, name: impl Into<Arc<str>>) -> Logger {
        Logger {
            name: name.into(),
            ..self.clone()
        }
    }

    pub fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        if self.silent || level < self.min_level {
            return;
        }
        let line = format!("{level}:{}:{message}\n", self.name);
        // one write per line, so lines of concurrent threads do not interleave
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
