//! The local syslog daemon, reached through its Unix socket: RFC 3164
//! messages, facility daemon, `ident[pid]: name:message`.

use std::fmt;
use std::path::PathBuf;

use ::syslog::{Facility, Formatter3164, LoggerBackend};

use super::{Level, LogError};

pub(super) struct SyslogSink {
    socket: PathBuf,
    writer: ::syslog::Logger<LoggerBackend, Formatter3164>,
}

impl SyslogSink {
    pub(super) fn connect(ident: String, socket: PathBuf) -> Result<SyslogSink, LogError> {
        let formatter = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            // the local daemon adds the host name itself
            hostname: None,
            process: ident,
            pid: std::process::id(),
        };
        match ::syslog::unix_custom(formatter, &socket) {
            Ok(writer) => Ok(SyslogSink { socket, writer }),
            Err(source) => Err(LogError::Syslog { socket, source }),
        }
    }

    pub(super) fn send(&mut self, level: Level, message: fmt::Arguments<'_>) {
        // per line, because a forked child logs through its parent's sink
        self.writer.formatter.pid = std::process::id();
        if self.write(level, message).is_ok() {
            return;
        }
        // A syslog daemon that restarted (rsyslog) has bound a new socket at
        // the same path and the old connection is dead: connect once more.
        // Still failing, the line is dropped, as lines to a full disk are.
        if let Ok(writer) = ::syslog::unix_custom(self.writer.formatter.clone(), &self.socket) {
            self.writer = writer;
            let _ = self.write(level, message);
        }
    }

    fn write(&mut self, level: Level, message: fmt::Arguments<'_>) -> ::syslog::Result<()> {
        match level {
            Level::Error => self.writer.err(message),
            Level::Warning => self.writer.warning(message),
            Level::Info => self.writer.info(message),
            Level::Debug => self.writer.debug(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::super::{Logger, Sink};
    use super::*;

    /// A stand-in for /dev/log, removed again when dropped.
    struct FakeSyslogd {
        path: PathBuf,
        socket: UnixDatagram,
    }

    impl FakeSyslogd {
        fn bind(path: &Path) -> FakeSyslogd {
            let _ = std::fs::remove_file(path);
            let socket = UnixDatagram::bind(path).expect("bind fake syslog socket");
            // a lost message fails the test instead of hanging it
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("set a read timeout");
            FakeSyslogd {
                path: path.to_owned(),
                socket,
            }
        }

        fn receive(&self) -> String {
            let mut buffer = [0; 2048];
            let size = self.socket.recv(&mut buffer).expect("receive a message");
            String::from_utf8_lossy(&buffer[..size]).into_owned()
        }
    }

    impl Drop for FakeSyslogd {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn socket_path(test: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rpycd-syslog-{}-{test}.sock", std::process::id()))
    }

    fn logger(socket: &Path) -> Logger {
        let sink = SyslogSink::connect("rpyc-classic".into(), socket.to_owned())
            .expect("connect to fake syslog");
        Logger::with_sink("SLAVE/18812", Sink::Syslog(Mutex::new(sink)), false)
            .with_level(Level::Debug)
    }

    #[test]
    fn messages_carry_facility_daemon_severity_ident_pid_and_name() {
        let syslogd = FakeSyslogd::bind(&socket_path("shape"));
        let log = logger(&syslogd.path);
        let tail = format!(" rpyc-classic[{}]: SLAVE/18812:", std::process::id());
        // facility daemon is 3, so the priority is 24 plus the severity
        for (level, priority) in [
            (Level::Error, "<27>"),
            (Level::Warning, "<28>"),
            (Level::Info, "<30>"),
            (Level::Debug, "<31>"),
        ] {
            log.log(level, format_args!("accepted {}:{}", "127.0.0.1", 34044));
            let message = syslogd.receive();
            assert!(message.starts_with(priority), "{message:?}");
            assert!(
                message.ends_with(&format!("{tail}accepted 127.0.0.1:34044")),
                "{message:?}"
            );
        }
    }

    #[test]
    fn a_logfile_and_syslog_asked_for_together_both_get_every_line() {
        let syslogd = FakeSyslogd::bind(&socket_path("both"));
        let file = std::env::temp_dir().join(format!("rpycd-both-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let destination = super::super::Destination::chosen(
            Some(&file),
            true,
            "rpyc-classic",
            super::super::Destination::Stderr,
        );
        let log = Logger::open_with_syslog_at("SLAVE/18812", destination, false, &syslogd.path)
            .expect("opens both");
        log.info(format_args!("welcome [127.0.0.1]:34044"));
        assert!(syslogd
            .receive()
            .ends_with("SLAVE/18812:welcome [127.0.0.1]:34044"));
        let written = std::fs::read_to_string(&file).expect("the logfile");
        let _ = std::fs::remove_file(&file);
        assert!(
            written.contains("INFO:SLAVE/18812:welcome [127.0.0.1]:34044"),
            "{written:?}"
        );
    }

    #[test]
    fn a_restarted_syslog_daemon_is_reconnected_to() {
        let path = socket_path("restart");
        let first = FakeSyslogd::bind(&path);
        let log = logger(&path);
        log.info(format_args!("before"));
        assert!(first.receive().ends_with("SLAVE/18812:before"));
        drop(first);
        let second = FakeSyslogd::bind(&path);
        log.info(format_args!("after"));
        assert!(second.receive().ends_with("SLAVE/18812:after"));
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let path = socket_path("missing");
        let _ = std::fs::remove_file(&path);
        let Err(error) = SyslogSink::connect("rpyc-registry".into(), path.clone()) else {
            panic!("connected to a socket that does not exist");
        };
        assert!(matches!(error, LogError::Syslog { ref socket, .. } if *socket == path));
        assert!(error.to_string().contains(&path.display().to_string()));
    }
}
