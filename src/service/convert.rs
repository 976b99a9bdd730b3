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

use crate::protocol::brine::Value;

/// The brine value of `obj`, or `None` if it is not dumpable and must be
/// passed by reference. `Err` only when a dumpable value cannot be encoded
/// (a str with lone surrogates, an int past Python's digit limit), as with
/// rpyc, whose `brine.dump` raises there too.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
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
        return Ok(Some(Value::Bytes(
            obj.cast::<PyBytes>()?.as_bytes().to_vec(),
        )));
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Some(Value::Float(obj.extract::<f64>()?)));
    }
    if obj.is_exact_instance_of::<PyTuple>() {
        return items_to_values(obj.cast::<PyTuple>()?.iter()).map(|items| items.map(Value::Tuple));
    }
    if obj.is_exact_instance_of::<PyComplex>() {
        let complex = obj.cast::<PyComplex>()?;
        return Ok(Some(Value::Complex(complex.real(), complex.imag())));
    }
    if obj.is_exact_instance_of::<PyFrozenSet>() {
        return items_to_values(obj.cast::<PyFrozenSet>()?.iter())
            .map(|items| items.map(Value::FrozenSet));
    }
    if obj.is_exact_instance_of::<PySlice>() {
        let parts = [
            to_value(&obj.getattr("start")?)?,
            to_value(&obj.getattr("stop")?)?,
            to_value(&obj.getattr("step")?)?,
        ];
        return Ok(match parts {
            [Some(start), Some(stop), Some(step)] => {
                Some(Value::Slice(Box::new([start, stop, step])))
            }
            _ => None,
        });
    }
    if obj.is(py.NotImplemented()) {
        return Ok(Some(Value::NotImplemented));
    }
    if obj.is(py.Ellipsis()) {
        return Ok(Some(Value::Ellipsis));
    }
    Ok(None)
}

fn items_to_values<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> PyResult<Option<Vec<Value>>> {
    let mut values = Vec::new();
    for item in items {
        match to_value(&item)? {
            Some(value) => values.push(value),
            None => return Ok(None),
        }
    }
    Ok(Some(values))
}

/// The Python object for a brine value.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
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
        Value::Bytes(bytes) => PyBytes::new(py, bytes).into_any(),
        Value::Slice(parts) => {
            let [start, stop, step] = &**parts;
            py.get_type::<PySlice>().call1((
                to_python(py, start)?,
                to_python(py, stop)?,
                to_python(py, step)?,
            ))?
        }
        Value::Tuple(items) => tuple_of(py, items)?.into_any(),
        Value::FrozenSet(items) => {
            let elements = items
                .iter()
                .map(|item| to_python(py, item))
                .collect::<PyResult<Vec<_>>>()?;
            PyFrozenSet::new(py, &elements)?.into_any()
        }
    })
}

fn tuple_of<'py>(py: Python<'py>, items: &[Value]) -> PyResult<Bound<'py, PyTuple>> {
    let objects = items
        .iter()
        .map(|item| to_python(py, item))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, objects)
}
