//! Brine values to Python objects and back.
//!
//! Only exact types are brine values (rpyc's `brine.dumpable` looks up
//! `type(obj)`): a bool subclass, an `IntEnum` or a str subclass travels by
//! reference, not by value.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyComplex, PyFloat, PyFrozenSet, PyInt, PySlice, PyString, PyTuple,
};

use std::sync::Arc;

use crate::memory;
use crate::protocol::brine::{self, BulkMemory, ByteBuf, Value};

/// The brine value of `obj`, or `None` if it is not dumpable and must be
/// passed by reference. `Err` only when a dumpable value cannot be encoded
/// (a str with lone surrogates, an int past Python's digit limit), as with
/// rpyc, whose `brine.dump` raises there too.
///
/// A tuple, frozenset or slice nested deeper than brine's encoder goes
/// (which no peer could decode either) is passed by reference too, where
/// rpyc's recursive `brine.dumpable` would raise RecursionError: it is code
/// a classic client may run (`t = (t,)` a million times), and must not
/// take the server's stack down with it.
///
/// Containers are taken apart from a stack of their own, not by
/// recursion, for the same reason as in [`to_python`].
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    let mut open: Vec<Dumping<'_>> = Vec::new();
    let mut next = obj.clone();
    loop {
        let done = match container_items(&next)? {
            Some(_) if open.len() >= brine::DEFAULT_MAX_DEPTH => None,
            Some((kind, items)) if !items.is_empty() => {
                next = items[0].clone();
                open.push(Dumping {
                    kind,
                    built: Vec::with_capacity(items.len()),
                    items,
                });
                continue;
            }
            Some((kind, _)) => kind.value(Vec::new()),
            None => scalar_value(&next)?,
        };
        let Some(mut done) = done else {
            return Ok(None);
        };
        loop {
            let Some(top) = open.last_mut() else {
                return Ok(Some(done));
            };
            top.built.push(done);
            if let Some(item) = top.items.get(top.built.len()) {
                next = item.clone();
                break;
            }
            let Some(Dumping { kind, built, .. }) = open.pop() else {
                unreachable!("the container just looked at is there");
            };
            match kind.value(built) {
                Some(value) => done = value,
                None => return Ok(None),
            }
        }
    }
}

/// A container whose items are being turned into values.
struct Dumping<'py> {
    kind: Container,
    items: Vec<Bound<'py, PyAny>>,
    built: Vec<Value>,
}

/// The items of `obj` if it is a container brine carries (exactly a tuple,
/// a frozenset or a slice).
fn container_items<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<(Container, Vec<Bound<'py, PyAny>>)>> {
    Ok(if obj.is_exact_instance_of::<PyTuple>() {
        Some((Container::Tuple, obj.cast::<PyTuple>()?.iter().collect()))
    } else if obj.is_exact_instance_of::<PyFrozenSet>() {
        Some((
            Container::FrozenSet,
            obj.cast::<PyFrozenSet>()?.iter().collect(),
        ))
    } else if obj.is_exact_instance_of::<PySlice>() {
        let parts = ["start", "stop", "step"].map(|name| obj.getattr(name));
        let [start, stop, step] = parts;
        Some((Container::Slice, vec![start?, stop?, step?]))
    } else {
        None
    })
}

/// The value of an object that holds no others, `None` if it is not one
/// brine carries.
fn scalar_value(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Some(Value::None));
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Some(Value::Bool(obj.is_truthy()?)));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return Ok(Some(match obj.extract::<i64>() {
            Ok(small) => Value::Int(small),
            Err(_) => {
                let digits = obj.str()?;
                Value::int_from_decimal(digits.to_str()?.as_bytes())
                    .ok_or_else(|| PyValueError::new_err("int has no decimal form"))?
            }
        }));
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(Some(Value::Str(obj.extract::<String>()?)));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        let bytes = obj.cast::<PyBytes>()?;
        if bytes.as_bytes().len() >= brine::BULK_MIN {
            return Ok(Some(Value::Bytes(ByteBuf::shared(Arc::new(
                PythonBytes::new(bytes),
            )))));
        }
        return Ok(Some(Value::Bytes(bytes.as_bytes().into())));
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Some(Value::Float(obj.extract::<f64>()?)));
    }
    if obj.is_exact_instance_of::<PyComplex>() {
        let complex = obj.cast::<PyComplex>()?;
        return Ok(Some(Value::Complex(complex.real(), complex.imag())));
    }
    if obj.is(py.NotImplemented()) {
        return Ok(Some(Value::NotImplemented));
    }
    if obj.is(py.Ellipsis()) {
        return Ok(Some(Value::Ellipsis));
    }
    Ok(None)
}

/// A Python bytes object's buffer, shared rather than copied: a bulk value
/// is written to the socket straight from it.
struct PythonBytes {
    /// Keeps the object, and so its buffer, alive.
    object: Py<PyBytes>,
    data: *const u8,
    len: usize,
}

impl PythonBytes {
    fn new(bytes: &Bound<'_, PyBytes>) -> PythonBytes {
        let data = bytes.as_bytes();
        PythonBytes {
            data: data.as_ptr(),
            len: data.len(),
            object: bytes.clone().unbind(),
        }
    }
}

impl AsRef<[u8]> for PythonBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: a bytes object's buffer never moves or changes, and
        // `object` keeps it alive for as long as this value lives; reading
        // it needs no GIL
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

// SAFETY: the raw pointer is only read (see `as_ref`), except through a
// `BytesBeingRead`, which owns the one reference to a bytes object no
// Python code has seen and is written by the one thread holding it;
// `Py<PyBytes>` is itself Send and Sync, and pyo3 defers a drop without
// the GIL
unsafe impl Send for PythonBytes {}
unsafe impl Sync for PythonBytes {}

/// The Python object for a brine value. Containers are built bottom-up
/// from a stack of their own rather than by recursion: a value nests as
/// deep as --max-depth allows, and each level of a recursive conversion
/// took over a kilobyte of a connection thread's stack in debug builds.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    let mut open: Vec<Building<'_, 'py>> = Vec::new();
    let mut next = value;
    loop {
        let mut done = match container_of(next) {
            Some((kind, items)) if !items.is_empty() => {
                open.push(Building {
                    kind,
                    items,
                    built: Vec::with_capacity(items.len()),
                });
                next = &items[0];
                continue;
            }
            Some((kind, _)) => kind.build(py, Vec::new())?,
            None => scalar_to_python(py, next)?,
        };
        // hand the finished object to the containers it completes
        loop {
            let Some(top) = open.last_mut() else {
                return Ok(done);
            };
            top.built.push(done);
            if let Some(item) = top.items.get(top.built.len()) {
                next = item;
                break;
            }
            let Some(Building { kind, built, .. }) = open.pop() else {
                unreachable!("the container just looked at is there");
            };
            done = kind.build(py, built)?;
        }
    }
}

/// A container whose items are being converted.
struct Building<'v, 'py> {
    kind: Container,
    items: &'v [Value],
    built: Vec<Bound<'py, PyAny>>,
}

#[derive(Clone, Copy)]
enum Container {
    Tuple,
    FrozenSet,
    Slice,
}

impl Container {
    fn build<'py>(
        self,
        py: Python<'py>,
        items: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Container::Tuple => PyTuple::new(py, items)?.into_any(),
            Container::FrozenSet => PyFrozenSet::new(py, &items)?.into_any(),
            Container::Slice => py.get_type::<PySlice>().call1(PyTuple::new(py, items)?)?,
        })
    }
}

impl Container {
    /// The value of a container of `items`; `None` for a slice whose
    /// parts are not three.
    fn value(self, items: Vec<Value>) -> Option<Value> {
        Some(match self {
            Container::Tuple => Value::Tuple(items),
            Container::FrozenSet => Value::FrozenSet(items),
            Container::Slice => Value::Slice(Box::new(items.try_into().ok()?)),
        })
    }
}

fn container_of(value: &Value) -> Option<(Container, &[Value])> {
    match value {
        Value::Tuple(items) => Some((Container::Tuple, items)),
        Value::FrozenSet(items) => Some((Container::FrozenSet, items)),
        Value::Slice(parts) => Some((Container::Slice, parts.as_slice())),
        _ => None,
    }
}

/// The Python object for a value that holds no other values.
fn scalar_to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::None => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::NotImplemented => py.NotImplemented().into_bound(py),
        Value::Ellipsis => py.Ellipsis().into_bound(py),
        Value::Int(small) => small.into_pyobject(py)?.into_any(),
        Value::BigInt(big) => py.get_type::<PyInt>().call1((big.as_decimal(),))?,
        Value::Float(x) => PyFloat::new(py, *x).into_any(),
        Value::Complex(re, im) => PyComplex::from_doubles(py, *re, *im).into_any(),
        Value::Str(text) => PyString::new(py, text).into_any(),
        Value::Bytes(bytes) => match bytes.shared_as::<PythonBytes>() {
            // read into a bytes object of ours (see `bulk_memory`), or one
            // of Python's sent back: the object itself
            Some(shared) => shared.object.bind(py).clone().into_any(),
            None => bytes_of(py, bytes)?.into_any(),
        },
        Value::Tuple(_) | Value::FrozenSet(_) | Value::Slice(_) => {
            return Err(PyValueError::new_err("a container is not a scalar"))
        }
    })
}

/// A Python bytes object holding a copy of `bytes`; a bulk one on huge
/// pages (see [`memory`]), advised before the copy first touches its memory.
fn bytes_of<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if bytes.len() < memory::LARGE {
        return Ok(PyBytes::new(py, bytes));
    }
    let (object, data) = unfilled_bytes(py, bytes.len())?;
    // SAFETY: `data` is the object's own buffer of `bytes.len()` bytes,
    // which no Python code has seen yet
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len()) };
    Ok(object)
}

/// A new bytes object of `len` bytes, not filled yet (on huge pages when
/// large), and its buffer. No Python code may see it before it is filled.
fn unfilled_bytes(py: Python<'_>, len: usize) -> PyResult<(Bound<'_, PyBytes>, *mut u8)> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err("bytes too long for Python"))?;
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) makes a bytes object of n
    // bytes to be filled before it is shared, the documented way to build
    // one in place; the result is checked for NULL by from_owned_ptr_or_err
    unsafe {
        let object = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let object = Bound::from_owned_ptr_or_err(py, object)?;
        let data = pyo3::ffi::PyBytes_AsString(object.as_ptr()).cast::<u8>();
        if data.is_null() {
            return Err(PyErr::fetch(py));
        }
        memory::advise_huge(data, len);
        Ok((object.cast_into_unchecked::<PyBytes>(), data))
    }
}

/// Memory for a bulk byte string the peer sends: a new Python bytes
/// object, which the value then is, so that 100 MB go from the socket
/// straight to where Python code reads them (see `Session::bulk_memory`).
/// `None` if Python cannot make one that large.
pub fn bulk_memory(len: usize) -> Option<Box<dyn BulkMemory>> {
    Python::attach(|py| {
        let (object, data) = unfilled_bytes(py, len).ok()?;
        // SAFETY: the object's own buffer, malloc'ed and seen by no one
        unsafe { memory::zero(data, len) };
        Some(Box::new(BytesBeingRead(PythonBytes {
            object: object.unbind(),
            data,
            len,
        })) as Box<dyn BulkMemory>)
    })
}

/// A bytes object that no Python code has seen, being read into.
struct BytesBeingRead(PythonBytes);

impl BulkMemory for BytesBeingRead {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the object's buffer, zeroed when it was made; only this
        // value, which owns the one reference, can reach it until
        // `into_bytes`, and it does not move (bytes objects never do)
        unsafe { std::slice::from_raw_parts_mut(self.0.data.cast_mut(), self.0.len) }
    }

    fn into_bytes(self: Box<Self>) -> ByteBuf {
        ByteBuf::shared(Arc::new(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_value_read_into_python_memory_becomes_that_bytes_object() {
        Python::initialize();
        let len = memory::LARGE + 5;
        let mut memory = bulk_memory(len).expect("Python makes the bytes object");
        let target = memory.as_mut_slice();
        assert_eq!(target.len(), len);
        assert!(target.iter().all(|&b| b == 0), "handed out zeroed");
        for (i, byte) in target.iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        let read_into = target.as_ptr();
        let value = Value::Bytes(memory.into_bytes());
        Python::attach(|py| {
            let object = to_python(py, &value).expect("converts");
            let bytes = object.cast::<PyBytes>().expect("a bytes object");
            assert_eq!(bytes.as_bytes().as_ptr(), read_into, "not copied");
            assert_eq!(bytes.len().expect("len"), len);
            assert!(bytes
                .as_bytes()
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8));
            // and it goes back out from the same buffer
            let Some(Value::Bytes(back)) = to_value(&object).expect("dumpable") else {
                panic!("not bytes");
            };
            assert_eq!(back.as_ptr(), read_into);
        });
    }
}
