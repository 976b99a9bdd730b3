//! rpyc-serve's `--authenticator module:callable`: a Python callable that
//! rpyc's servers would take as their `authenticator`, called once per
//! connection before the protocol starts (after TLS, when the server ends
//! TLS itself, as rpyc's `SSLAuthenticator` would if wrapped). What it
//! returns as credentials is what the service reads as
//! `conn._config["credentials"]`; the socket it returns is what the
//! connection then reads and writes.
//!
//! The Python side is `rpycd/authenticate.py`: the call, its outcome, and
//! `StreamSocket`, what the callable gets where the connection is not a
//! plain socket (over [`RawStream`] here).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule};

use super::classic::ClassicService;
use super::hosted::{peer_cert_dict, python_error, LoadError};
use crate::sync::lock;
use crate::transport::{Authenticated, Authenticator, Refusal, Transport};

const MODULE: &str = "rpycd.authenticate";

/// The credentials a Python authenticator returned, for the hosted
/// service (see [`crate::service::PeerInfo::granted`]).
pub struct PythonCredentials(pub Py<PyAny>);

/// A Python authenticator, after the server's own TLS when there is one.
pub struct PythonAuthenticator {
    name: String,
    callable: Py<PyAny>,
    module: Py<PyModule>,
    first: Option<Arc<dyn Authenticator>>,
    /// How long the callable has to decide (the handshake timeout): past
    /// it, the connection is shut, which ends a read the callable waits in.
    deadline: Duration,
    /// The connection's read timeout, for a socket object the callable
    /// returns in place of the one it was given.
    tick: Option<Duration>,
}

impl PythonAuthenticator {
    /// Imports `package.module:callable` (with `paths` in front of
    /// `sys.path`); errors name what was wrong.
    pub fn load(
        spec: &str,
        paths: &[std::path::PathBuf],
        deadline: Duration,
    ) -> Result<PythonAuthenticator, LoadError> {
        // the interpreter and the embedded package's finder
        ClassicService::new()?;
        Python::attach(|py| {
            let failed = |context: &str, error: PyErr| python_error(py, context, &error);
            let module = py.import(MODULE).map_err(|e| failed("rpyc-serve", e))?;
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            let callable = module
                .getattr("load_authenticator")
                .and_then(|load| load.call1((spec, paths)))
                .map_err(|e| failed(&format!("cannot load the authenticator {spec}"), e))?;
            Ok(PythonAuthenticator {
                name: spec.to_owned(),
                callable: callable.unbind(),
                module: module.unbind(),
                first: None,
                deadline,
                tick: None,
            })
        })
    }

    /// Runs after `first` (the server's TLS), which the callable then
    /// sees through: it reads and writes decrypted bytes. `tick` is the
    /// connection's read timeout (see [`crate::connection::Config::read_timeout`]).
    pub fn after(
        self,
        first: Option<Arc<dyn Authenticator>>,
        tick: Option<Duration>,
    ) -> PythonAuthenticator {
        PythonAuthenticator {
            first,
            tick,
            ..self
        }
    }

    fn call(&self, py: Python<'_>, before: Authenticated) -> Result<Authenticated, Refusal> {
        let Authenticated {
            transport,
            credentials,
            certificate,
            certificate_der,
            ..
        } = before;
        let cannot = |e: &dyn std::fmt::Display| Refusal(format!("cannot authenticate: {e}"));
        let failed = |e: PyErr| Refusal(format!("cannot call the authenticator: {e}"));
        let fd = transport
            .reader
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| cannot(&e))?;
        let wait = self.deadline.as_secs_f64();
        let (given, kept) = if transport.plain_socket {
            // a socket.socket of its own, over a duplicate it owns
            let dup = fd.try_clone().map_err(|e| cannot(&e))?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("fileno", dup.as_raw_fd()).map_err(failed)?;
            let socket = py
                .import("socket")
                .and_then(|socket| socket.getattr("socket"))
                .and_then(|socket| socket.call((), Some(&kwargs)))
                .map_err(failed)?;
            // the socket object closes it now
            std::mem::forget(dup);
            socket.call_method1("settimeout", (wait,)).map_err(failed)?;
            (socket, Given::Plain(transport))
        } else {
            let peercert = certificate
                .as_deref()
                .map(|cert| peer_cert_dict(py, cert))
                .transpose()
                .map_err(failed)?;
            let raw = Py::new(
                py,
                RawStream {
                    transport: Mutex::new(Some(transport)),
                    deadline: Mutex::new(Some(Instant::now() + self.deadline)),
                    der: certificate_der.clone(),
                    fd: fd.as_raw_fd(),
                    receive_timeout: nix::sys::socket::getsockopt(
                        &fd,
                        nix::sys::socket::sockopt::ReceiveTimeout,
                    )
                    .ok(),
                },
            )
            .map_err(failed)?;
            let socket = self
                .module
                .bind(py)
                .getattr("StreamSocket")
                .and_then(|class| class.call1((raw.clone_ref(py), wait, peercert)))
                .map_err(failed)?;
            (socket, Given::Wrapped(raw))
        };
        let outcome = self
            .module
            .bind(py)
            .getattr("authenticate")
            .and_then(|authenticate| authenticate.call1((self.callable.bind(py), &given)))
            .map_err(failed)?;
        let (accepted, first, second): (bool, Bound<'_, PyAny>, Bound<'_, PyAny>) =
            outcome.extract().map_err(failed)?;
        if let Given::Wrapped(raw) = &kept {
            raw.get().end_authentication();
        }
        if !accepted {
            let why: String = first.extract().unwrap_or_else(|_| "refused".into());
            let turned_away: bool = second.extract().unwrap_or(false);
            return Err(Refusal(match turned_away {
                true => why,
                false => format!("{why} [{}]", self.name),
            }));
        }
        let (returned, granted) = (first, second);
        let transport = match (kept, returned.is(&given)) {
            // the socket it was given: the connection goes on over ours
            (Given::Plain(transport), true) => {
                // the duplicate is ours to close; a socket subclass without
                // detach leaves it to the object
                if let Ok(dup) = returned
                    .call_method0("detach")
                    .and_then(|fd| fd.extract::<RawFd>())
                {
                    if dup >= 0 {
                        // SAFETY: detach gave up the descriptor the object owned
                        drop(unsafe { OwnedFd::from_raw_fd(dup) });
                    }
                }
                // a Python timeout made the (shared) open file non-blocking
                set_blocking(&fd).map_err(|e| cannot(&e))?;
                transport
            }
            (Given::Wrapped(raw), true) => raw
                .get()
                .take()
                .ok_or_else(|| Refusal("the connection was closed while authenticating".into()))?,
            // another socket object (one it wrapped with ssl, say): the
            // connection reads and writes through it
            (kept, false) => {
                let tick = self.tick.map(|tick| tick.as_secs_f64());
                returned
                    .call_method1("settimeout", (tick,))
                    .map_err(failed)?;
                through_python(returned.unbind(), fd, kept)
            }
        };
        Ok(Authenticated {
            transport,
            credentials,
            certificate,
            certificate_der,
            granted: Some(Arc::new(PythonCredentials(granted.unbind()))),
        })
    }
}

impl Authenticator for PythonAuthenticator {
    fn authenticate(&self, transport: Transport) -> Result<Authenticated, Refusal> {
        let before = match &self.first {
            Some(first) => first.authenticate(transport)?,
            None => Authenticated::nothing_yet(transport),
        };
        let guard = Deadline::start(&before.transport, self.deadline);
        // the thread state the session keeps next (see thread_state)
        super::thread_state::keep();
        let outcome = Python::attach(|py| self.call(py, before));
        let late = guard.passed();
        drop(guard);
        if outcome.is_err() {
            // no session follows: nothing of the callable stays in the thread
            super::thread_state::finish();
        }
        outcome.map_err(|Refusal(why)| match late {
            true => Refusal(format!(
                "not authenticated within {:?} (--handshake-timeout): {why}",
                self.deadline
            )),
            false => Refusal(why),
        })
    }
}

/// What the callable was given, kept while it runs.
enum Given {
    /// A plain socket: the callable has a `socket.socket` on a duplicate.
    Plain(Transport),
    /// Through a `StreamSocket` over this.
    Wrapped(Py<RawStream>),
}

/// Shuts the connection's socket when the callable has not decided in
/// time, which ends a read it waits in (sshd's LoginGraceTime).
struct Deadline {
    _done: Option<Sender<()>>,
    passed: Arc<AtomicBool>,
}

impl Deadline {
    fn start(transport: &Transport, deadline: Duration) -> Deadline {
        let passed = Arc::new(AtomicBool::new(false));
        let Ok(fd) = transport.reader.as_fd().try_clone_to_owned() else {
            return Deadline {
                _done: None,
                passed,
            };
        };
        let (done, wait) = channel::<()>();
        let shut = passed.clone();
        let spawned = std::thread::Builder::new()
            .name("authenticator deadline".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(deadline) {
                    shut.store(true, Ordering::Release);
                    // a pipe cannot be shut: StreamSocket's reads keep the
                    // deadline themselves
                    let _ = nix::sys::socket::shutdown(
                        fd.as_raw_fd(),
                        nix::sys::socket::Shutdown::Both,
                    );
                }
            });
        Deadline {
            _done: spawned.is_ok().then_some(done),
            passed,
        }
    }

    /// Whether the time was up before the callable decided.
    fn passed(&self) -> bool {
        self.passed.load(Ordering::Acquire)
    }
}

fn set_blocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The connection as `StreamSocket` reads and writes it while the
/// callable runs (TLS the server ended, or a pipe), and after, when the
/// callable returned another object wrapped around it.
#[pyclass(frozen, module = "rpycd")]
pub struct RawStream {
    transport: Mutex<Option<Transport>>,
    /// Reads end here while the callable runs, whatever its timeout.
    deadline: Mutex<Option<Instant>>,
    der: Option<Vec<u8>>,
    fd: RawFd,
    /// The socket's receive timeout before reads here changed it (the
    /// connection's tick), put back when the server takes it back.
    receive_timeout: Option<nix::sys::time::TimeVal>,
}

impl RawStream {
    fn end_authentication(&self) {
        *lock(&self.deadline) = None;
    }

    fn take(&self) -> Option<Transport> {
        if let Some(timeout) = &self.receive_timeout {
            // SAFETY: as in `readable`
            let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
            let _ = nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::ReceiveTimeout,
                timeout,
            );
        }
        lock(&self.transport).take()
    }

    fn with<T>(&self, use_it: impl FnOnce(&mut Transport) -> std::io::Result<T>) -> PyResult<T> {
        let mut transport = lock(&self.transport);
        let transport = transport.as_mut().ok_or_else(|| {
            PyOSError::new_err((libc::EBADF, "the server has taken the connection"))
        })?;
        use_it(transport).map_err(PyErr::from)
    }
}

/// Whether `fd` can be read within `wait` (a pipe's reads wait in poll;
/// a socket's in its receive timeout, which TLS's buffered bytes need).
fn readable(fd: RawFd, wait: Duration) -> std::io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // SAFETY: the fd is the connection's, open while its transport is
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
    Ok(poll(&mut fds, timeout)? > 0)
}

fn is_socket(fd: RawFd) -> bool {
    nix::sys::socket::getsockopt(
        // SAFETY: as in `readable`
        &unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::sys::socket::sockopt::SockType,
    )
    .is_ok()
}

#[pymethods]
impl RawStream {
    /// Up to `size` bytes, waiting at most `timeout` seconds (none: until
    /// the deadline, if the callable is still running).
    #[pyo3(signature = (size, timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        size: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let wait = timeout
            .map(|t| {
                Duration::try_from_secs_f64(t).map_err(|e| PyValueError::new_err(e.to_string()))
            })
            .transpose()?;
        let deadline = *lock(&self.deadline);
        let until = match (wait.map(|w| Instant::now() + w), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut buf = vec![0u8; size.min(64 * 1024)];
        let fd = self.fd;
        let got = py.detach(|| {
            self.with(|transport| {
                if let Some(until) = until {
                    let left = until.saturating_duration_since(Instant::now());
                    if is_socket(fd) {
                        // at least a millisecond: zero would mean no timeout
                        let left = left.max(Duration::from_millis(1));
                        let timeval = nix::sys::time::TimeVal::new(
                            left.as_secs() as _,
                            left.subsec_micros() as _,
                        );
                        // SAFETY: as in `readable`
                        let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                        nix::sys::socket::setsockopt(
                            &socket,
                            nix::sys::socket::sockopt::ReceiveTimeout,
                            &timeval,
                        )?;
                    } else if !readable(fd, left)? {
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                }
                transport.reader.read(&mut buf)
            })
        });
        match got {
            Ok(n) => Ok(PyBytes::new(py, &buf[..n])),
            Err(error)
                if error.is_instance_of::<PyOSError>(py)
                    && error
                        .value(py)
                        .getattr("errno")
                        .and_then(|errno| errno.extract::<i32>())
                        .is_ok_and(|errno| errno == libc::EAGAIN || errno == libc::ETIMEDOUT) =>
            {
                Err(PyTimeoutError::new_err("timed out"))
            }
            Err(error) => Err(error),
        }
    }

    fn sendall(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        py.detach(|| {
            self.with(|transport| {
                transport.writer.write_all(&data)?;
                transport.writer.flush()
            })
        })
    }

    fn shutdown(&self, how: i32) -> PyResult<()> {
        let how = match how {
            libc::SHUT_RD => std::net::Shutdown::Read,
            libc::SHUT_WR => std::net::Shutdown::Write,
            libc::SHUT_RDWR => std::net::Shutdown::Both,
            _ => return Err(PyOSError::new_err((libc::EINVAL, "Invalid argument"))),
        };
        self.with(|transport| {
            (transport.shutdown)(how);
            Ok(())
        })
    }

    fn fileno(&self) -> RawFd {
        self.fd
    }

    fn peer_der<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.der.as_deref().map(|der| PyBytes::new(py, der))
    }
}

/// A transport whose reads and writes go through a Python socket object
/// (`recv`, `sendall`, `shutdown`), for an authenticator that returned
/// one of its own. `kept` is what it was given, kept open under it.
fn through_python(socket: Py<PyAny>, fd: OwnedFd, kept: Given) -> Transport {
    let socket = Arc::new(socket);
    let closing = socket.clone();
    // what was given stays open under the object until the end: a plain
    // socket's own shutdown, or the StreamSocket's stream
    let beneath: crate::connection::Shutdown = match kept {
        Given::Plain(transport) => transport.shutdown,
        Given::Wrapped(raw) => Box::new(move |how| {
            if let Some(transport) = lock(&raw.get().transport).as_ref() {
                (transport.shutdown)(how);
            }
        }),
    };
    Transport {
        reader: Box::new(PythonReader {
            socket: socket.clone(),
            fd,
        }),
        writer: Box::new(PythonWriter { socket }),
        shutdown: Box::new(move |shut| {
            let how = match shut {
                std::net::Shutdown::Read => libc::SHUT_RD,
                std::net::Shutdown::Write => libc::SHUT_WR,
                std::net::Shutdown::Both => libc::SHUT_RDWR,
            };
            // the peer may be gone already: nothing to shut then
            Python::attach(|py| {
                let _ = closing.bind(py).call_method1("shutdown", (how,));
            });
            beneath(shut);
        }),
        plain_socket: false,
    }
}

/// What a Python socket method raised, as the connection's reads and
/// writes report it (a timeout is a read timeout, as a socket's).
fn io_error(py: Python<'_>, error: PyErr) -> std::io::Error {
    if error.is_instance_of::<PyTimeoutError>(py) {
        return std::io::ErrorKind::TimedOut.into();
    }
    let errno = error
        .value(py)
        .getattr("errno")
        .and_then(|errno| errno.extract::<i32>())
        .ok();
    match errno {
        Some(errno) => std::io::Error::from_raw_os_error(errno),
        None => std::io::Error::other(error.to_string()),
    }
}

struct PythonReader {
    socket: Arc<Py<PyAny>>,
    fd: OwnedFd,
}

impl Read for PythonReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Python::attach(|py| {
            let data = self
                .socket
                .bind(py)
                .call_method1("recv", (buf.len(),))
                .map_err(|e| io_error(py, e))?;
            let data = data
                .cast::<PyBytes>()
                .map_err(|_| std::io::Error::other("recv() returned something other than bytes"))?
                .as_bytes();
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok(n)
        })
    }
}

impl AsFd for PythonReader {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

struct PythonWriter {
    socket: Arc<Py<PyAny>>,
}

impl Write for PythonWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        Python::attach(|py| {
            self.socket
                .bind(py)
                .call_method1("sendall", (PyBytes::new(py, data),))
                .map_err(|e| io_error(py, e))?;
            Ok(data.len())
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
