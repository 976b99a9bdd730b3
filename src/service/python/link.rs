//! `Link`: what the object space's `Remote` (and so every proxy for a
//! client object) uses to send requests over its connection. Boxing and the
//! request itself are Rust's; the GIL is released while waiting, so other
//! connections run and the client's nested requests are served.

use std::sync::Arc;

use pyo3::exceptions::{PyEOFError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::classic::{id_pack_from, ClassicSession};
use crate::connection::ConnError;
use crate::protocol::brine::Value;
use crate::protocol::message::{Boxed, Handler};

#[pyclass(frozen, module = "rpycd")]
pub struct Link {
    session: Arc<ClassicSession>,
}

impl Link {
    pub fn new(session: Arc<ClassicSession>) -> Link {
        Link { session }
    }
}

#[pymethods]
impl Link {
    /// Sends `handler(*args)` to the client and returns what it answers,
    /// raising what it raises.
    fn sync_request<'py>(
        &self,
        py: Python<'py>,
        handler: i64,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let handler = Handler::from_code(handler)
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("unknown handler"))?;
        let conn = self
            .session
            .connection()
            .ok_or_else(|| PyEOFError::new_err("connection closed"))?;
        let boxed = self.session.box_object(args.as_any())?;
        let reply =
            py.detach(|| conn.sync_request(handler, boxed))
                .map_err(|error| match error {
                    // rpyc's AsyncResultTimeout is the builtin TimeoutError
                    ConnError::Timeout(_) => PyTimeoutError::new_err("result expired"),
                    error => PyEOFError::new_err(error.to_string()),
                })?;
        match reply {
            Ok(value) => self.session.unbox(py, &value),
            Err(exception) => Err(self.session.load_exception(py, &exception)),
        }
    }

    /// The proxy for `id_pack` is gone: give its references back (rpyc's
    /// DEL, sent without waiting, as a finalizer must not block).
    fn release(&self, id_pack: &Bound<'_, PyAny>, count: u64) -> PyResult<()> {
        let Some(conn) = self.session.connection() else {
            return Ok(());
        };
        let pack = id_pack_from(id_pack)?;
        let args = Boxed::Tuple(vec![
            Boxed::LocalRef(pack),
            Boxed::Value(Value::from_u64(count)),
        ]);
        // a closed connection has nothing left to release
        let _ = conn.async_request(Handler::Del, args);
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.session
            .connection()
            .is_none_or(|conn| conn.is_closed())
    }

    fn close(&self) {
        if let Some(conn) = self.session.connection() {
            conn.close();
        }
    }
}
