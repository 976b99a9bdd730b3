//! Rust objects as a Python client sees them: an [`Object`] declares its
//! methods and attributes once per type in a [`Class`]; a method gets the
//! call's arguments as a [`Call`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::error::Error;
use super::remote::Peer;
use super::values::{Args, FromObj, FromParams, IntoObj, Local, Obj};

/// The prefix rpyc's services put on the names they expose: `root.add`
/// finds `exposed_add`, and `root.exposed_add` works too.
pub const EXPOSED_PREFIX: &str = "exposed_";

/// A Rust type whose values a Python client can hold by reference and use
/// through rpyc: `proxy.method(args)`, `proxy.attribute`.
///
/// [`describe`](Object::describe) runs once per type and names what the
/// client may reach; anything else is an `AttributeError`, as with rpyc's
/// default configuration.
///
/// ```
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use rpycd::api::{Class, Object};
///
/// #[derive(Default)]
/// struct Counter {
///     value: AtomicI64,
/// }
///
/// impl Object for Counter {
///     fn describe(class: &mut Class<Self>) {
///         class
///             .name("example.Counter")
///             .method("increment", |this, call| {
///                 let (step,): (Option<i64>,) = call.params(&["step"])?;
///                 Ok(this.value.fetch_add(step.unwrap_or(1), Ordering::SeqCst) + step.unwrap_or(1))
///             })
///             .attribute("value", |this| Ok(this.value.load(Ordering::SeqCst)));
///     }
/// }
/// ```
pub trait Object: Send + Sync + Sized + 'static {
    /// Declares the methods and attributes clients may reach.
    fn describe(class: &mut Class<Self>);

    /// `repr(proxy)`; `None` for Python's default `<name object at 0x...>`.
    fn repr(&self) -> Option<String> {
        None
    }

    /// `str(proxy)`; `None` for the repr.
    fn str(&self) -> Option<String> {
        None
    }
}

type MethodFn<T> = Box<dyn Fn(&Arc<T>, &Call) -> Result<Obj, Error> + Send + Sync>;
type AttributeFn<T> = Box<dyn Fn(&Arc<T>) -> Result<Obj, Error> + Send + Sync>;

enum Member<T> {
    Method(MethodFn<T>),
    Attribute(AttributeFn<T>),
}

/// What clients may reach on an [`Object`] type: built once per type by
/// [`Object::describe`].
pub struct Class<T> {
    pub(crate) name: String,
    doc: Option<String>,
    members: Vec<(String, Member<T>)>,
    index: HashMap<String, usize>,
    id: u64,
}

impl<T: Object> Class<T> {
    fn new() -> Class<T> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        // spaced like addresses; only uniqueness matters to clients
        let id = 0x5250_0000_0000 + NEXT_ID.fetch_add(1, Ordering::Relaxed) * 0x40;
        Class {
            name: default_name::<T>(),
            doc: None,
            members: Vec::new(),
            index: HashMap::new(),
            id,
        }
    }

    /// The class name clients see (their proxy class's name, and the
    /// default repr). By default the Rust path with dots:
    /// `my_crate.Counter`. A name clients import themselves (`builtins.list`)
    /// would make them use that class's proxy: avoid those.
    pub fn name(&mut self, name: &str) -> &mut Class<T> {
        self.name = name.to_owned();
        self
    }

    /// The class's docstring (`proxy.__doc__`).
    pub fn doc(&mut self, doc: &str) -> &mut Class<T> {
        self.doc = Some(doc.to_owned());
        self
    }

    /// A method clients call as `proxy.name(...)` (and
    /// `proxy.exposed_name(...)`). Special names work as in Python:
    /// `__call__` makes the proxy callable, `__len__` gives it a `len()`,
    /// `__iter__`/`__next__` make it iterable.
    pub fn method<R: IntoObj>(
        &mut self,
        name: &str,
        body: impl Fn(&Arc<T>, &Call) -> Result<R, Error> + Send + Sync + 'static,
    ) -> &mut Class<T> {
        let body: MethodFn<T> = Box::new(move |this, call| body(this, call).map(IntoObj::into_obj));
        self.add(name, Member::Method(body))
    }

    /// An attribute clients read as `proxy.name`, computed at each read.
    pub fn attribute<R: IntoObj>(
        &mut self,
        name: &str,
        read: impl Fn(&Arc<T>) -> Result<R, Error> + Send + Sync + 'static,
    ) -> &mut Class<T> {
        let read: AttributeFn<T> = Box::new(move |this| read(this).map(IntoObj::into_obj));
        self.add(name, Member::Attribute(read))
    }

    fn add(&mut self, name: &str, member: Member<T>) -> &mut Class<T> {
        // a later declaration of a name replaces the earlier one
        match self.index.get(name) {
            Some(&at) => self.members[at].1 = member,
            None => {
                self.index.insert(name.to_owned(), self.members.len());
                self.members.push((name.to_owned(), member));
            }
        }
        self
    }

    /// The member `name` names: itself, or without the `exposed_` prefix.
    fn member(&self, name: &str) -> Option<(&str, &Member<T>)> {
        let at = self.index.get(name).or_else(|| {
            name.strip_prefix(EXPOSED_PREFIX)
                .and_then(|plain| self.index.get(plain))
        })?;
        self.members
            .get(*at)
            .map(|(name, member)| (name.as_str(), member))
    }

    /// The names clients may reach, sorted: each member, and the `exposed_`
    /// spelling of those that are not special names.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .iter()
            .flat_map(|(name, _)| {
                let exposed = (!name.starts_with("__")).then(|| format!("{EXPOSED_PREFIX}{name}"));
                std::iter::once(name.clone()).chain(exposed)
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn methods(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, member)| matches!(member, Member::Method(_)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// `my_crate::things::Counter<u8>` → `my_crate.things.Counter`.
fn default_name<T>() -> String {
    let path = std::any::type_name::<T>();
    let path = path.split('<').next().unwrap_or(path);
    path.replace("::", ".")
}

/// The class of `T`, described once per process.
pub(crate) fn class_of<T: Object>() -> Arc<Class<T>> {
    type Registry = Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>;
    static CLASSES: OnceLock<Registry> = OnceLock::new();
    let registry = CLASSES.get_or_init(Registry::default);
    let lock = || registry.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(class) = lock().get(&TypeId::of::<T>()).cloned() {
        if let Ok(class) = class.downcast::<Class<T>>() {
            return class;
        }
    }
    // described outside the lock: a description may name other classes
    let mut class = Class::new();
    T::describe(&mut class);
    let described: Arc<dyn Any + Send + Sync> = Arc::new(class);
    let stored = lock().entry(TypeId::of::<T>()).or_insert(described).clone();
    // the stored entry is keyed by this very type, so this always holds
    match stored.downcast::<Class<T>>() {
        Ok(class) => class,
        Err(_) => {
            let mut class = Class::new();
            T::describe(&mut class);
            Arc::new(class)
        }
    }
}

/// One call of a method: its arguments, and the peer that made it.
pub struct Call {
    pub(crate) method: String,
    pub(crate) args: Vec<Obj>,
    pub(crate) kwargs: Vec<(String, Obj)>,
    pub(crate) peer: Peer,
}

impl Call {
    pub(crate) fn new(method: &str, args: Args, peer: Peer) -> Call {
        Call {
            method: method.to_owned(),
            args: args.positional,
            kwargs: args.keyword,
            peer,
        }
    }

    /// The name the method was declared under.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The positional arguments.
    pub fn args(&self) -> &[Obj] {
        &self.args
    }

    /// The keyword arguments, in the caller's order.
    pub fn kwargs(&self) -> &[(String, Obj)] {
        &self.kwargs
    }

    /// The connection the call came from: to call the peer's own service
    /// (`call.peer().root()`), or to keep for later.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Positional argument `index`, converted.
    pub fn arg<T: FromObj>(&self, index: usize) -> Result<T, Error> {
        match self.args.get(index) {
            Some(obj) => T::from_obj(obj.clone()),
            None => T::when_missing().ok_or_else(|| {
                Error::type_error(format!(
                    "{}() missing required positional argument {index}",
                    self.method
                ))
            }),
        }
    }

    /// Keyword argument `name`, converted, if the caller gave it.
    pub fn kwarg<T: FromObj>(&self, name: &str) -> Result<Option<T>, Error> {
        self.kwargs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, obj)| T::from_obj(obj.clone()))
            .transpose()
    }

    /// The parameters `names`, bound as Python binds `def m(a, b)`: from
    /// position, then from keyword; an unknown keyword, a parameter given
    /// twice, too many arguments or a missing one is a `TypeError`. An
    /// `Option` parameter may be omitted.
    ///
    /// ```
    /// # use rpycd::api::{Call, Error};
    /// fn add(call: &Call) -> Result<i64, Error> {
    ///     let (a, b): (i64, Option<i64>) = call.params(&["a", "b"])?;
    ///     Ok(a + b.unwrap_or(0))
    /// }
    /// ```
    pub fn params<T: FromParams>(&self, names: &[&str]) -> Result<T, Error> {
        let method = &self.method;
        if self.args.len() > names.len() {
            return Err(Error::type_error(format!(
                "{method}() takes {} positional argument(s) but {} were given",
                names.len(),
                self.args.len()
            )));
        }
        let mut values: Vec<Option<Obj>> = (0..names.len())
            .map(|index| self.args.get(index).cloned())
            .collect();
        for (key, value) in &self.kwargs {
            match names.iter().position(|name| name == key) {
                None => {
                    return Err(Error::type_error(format!(
                        "{method}() got an unexpected keyword argument '{key}'"
                    )))
                }
                Some(at) if values[at].is_some() => {
                    return Err(Error::type_error(format!(
                        "{method}() got multiple values for argument '{key}'"
                    )))
                }
                Some(at) => values[at] = Some(value.clone()),
            }
        }
        T::from_params(values, names, method)
    }

    /// The arguments as [`Args`], to pass on to another callable.
    pub fn to_args(&self) -> Args {
        Args {
            positional: self.args.clone(),
            keyword: self.kwargs.clone(),
        }
    }
}

/// An object as the object table holds it: what the handlers need of any
/// exported thing (an [`Object`], a bound method, a function, a proxy).
pub(crate) trait Exported: Send + Sync + 'static {
    fn type_name(&self) -> &str;
    fn class_id(&self) -> u64;
    /// Unique among live objects, as Python's `id()` is.
    fn object_id(&self) -> u64;
    /// `(name, doc)` of the methods, for INSPECT: what the client's proxy
    /// class defines (which matters for special methods).
    fn inspect(&self) -> Vec<(String, Option<String>)>;
    fn dir(&self) -> Vec<String>;
    fn getattr(self: Arc<Self>, name: &str, peer: &Peer) -> Result<Obj, Error>;
    fn callattr(self: Arc<Self>, name: &str, call: Call) -> Result<Obj, Error>;
    fn call(self: Arc<Self>, call: Call) -> Result<Obj, Error>;
    fn repr(&self) -> String;
    fn str(&self) -> String {
        self.repr()
    }
    /// What a traceback says was called when this object was.
    fn site(&self) -> String {
        self.type_name().to_owned()
    }
    /// The Rust object, if it is of type `type_id` (for [`Local::downcast`]).
    fn instance_of(&self, _type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

fn cannot_access(name: &str) -> Error {
    // rpyc's own words for a name its rules do not let through
    Error::attribute_error(format!("cannot access '{name}'"))
}

fn address_of<T: ?Sized>(object: &T) -> u64 {
    (object as *const T).cast::<()>() as usize as u64
}

/// Calls whatever an attribute held, as `proxy.attr(...)` does.
pub(crate) fn call_obj(target: Obj, call: Call) -> Result<Obj, Error> {
    match target {
        Obj::Local(local) => local.0.call(call),
        Obj::Remote(remote) => remote.call(call.to_args()),
        other => Err(Error::type_error(format!(
            "'{}' object is not callable",
            other.python_type()
        ))),
    }
}

/// An [`Object`] with its class.
pub(crate) struct Instance<T: Object> {
    value: Arc<T>,
    class: Arc<Class<T>>,
}

impl<T: Object> Instance<T> {
    pub(crate) fn exported(value: Arc<T>) -> Arc<dyn Exported> {
        Arc::new(Instance {
            value,
            class: class_of::<T>(),
        })
    }
}

impl<T: Object> Exported for Instance<T> {
    fn type_name(&self) -> &str {
        &self.class.name
    }

    fn class_id(&self) -> u64 {
        self.class.id
    }

    fn object_id(&self) -> u64 {
        // the Rust object's address: the same object wrapped twice is one
        // object to the client, as in Python
        Arc::as_ptr(&self.value).cast::<()>() as usize as u64
    }

    fn inspect(&self) -> Vec<(String, Option<String>)> {
        self.class
            .methods()
            .into_iter()
            .map(|name| (name, None))
            .collect()
    }

    fn dir(&self) -> Vec<String> {
        self.class.names()
    }

    fn getattr(self: Arc<Self>, name: &str, _peer: &Peer) -> Result<Obj, Error> {
        match self.class.member(name) {
            Some((declared, Member::Method(_))) => Ok(Obj::Local(Local(Arc::new(BoundMethod {
                name: declared.to_owned(),
                target: self.clone(),
            })))),
            Some((_, Member::Attribute(read))) => read(&self.value),
            None if name == "__doc__" => Ok(self.class.doc.clone().into_obj()),
            None => Err(cannot_access(name)),
        }
    }

    fn callattr(self: Arc<Self>, name: &str, mut call: Call) -> Result<Obj, Error> {
        match self.class.member(name) {
            Some((declared, Member::Method(body))) => {
                call.method = declared.to_owned();
                body(&self.value, &call)
            }
            Some((_, Member::Attribute(read))) => call_obj(read(&self.value)?, call),
            None => Err(cannot_access(name)),
        }
    }

    fn call(self: Arc<Self>, call: Call) -> Result<Obj, Error> {
        if self.class.member("__call__").is_some() {
            self.callattr("__call__", call)
        } else {
            Err(Error::type_error(format!(
                "'{}' object is not callable",
                self.class.name
            )))
        }
    }

    fn repr(&self) -> String {
        self.value
            .repr()
            .unwrap_or_else(|| format!("<{} object at {:#x}>", self.class.name, self.object_id()))
    }

    fn str(&self) -> String {
        self.value.str().unwrap_or_else(|| self.repr())
    }

    fn instance_of(&self, type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        (type_id == TypeId::of::<T>()).then(|| self.value.clone() as Arc<dyn Any + Send + Sync>)
    }
}

/// `proxy.method` without calling it: what GETATTR of a method returns.
/// It travels as Python's bound method type, whose proxy class clients
/// have already (a call is then CALL).
struct BoundMethod {
    name: String,
    target: Arc<dyn Exported>,
}

const BOUND_METHOD_CLASS_ID: u64 = 0x5250_0000_0001;
const FUNCTION_CLASS_ID: u64 = 0x5250_0000_0002;

impl Exported for BoundMethod {
    fn type_name(&self) -> &str {
        "builtins.method"
    }

    fn class_id(&self) -> u64 {
        BOUND_METHOD_CLASS_ID
    }

    fn object_id(&self) -> u64 {
        address_of(self)
    }

    fn inspect(&self) -> Vec<(String, Option<String>)> {
        vec![("__call__".into(), None)]
    }

    fn dir(&self) -> Vec<String> {
        ["__call__", "__doc__", "__name__", "__self__"]
            .map(String::from)
            .into()
    }

    fn getattr(self: Arc<Self>, name: &str, _peer: &Peer) -> Result<Obj, Error> {
        match name {
            "__name__" | "__qualname__" => Ok(self.name.clone().into_obj()),
            "__doc__" => Ok(Obj::none()),
            "__self__" => Ok(Obj::Local(Local(self.target.clone()))),
            _ => Err(cannot_access(name)),
        }
    }

    fn callattr(self: Arc<Self>, name: &str, call: Call) -> Result<Obj, Error> {
        match name {
            "__call__" => self.call(call),
            _ => Err(cannot_access(name)),
        }
    }

    fn call(self: Arc<Self>, call: Call) -> Result<Obj, Error> {
        self.target.clone().callattr(&self.name, call)
    }

    fn site(&self) -> String {
        format!("{}.{}", self.target.type_name(), self.name)
    }

    fn repr(&self) -> String {
        format!(
            "<bound method {}.{} of {}>",
            self.target.type_name(),
            self.name,
            self.target.repr()
        )
    }
}

type FunctionBody = Box<dyn Fn(&Call) -> Result<Obj, Error> + Send + Sync>;

/// A Rust closure as a Python function (a callback handed to the peer).
pub(crate) struct Function {
    name: String,
    body: FunctionBody,
}

impl Function {
    pub(crate) fn new(
        name: &str,
        body: impl Fn(&Call) -> Result<Obj, Error> + Send + Sync + 'static,
    ) -> Function {
        Function {
            name: name.to_owned(),
            body: Box::new(body),
        }
    }
}

impl Exported for Function {
    fn type_name(&self) -> &str {
        "builtins.function"
    }

    fn class_id(&self) -> u64 {
        FUNCTION_CLASS_ID
    }

    fn object_id(&self) -> u64 {
        address_of(self)
    }

    fn inspect(&self) -> Vec<(String, Option<String>)> {
        vec![("__call__".into(), None)]
    }

    fn dir(&self) -> Vec<String> {
        ["__call__", "__doc__", "__name__"].map(String::from).into()
    }

    fn getattr(self: Arc<Self>, name: &str, _peer: &Peer) -> Result<Obj, Error> {
        match name {
            "__name__" | "__qualname__" => Ok(self.name.clone().into_obj()),
            "__doc__" => Ok(Obj::none()),
            _ => Err(cannot_access(name)),
        }
    }

    fn callattr(self: Arc<Self>, name: &str, call: Call) -> Result<Obj, Error> {
        match name {
            "__call__" => self.call(call),
            _ => Err(cannot_access(name)),
        }
    }

    fn call(self: Arc<Self>, mut call: Call) -> Result<Obj, Error> {
        call.method = self.name.clone();
        (self.body)(&call)
    }

    fn site(&self) -> String {
        self.name.clone()
    }

    fn repr(&self) -> String {
        format!("<function {} at {:#x}>", self.name, self.object_id())
    }
}
