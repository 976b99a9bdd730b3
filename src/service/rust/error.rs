//! Errors of the Rust API: Python exceptions (raised by a service method,
//! or by the peer and carried back), and failures of the connection itself.

use std::fmt;

use crate::connection::ConnError;
use crate::protocol::brine::Value;
use crate::protocol::message::{ExceptionInfo, RemoteException};

/// A Python exception as rpyc carries it (vinegar): the class's module and
/// name, its `args`, its public attributes and the traceback text.
///
/// A service method returns one to raise it in the client; a call to the
/// peer returns one when the peer raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub module: String,
    pub name: String,
    pub args: Vec<Value>,
    /// Public attributes; rpyc adds `_remote_version`.
    pub attrs: Vec<(String, Value)>,
    /// The traceback text the raising side formatted (empty until one is
    /// made for it).
    pub traceback: String,
}

impl Exception {
    /// `str(exception)` as Python shows it: the only argument, or the
    /// arguments' tuple.
    pub fn message(&self) -> String {
        match self.args.as_slice() {
            [] => String::new(),
            [Value::Str(text)] => text.clone(),
            [one] => value_text(one),
            many => format!(
                "({})",
                many.iter().map(value_text).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Whether this is `module.name` (`is("builtins", "KeyError")`).
    pub fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }

    /// The class as Python names it: `ValueError`, `mypkg.errors.Oops`.
    pub fn qualified_name(&self) -> String {
        if self.module == "builtins" || self.module == "exceptions" {
            self.name.clone()
        } else {
            format!("{}.{}", self.module, self.name)
        }
    }

    pub(crate) fn from_remote(exception: RemoteException) -> Exception {
        match exception {
            RemoteException::StopIteration => Exception::builtin("StopIteration", vec![]),
            RemoteException::Text(text) => Exception::builtin("Exception", vec![Value::Str(text)]),
            RemoteException::Raised(info) => Exception {
                module: info.module,
                name: info.name,
                args: info.args,
                attrs: info.attrs,
                traceback: info.traceback,
            },
        }
    }

    /// The exception as vinegar packs it for a peer of rpyc `version`;
    /// `site` names where it was raised, for a traceback made here.
    pub(crate) fn to_remote(&self, version: &str, site: &str) -> RemoteException {
        if self.is("builtins", "StopIteration") && self.args.is_empty() {
            return RemoteException::StopIteration;
        }
        let mut attrs = self.attrs.clone();
        if !attrs.iter().any(|(name, _)| name == "_remote_version") {
            attrs.push(("_remote_version".into(), Value::str(version)));
        }
        let traceback = if self.traceback.is_empty() {
            // the shape of Python's, so the client's "Remote Traceback"
            // block reads like the ones it knows
            format!(
                "Traceback (most recent call last):\n  rpycd Rust service, in {site}\n{}: {}\n",
                self.qualified_name(),
                self.message()
            )
        } else {
            self.traceback.clone()
        };
        RemoteException::Raised(ExceptionInfo {
            module: self.module.clone(),
            name: self.name.clone(),
            args: self.args.clone(),
            attrs,
            traceback,
        })
    }

    fn builtin(name: &str, args: Vec<Value>) -> Exception {
        Exception {
            module: "builtins".into(),
            name: name.into(),
            args,
            attrs: Vec::new(),
            traceback: String::new(),
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message();
        if message.is_empty() {
            f.write_str(&self.qualified_name())
        } else {
            write!(f, "{}: {message}", self.qualified_name())
        }
    }
}

/// What a call through the API can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Python exception: raised by a service method (and sent to the
    /// client as that class), or raised by the peer and carried back.
    #[error("{0}")]
    Exception(Box<Exception>),
    /// The connection failed or was closed.
    #[error("connection: {0}")]
    Connection(#[from] ConnError),
    /// The peer could not be reached.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The peer answered something the API cannot make sense of.
    #[error("unexpected answer from the peer: {0}")]
    Protocol(String),
}

impl Error {
    /// An exception of class `module.name` whose only argument is `message`:
    /// `Error::new("builtins", "KeyError", "no such key")`. A class the
    /// client cannot import arrives as rpyc's generic stand-in for it.
    pub fn new(module: &str, name: &str, message: impl Into<String>) -> Error {
        Error::with_args(module, name, vec![Value::Str(message.into())])
    }

    /// An exception of class `module.name` with these `args`.
    pub fn with_args(module: &str, name: &str, args: Vec<Value>) -> Error {
        Error::Exception(Box::new(Exception {
            module: module.into(),
            name: name.into(),
            args,
            attrs: Vec::new(),
            traceback: String::new(),
        }))
    }

    /// A builtin exception class (`ValueError`, `LookupError`...).
    pub fn builtin(name: &str, message: impl Into<String>) -> Error {
        Error::new("builtins", name, message)
    }

    pub fn value_error(message: impl Into<String>) -> Error {
        Error::builtin("ValueError", message)
    }

    pub fn type_error(message: impl Into<String>) -> Error {
        Error::builtin("TypeError", message)
    }

    pub fn key_error(message: impl Into<String>) -> Error {
        Error::builtin("KeyError", message)
    }

    pub fn index_error(message: impl Into<String>) -> Error {
        Error::builtin("IndexError", message)
    }

    pub fn attribute_error(message: impl Into<String>) -> Error {
        Error::builtin("AttributeError", message)
    }

    pub fn runtime_error(message: impl Into<String>) -> Error {
        Error::builtin("RuntimeError", message)
    }

    pub fn zero_division_error(message: impl Into<String>) -> Error {
        Error::builtin("ZeroDivisionError", message)
    }

    pub fn not_implemented_error(message: impl Into<String>) -> Error {
        Error::builtin("NotImplementedError", message)
    }

    /// Ends an iteration (a `__next__` method's way to say it is done).
    pub fn stop_iteration() -> Error {
        Error::with_args("builtins", "StopIteration", vec![])
    }

    /// The exception, if this is one.
    pub fn exception(&self) -> Option<&Exception> {
        match self {
            Error::Exception(exception) => Some(exception),
            _ => None,
        }
    }

    /// Whether this is an exception of the builtin class `name`
    /// (`err.is_builtin("ValueError")`).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.exception()
            .is_some_and(|exception| exception.is("builtins", name))
    }

    /// The exception this error is for a peer: connection trouble becomes
    /// the exception a Python caller would see for it.
    pub(crate) fn into_exception(self) -> Exception {
        match self {
            Error::Exception(exception) => *exception,
            Error::Connection(error) => {
                Exception::builtin("EOFError", vec![Value::str(format!("connection: {error}"))])
            }
            Error::Connect(error) => {
                Exception::builtin("ConnectionError", vec![Value::str(error.to_string())])
            }
            Error::Protocol(what) => Exception::builtin("RuntimeError", vec![Value::str(what)]),
        }
    }
}

impl From<Exception> for Error {
    fn from(exception: Exception) -> Error {
        Error::Exception(Box::new(exception))
    }
}

/// A value as `str()` would show it, for messages.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(n) => n.to_string(),
        Value::BigInt(n) => n.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Str(text) => text.clone(),
        other => format!("{other:?}"),
    }
}
