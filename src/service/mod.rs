//! Services: what answers a connection's requests.
//!
//! A server hosts one [`SessionFactory`], which gives each connection its
//! [`Session`]. [`classic`] is rpyc's classic (`SlaveService`) service on an
//! embedded CPython; [`python`] serves any Python rpyc `Service` class on
//! the same object space (`rpyc-serve`).

pub mod classic;
mod convert;
mod embedded;
mod link;
pub mod python;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::connection::{Connection, Session};

/// Who is at the other end of a connection, as a service may want to know
/// (rpyc gives its services `conn._config["endpoints"]` and
/// `["credentials"]`).
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// How log lines name the peer: `[127.0.0.1]:34044`, `unix`, `stdio`.
    pub name: String,
    /// Who the peer proved to be (a TLS client certificate's subject).
    pub credentials: Option<String>,
    /// `(ours, theirs)` for a TCP connection.
    pub endpoints: Option<(SocketAddr, SocketAddr)>,
}

/// What a server serves: a session for each connection, and a way to fork
/// the process that keeps the service sound in the child.
pub trait SessionFactory: Send + Sync {
    /// The session that answers `conn`'s requests; an error ends the
    /// connection and is logged.
    fn open(&self, conn: &Arc<Connection>, peer: &PeerInfo) -> Result<Arc<dyn Session>, String>;

    /// The connection this thread served is over (its session is closed);
    /// the thread may serve another next. Called without the GIL.
    fn connection_done(&self) {}

    /// Whether the connection this thread serves may be served by another
    /// thread from now on (a threaded server lets a quiet connection's
    /// thread go): not if the client's code keeps state in this thread.
    /// Called without the GIL, in the serving thread.
    fn may_move(&self) -> bool {
        true
    }

    /// Forks the process (forking mode). The caller is the process's only
    /// thread. A service with state that fork() would break (an embedded
    /// interpreter) overrides this.
    fn fork(&self) -> nix::Result<nix::unistd::ForkResult> {
        // SAFETY: the caller guarantees it is the only thread, so the child
        // inherits no lock held by a thread that does not exist there.
        unsafe { nix::unistd::fork() }
    }
}

impl SessionFactory for classic::ClassicService {
    fn open(&self, conn: &Arc<Connection>, _peer: &PeerInfo) -> Result<Arc<dyn Session>, String> {
        classic::ClassicService::open(self, conn)
            .map(|session| session as Arc<dyn Session>)
            .map_err(|error| error.to_string())
    }

    fn connection_done(&self) {
        classic::finish_thread_state();
    }

    fn may_move(&self) -> bool {
        classic::thread_state_is_clean()
    }

    fn fork(&self) -> nix::Result<nix::unistd::ForkResult> {
        classic::ClassicService::fork(self)
    }
}
