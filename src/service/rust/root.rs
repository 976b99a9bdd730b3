//! Services: the root object a connection's peer gets (`conn.root`), with
//! rpyc's service naming, and the factory that gives every connection its
//! session.

use std::any::{Any, TypeId};
use std::sync::Arc;

use super::class::{class_of, Call, Exported, Instance, Object};
use super::error::Error;
use super::remote::Peer;
use super::session::ObjectSession;
use super::values::{IntoObj, Obj};
use crate::connection::{Connection, Session};
use crate::service::{PeerInfo, SessionFactory};

/// A service: the object a client gets as `conn.root`, with the names
/// rpyc's `Service` gives it.
///
/// Clients can also call `root.get_service_name()` and
/// `root.get_service_aliases()`, as on any rpyc service; the registry
/// knows the service by these names.
///
/// ```
/// use rpycd::api::{Class, Object, Service};
///
/// struct CalculatorService;
///
/// impl Object for CalculatorService {
///     fn describe(class: &mut Class<Self>) {
///         class.method("add", |_, call| {
///             let (a, b): (i64, i64) = call.params(&["a", "b"])?;
///             Ok(a + b)
///         });
///     }
/// }
///
/// impl Service for CalculatorService {}
///
/// assert_eq!(CalculatorService::service_aliases(), vec!["CALCULATOR"]);
/// ```
pub trait Service: Object {
    /// rpyc's `ALIASES`: the names to register under; the first is the
    /// service's name. Empty: the type's name, upper-cased, without a
    /// `SERVICE` suffix (as rpyc derives it from the class name).
    const ALIASES: &'static [&'static str] = &[];

    /// `get_service_aliases()`: [`ALIASES`](Service::ALIASES) upper-cased, or
    /// the name derived from the type's.
    fn service_aliases() -> Vec<String> {
        if !Self::ALIASES.is_empty() {
            return Self::ALIASES.iter().map(|a| a.to_uppercase()).collect();
        }
        let class = class_of::<Self>();
        let short = class.name.rsplit('.').next().unwrap_or(&class.name);
        let upper = short.to_uppercase();
        let name = upper.strip_suffix("SERVICE").unwrap_or(&upper);
        vec![name.to_owned()]
    }

    /// `get_service_name()`: the first alias.
    fn service_name() -> String {
        Self::service_aliases()
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// A client connected (rpyc's `on_connect`). Runs before the first
    /// request is served. Keeping `peer` keeps the connection's state
    /// alive until it is dropped (the connection still ends when the
    /// client leaves).
    fn on_connect(&self, _peer: &Peer) {}

    /// The client's connection ended (rpyc's `on_disconnect`).
    fn on_disconnect(&self) {}
}

/// The root object: the service, plus rpyc's service methods.
struct ServiceRoot<S: Service> {
    service: Arc<dyn Exported>,
    typed: Arc<S>,
}

impl<S: Service> ServiceRoot<S> {
    fn exported(service: Arc<S>) -> Arc<dyn Exported> {
        Arc::new(ServiceRoot {
            service: Instance::exported(service.clone()),
            typed: service,
        })
    }

    fn builtin(name: &str) -> Option<Obj> {
        let plain = name
            .strip_prefix(super::class::EXPOSED_PREFIX)
            .unwrap_or(name);
        match plain {
            "get_service_name" => Some(S::service_name().into_obj()),
            "get_service_aliases" => Some(S::service_aliases().into_obj()),
            _ => None,
        }
    }
}

impl<S: Service> Exported for ServiceRoot<S> {
    fn type_name(&self) -> &str {
        self.service.type_name()
    }

    fn class_id(&self) -> u64 {
        self.service.class_id()
    }

    fn object_id(&self) -> u64 {
        self.service.object_id()
    }

    fn inspect(&self) -> Vec<(String, Option<String>)> {
        let mut methods = self.service.inspect();
        for name in ["get_service_name", "get_service_aliases"] {
            if !methods.iter().any(|(known, _)| known == name) {
                methods.push((name.into(), None));
            }
        }
        methods
    }

    fn dir(&self) -> Vec<String> {
        let mut names = self.service.dir();
        names.extend(
            [
                "exposed_get_service_aliases",
                "exposed_get_service_name",
                "get_service_aliases",
                "get_service_name",
            ]
            .map(String::from),
        );
        names.sort();
        names.dedup();
        names
    }

    fn getattr(self: Arc<Self>, name: &str, peer: &Peer) -> Result<Obj, Error> {
        match self.service.clone().getattr(name, peer) {
            Err(error) if error.is_builtin("AttributeError") && Self::builtin(name).is_some() => {
                // rpyc's classmethods: here a function answering the name
                let answer = Self::builtin(name).unwrap_or_else(Obj::none);
                Ok(Obj::function(name, move |_| Ok(answer.clone())))
            }
            other => other,
        }
    }

    fn callattr(self: Arc<Self>, name: &str, call: Call) -> Result<Obj, Error> {
        match Self::builtin(name) {
            Some(answer) if !self.service_has(name) => Ok(answer),
            _ => self.service.clone().callattr(name, call),
        }
    }

    fn call(self: Arc<Self>, call: Call) -> Result<Obj, Error> {
        self.service.clone().call(call)
    }

    fn repr(&self) -> String {
        self.service.repr()
    }

    fn str(&self) -> String {
        self.service.str()
    }

    fn instance_of(&self, type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        (type_id == TypeId::of::<S>()).then(|| self.typed.clone() as Arc<dyn Any + Send + Sync>)
    }
}

impl<S: Service> ServiceRoot<S> {
    /// Whether the service itself declares `name` (then it wins).
    fn service_has(&self, name: &str) -> bool {
        self.service.dir().iter().any(|known| known == name)
    }
}

/// Where a server's services come from: one shared by every connection,
/// or a new one for each (rpyc's `ThreadedServer(MyService())` and
/// `ThreadedServer(MyService)`).
enum Source<S> {
    Shared(Arc<S>),
    PerConnection(Box<dyn Fn() -> S + Send + Sync>),
}

/// Hosts a Rust [`Service`] in a server (any strategy).
pub struct ServiceFactory<S: Service> {
    source: Source<S>,
}

impl<S: Service> ServiceFactory<S> {
    /// Every connection shares `service`.
    pub fn shared(service: Arc<S>) -> ServiceFactory<S> {
        ServiceFactory {
            source: Source::Shared(service),
        }
    }

    /// Every connection gets a service of its own from `make`.
    pub fn per_connection(make: impl Fn() -> S + Send + Sync + 'static) -> ServiceFactory<S> {
        ServiceFactory {
            source: Source::PerConnection(Box::new(make)),
        }
    }

    fn instance(&self) -> Arc<S> {
        match &self.source {
            Source::Shared(service) => service.clone(),
            Source::PerConnection(make) => Arc::new(make()),
        }
    }
}

impl<S: Service> SessionFactory for ServiceFactory<S> {
    fn open(&self, conn: &Arc<Connection>, info: &PeerInfo) -> Result<Arc<dyn Session>, String> {
        let service = self.instance();
        let (session, peer) = open_session(conn, service.clone(), false, info.clone());
        service.on_connect(&peer);
        session.on_close(move || service.on_disconnect());
        Ok(session)
    }
}

/// A session on `conn` whose root is `service`.
pub(crate) fn open_session<S: Service>(
    conn: &Arc<Connection>,
    service: Arc<S>,
    client: bool,
    info: PeerInfo,
) -> (Arc<ObjectSession>, Peer) {
    ObjectSession::open(conn, ServiceRoot::exported(service), client, info)
}

/// The service of a client that offers nothing (rpyc's `VoidService`).
pub struct VoidService;

impl Object for VoidService {
    fn describe(class: &mut super::class::Class<Self>) {
        class.name("rpyc.core.service.VoidService");
    }
}

impl Service for VoidService {}
