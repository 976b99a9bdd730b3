//! Services: what answers a connection's requests.
//!
//! A server hosts one [`SessionFactory`], which gives each connection its
//! [`Session`]. Services come in two kinds: [`python`], on an embedded
//! CPython (rpyc's classic `SlaveService`, and any Python rpyc `Service`
//! class for `rpyc-serve`), and [`rust`], services written in Rust (the
//! public API's `Service`, `Class`, `Obj`).

pub mod python;
pub mod rust;

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
    /// The peer's TLS client certificate as Python's `getpeercert()`
    /// shows it: what rpyc gives a service as `conn._config["credentials"]`.
    pub certificate: Option<Box<crate::protocol::x509::PeerCert>>,
    /// `(ours, theirs)` for a TCP connection.
    pub endpoints: Option<(SocketAddr, SocketAddr)>,
    /// What the service's own authenticator granted the peer (rpyc-serve's
    /// `--authenticator` gives a Python object): the service knows its type.
    pub granted: Option<Granted>,
}

/// What an authenticator grants a peer, for a service that knows what it is.
pub type Granted = Arc<dyn std::any::Any + Send + Sync>;

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
