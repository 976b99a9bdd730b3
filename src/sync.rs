//! Locks that survive a panic: the state behind the crate's mutexes stays
//! consistent between statements, so a thread that panicked holding one
//! (a bug of ours, caught per request) must not take every later user of
//! the lock down with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering it if a panicking thread poisoned it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
