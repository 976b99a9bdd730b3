//! Python thread states that outlive a request: a connection's thread
//! keeps one while it serves, and lets it go when the client's code left
//! something in it, so the next connection served there starts clean.

use pyo3::prelude::*;

/// A Python thread state kept for this thread until it ends (see
/// [`keep`]).
struct KeptThreadState(*mut pyo3::ffi::PyThreadState);

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        // SAFETY: the thread state is this thread's, saved by
        // keep without the GIL; restoring it takes the GIL,
        // and the release matching its PyGILState_Ensure deletes it.
        unsafe {
            if pyo3::ffi::Py_IsInitialized() != 0 {
                pyo3::ffi::PyEval_RestoreThread(self.0);
                pyo3::ffi::PyGILState_Release(pyo3::ffi::PyGILState_STATE::PyGILState_UNLOCKED);
            }
        }
    }
}

thread_local! {
    static THREAD_STATE: std::cell::RefCell<Option<KeptThreadState>> =
        const { std::cell::RefCell::new(None) };
}

/// At the end of a connection, lets go of the thread state
/// [`keep`] kept if the client's code left anything in it, so
/// that a thread serving another connection next (threaded mode's spare
/// threads, the pool's workers) starts it with a fresh one: no
/// `threading.local` data, context variable, trace or profile function
/// passes from one client to the next, as with rpyc's ThreadedServer,
/// whose every connection has a new thread. A state left as it was made
/// is kept (making one costs a mapping and its unmapping). Must be called
/// without the GIL, in the thread that kept the state.
pub fn finish() {
    let kept = THREAD_STATE.with(|kept| kept.borrow().is_some());
    if kept && Python::attach(|py| was_used(py).unwrap_or(true)) {
        let kept = THREAD_STATE.with(|kept| kept.borrow_mut().take());
        drop(kept);
    }
}

/// Whether this thread's Python state holds nothing of a connection's own
/// (see [`was_used`]), so the connection may be served by
/// another thread from now on without its code noticing. Must be called
/// without the GIL.
pub fn is_clean() -> bool {
    Python::attach(|py| !was_used(py).unwrap_or(true))
}

/// Whether this thread's Python state holds anything of its own: its
/// thread dict (where `threading.local` and asyncio keep their data), a
/// context variable set, a trace or profile function.
fn was_used(py: Python<'_>) -> PyResult<bool> {
    // SAFETY: called with the GIL; the dict is borrowed from the thread
    // state, which outlives this call
    let thread_dict_used = unsafe {
        let dict = pyo3::ffi::PyThreadState_GetDict();
        !dict.is_null() && pyo3::ffi::PyDict_Size(dict) > 0
    };
    if thread_dict_used {
        return Ok(true);
    }
    let sys = py.import("sys")?;
    if !sys.call_method0("gettrace")?.is_none() || !sys.call_method0("getprofile")?.is_none() {
        return Ok(true);
    }
    let context = py.import("contextvars")?.call_method0("copy_context")?;
    Ok(context.len()? > 0)
}

/// Gives this thread a Python thread state that lives as long as the
/// thread, unless a connection's code used it ([`finish`]).
/// Without one, every `Python::attach` of a connection's thread
/// (one or more per request) goes through `PyGILState_Ensure` on a thread
/// without a thread state, which creates one and, on release, destroys it
/// again: an allocation, a frame stack chunk mapped and unmapped (munmap,
/// with its TLB shoot-down on every core), per request. With one kept,
/// attaching only takes and gives back the GIL. Not for the main thread,
/// whose thread-local destructors may run at exit while another thread
/// holds the GIL; the main thread has a thread state of its own anyway.
/// Must be called without the GIL.
pub fn keep() {
    // SAFETY: getpid and gettid have no preconditions
    let main_thread = unsafe { libc::getpid() == libc::gettid() };
    if main_thread {
        return;
    }
    THREAD_STATE.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.is_none() {
            // SAFETY: the interpreter is initialised (ClassicService::new)
            // and this thread does not hold the GIL (caller's contract):
            // Ensure creates the thread state and takes the GIL, and
            // SaveThread gives the GIL back while keeping the state.
            unsafe {
                pyo3::ffi::PyGILState_Ensure();
                *kept = Some(KeptThreadState(pyo3::ffi::PyEval_SaveThread()));
            }
        }
    });
}
