//! Any Python rpyc `Service` class, served with rpyc 6.0.2's service
//! semantics (what `rpyc-serve` hosts).
//!
//! The classic object space does the work (proxies, vinegar, the object
//! table); `rpycd/serve.py` puts the user's class at the root and applies the
//! protocol configuration's attribute rules, as rpyc's `Connection` does.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use super::authenticator::PythonCredentials;
use super::classic::{ClassicService, ServiceError};
use crate::connection::{Connection, Session};
use crate::service::{PeerInfo, SessionFactory};

/// rpyc-serve's additions to the object space, in the embedded `rpycd`
/// package (see [`super::embedded`]).
const SERVE_MODULE: &str = "rpycd.serve";

/// What to serve and how: the class, where to find it, and the protocol
/// configuration keys to change from rpyc's defaults.
#[derive(Debug, Clone, Default)]
pub struct ServiceSpec {
    /// `package.module:ClassName`.
    pub class: String,
    /// Directories put in front of `sys.path` before importing.
    pub paths: Vec<PathBuf>,
    /// `(key, Python literal)` pairs, e.g. `("allow_public_attrs", "True")`.
    pub config: Vec<(String, String)>,
}

/// A Python service class, imported once in the (warm) server process.
pub struct PythonService {
    classic: ClassicService,
    remote_factory: Py<PyAny>,
    root_factory: Py<PyAny>,
    aliases: Vec<String>,
    name: String,
}

/// Why a service could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Python(#[from] ServiceError),
    /// The class, its module or the configuration: what the user named.
    #[error("{0}")]
    Service(String),
}

pub(super) fn python_error(py: Python<'_>, context: &str, error: &PyErr) -> LoadError {
    // the exception's own line ("ModuleNotFoundError: No module named 'x'")
    // says more than its str() alone
    let kind = error
        .get_type(py)
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "Exception".into());
    LoadError::Service(format!("{context}: {kind}: {}", error.value(py)))
}

impl PythonService {
    /// Imports the class and checks the configuration; errors name what was
    /// wrong (an import error, a key rpyc does not have, a bad literal).
    pub fn load(spec: &ServiceSpec) -> Result<PythonService, LoadError> {
        let classic = ClassicService::new()?;
        Python::attach(|py| {
            let module = load_module(py).map_err(|e| python_error(py, "rpyc-serve", &e))?;
            let paths: Vec<String> = spec
                .paths
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            let class = module
                .getattr("load_service")
                .and_then(|load| load.call1((spec.class.as_str(), paths)))
                .map_err(|e| python_error(py, &format!("cannot load {}", spec.class), &e))?;
            let overrides = PyDict::new(py);
            let literal_eval = py
                .import("ast")
                .and_then(|ast| ast.getattr("literal_eval"))
                .map_err(|e| python_error(py, "rpyc-serve", &e))?;
            for (key, text) in &spec.config {
                let value = literal_eval.call1((text.as_str(),)).map_err(|e| {
                    python_error(
                        py,
                        &format!("protocol config {key}={text} is not a Python literal"),
                        &e,
                    )
                })?;
                overrides
                    .set_item(key.as_str(), value)
                    .map_err(|e| python_error(py, "rpyc-serve", &e))?;
            }
            let config = module
                .getattr("make_config")
                .and_then(|make| make.call1((overrides,)))
                .map_err(|e| {
                    let settable = module
                        .getattr("SETTABLE")
                        .and_then(|keys| py.import("builtins")?.getattr("sorted")?.call1((keys,)))
                        .and_then(|keys| keys.extract::<Vec<String>>())
                        .unwrap_or_default();
                    python_error(
                        py,
                        &format!(
                            "unknown protocol config key (rpyc-serve applies {})",
                            settable.join(", ")
                        ),
                        &e,
                    )
                })?;
            let functools = py
                .import("functools")
                .map_err(|e| python_error(py, "rpyc-serve", &e))?;
            let remote_factory = module
                .getattr("ServiceRemote")
                .and_then(|remote| {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("config", &config)?;
                    functools.getattr("partial")?.call((remote,), Some(&kwargs))
                })
                .map_err(|e| python_error(py, "rpyc-serve", &e))?;
            let root_factory = module
                .getattr("root_factory")
                .and_then(|make| make.call1((&class,)))
                .map_err(|e| python_error(py, "rpyc-serve", &e))?;
            let aliases: Vec<String> = module
                .getattr("service_aliases")
                .and_then(|aliases| aliases.call1((&class,)))
                .and_then(|aliases| aliases.extract())
                .map_err(|e| python_error(py, &format!("{}'s aliases", spec.class), &e))?;
            let name = aliases.first().cloned().unwrap_or_else(|| "SERVICE".into());
            Ok(PythonService {
                classic: classic.clone(),
                remote_factory: remote_factory.unbind(),
                root_factory: root_factory.unbind(),
                aliases,
                name,
            })
        })
    }

    /// The names the service registers under (its `ALIASES`, upper case).
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The service's name, its first alias: rpyc's log name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn load_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    // ClassicService::new has installed the embedded package's finder
    py.import(SERVE_MODULE)
}

impl SessionFactory for PythonService {
    fn open(&self, conn: &Arc<Connection>, peer: &PeerInfo) -> Result<Arc<dyn Session>, String> {
        // as the classic service does: one thread state for the thread's
        // life, not one made and destroyed per request
        super::thread_state::keep();
        Python::attach(|py| {
            let session = self
                .classic
                .open_with(
                    conn,
                    self.remote_factory.bind(py),
                    self.root_factory.bind(py),
                )
                .map_err(|e| format!("{}: {e}", self.name))?;
            // on_connect may already call the client (conn.root...): the
            // session must be answering requests before it runs
            conn.set_session(session.clone());
            let endpoints = peer.endpoints.map(|(ours, theirs)| {
                (
                    (ours.ip().to_string(), ours.port()),
                    (theirs.ip().to_string(), theirs.port()),
                )
            });
            let connected = session.remote(py).and_then(|remote| {
                // what --authenticator granted, else what rpyc's
                // SSLAuthenticator would: the client certificate
                let granted = peer
                    .granted
                    .as_ref()
                    .and_then(|granted| granted.downcast_ref::<PythonCredentials>());
                let credentials = match granted {
                    Some(granted) => Some(granted.0.bind(py).clone()),
                    None => peer
                        .certificate
                        .as_ref()
                        .map(|cert| peer_cert_dict(py, cert).map(|dict| dict.into_any()))
                        .transpose()?,
                };
                remote.call_method1("_connected", (endpoints, credentials))
            });
            if let Err(error) = connected {
                session.close();
                return Err(format!("{}.on_connect failed: {error}", self.name));
            }
            Ok(session as Arc<dyn Session>)
        })
    }

    fn connection_done(&self) {
        super::thread_state::finish();
    }

    fn may_move(&self) -> bool {
        super::thread_state::is_clean()
    }

    fn fork(&self) -> nix::Result<nix::unistd::ForkResult> {
        self.classic.fork()
    }
}

/// A client certificate as `ssl.SSLSocket.getpeercert()` gives it, which
/// rpyc's `SSLAuthenticator` hands a service as its credentials.
pub(super) fn peer_cert_dict<'py>(
    py: Python<'py>,
    cert: &crate::protocol::x509::PeerCert,
) -> PyResult<Bound<'py, PyDict>> {
    use crate::protocol::x509::{AltName, Name};
    use pyo3::types::PyTuple;
    fn name<'py>(py: Python<'py>, name: &Name) -> PyResult<Bound<'py, PyTuple>> {
        let rdns = name
            .iter()
            .map(|rdn| PyTuple::new(py, rdn.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, rdns)
    }
    let dict = PyDict::new(py);
    dict.set_item("subject", name(py, &cert.subject)?)?;
    dict.set_item("issuer", name(py, &cert.issuer)?)?;
    dict.set_item("version", cert.version)?;
    dict.set_item("serialNumber", &cert.serial_number)?;
    dict.set_item("notBefore", &cert.not_before)?;
    dict.set_item("notAfter", &cert.not_after)?;
    if let Some(alt_names) = &cert.subject_alt_name {
        let entries = alt_names
            .iter()
            .map(|entry| match entry {
                AltName::Text(kind, value) => (*kind, value.as_str())
                    .into_pyobject(py)
                    .map(|t| t.into_any()),
                AltName::Directory(dir) => ("DirName", name(py, dir)?)
                    .into_pyobject(py)
                    .map(|t| t.into_any()),
            })
            .collect::<PyResult<Vec<_>>>()?;
        dict.set_item("subjectAltName", PyTuple::new(py, entries)?)?;
    }
    Ok(dict)
}
