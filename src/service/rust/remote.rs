//! The other party: [`Peer`] is a connection as the API uses it, and
//! [`RemoteObject`] one of the peer's objects (rpyc's netref).

use std::sync::Arc;

use super::error::{Error, Exception};
use super::session::ObjectSession;
use super::values::{Args, FromObj, IntoArgs, IntoObj, Obj};
use crate::connection::Connection;
use crate::protocol::brine::Value;
use crate::protocol::message::{Boxed, Handler, IdPack};
use crate::service::PeerInfo;

/// One connection, from either end: the client's handle on its server, or
/// a service's handle on the client that called it ([`Call::peer`](super::class::Call::peer)).
/// Cheap to clone; all clones are one connection.
#[derive(Clone)]
pub struct Peer {
    pub(crate) inner: Arc<PeerInner>,
}

pub(crate) struct PeerInner {
    pub(crate) conn: Arc<Connection>,
    pub(crate) session: Arc<ObjectSession>,
    /// A client's connection ends when the last handle on it goes (the
    /// client and every proxy it made); a server's when the client leaves.
    pub(crate) close_on_drop: bool,
    pub(crate) info: PeerInfo,
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        if self.close_on_drop {
            say_goodbye(&self.conn);
        }
    }
}

/// CLOSE, as rpyc's `Connection.close` sends it (never answered), then
/// the end of the connection.
pub(crate) fn say_goodbye(conn: &Connection) {
    if !conn.is_closed() {
        // the peer may be gone already: the connection ends either way
        let _ = conn.async_request(Handler::Close, Boxed::Value(Value::Tuple(vec![])));
    }
    conn.close();
}

impl Peer {
    /// Who the peer is: its address (`endpoints`, ours then theirs, for
    /// TCP) and, behind TLS with client certificates, its subject — what
    /// rpyc's services read from `conn._config`.
    pub fn info(&self) -> &PeerInfo {
        &self.inner.info
    }

    /// The peer's service: `conn.root` of rpyc.
    pub fn root(&self) -> Result<RemoteObject, Error> {
        self.request(Handler::GetRoot, Obj::Tuple(vec![]))?
            .extract()
    }

    /// PING: the peer echoes what it is sent.
    pub fn ping(&self) -> Result<(), Error> {
        let data = Value::str("abcdefghijklmnopqrstuvwxyz".repeat(20));
        match self
            .request(Handler::Ping, Obj::Tuple(vec![Obj::Value(data.clone())]))?
            .to_value()
        {
            Some(echo) if echo == data => Ok(()),
            _ => Err(Error::Protocol("the ping's echo differs".into())),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.conn.is_closed()
    }

    /// Ends the connection (CLOSE, as rpyc sends it); every proxy of the
    /// peer's objects stops working.
    pub fn close(&self) {
        say_goodbye(&self.inner.conn);
    }

    /// Sends a request whose arguments are `args` (a tuple) and unboxes
    /// the answer. Our objects among the arguments are counted in the
    /// object table while the peer holds them.
    pub(crate) fn request(&self, handler: Handler, args: Obj) -> Result<Obj, Error> {
        let boxed = self.inner.session.box_obj(&args)?;
        let reply = self.inner.conn.sync_request(handler, boxed)?;
        // `args` lives until the answer is in: our references in it must
        // outlive the request that names them
        drop(args);
        match reply {
            Ok(boxed) => self.inner.session.unbox(boxed, self),
            Err(exception) => Err(Exception::from_remote(exception).into()),
        }
    }

    pub(crate) fn same_as(&self, other: &Peer) -> bool {
        Arc::ptr_eq(&self.inner.session, &other.inner.session)
    }
}

/// One of the peer's objects (rpyc's netref): attribute reads and calls
/// become requests. Clones share one reference; the peer is told when the
/// last clone goes (DEL), as a Python proxy does when it is collected.
///
/// ```no_run
/// # fn main() -> Result<(), rpycd::api::Error> {
/// let client = rpycd::connect("127.0.0.1:18861")?;
/// let root = client.root()?;
/// let sum: i64 = root.callattr("add", (1, 2))?;
/// let name: String = root.callattr("get_service_name", ())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteObject {
    inner: Arc<RemoteInner>,
}

struct RemoteInner {
    peer: Peer,
    pack: IdPack,
}

impl Drop for RemoteInner {
    fn drop(&mut self) {
        let conn = &self.peer.inner.conn;
        if !conn.is_closed() {
            // a peer gone meanwhile has nothing left to release
            let _ = conn.async_request(
                Handler::Del,
                Boxed::Tuple(vec![
                    Boxed::LocalRef(self.pack.clone()),
                    Boxed::Value(Value::Int(1)),
                ]),
            );
        }
    }
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<remote {} object {:#x}>",
            self.inner.pack.name, self.inner.pack.obj_id
        )
    }
}

impl RemoteObject {
    pub(crate) fn new(peer: Peer, pack: IdPack) -> RemoteObject {
        RemoteObject {
            inner: Arc::new(RemoteInner { peer, pack }),
        }
    }

    /// How the peer names the object: `(type name, type id, object id)`.
    pub fn id_pack(&self) -> &IdPack {
        &self.inner.pack
    }

    /// The peer's name for the object's type (`builtins.list`,
    /// `__main__.MyService`).
    pub fn type_name(&self) -> &str {
        &self.inner.pack.name
    }

    /// The connection the object lives on.
    pub fn peer(&self) -> &Peer {
        &self.inner.peer
    }

    fn request(&self, handler: Handler, rest: Vec<Obj>) -> Result<Obj, Error> {
        let mut args = vec![Obj::Remote(self.clone())];
        args.extend(rest);
        self.inner.peer.request(handler, Obj::Tuple(args))
    }

    /// `obj.name`.
    pub fn getattr<R: FromObj>(&self, name: &str) -> Result<R, Error> {
        self.request(Handler::GetAttr, vec![name.into_obj()])?
            .extract()
    }

    /// `obj.name = value` (a Python server allows it only with `allow_setattr`).
    pub fn setattr(&self, name: &str, value: impl IntoObj) -> Result<(), Error> {
        self.request(Handler::SetAttr, vec![name.into_obj(), value.into_obj()])
            .map(drop)
    }

    /// `obj(*args, **kwargs)`: `(1, 2)` for positional arguments only, or
    /// [`Args`] with keywords.
    pub fn call<R: FromObj>(&self, args: impl IntoArgs) -> Result<R, Error> {
        let (positional, keyword) = split(args.into_args());
        self.request(Handler::Call, vec![positional, keyword])?
            .extract()
    }

    /// `obj.name(*args, **kwargs)` in one request (rpyc's CALLATTR; a
    /// service's `exposed_` prefix may be left out, as with rpyc).
    pub fn callattr<R: FromObj>(&self, name: &str, args: impl IntoArgs) -> Result<R, Error> {
        let (positional, keyword) = split(args.into_args());
        self.request(
            Handler::CallAttr,
            vec![name.into_obj(), positional, keyword],
        )?
        .extract()
    }

    /// `repr(obj)`.
    pub fn repr(&self) -> Result<String, Error> {
        self.request(Handler::Repr, vec![])?.extract()
    }

    /// `str(obj)`.
    pub fn str(&self) -> Result<String, Error> {
        self.request(Handler::Str, vec![])?.extract()
    }

    /// `dir(obj)`.
    pub fn dir(&self) -> Result<Vec<String>, Error> {
        self.request(Handler::Dir, vec![])?.extract()
    }

    /// `hash(obj)`.
    pub fn hash(&self) -> Result<i64, Error> {
        self.request(Handler::Hash, vec![])?.extract()
    }

    /// The methods the peer's type defines, `(name, doc)` (INSPECT).
    pub fn inspect(&self) -> Result<Vec<(String, Option<String>)>, Error> {
        let pack = Obj::from_value(Value::Tuple(vec![
            Value::str(self.inner.pack.name.as_str()),
            Value::from_u64(self.inner.pack.type_id),
            Value::from_u64(self.inner.pack.obj_id),
        ]));
        self.inner
            .peer
            .request(Handler::Inspect, Obj::Tuple(vec![pack]))?
            .extract()
    }

    /// Every item of an iterable of the peer's (a list, a generator), at
    /// most `limit`: `iter(obj)`, then batches of items (rpyc's BUFFITER).
    pub fn iterate(&self, limit: usize) -> Result<Vec<Obj>, Error> {
        const BATCH: usize = 256;
        let iterator: RemoteObject = self.callattr("__iter__", ())?;
        let mut items = Vec::new();
        while items.len() < limit {
            let want = BATCH.min(limit - items.len());
            let batch: Vec<Obj> = iterator
                .request(Handler::BuffIter, vec![want.into_obj()])?
                .extract()?;
            if batch.is_empty() {
                return Ok(items);
            }
            items.extend(batch);
        }
        Err(Error::value_error(format!(
            "the iterable yields more than {limit} items"
        )))
    }
}

/// Positional arguments as a tuple, keyword ones as `((name, value), ...)`,
/// as rpyc's proxies send them.
fn split(args: Args) -> (Obj, Obj) {
    let keyword = args
        .keyword
        .into_iter()
        .map(|(name, value)| Obj::Tuple(vec![name.into_obj(), value]))
        .collect();
    (Obj::Tuple(args.positional), Obj::Tuple(keyword))
}
