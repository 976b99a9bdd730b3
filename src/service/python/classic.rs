//! The classic service (rpyc 6.0.2 `SlaveService` with its `allow_all`
//! configuration) on an embedded CPython.
//!
//! One [`ClassicService`] per process initialises Python and imports the
//! object space (the `rpycd` package, `rpycd/*.py`); each connection gets a
//! [`ClassicSession`] with its own root, namespace and object table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString, PyTuple};
use thiserror::Error;

use super::convert::{to_python, to_value};
use super::link::Link;
use super::thread_state;
use crate::connection::{Connection, KeepAlive, Reply, Session};
use crate::protocol::brine::BulkMemory;
use crate::protocol::message::{Boxed, ExceptionInfo, Handler, IdPack, RemoteException};
use crate::service::{PeerInfo, SessionFactory};
use crate::sync::lock;

/// The object space: the module of the embedded `rpycd` package (see
/// [`super::embedded`]) that Rust looks names up in.
const OBJECT_SPACE_MODULE: &str = "rpycd.classic";
/// What tests/daemon's leak probes import it as (`stats()`): its name from
/// when it was one module of its own.
const OBJECT_SPACE_ALIAS: &str = "rpycd_classic";

/// Sessions a forking parent rehearses before its first fork: enough for
/// CPython 3.11 to quicken and specialise the code a session runs (it
/// quickens a code object after 8 calls).
const REHEARSALS: usize = 16;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("cannot start the embedded Python: {0}")]
    Python(String),
}

/// Open sessions and the objects their clients hold, across the process:
/// what `rpycd.classic.stats()` reports, so a leak is visible from outside.
/// A tuple holding objects passed by reference is boxed item by item, as
/// rpyc does, down to this many levels; a tuple deeper than that goes by
/// reference itself. rpyc's own recursive `_box` raises RecursionError on
/// such a tuple; here client code that builds one (`t = (t, f)` a million
/// times) must not exhaust a connection thread's stack.
const MAX_BOXED_TUPLE_DEPTH: usize = 64;

static OPEN_SESSIONS: AtomicUsize = AtomicUsize::new(0);
static HELD_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// `(open sessions, objects held by clients)` in this process.
#[pyfunction]
fn stats() -> (usize, usize) {
    (
        OPEN_SESSIONS.load(Ordering::Relaxed),
        HELD_OBJECTS.load(Ordering::Relaxed),
    )
}

/// An embedded interpreter finds `sys.executable` by searching PATH for
/// `python3`, which may be another Python altogether (a pyenv shim, a
/// venv's); code that starts "the same" Python (`subprocess.run(
/// [sys.executable, ...])`, multiprocessing's spawn) must get the one
/// embedded here: its installation's `bin/pythonX.Y`, where there is one.
fn point_executable_at_the_embedded_python(sys: &Bound<'_, PyModule>) -> PyResult<()> {
    let base: String = sys.getattr("base_prefix")?.extract()?;
    let (major, minor): (u32, u32) = sys
        .getattr("version_info")?
        .extract::<(u32, u32, u32, String, u32)>()
        .map(|v| (v.0, v.1))?;
    let own = std::path::Path::new(&base)
        .join("bin")
        .join(format!("python{major}.{minor}"));
    if own.is_file() {
        let own = own.display().to_string();
        sys.setattr("executable", &own)?;
        sys.setattr("_base_executable", &own)?;
    }
    Ok(())
}

/// The process-wide part: Python, initialised once, and the object space.
#[derive(Clone)]
pub struct ClassicService {
    space: Arc<Py<PyModule>>,
    /// Whether `fork` has had the object space import its lazy imports.
    warmed: Arc<std::sync::atomic::AtomicBool>,
}

impl ClassicService {
    pub fn new() -> Result<ClassicService, ServiceError> {
        Python::initialize();
        Python::attach(|py| {
            let sys = py.import("sys")?;
            if !sys.hasattr("argv")? || sys.getattr("argv")?.len()? == 0 {
                sys.setattr("argv", vec!["rpyc-classic"])?;
            }
            point_executable_at_the_embedded_python(&sys)?;
            super::embedded::install(py)?;
            let module = py.import(OBJECT_SPACE_MODULE)?;
            module.add_function(wrap_pyfunction!(stats, &module)?)?;
            sys.getattr("modules")?
                .set_item(OBJECT_SPACE_ALIAS, &module)?;
            Ok(ClassicService {
                space: Arc::new(module.unbind()),
                warmed: Arc::default(),
            })
        })
        .map_err(|e: PyErr| ServiceError::Python(e.to_string()))
    }

    /// Forks the process the way `os.fork()` does, so the interpreter is
    /// sound on both sides: with the GIL held, between `PyOS_BeforeFork`
    /// and `PyOS_AfterFork_Child`/`_Parent`. The caller must be the only
    /// thread of its process.
    pub fn fork(&self) -> nix::Result<nix::unistd::ForkResult> {
        if !self.warmed.swap(true, Ordering::Relaxed) {
            self.warm();
        }
        Python::attach(|_py| {
            // SAFETY: called with the GIL held, as these hooks require; the
            // caller guarantees no other thread exists that fork() would lose.
            unsafe {
                pyo3::ffi::PyOS_BeforeFork();
                let forked = nix::unistd::fork();
                match forked {
                    Ok(nix::unistd::ForkResult::Child) => pyo3::ffi::PyOS_AfterFork_Child(),
                    _ => pyo3::ffi::PyOS_AfterFork_Parent(),
                }
                forked
            }
        })
    }

    /// Readies the parent for its first fork. Every page a child writes
    /// is a page copied for that child alone, so what a connection would
    /// do first in each child is done once here, where the children share
    /// it: the lazy imports and proxy classes, the `Link` type (pyo3 makes
    /// it on first use), and a few rehearsed sessions, which fill CPython's
    /// method cache and specialise the bytecode a session runs. Then the
    /// collector is frozen, so a child's collections never walk (and
    /// write to) the objects it shares with the parent.
    fn warm(&self) {
        Python::attach(|py| {
            let _ = py.get_type::<Link>();
            if let Err(error) = self.space.bind(py).call_method0("warm") {
                error.print(py);
            }
        });
        for _ in 0..REHEARSALS {
            let conn = Connection::new(
                Box::new(std::io::empty()),
                Box::new(std::io::sink()),
                Box::new(|_| {}),
                crate::connection::Config::default(),
            );
            if let Ok(session) = self.open(&conn) {
                conn.set_session(session.clone());
                let _ = session.handle(
                    &conn,
                    Handler::GetRoot,
                    Boxed::Value(crate::protocol::brine::Value::Tuple(Vec::new())),
                );
            }
            conn.close();
        }
        Python::attach(|py| {
            if let Err(error) = self.space.bind(py).call_method0("freeze") {
                error.print(py);
            }
        });
    }

    /// A session for a new connection: its own root and namespace.
    pub fn open(&self, conn: &Arc<Connection>) -> PyResult<Arc<ClassicSession>> {
        thread_state::keep();
        Python::attach(|py| {
            let space = self.space.bind(py);
            let remote_class = space.getattr("Remote")?;
            let root_factory = space.getattr("SlaveService")?;
            self.open_with(conn, &remote_class, &root_factory)
        })
    }

    /// A session whose client side is an instance of `remote_class` (a
    /// subclass of `Remote`) and whose root is `root_factory(remote)`: how
    /// other Python services reuse this object space.
    pub fn open_with(
        &self,
        conn: &Arc<Connection>,
        remote_class: &Bound<'_, PyAny>,
        root_factory: &Bound<'_, PyAny>,
    ) -> PyResult<Arc<ClassicSession>> {
        let py = remote_class.py();
        let session = Arc::new(ClassicSession {
            space: self.space.clone(),
            conn: Arc::downgrade(conn),
            state: Mutex::new(None),
        });
        let space = self.space.bind(py);
        let link = Bound::new(py, Link::new(session.clone()))?;
        let remote = remote_class.call1((link,))?;
        let root = root_factory.call1((&remote,))?;
        let netref_base = space.getattr("BaseNetref")?;
        *session.lock_state() = Some(State {
            root: root.unbind(),
            remote: remote.unbind(),
            netref_base: netref_base.unbind(),
            objects: HashMap::new(),
        });
        OPEN_SESSIONS.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }
}

/// One connection's objects: what the client holds references to.
pub struct ClassicSession {
    space: Arc<Py<PyModule>>,
    conn: Weak<Connection>,
    /// `None` once the connection is over.
    state: Mutex<Option<State>>,
}

struct State {
    root: Py<PyAny>,
    /// The client's side as server code sees it (`getconn()`).
    remote: Py<PyAny>,
    netref_base: Py<PyAny>,
    /// rpyc's `_local_objects`: each object the client holds, with how many
    /// times we sent it (the client's DEL gives the count back).
    objects: HashMap<IdPack, (Py<PyAny>, u64)>,
}

impl ClassicSession {
    fn lock_state(&self) -> MutexGuard<'_, Option<State>> {
        lock(&self.state)
    }

    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.conn.upgrade()
    }

    /// How many objects the client holds references to.
    pub fn object_count(&self) -> usize {
        self.lock_state()
            .as_ref()
            .map_or(0, |state| state.objects.len())
    }

    fn closed_error() -> PyErr {
        pyo3::exceptions::PyEOFError::new_err("connection closed")
    }

    /// Packs `obj` for the client: by value when brine can carry it, else by
    /// reference, counting the reference in the object table.
    pub fn box_object(&self, obj: &Bound<'_, PyAny>) -> PyResult<Boxed> {
        self.box_within(obj, MAX_BOXED_TUPLE_DEPTH)
    }

    /// [`ClassicSession::box_object`] with tuples boxed item by item at
    /// most `depth` levels deep.
    fn box_within(&self, obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Boxed> {
        if let Some(value) = to_value(obj)? {
            return Ok(Boxed::Value(value));
        }
        let py = obj.py();
        if let (Ok(tuple), Some(inner)) = (obj.cast_exact::<PyTuple>(), depth.checked_sub(1)) {
            return tuple
                .iter()
                .map(|item| self.box_within(&item, inner))
                .collect::<PyResult<_>>()
                .map(Boxed::Tuple);
        }
        let (netref_base, remote) = {
            let state = self.lock_state();
            let state = state.as_ref().ok_or_else(Self::closed_error)?;
            (state.netref_base.clone_ref(py), state.remote.clone_ref(py))
        };
        if obj.is_instance(netref_base.bind(py))? {
            // a LOCAL_ATTRS name: the proxy answers it without a request
            let owner = obj.getattr("____conn__")?;
            if owner.is(remote.bind(py)) {
                let pack = obj.getattr("____id_pack__")?;
                return Ok(Boxed::LocalRef(id_pack_from(&pack)?));
            }
        }
        let pack = id_pack_from(&self.space.bind(py).getattr("id_pack")?.call1((obj,))?)?;
        let mut state = self.lock_state();
        let state = state.as_mut().ok_or_else(Self::closed_error)?;
        state
            .objects
            .entry(pack.clone())
            .and_modify(|(_, count)| *count += 1)
            .or_insert_with(|| {
                HELD_OBJECTS.fetch_add(1, Ordering::Relaxed);
                (obj.clone().unbind(), 1)
            });
        Ok(Boxed::RemoteRef(pack))
    }

    /// The Python object a boxed value names.
    pub fn unbox<'py>(&self, py: Python<'py>, boxed: &Boxed) -> PyResult<Bound<'py, PyAny>> {
        match boxed {
            Boxed::Value(value) => to_python(py, value),
            Boxed::Tuple(items) => {
                let objects = items
                    .iter()
                    .map(|item| self.unbox(py, item))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyTuple::new(py, objects)?.into_any())
            }
            Boxed::LocalRef(pack) => {
                let state = self.lock_state();
                let state = state.as_ref().ok_or_else(Self::closed_error)?;
                match state.objects.get(pack) {
                    Some((obj, _)) => Ok(obj.clone_ref(py).into_bound(py)),
                    None => Err(PyKeyError::new_err(id_pack_to_python(py, pack)?.unbind())),
                }
            }
            Boxed::RemoteRef(pack) => {
                let remote = self.remote(py)?;
                remote.call_method1("proxy", (id_pack_to_python(py, pack)?,))
            }
        }
    }

    pub(crate) fn remote<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.lock_state();
        let state = state.as_ref().ok_or_else(Self::closed_error)?;
        Ok(state.remote.clone_ref(py).into_bound(py))
    }

    /// The client gave back `count` references to one of our objects.
    fn release(&self, pack: &IdPack, count: u64) {
        let freed = {
            let mut state = self.lock_state();
            let Some(state) = state.as_mut() else { return };
            match state.objects.get_mut(pack) {
                Some((_, held)) if *held > count => {
                    *held -= count;
                    None
                }
                Some(_) => {
                    HELD_OBJECTS.fetch_sub(1, Ordering::Relaxed);
                    state.objects.remove(pack)
                }
                None => None,
            }
        };
        // dropped outside the lock: a finalizer may run and box things
        if let Some((obj, _)) = freed {
            Python::attach(|_| drop(obj));
        }
    }

    /// The rpyc version whose protocol this connection speaks.
    fn peer_version(&self) -> &'static str {
        match self.connection().map(|conn| conn.dialect()) {
            Some(crate::protocol::message::Dialect::V5) => crate::RPYC5_VERSION,
            _ => crate::RPYC_VERSION,
        }
    }

    /// An exception as vinegar packs it.
    pub fn dump_exception(&self, py: Python<'_>, error: &PyErr) -> RemoteException {
        let dumped = self
            .space
            .bind(py)
            .getattr("dump_exception")
            .and_then(|dump| {
                dump.call1((error.value(py), error.traceback(py), self.peer_version()))
            })
            .and_then(|dumped| to_value(&dumped));
        match dumped {
            Ok(Some(value)) => RemoteException::from_value(value).unwrap_or_else(|reason| {
                RemoteException::Raised(ExceptionInfo::builtin("RuntimeError", reason))
            }),
            _ => RemoteException::Raised(ExceptionInfo::builtin(
                "RuntimeError",
                &format!("unreportable exception: {error}"),
            )),
        }
    }

    /// The Python exception for one the client sent back.
    pub fn load_exception(&self, py: Python<'_>, exception: &RemoteException) -> PyErr {
        // a hosted service's protocol configuration decides which classes
        // may be made; the classic service's Remote has none
        let config = self
            .remote(py)
            .ok()
            .and_then(|remote| remote.getattr("_config").ok());
        let loaded = to_python(py, &exception.to_value()).and_then(|dumped| {
            self.space
                .bind(py)
                .getattr("load_exception")?
                .call1((dumped, config))
        });
        match loaded {
            Ok(exc) => PyErr::from_value(exc),
            Err(error) => error,
        }
    }

    fn dispatch<'py>(
        &self,
        py: Python<'py>,
        handler: Handler,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let arg = |index: usize| -> PyResult<Bound<'py, PyAny>> {
            args.get_item(index).map_err(|_| {
                PyTypeError::new_err(format!(
                    "handler {handler:?} takes at least {} arguments, got {}",
                    index + 1,
                    args.len()
                ))
            })
        };
        // handlers that run the client's code are Python methods of the
        // connection's Remote, so that code has a caller's frame (see there)
        let method = |name: &Bound<'py, PyString>| -> PyResult<Bound<'py, PyAny>> {
            self.remote(py)?.call_method1(name, args.clone())
        };
        match handler {
            Handler::Ping => arg(0),
            Handler::GetRoot => {
                let state = self.lock_state();
                let state = state.as_ref().ok_or_else(Self::closed_error)?;
                Ok(state.root.clone_ref(py).into_bound(py))
            }
            Handler::GetAttr => method(intern!(py, "_handle_getattr")),
            Handler::DelAttr => method(intern!(py, "_handle_delattr")),
            Handler::SetAttr => method(intern!(py, "_handle_setattr")),
            Handler::Call => method(intern!(py, "_handle_call")),
            Handler::CallAttr => method(intern!(py, "_handle_callattr")),
            Handler::Repr => Ok(arg(0)?.repr()?.into_any()),
            Handler::Str => Ok(arg(0)?.str()?.into_any()),
            Handler::Hash => Ok(arg(0)?.hash()?.into_pyobject(py)?.into_any()),
            Handler::Dir => Ok(PyTuple::new(py, arg(0)?.dir()?)?.into_any()),
            Handler::Cmp => method(intern!(py, "_handle_cmp")),
            Handler::Pickle => method(intern!(py, "_handle_pickle")),
            Handler::Inspect => {
                let pack = id_pack_from(&arg(0)?)?;
                let obj = self.unbox(py, &Boxed::LocalRef(pack))?;
                self.remote(py)?.call_method1("_handle_inspect", (obj,))
            }
            Handler::BuffIter => method(intern!(py, "_handle_buffiter")),
            Handler::OldSlicing => method(intern!(py, "_handle_oldslicing")),
            Handler::CtxExit => method(intern!(py, "_handle_ctxexit")),
            Handler::InstanceCheck => method(intern!(py, "_handle_instancecheck")),
            // DEL is answered before unboxing, CLOSE by the connection
            Handler::Del | Handler::Close => Ok(py.None().into_bound(py)),
        }
    }

    /// DEL's arguments are `(obj, count)`; `obj` is ours, named by id pack.
    fn handle_del(&self, args: &Boxed) -> Reply {
        let (target, count) = match args {
            Boxed::Tuple(items) => match items.as_slice() {
                [target] => (target, 1),
                [target, Boxed::Value(count)] => (target, count.as_u64().unwrap_or(1)),
                _ => return Err(bad_args("DEL takes (obj, count)")),
            },
            _ => return Err(bad_args("DEL takes (obj, count)")),
        };
        match target {
            Boxed::LocalRef(pack) => {
                self.release(pack, count);
                Ok(Boxed::Value(crate::protocol::brine::Value::None))
            }
            _ => Err(bad_args("DEL names an object that is not ours")),
        }
    }
}

fn bad_args(message: &str) -> RemoteException {
    RemoteException::Raised(ExceptionInfo::builtin("TypeError", message))
}

impl Session for ClassicSession {
    fn handle(&self, conn: &Arc<Connection>, handler: Handler, args: Boxed) -> (Reply, KeepAlive) {
        if handler == Handler::Del {
            return (self.handle_del(&args), None);
        }
        // PING echoes its argument: a plain value needs no Python at all
        let args = match (handler, args) {
            (Handler::Ping, Boxed::Value(crate::protocol::brine::Value::Tuple(mut items)))
                if items.len() == 1 =>
            {
                return (Ok(Boxed::Value(items.remove(0))), None);
            }
            (_, args) => args,
        };
        Python::attach(|py| {
            let mut kept = Vec::new();
            let outcome = self
                .unbox(py, &args)
                .and_then(|args| {
                    kept.push(args.clone().unbind());
                    let args = args
                        .cast_into::<PyTuple>()
                        .map_err(|_| PyTypeError::new_err("request arguments are not a tuple"))?;
                    self.dispatch(py, handler, &args)
                })
                .and_then(|result| {
                    kept.push(result.clone().unbind());
                    self.box_object(&result)
                });
            let reply = outcome.map_err(|error| {
                if let Ok(remote) = self.remote(py) {
                    let _ = remote.setattr("_last_traceback", error.traceback(py));
                }
                self.dump_exception(py, &error)
            });
            // let go of the request's objects now, with the GIL we hold,
            // rather than attaching again after the reply; a DEL that this
            // causes waits for the reply (see `Connection::hold_requests`)
            conn.hold_requests(|| drop(kept));
            (reply, None)
        })
    }

    fn bulk_memory(&self, len: usize) -> Option<Box<dyn BulkMemory>> {
        super::convert::bulk_memory(len)
    }

    fn close(&self) {
        let state = self.lock_state().take();
        if let Some(state) = state {
            OPEN_SESSIONS.fetch_sub(1, Ordering::Relaxed);
            HELD_OBJECTS.fetch_sub(state.objects.len(), Ordering::Relaxed);
            Python::attach(|py| {
                if let Ok(remote) = state.remote.bind(py).getattr("forget") {
                    let _ = remote.call0();
                }
                drop(state);
            });
        }
    }
}

pub(super) fn id_pack_from(pack: &Bound<'_, PyAny>) -> PyResult<IdPack> {
    let bad = || PyTypeError::new_err("an id pack is (name, type id, object id)");
    let tuple = pack.cast::<PyTuple>().map_err(|_| bad())?;
    if tuple.len() != 3 {
        return Err(bad());
    }
    Ok(IdPack {
        name: tuple.get_item(0)?.str()?.extract()?,
        type_id: tuple.get_item(1)?.extract().map_err(|_| bad())?,
        obj_id: tuple.get_item(2)?.extract().map_err(|_| bad())?,
    })
}

pub(super) fn id_pack_to_python<'py>(
    py: Python<'py>,
    pack: &IdPack,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            pack.name.as_str().into_pyobject(py)?.into_any(),
            pack.type_id.into_pyobject(py)?.into_any(),
            pack.obj_id.into_pyobject(py)?.into_any(),
        ],
    )
}

impl SessionFactory for ClassicService {
    fn open(&self, conn: &Arc<Connection>, _peer: &PeerInfo) -> Result<Arc<dyn Session>, String> {
        ClassicService::open(self, conn)
            .map(|session| session as Arc<dyn Session>)
            .map_err(|error| error.to_string())
    }

    fn connection_done(&self) {
        thread_state::finish();
    }

    fn may_move(&self) -> bool {
        thread_state::is_clean()
    }

    fn fork(&self) -> nix::Result<nix::unistd::ForkResult> {
        ClassicService::fork(self)
    }
}
