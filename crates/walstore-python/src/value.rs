//! Typed values between Python objects and the engine's typed encoding
//! (`walstore::typed`, docs/VALUES.md): None, bool, int (64-bit), float, str, bytes,
//! list/tuple and dict with str keys, nested.
//!
//! Encoding walks the object through serde into `walstore::typed::encode`, so Python writes
//! exactly the bytes Rust's `put_as` writes; decoding goes through `walstore::typed::decode_seed`
//! with the same strict checks as Rust's `get_as`.
//!
//! Invariant: an object that cannot be stored raises `TypeError` (or `OverflowError` for an
//! integer beyond 64 bits, `ValueError` for nesting deeper than [`DEPTH_MAX`]) from [`encode`],
//! before anything reaches a transaction.

use crate::errors::IntoPyResult;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use pyo3::IntoPyObjectExt;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, SerializeMap, SerializeSeq, Serializer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

/// Deepest nesting of lists and dicts accepted (a self-containing list would never end).
const DEPTH_MAX: usize = 200;

/// Encodes a Python object as a typed value.
#[pyfunction]
pub(crate) fn encode<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = encode_bytes(py, value)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Decodes a typed value into a Python object (`walstore.TypeMismatchError` if the bytes are
/// not exactly one typed value).
#[pyfunction]
pub(crate) fn decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let failure = RefCell::new(None);
    let keys = RefCell::new(HashMap::new());
    let seed = PySeed {
        py,
        failure: &failure,
        keys: &keys,
        as_key: false,
    };
    let decoded = walstore::typed::decode_seed(data, seed);
    if let Some(error) = failure.into_inner() {
        return Err(error);
    }
    decoded.into_py_result(py)
}

/// The typed value of `data`, or `data` itself as `bytes` when it is not exactly one typed
/// value (text written by `walstore set`, bytes by `put_bytes`): what a listing returns, so
/// one untyped value never fails the whole listing.
#[pyfunction]
pub(crate) fn decode_or_bytes<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyBytes>,
) -> PyResult<Bound<'py, PyAny>> {
    match decode(py, data.as_bytes()) {
        Ok(value) => Ok(value),
        Err(error) if crate::errors::is_type_mismatch(py, &error) => Ok(data.clone().into_any()),
        Err(error) => Err(error),
    }
}

/// The typed encoding of `value`, as bytes.
pub(crate) fn encode_bytes(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let failure = RefCell::new(None);
    let encoded = walstore::typed::encode(&PyValue {
        object: value,
        depth: 0,
        failure: &failure,
    });
    if let Some(error) = failure.into_inner() {
        return Err(error);
    }
    encoded.into_py_result(py)
}

/// A Python object seen by serde. A Python error met on the way is kept in `failure` (serde
/// errors carry only text) and raised by the caller.
struct PyValue<'a, 'py> {
    object: &'a Bound<'py, PyAny>,
    depth: usize,
    failure: &'a RefCell<Option<PyErr>>,
}

impl PyValue<'_, '_> {
    /// Records `error` and returns the serde error that stops the encoding.
    fn fail<E: ser::Error>(&self, error: PyErr) -> E {
        let message = error.to_string();
        self.failure.borrow_mut().get_or_insert(error);
        E::custom(message)
    }
}

fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

impl Serialize for PyValue<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let object = self.object;
        if self.depth > DEPTH_MAX {
            let error = PyValueError::new_err(format!(
                "a value nested deeper than {DEPTH_MAX} lists or dicts cannot be stored"
            ));
            return Err(self.fail(error));
        }
        if object.is_none() {
            serializer.serialize_unit()
        } else if let Ok(flag) = object.cast::<PyBool>() {
            serializer.serialize_bool(flag.is_true())
        } else if object.is_instance_of::<PyInt>() {
            self.serialize_int(serializer)
        } else if let Ok(float) = object.cast::<PyFloat>() {
            serializer.serialize_f64(float.value())
        } else if let Ok(text) = object.cast::<PyString>() {
            let text = text.to_cow().map_err(|e| self.fail(e))?;
            serializer.serialize_str(&text)
        } else if let Ok(bytes) = object.cast::<PyBytes>() {
            serializer.serialize_bytes(bytes.as_bytes())
        } else if let Ok(bytes) = object.cast::<PyByteArray>() {
            serializer.serialize_bytes(&bytes.to_vec())
        } else if object.is_instance_of::<PyList>() || object.is_instance_of::<PyTuple>() {
            self.serialize_sequence(serializer)
        } else if let Ok(dict) = object.cast::<PyDict>() {
            self.serialize_dict(dict, serializer)
        } else {
            Err(self.fail(PyTypeError::new_err(format!(
                "cannot store a value of type {}: walstore stores None, bool, int, float, str, \
                 bytes, list, tuple and dict with str keys (use put_bytes for other encodings)",
                type_name(object)
            ))))
        }
    }
}

impl PyValue<'_, '_> {
    fn serialize_int<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Ok(n) = self.object.extract::<i64>() {
            serializer.serialize_i64(n)
        } else if let Ok(n) = self.object.extract::<u64>() {
            serializer.serialize_u64(n)
        } else {
            Err(self.fail(PyOverflowError::new_err(
                "int out of the 64-bit range (-2**63 to 2**64-1) cannot be stored",
            )))
        }
    }

    fn serialize_sequence<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.object.len().map_err(|e| self.fail(e))?;
        let mut seq = serializer.serialize_seq(Some(len))?;
        let items = self.object.try_iter().map_err(|e| self.fail(e))?;
        for item in items {
            let item = item.map_err(|e| self.fail(e))?;
            seq.serialize_element(&PyValue {
                object: &item,
                depth: self.depth + 1,
                failure: self.failure,
            })?;
        }
        seq.end()
    }

    fn serialize_dict<S: Serializer>(
        &self,
        dict: &Bound<'_, PyDict>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(dict.len()))?;
        for (key, item) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                return Err(self.fail(PyTypeError::new_err(format!(
                    "dict keys must be str to be stored, found a key of type {}",
                    type_name(&key)
                ))));
            };
            let key = key.to_cow().map_err(|e| self.fail(e))?;
            map.serialize_key(&*key)?;
            map.serialize_value(&PyValue {
                object: &item,
                depth: self.depth + 1,
                failure: self.failure,
            })?;
        }
        map.end()
    }
}

/// Map keys up to this length are made once per decode and shared (as `json.loads` does):
/// a list of records repeats the same few keys thousands of times.
const KEY_CACHED_BYTES_MAX: usize = 64;
/// At most this many distinct keys are cached per decode.
const KEYS_CACHED_MAX: usize = 1024;

/// Builds Python objects from a typed value. A Python error met on the way is kept in
/// `failure` and raised by the caller.
struct PySeed<'a, 'py> {
    py: Python<'py>,
    failure: &'a RefCell<Option<PyErr>>,
    keys: &'a RefCell<HashMap<String, Bound<'py, PyString>>>,
    /// Whether this value is a map key (then a short string comes from `keys`).
    as_key: bool,
}

impl<'py> PySeed<'_, 'py> {
    fn fail<E: de::Error>(&self, error: PyErr) -> E {
        let message = error.to_string();
        self.failure.borrow_mut().get_or_insert(error);
        E::custom(message)
    }

    fn object<T, E>(&self, value: T) -> Result<Bound<'py, PyAny>, E>
    where
        T: IntoPyObject<'py>,
        E: de::Error,
    {
        value.into_bound_py_any(self.py).map_err(|e| self.fail(e))
    }

    fn again(&self) -> PySeed<'_, 'py> {
        PySeed {
            py: self.py,
            failure: self.failure,
            keys: self.keys,
            as_key: false,
        }
    }

    fn key(&self) -> PySeed<'_, 'py> {
        PySeed {
            as_key: true,
            ..self.again()
        }
    }

    /// The Python string for map key `text`, made once per decode.
    fn cached_key(&self, text: &str) -> Bound<'py, PyAny> {
        let mut keys = self.keys.borrow_mut();
        if let Some(key) = keys.get(text) {
            return key.clone().into_any();
        }
        let key = PyString::new(self.py, text);
        if keys.len() < KEYS_CACHED_MAX {
            keys.insert(text.to_owned(), key.clone());
        }
        key.into_any()
    }
}

impl<'de, 'py> DeserializeSeed<'de> for PySeed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for PySeed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.object(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.object(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.object(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.object(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if self.as_key && v.len() <= KEY_CACHED_BYTES_MAX {
            return Ok(self.cached_key(v));
        }
        Ok(PyString::new(self.py, v).into_any())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(PyBytes::new(self.py, v).into_any())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The length comes from untrusted bytes: reserve no more than a small bound up front.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(self.again())? {
            items.push(item);
        }
        let list = PyList::new(self.py, items).map_err(|e| self.fail(e))?;
        Ok(list.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.py);
        while let Some(key) = map.next_key_seed(self.key())? {
            let item = map.next_value_seed(self.again())?;
            dict.set_item(key, item).map_err(|e| self.fail(e))?;
        }
        Ok(dict.into_any())
    }
}
