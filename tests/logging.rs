//! The logging destinations against real files and a real fd 2: appending,
//! timestamps, reopening after logrotate's rename, whole lines from many
//! threads, and journal priority prefixes on stderr.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rpycd::daemon::log::{Destination, Level, LogError, Logger};

/// A directory of its own for each test, removed with everything in it.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("rpycd-logging-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create temp dir");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(name: &str, path: &Path) -> Logger {
    Logger::open(name, Destination::File(path.to_owned()), false).expect("open logfile")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).expect("read logfile")
}

/// Splits `2026-11-25T13:40:00.123Z INFO:...` into its timestamp and line,
/// checking the timestamp's shape on the way.
fn split_stamped(line: &str) -> (&str, &str) {
    let (stamp, rest) = line.split_once(' ').expect("a space after the timestamp");
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{line:?}");
    (stamp, rest)
}

fn bodies(text: &str) -> Vec<&str> {
    text.lines().map(|line| split_stamped(line).1).collect()
}

#[test]
fn logfile_is_appended_to_and_survives_a_restart() {
    let dir = TempDir::new("append");
    let path = dir.join("rpyc-classic.log");
    fs::write(&path, "left by an earlier run\n").expect("seed logfile");

    let log = open("SLAVE/18812", &path);
    log.info(format_args!("server started on [127.0.0.1]:18812"));
    log.warning(format_args!("keyboard interrupt!"));
    drop(log);
    open("SLAVE/18812", &path).info(format_args!("server started on [127.0.0.1]:18812"));

    let text = read(&path);
    let (earlier, ours) = text.split_once('\n').expect("the earlier line");
    assert_eq!(earlier, "left by an earlier run");
    assert_eq!(
        bodies(ours),
        [
            "INFO:SLAVE/18812:server started on [127.0.0.1]:18812",
            "WARNING:SLAVE/18812:keyboard interrupt!",
            "INFO:SLAVE/18812:server started on [127.0.0.1]:18812",
        ]
    );
}

#[test]
fn logfile_lines_are_stamped_in_utc_with_milliseconds() {
    let dir = TempDir::new("timestamp");
    let path = dir.join("rpyc-registry.log");
    let log = open("REGSRV/UDP/18811", &path);
    for n in 0..20 {
        log.info(format_args!("line {n}"));
    }
    let text = read(&path);
    let stamps: Vec<&str> = text.lines().map(|line| split_stamped(line).0).collect();
    assert_eq!(stamps.len(), 20);
    // fixed-width RFC 3339 sorts as time does
    assert!(
        stamps.windows(2).all(|pair| pair[0] <= pair[1]),
        "{stamps:?}"
    );
    assert!(stamps[0] >= "2025-", "{stamps:?}");
}

#[test]
fn logfile_is_created_readable_by_owner_and_group_only() {
    let dir = TempDir::new("mode");
    let path = dir.join("new.log");
    open("SLAVE/1", &path).info(format_args!("hello"));
    let mode = fs::metadata(&path)
        .expect("stat logfile")
        .permissions()
        .mode();
    // 0640 less the umask: never more than that
    assert_eq!(mode & 0o777 & !0o640, 0, "mode {mode:o}");
}

#[test]
fn an_unopenable_logfile_is_an_error_naming_it() {
    let dir = TempDir::new("unopenable");
    for path in [dir.join("missing/dir/x.log"), dir.0.clone()] {
        match Logger::open("SLAVE/1", Destination::File(path.clone()), false) {
            Err(error @ LogError::File { .. }) => {
                let message = error.to_string();
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            Err(other) => panic!("{path:?}: unexpected {other}"),
            Ok(_) => panic!("{path:?} opened as a logfile"),
        }
    }
}

#[test]
fn reopen_after_rename_starts_a_new_file() {
    let dir = TempDir::new("rotate");
    let path = dir.join("rpyc-classic.log");
    let rotated = dir.join("rpyc-classic.log.1");
    let log = open("SLAVE/18812", &path);
    let other_thread = log.renamed("SLAVE/18812/conn");

    log.info(format_args!("before rotation"));
    fs::rename(&path, &rotated).expect("rotate");
    // logrotate renames, then signals: until the reopen, lines follow the old file
    other_thread.info(format_args!("still the old file"));
    log.reopen();
    log.info(format_args!("after rotation"));
    other_thread.info(format_args!("clones share the reopened file"));

    assert_eq!(
        bodies(&read(&rotated)),
        [
            "INFO:SLAVE/18812:before rotation",
            "INFO:SLAVE/18812/conn:still the old file",
        ]
    );
    assert_eq!(
        bodies(&read(&path)),
        [
            "INFO:SLAVE/18812:after rotation",
            "INFO:SLAVE/18812/conn:clones share the reopened file",
        ]
    );
}

#[test]
fn a_failed_reopen_keeps_the_old_file_and_says_so_there() {
    let dir = TempDir::new("reopen-fails");
    let logs = dir.join("logs");
    fs::create_dir(&logs).expect("create logs dir");
    let path = logs.join("rpyc-classic.log");
    let moved = dir.join("moved.log");
    let log = open("SLAVE/18812", &path);

    log.info(format_args!("one"));
    fs::rename(&path, &moved).expect("move logfile");
    fs::remove_dir(&logs).expect("remove its directory");
    log.reopen();
    log.info(format_args!("two"));

    let text = read(&moved);
    let lines = bodies(&text);
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "INFO:SLAVE/18812:one");
    let expected = format!("ERROR:SLAVE/18812:cannot open logfile {}: ", path.display());
    assert!(lines[1].starts_with(&expected), "{}", lines[1]);
    assert!(
        lines[1].ends_with("; logging to the old file"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "INFO:SLAVE/18812:two");
    assert!(!path.exists());
}

#[test]
fn lines_of_concurrent_threads_never_interleave() {
    const THREADS: usize = 8;
    const LINES: usize = 200;
    let dir = TempDir::new("threads");
    let path = dir.join("busy.log");
    let log = open("SLAVE/18812", &path);
    // long lines, so that a torn write would show
    let padding = "x".repeat(300);

    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let log = log.renamed(format!("SLAVE/18812/{thread}"));
            let padding = &padding;
            scope.spawn(move || {
                for n in 0..LINES {
                    log.info(format_args!("line {n} {padding}"));
                }
            });
        }
    });

    let text = read(&path);
    let mut seen = vec![[false; LINES]; THREADS];
    for line in text.lines() {
        let body = split_stamped(line).1;
        let rest = body
            .strip_prefix("INFO:SLAVE/18812/")
            .unwrap_or_else(|| panic!("torn line {line:?}"));
        let (thread, rest) = rest.split_once(":line ").expect("thread and line number");
        let (n, tail) = rest.split_once(' ').expect("line number and padding");
        assert_eq!(tail, padding, "torn line {line:?}");
        let thread: usize = thread.parse().expect("thread number");
        let n: usize = n.parse().expect("line number");
        assert!(!seen[thread][n], "line {n} of thread {thread} twice");
        seen[thread][n] = true;
    }
    assert!(seen.iter().flatten().all(|&line| line), "lines missing");
    assert_eq!(text.lines().count(), THREADS * LINES);
}

/// The child process of `stderr_lines_carry_journal_priorities_only_under_the_journal`:
/// logs to its fd 2, which that test has made a socket it reads. Run alone,
/// as every test is at first, it has nothing to do.
#[test]
fn stderr_logging_child() {
    if std::env::var_os("RPYCD_LOGGING_CHILD").is_none() {
        return;
    }
    let log = Logger::stderr("SLAVE/18812", false).with_level(Level::Debug);
    log.debug(format_args!("debug"));
    log.info(format_args!("info"));
    log.warning(format_args!("warning"));
    log.error(format_args!("error"));
}

/// Runs `stderr_logging_child` with a stream socket (what journald hands a
/// service) as its fd 2 and the given JOURNAL_STREAM; returns what it logged.
fn child_stderr(journal_stream: impl FnOnce(&str) -> String) -> String {
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let identity = {
        let fd = theirs.as_fd().try_clone_to_owned().expect("dup");
        let metadata = fs::File::from(fd).metadata().expect("fstat");
        format!("{}:{}", metadata.dev(), metadata.ino())
    };
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "stderr_logging_child", "--test-threads=1"])
        .env("RPYCD_LOGGING_CHILD", "1")
        .env("JOURNAL_STREAM", journal_stream(&identity))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("run the child");
    // the child holds the only other end now, so its exit is our end of file
    let mut logged = String::new();
    ours.read_to_string(&mut logged)
        .expect("read the child's stderr");
    assert!(
        child.wait().expect("wait for the child").success(),
        "{logged}"
    );
    logged
}

#[test]
fn stderr_lines_carry_journal_priorities_only_under_the_journal() {
    assert_eq!(
        child_stderr(|identity| identity.to_owned()),
        "<7>DEBUG:SLAVE/18812:debug\n\
         <6>INFO:SLAVE/18812:info\n\
         <4>WARNING:SLAVE/18812:warning\n\
         <3>ERROR:SLAVE/18812:error\n"
    );
    // inherited from a journal-connected parent, but fd 2 is something else
    assert_eq!(
        child_stderr(|identity| format!("{identity}0")),
        "DEBUG:SLAVE/18812:debug\n\
         INFO:SLAVE/18812:info\n\
         WARNING:SLAVE/18812:warning\n\
         ERROR:SLAVE/18812:error\n"
    );
}
