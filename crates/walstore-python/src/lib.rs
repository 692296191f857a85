//! `walstore._native`: the Rust half of the Python package `walstore`.
//!
//! The Python half (`python/walstore/`: `__init__.py`, with `_mapping.py` and `_feed.py`) owns
//! the public API (mapping methods, context managers, key conversion, docstrings); this module
//! owns everything that touches the engine: opening, transactions and snapshots ([`store`]),
//! the change feed ([`feed`]), typed values ([`value`]) and the translation of engine errors
//! into Python exceptions ([`errors`]).
//!
//! Invariant: the GIL is released around every engine call that may do I/O, sync or wait for
//! the writer lock, and no Rust lock is ever waited for while the GIL is held.

// PyO3's `#[pyclass]`, `#[pymethods]` and `#[pymodule]` expand to `unsafe` FFI glue; the
// workspace denies `unsafe_code`, and this crate allows it for that generated code only: no
// `unsafe` block is written by hand here.
#![allow(unsafe_code)]

mod errors;
mod feed;
mod store;
mod support;
mod txn;
mod value;
mod verify;

use pyo3::prelude::*;

/// The native module. `walstore/__init__.py` wraps it; nothing else should import it.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<store::NativeStore>()?;
    module.add_class::<txn::NativeWrite>()?;
    module.add_class::<txn::NativeRead>()?;
    module.add_class::<store::NativeWatch>()?;
    module.add_class::<feed::NativeChanges>()?;
    for function in [
        wrap_pyfunction!(feed::feed_changes, module)?,
        wrap_pyfunction!(feed::feed_consumer_changes, module)?,
        wrap_pyfunction!(feed::feed_register, module)?,
        wrap_pyfunction!(feed::feed_ack, module)?,
        wrap_pyfunction!(feed::feed_unregister, module)?,
        wrap_pyfunction!(feed::feed_consumer, module)?,
        wrap_pyfunction!(feed::feed_set_retention, module)?,
        wrap_pyfunction!(feed::feed_state, module)?,
        wrap_pyfunction!(feed::feed_applied_position, module)?,
        wrap_pyfunction!(feed::feed_apply, module)?,
    ] {
        module.add_function(function)?;
    }
    module.add_function(wrap_pyfunction!(store::open_store, module)?)?;
    module.add_function(wrap_pyfunction!(value::encode, module)?)?;
    module.add_function(wrap_pyfunction!(value::decode, module)?)?;
    module.add_function(wrap_pyfunction!(value::decode_or_bytes, module)?)?;
    module.add_function(wrap_pyfunction!(verify::verify, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("MAX_KEY_BYTES", walstore::MAX_KEY_BYTES)?;
    module.add("MAX_VALUE_BYTES", walstore::MAX_VALUE_BYTES)?;
    Ok(())
}
