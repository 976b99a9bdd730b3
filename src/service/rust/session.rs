//! The session of a connection whose objects are Rust objects: the object
//! table (what the peer holds, with counts), boxing, and the request
//! handlers, as rpyc's `Connection` has them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::class::{Call, Exported};
use super::error::Error;
use super::remote::{Peer, PeerInner, RemoteObject};
use super::values::{Args, FromObj, Local, Obj};
use crate::connection::{Connection, KeepAlive, Reply, Session};
use crate::protocol::brine::Value;
use crate::protocol::message::{Boxed, Dialect, Handler, IdPack};
use crate::service::PeerInfo;
use crate::sync::lock;

/// How the session reaches its [`Peer`]: a server's session owns it until
/// the connection ends; a client's only points at it, so the connection
/// ends when the client's last handle goes.
enum PeerLink {
    Unset,
    Strong(Arc<PeerInner>),
    Weak(Weak<PeerInner>),
}

type Hook = Box<dyn FnOnce() + Send>;

/// Our objects the peer holds, each with how many times we sent it.
type Table = HashMap<IdPack, (Arc<dyn Exported>, u64)>;

pub(crate) struct ObjectSession {
    root: Arc<dyn Exported>,
    peer: Mutex<PeerLink>,
    /// rpyc's `_local_objects`: what the peer holds and how many times we
    /// sent it (the peer's DEL gives counts back). `None` once closed.
    table: Mutex<Option<Table>>,
    on_close: Mutex<Option<Hook>>,
}

fn closed() -> Error {
    Error::Connection(crate::connection::ConnError::Closed)
}

impl ObjectSession {
    /// A session for `conn` whose root object is `root`, and the peer
    /// handle on it. `client`: the connection ends with the last handle.
    pub(crate) fn open(
        conn: &Arc<Connection>,
        root: Arc<dyn Exported>,
        client: bool,
        info: PeerInfo,
    ) -> (Arc<ObjectSession>, Peer) {
        let session = Arc::new(ObjectSession {
            root,
            peer: Mutex::new(PeerLink::Unset),
            table: Mutex::new(Some(HashMap::new())),
            on_close: Mutex::new(None),
        });
        let inner = Arc::new(PeerInner {
            conn: conn.clone(),
            session: session.clone(),
            close_on_drop: client,
            info,
        });
        *lock(&session.peer) = if client {
            PeerLink::Weak(Arc::downgrade(&inner))
        } else {
            PeerLink::Strong(inner.clone())
        };
        (session, Peer { inner })
    }

    /// Runs `hook` once when the connection ends.
    pub(crate) fn on_close(&self, hook: impl FnOnce() + Send + 'static) {
        *lock(&self.on_close) = Some(Box::new(hook));
    }

    fn peer(&self) -> Option<Peer> {
        let inner = match &*lock(&self.peer) {
            PeerLink::Unset => None,
            PeerLink::Strong(inner) => Some(inner.clone()),
            PeerLink::Weak(inner) => inner.upgrade(),
        };
        inner.map(|inner| Peer { inner })
    }

    /// How many of our objects the peer holds.
    pub(crate) fn object_count(&self) -> usize {
        lock(&self.table).as_ref().map_or(0, HashMap::len)
    }

    /// Counts one more reference of the peer to `object`.
    fn register(&self, object: Arc<dyn Exported>) -> Result<IdPack, Error> {
        let pack = IdPack {
            name: object.type_name().to_owned(),
            type_id: object.class_id(),
            obj_id: object.object_id(),
        };
        let mut table = lock(&self.table);
        let table = table.as_mut().ok_or_else(closed)?;
        table
            .entry(pack.clone())
            .and_modify(|(_, count)| *count += 1)
            .or_insert((object, 1));
        Ok(pack)
    }

    /// Packs `obj` for the peer: by value when brine can carry it, else by
    /// reference (rpyc's `_box`).
    pub(crate) fn box_obj(&self, obj: &Obj) -> Result<Boxed, Error> {
        match obj {
            Obj::Value(value) => Ok(Boxed::Value(value.clone())),
            Obj::Tuple(items) => match obj.to_value() {
                Some(value) => Ok(Boxed::Value(value)),
                None => items
                    .iter()
                    .map(|item| self.box_obj(item))
                    .collect::<Result<_, _>>()
                    .map(Boxed::Tuple),
            },
            Obj::Remote(remote) => {
                let ours = self.peer().is_some_and(|peer| peer.same_as(remote.peer()));
                if ours {
                    Ok(Boxed::LocalRef(remote.id_pack().clone()))
                } else {
                    // another connection's object: we stand in for it
                    let proxy: Arc<dyn Exported> = Arc::new(Forward(remote.clone()));
                    self.register(proxy).map(Boxed::RemoteRef)
                }
            }
            Obj::Local(local) => self.register(local.0.clone()).map(Boxed::RemoteRef),
        }
    }

    /// What a boxed value from the peer names (rpyc's `_unbox`).
    pub(crate) fn unbox(&self, boxed: Boxed, peer: &Peer) -> Result<Obj, Error> {
        match boxed {
            Boxed::Value(value) => Ok(Obj::from_value(value)),
            Boxed::Tuple(items) => items
                .into_iter()
                .map(|item| self.unbox(item, peer))
                .collect::<Result<_, _>>()
                .map(Obj::Tuple),
            Boxed::LocalRef(pack) => match lock(&self.table).as_ref() {
                Some(table) => match table.get(&pack) {
                    Some((object, _)) => Ok(Obj::Local(Local(object.clone()))),
                    // rpyc looks it up in a dict: a KeyError of the pack
                    None => Err(Error::with_args(
                        "builtins",
                        "KeyError",
                        vec![pack_value(&pack)],
                    )),
                },
                None => Err(closed()),
            },
            Boxed::RemoteRef(pack) => Ok(Obj::Remote(RemoteObject::new(peer.clone(), pack))),
        }
    }

    /// The peer gave back `count` references to one of our objects.
    fn release(&self, pack: &IdPack, count: u64) {
        let freed = {
            let mut table = lock(&self.table);
            let Some(table) = table.as_mut() else { return };
            match table.get_mut(pack) {
                Some((_, held)) if *held > count => {
                    *held -= count;
                    None
                }
                Some(_) => table.remove(pack),
                None => None,
            }
        };
        // dropped outside the lock: a Drop of the user's may do anything
        drop(freed);
    }

    /// The rpyc version the peer speaks, for exceptions' `_remote_version`.
    fn version(conn: &Connection) -> &'static str {
        match conn.dialect() {
            Dialect::V5 => crate::RPYC5_VERSION,
            Dialect::V6 | Dialect::V6Threads => crate::RPYC_VERSION,
        }
    }

    fn serve(
        &self,
        peer: &Peer,
        handler: Handler,
        args: Boxed,
        kept: &mut Vec<Obj>,
        site: &mut String,
    ) -> Result<Obj, Error> {
        if handler == Handler::Del {
            return self.handle_del(args);
        }
        let args = self.unbox(args, peer)?;
        kept.push(args.clone());
        let mut args: Vec<Obj> = args.extract()?;
        let mut take = |name: &str| -> Result<Obj, Error> {
            if args.is_empty() {
                Err(Error::type_error(format!(
                    "{handler:?} request lacks its {name}"
                )))
            } else {
                Ok(args.remove(0))
            }
        };
        match handler {
            Handler::Ping => take("data"),
            Handler::GetRoot => Ok(Obj::Local(Local(self.root.clone()))),
            Handler::GetAttr => {
                let target = local(take("object")?)?;
                let name = attr_name(take("name")?)?;
                *site = format!("{}.{name}", target.type_name());
                target.getattr(&name, peer)
            }
            Handler::SetAttr | Handler::DelAttr => {
                let _target = local(take("object")?)?;
                let name = attr_name(take("name")?)?;
                // rpyc's default configuration: no allow_setattr/delattr
                Err(Error::attribute_error(format!("cannot access '{name}'")))
            }
            Handler::Call => {
                let target = local(take("object")?)?;
                *site = target.site();
                let call_args = call_args(take("args")?, args.pop())?;
                let call = Call::new(target.type_name(), call_args, peer.clone());
                target.call(call)
            }
            Handler::CallAttr => {
                let target = local(take("object")?)?;
                let name = attr_name(take("name")?)?;
                *site = format!("{}.{name}", target.type_name());
                let call_args = call_args(take("args")?, args.pop())?;
                let call = Call::new(&name, call_args, peer.clone());
                target.callattr(&name, call)
            }
            Handler::Repr => Ok(Obj::Value(Value::Str(local(take("object")?)?.repr()))),
            Handler::Str => Ok(Obj::Value(Value::Str(local(take("object")?)?.str()))),
            Handler::Hash => {
                // Python's default hash: the id, shifted
                let id = local(take("object")?)?.object_id();
                Ok(Obj::Value(Value::Int((id >> 4) as i64)))
            }
            Handler::Dir => {
                let names = local(take("object")?)?.dir();
                Ok(Obj::Tuple(
                    names
                        .into_iter()
                        .map(|name| Obj::Value(Value::Str(name)))
                        .collect(),
                ))
            }
            Handler::Inspect => {
                let pack = pack_of(take("id pack")?)?;
                let object = match lock(&self.table).as_ref() {
                    Some(table) => table.get(&pack).map(|(object, _)| object.clone()),
                    None => return Err(closed()),
                };
                let object = object.ok_or_else(|| {
                    Error::with_args("builtins", "KeyError", vec![pack_value(&pack)])
                })?;
                Ok(Obj::Tuple(
                    object
                        .inspect()
                        .into_iter()
                        .map(|(name, doc)| {
                            Obj::Tuple(vec![
                                Obj::Value(Value::Str(name)),
                                Obj::Value(doc.map_or(Value::None, Value::Str)),
                            ])
                        })
                        .collect(),
                ))
            }
            Handler::Cmp => {
                // object's own comparisons: identity, else NotImplemented
                let target = local(take("object")?)?;
                let other = take("other")?;
                let op = match args.pop() {
                    Some(op) => attr_name(op)?,
                    None => "__cmp__".into(),
                };
                let same = matches!(&other, Obj::Local(other) if other.0.object_id() == target.object_id());
                Ok(Obj::Value(match (op.as_str(), same) {
                    ("__eq__", true) => Value::Bool(true),
                    ("__ne__", true) => Value::Bool(false),
                    _ => Value::NotImplemented,
                }))
            }
            Handler::BuffIter => {
                let target = local(take("object")?)?;
                let count: usize = take("count")?.extract()?;
                let mut items = Vec::new();
                while items.len() < count {
                    let call = Call::new("__next__", Args::new(), peer.clone());
                    match target.clone().callattr("__next__", call) {
                        Ok(item) => items.push(item),
                        Err(error) if error.is_builtin("StopIteration") => break,
                        Err(error) => return Err(error),
                    }
                }
                Ok(Obj::Tuple(items))
            }
            // rpyc's answer when its class caches miss
            Handler::InstanceCheck => Ok(Obj::Value(Value::Bool(false))),
            // rpyc's default configuration (allow_pickle off)
            Handler::Pickle => Err(Error::value_error("pickling is disabled")),
            Handler::OldSlicing | Handler::CtxExit | Handler::Del | Handler::Close => {
                Err(Error::type_error(format!(
                    "rpycd's Rust objects do not support the {handler:?} request"
                )))
            }
        }
    }

    /// DEL's arguments are `(obj, count)`; `obj` is ours, named by id pack,
    /// and may be gone already (then there is nothing to release).
    fn handle_del(&self, args: Boxed) -> Result<Obj, Error> {
        let bad = || Error::type_error("DEL takes (obj, count)");
        let Boxed::Tuple(items) = args else {
            return Err(bad());
        };
        let (pack, count) = match items.as_slice() {
            [Boxed::LocalRef(pack)] => (pack, 1),
            [Boxed::LocalRef(pack), Boxed::Value(count)] => (pack, count.as_u64().unwrap_or(1)),
            _ => return Err(bad()),
        };
        self.release(pack, count);
        Ok(Obj::none())
    }
}

impl Session for ObjectSession {
    fn handle(&self, conn: &Arc<Connection>, handler: Handler, args: Boxed) -> (Reply, KeepAlive) {
        let Some(peer) = self.peer() else {
            let error = closed().into_exception();
            return (Err(error.to_remote(Self::version(conn), "rpycd")), None);
        };
        let mut kept = Vec::new();
        let mut site = format!("{handler:?}");
        let reply = self
            .serve(&peer, handler, args, &mut kept, &mut site)
            .and_then(|result| {
                let boxed = self.box_obj(&result);
                kept.push(result);
                boxed
            })
            .map_err(|error| error.into_exception().to_remote(Self::version(conn), &site));
        // the arguments and the result live until the reply is sent: a DEL
        // of the peer's objects must not overtake the reply naming them
        let kept: Box<dyn Send> = Box::new((kept, peer));
        (reply, Some(kept))
    }

    fn close(&self) {
        let table = lock(&self.table).take();
        let link = std::mem::replace(&mut *lock(&self.peer), PeerLink::Unset);
        let hook = lock(&self.on_close).take();
        drop(table);
        drop(link);
        if let Some(hook) = hook {
            hook();
        }
    }
}

/// The target of a request: one of our objects.
fn local(obj: Obj) -> Result<Arc<dyn Exported>, Error> {
    match obj {
        Obj::Local(local) => Ok(local.0),
        other => Err(Error::type_error(format!(
            "the request's object is not one of ours but a {}",
            other.python_type()
        ))),
    }
}

/// An attribute name: str, or bytes as rpyc also accepts.
fn attr_name(obj: Obj) -> Result<String, Error> {
    match obj {
        Obj::Value(Value::Str(name)) => Ok(name),
        Obj::Value(Value::Bytes(bytes)) => String::from_utf8(bytes.into_vec())
            .map_err(|_| Error::builtin("UnicodeDecodeError", "the name is not UTF-8")),
        _ => Err(Error::type_error("name must be a string")),
    }
}

/// CALL's `args` and `kwargs`, the latter `((name, value), ...)`.
fn call_args(positional: Obj, keyword: Option<Obj>) -> Result<Args, Error> {
    let positional: Vec<Obj> = positional.extract()?;
    let keyword: Vec<(String, Obj)> = match keyword {
        Some(keyword) => Vec::<(String, Obj)>::from_obj(keyword)?,
        None => Vec::new(),
    };
    Ok(Args {
        positional,
        keyword,
    })
}

fn pack_of(obj: Obj) -> Result<IdPack, Error> {
    let bad = || Error::type_error("an id pack is (name, type id, object id)");
    let (name, type_id, obj_id): (String, u64, u64) = obj.extract().map_err(|_| bad())?;
    Ok(IdPack {
        name,
        type_id,
        obj_id,
    })
}

fn pack_value(pack: &IdPack) -> Value {
    Value::Tuple(vec![
        Value::str(pack.name.as_str()),
        Value::from_u64(pack.type_id),
        Value::from_u64(pack.obj_id),
    ])
}

/// Another connection's object, passed on to this peer: we hold the
/// reference and forward what the peer asks of it.
struct Forward(RemoteObject);

impl Exported for Forward {
    fn type_name(&self) -> &str {
        self.0.type_name()
    }

    fn class_id(&self) -> u64 {
        self.0.id_pack().type_id
    }

    fn object_id(&self) -> u64 {
        (self as *const Forward).cast::<()>() as usize as u64
    }

    fn inspect(&self) -> Vec<(String, Option<String>)> {
        self.0.inspect().unwrap_or_default()
    }

    fn dir(&self) -> Vec<String> {
        self.0.dir().unwrap_or_default()
    }

    fn getattr(self: Arc<Self>, name: &str, _peer: &Peer) -> Result<Obj, Error> {
        self.0.getattr(name)
    }

    fn callattr(self: Arc<Self>, name: &str, call: Call) -> Result<Obj, Error> {
        self.0.callattr(name, call.to_args())
    }

    fn call(self: Arc<Self>, call: Call) -> Result<Obj, Error> {
        self.0.call(call.to_args())
    }

    fn repr(&self) -> String {
        self.0
            .repr()
            .unwrap_or_else(|_| format!("<{} proxy>", self.0.type_name()))
    }

    fn str(&self) -> String {
        self.0.str().unwrap_or_else(|_| self.repr())
    }
}
