//! [`Obj`]: what travels between the parties through the API, by value
//! (anything brine carries) or by reference (an object of either side);
//! and the conversions from and to Rust types.

use std::sync::Arc;

use super::class::{Exported, Object};
use super::error::Error;
use super::remote::RemoteObject;
use crate::protocol::brine::Value;

/// An argument or a result, as a Python caller or callee sees it.
///
/// Tuples are [`Obj::Tuple`] so that they may hold references; everything
/// else brine carries is a [`Obj::Value`]. Lists, dicts and other Python
/// objects that brine cannot carry arrive as [`Obj::Remote`] references.
#[derive(Clone, Debug)]
pub enum Obj {
    Value(Value),
    Tuple(Vec<Obj>),
    /// An object of the peer's, used through requests.
    Remote(RemoteObject),
    /// One of our objects, sent by reference.
    Local(Local),
}

/// One of our objects, as the peer holds it by reference.
#[derive(Clone)]
pub struct Local(pub(crate) Arc<dyn Exported>);

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.repr())
    }
}

impl Local {
    /// Wraps a Rust object so it is sent by reference.
    pub fn new<T: Object>(object: T) -> Local {
        Local::from_arc(Arc::new(object))
    }

    pub fn from_arc<T: Object>(object: Arc<T>) -> Local {
        Local(super::class::Instance::exported(object))
    }

    /// The Rust object, if it is a `T` (a client passing one of our
    /// objects back).
    pub fn downcast<T: Object>(&self) -> Option<Arc<T>> {
        self.0
            .instance_of(std::any::TypeId::of::<T>())?
            .downcast::<T>()
            .ok()
    }

    pub fn type_name(&self) -> String {
        self.0.type_name().to_owned()
    }
}

impl Obj {
    pub fn none() -> Obj {
        Obj::Value(Value::None)
    }

    /// A Rust object, sent by reference: the client gets a proxy whose
    /// methods and attributes are the object's [`Class`](super::class::Class).
    pub fn object<T: Object>(object: T) -> Obj {
        Obj::Local(Local::new(object))
    }

    /// A Rust closure as a Python callable (a callback to hand the peer).
    pub fn function(
        name: &str,
        body: impl Fn(&super::class::Call) -> Result<Obj, Error> + Send + Sync + 'static,
    ) -> Obj {
        Obj::Local(Local(Arc::new(super::class::Function::new(name, body))))
    }

    /// A brine value as an `Obj`, its tuples as [`Obj::Tuple`].
    pub fn from_value(value: Value) -> Obj {
        match value {
            Value::Tuple(items) => Obj::Tuple(items.into_iter().map(Obj::from_value).collect()),
            other => Obj::Value(other),
        }
    }

    /// The brine value, if this is one with no references inside.
    pub fn to_value(&self) -> Option<Value> {
        match self {
            Obj::Value(value) => Some(value.clone()),
            Obj::Tuple(items) => items
                .iter()
                .map(Obj::to_value)
                .collect::<Option<Vec<_>>>()
                .map(Value::Tuple),
            Obj::Remote(_) | Obj::Local(_) => None,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Obj::Value(Value::None))
    }

    /// Converts to a Rust type: `let n: i64 = obj.extract()?`.
    pub fn extract<T: FromObj>(self) -> Result<T, Error> {
        T::from_obj(self)
    }

    /// The Python type name, for messages (`int`, `str`, `tuple`...).
    pub fn python_type(&self) -> String {
        match self {
            Obj::Value(value) => value_type(value).into(),
            Obj::Tuple(_) => "tuple".into(),
            Obj::Remote(remote) => remote.type_name().to_owned(),
            Obj::Local(local) => local.type_name(),
        }
    }

    /// The tuple's items, whichever form the tuple came in.
    fn into_items(self) -> Result<Vec<Obj>, Obj> {
        match self {
            Obj::Tuple(items) => Ok(items),
            Obj::Value(Value::Tuple(items)) => Ok(items.into_iter().map(Obj::from_value).collect()),
            other => Err(other),
        }
    }
}

impl PartialEq for Obj {
    /// Values compare by value; references by identity.
    fn eq(&self, other: &Obj) -> bool {
        match (self, other) {
            (Obj::Remote(a), Obj::Remote(b)) => a.id_pack() == b.id_pack(),
            (Obj::Local(a), Obj::Local(b)) => a.0.object_id() == b.0.object_id(),
            (a, b) => match (a.to_value(), b.to_value()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

pub(crate) fn value_type(value: &Value) -> &'static str {
    match value {
        Value::None => "NoneType",
        Value::Bool(_) => "bool",
        Value::NotImplemented => "NotImplementedType",
        Value::Ellipsis => "ellipsis",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Complex(..) => "complex",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Slice(_) => "slice",
        Value::Tuple(_) => "tuple",
        Value::FrozenSet(_) => "frozenset",
    }
}

/// Python `bytes` (a `Vec<u8>` would be a tuple of ints).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

/// Converts a Rust value into an [`Obj`] for the peer.
pub trait IntoObj {
    fn into_obj(self) -> Obj;
}

/// Converts an [`Obj`] from the peer into a Rust value; a mismatch is the
/// `TypeError` Python would raise.
pub trait FromObj: Sized {
    fn from_obj(obj: Obj) -> Result<Self, Error>;

    /// What an omitted parameter becomes: `None` (required) except for
    /// `Option`, which becomes `Some(None)`.
    fn when_missing() -> Option<Self> {
        None
    }
}

fn mismatch(expected: &str, got: &Obj) -> Error {
    Error::type_error(format!("expected {expected}, got {}", got.python_type()))
}

impl IntoObj for Obj {
    fn into_obj(self) -> Obj {
        self
    }
}

impl FromObj for Obj {
    fn from_obj(obj: Obj) -> Result<Obj, Error> {
        Ok(obj)
    }
}

impl IntoObj for Value {
    fn into_obj(self) -> Obj {
        Obj::from_value(self)
    }
}

impl FromObj for Value {
    fn from_obj(obj: Obj) -> Result<Value, Error> {
        obj.to_value()
            .ok_or_else(|| mismatch("a value brine can carry", &obj))
    }
}

impl IntoObj for () {
    fn into_obj(self) -> Obj {
        Obj::none()
    }
}

impl FromObj for () {
    fn from_obj(obj: Obj) -> Result<(), Error> {
        match obj {
            Obj::Value(Value::None) => Ok(()),
            other => Err(mismatch("None", &other)),
        }
    }
}

impl IntoObj for bool {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::Bool(self))
    }
}

impl FromObj for bool {
    fn from_obj(obj: Obj) -> Result<bool, Error> {
        match obj {
            Obj::Value(Value::Bool(b)) => Ok(b),
            other => Err(mismatch("bool", &other)),
        }
    }
}

macro_rules! small_ints {
    ($($t:ty),*) => {$(
        impl IntoObj for $t {
            fn into_obj(self) -> Obj {
                Obj::Value(Value::Int(i64::from(self)))
            }
        }
    )*};
}
small_ints!(i8, i16, i32, i64, u8, u16, u32);

impl IntoObj for u64 {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::from_u64(self))
    }
}

impl IntoObj for usize {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::from_u64(self as u64))
    }
}

/// An int in range for `T`; Python's bool is an int too.
fn int_of<T: TryFrom<i64> + TryFrom<u64>>(obj: Obj, name: &str) -> Result<T, Error> {
    let overflow = || Error::builtin("OverflowError", format!("int too large for {name}"));
    match obj {
        Obj::Value(Value::Int(n)) => T::try_from(n).map_err(|_| overflow()),
        Obj::Value(Value::Bool(b)) => T::try_from(i64::from(b)).map_err(|_| overflow()),
        Obj::Value(Value::BigInt(big)) => match big.as_decimal().parse::<u64>() {
            Ok(n) => T::try_from(n).map_err(|_| overflow()),
            Err(_) => Err(overflow()),
        },
        other => Err(mismatch("int", &other)),
    }
}

macro_rules! from_ints {
    ($($t:ty),*) => {$(
        impl FromObj for $t {
            fn from_obj(obj: Obj) -> Result<$t, Error> {
                int_of(obj, stringify!($t))
            }
        }
    )*};
}
from_ints!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl IntoObj for f64 {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::Float(self))
    }
}

impl IntoObj for f32 {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::Float(f64::from(self)))
    }
}

impl FromObj for f64 {
    /// A float, or an int as Python's `float()` takes it.
    fn from_obj(obj: Obj) -> Result<f64, Error> {
        match obj {
            Obj::Value(Value::Float(x)) => Ok(x),
            Obj::Value(Value::Int(n)) => Ok(n as f64),
            other => Err(mismatch("float", &other)),
        }
    }
}

impl IntoObj for String {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::Str(self))
    }
}

impl IntoObj for &str {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::str(self))
    }
}

impl IntoObj for &String {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::str(self.as_str()))
    }
}

impl FromObj for String {
    fn from_obj(obj: Obj) -> Result<String, Error> {
        match obj {
            Obj::Value(Value::Str(text)) => Ok(text),
            other => Err(mismatch("str", &other)),
        }
    }
}

impl IntoObj for Bytes {
    fn into_obj(self) -> Obj {
        Obj::Value(Value::Bytes(self.0.into()))
    }
}

impl FromObj for Bytes {
    fn from_obj(obj: Obj) -> Result<Bytes, Error> {
        match obj {
            Obj::Value(Value::Bytes(bytes)) => Ok(Bytes(bytes.into_vec())),
            other => Err(mismatch("bytes", &other)),
        }
    }
}

impl<T: IntoObj> IntoObj for Option<T> {
    fn into_obj(self) -> Obj {
        self.map_or_else(Obj::none, IntoObj::into_obj)
    }
}

impl<T: FromObj> FromObj for Option<T> {
    fn from_obj(obj: Obj) -> Result<Option<T>, Error> {
        if obj.is_none() {
            Ok(None)
        } else {
            T::from_obj(obj).map(Some)
        }
    }

    fn when_missing() -> Option<Option<T>> {
        Some(None)
    }
}

/// A `Vec` goes as a tuple: brine has no list.
impl<T: IntoObj> IntoObj for Vec<T> {
    fn into_obj(self) -> Obj {
        Obj::Tuple(self.into_iter().map(IntoObj::into_obj).collect())
    }
}

impl<T: FromObj> FromObj for Vec<T> {
    /// A tuple, or any iterable of the peer's (a Python list arrives by
    /// reference), read through requests.
    fn from_obj(obj: Obj) -> Result<Vec<T>, Error> {
        let items = match obj.into_items() {
            Ok(items) => items,
            Err(Obj::Remote(remote)) => remote.iterate(ITERATION_LIMIT)?,
            Err(other) => return Err(mismatch("a sequence", &other)),
        };
        items.into_iter().map(T::from_obj).collect()
    }
}

/// How many items a peer's iterable may yield into a `Vec`: a bound, so a
/// peer's endless generator cannot exhaust our memory.
pub const ITERATION_LIMIT: usize = 1 << 20;

impl IntoObj for RemoteObject {
    fn into_obj(self) -> Obj {
        Obj::Remote(self)
    }
}

impl FromObj for RemoteObject {
    fn from_obj(obj: Obj) -> Result<RemoteObject, Error> {
        match obj {
            Obj::Remote(remote) => Ok(remote),
            other => Err(mismatch("an object of the peer's", &other)),
        }
    }
}

impl IntoObj for Local {
    fn into_obj(self) -> Obj {
        Obj::Local(self)
    }
}

impl<T: Object> IntoObj for Arc<T> {
    fn into_obj(self) -> Obj {
        Obj::Local(Local::from_arc(self))
    }
}

impl<T: Object> FromObj for Arc<T> {
    /// One of our own objects, passed back by the peer.
    fn from_obj(obj: Obj) -> Result<Arc<T>, Error> {
        match &obj {
            Obj::Local(local) => local.downcast::<T>(),
            _ => None,
        }
        .ok_or_else(|| mismatch(&super::class::class_of::<T>().name, &obj))
    }
}

macro_rules! tuples {
    ($(($($name:ident),+))*) => {$(
        impl<$($name: IntoObj),+> IntoObj for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_obj(self) -> Obj {
                let ($($name,)+) = self;
                Obj::Tuple(vec![$($name.into_obj()),+])
            }
        }

        impl<$($name: FromObj),+> FromObj for ($($name,)+) {
            fn from_obj(obj: Obj) -> Result<Self, Error> {
                let items = obj.into_items().map_err(|other| mismatch("tuple", &other))?;
                let expected = [$(stringify!($name)),+].len();
                if items.len() != expected {
                    return Err(Error::value_error(format!(
                        "expected a tuple of {expected} items, got {}",
                        items.len()
                    )));
                }
                let mut items = items.into_iter();
                Ok(($({
                    let item = items.next().ok_or_else(|| Error::value_error("tuple too short"))?;
                    $name::from_obj(item)?
                },)+))
            }
        }

        impl<$($name: IntoObj),+> IntoArgs for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Args {
                let ($($name,)+) = self;
                Args {
                    positional: vec![$($name.into_obj()),+],
                    keyword: Vec::new(),
                }
            }
        }

        impl<$($name: FromObj),+> FromParams for ($($name,)+) {
            fn from_params(values: Vec<Option<Obj>>, names: &[&str], method: &str) -> Result<Self, Error> {
                let mut values = values.into_iter();
                let mut names = names.iter();
                Ok(($({
                    let name = names.next().copied().unwrap_or("?");
                    match values.next().flatten() {
                        Some(obj) => $name::from_obj(obj).map_err(|error| in_argument(error, method, name))?,
                        None => $name::when_missing().ok_or_else(|| Error::type_error(format!(
                            "{method}() missing 1 required positional argument: '{name}'"
                        )))?,
                    }
                },)+))
            }
        }
    )*};
}

tuples! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
}

/// A conversion error, said of the argument it is about.
fn in_argument(error: Error, method: &str, name: &str) -> Error {
    match error {
        Error::Exception(mut exception) if exception.is("builtins", "TypeError") => {
            let message = exception.message();
            exception.args = vec![Value::str(format!(
                "{method}() argument '{name}': {message}"
            ))];
            Error::Exception(exception)
        }
        other => other,
    }
}

/// The arguments of a call to the peer: positional, then keyword.
///
/// ```
/// use rpycd::api::Args;
/// let args = Args::new().arg(1).arg("two").kwarg("step", 3);
/// assert_eq!(args.len(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Args {
    pub(crate) positional: Vec<Obj>,
    pub(crate) keyword: Vec<(String, Obj)>,
}

impl Args {
    pub fn new() -> Args {
        Args::default()
    }

    pub fn arg(mut self, value: impl IntoObj) -> Args {
        self.positional.push(value.into_obj());
        self
    }

    pub fn kwarg(mut self, name: &str, value: impl IntoObj) -> Args {
        self.keyword.push((name.to_owned(), value.into_obj()));
        self
    }

    /// How many arguments, positional and keyword.
    pub fn len(&self) -> usize {
        self.positional.len() + self.keyword.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What can be the arguments of a call: [`Args`], `()`, or a tuple of
/// positional arguments (`(1, "two")`).
pub trait IntoArgs {
    fn into_args(self) -> Args;
}

impl IntoArgs for Args {
    fn into_args(self) -> Args {
        self
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Args {
        Args::new()
    }
}

impl IntoArgs for Vec<Obj> {
    fn into_args(self) -> Args {
        Args {
            positional: self,
            keyword: Vec::new(),
        }
    }
}

/// A method's parameters bound from positional and keyword arguments, as
/// Python binds them: see [`Call::params`](super::class::Call::params).
pub trait FromParams: Sized {
    /// `values[i]` is what the caller gave for `names[i]`, if anything.
    fn from_params(values: Vec<Option<Obj>>, names: &[&str], method: &str) -> Result<Self, Error>;
}

/// A method that takes no arguments: any argument is a `TypeError`.
impl FromParams for () {
    fn from_params(_: Vec<Option<Obj>>, _: &[&str], _: &str) -> Result<(), Error> {
        Ok(())
    }
}
