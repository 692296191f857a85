//! The native write transaction and read snapshot (`walstore.Transaction`, `walstore.Snapshot`).

use crate::errors::{self, IntoPyResult};
use crate::support::{
    count, key_range, page_bounds, parse_durability, take_page, to_bytes, Entry, ForkSafe,
};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use walstore::{ReadTxn, WriteTxn};

/// The write transaction (`walstore.Transaction` wraps it).
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeWrite {
    pub(crate) tx: Mutex<ForkSafe<WriteTxn>>,
}

impl NativeWrite {
    /// Runs `f` on the open transaction with the GIL released.
    fn with_tx<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut WriteTxn) -> walstore::Result<T> + Send,
    ) -> PyResult<T> {
        let result = py.detach(|| self.tx.lock().value.as_mut().map(f));
        match result {
            Some(result) => result.into_py_result(py),
            None => Err(errors::closed(py, "the transaction has ended")),
        }
    }
}

#[pymethods]
impl NativeWrite {
    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let value = self.with_tx(py, |tx| tx.get(key))?;
        Ok(to_bytes(py, value))
    }

    fn put(&self, py: Python<'_>, key: &[u8], value: &[u8]) -> PyResult<()> {
        self.with_tx(py, |tx| tx.put(key, value))
    }

    fn delete(&self, py: Python<'_>, key: &[u8]) -> PyResult<()> {
        self.with_tx(py, |tx| tx.delete(key))
    }

    /// Up to `limit` entries from `lo` to `hi` (see [`page_bounds`]), descending when
    /// `reverse`: one page of a listing, own writes included.
    #[pyo3(signature = (lo, lo_excl, hi, reverse, limit))]
    fn page(
        &self,
        py: Python<'_>,
        lo: Option<Vec<u8>>,
        lo_excl: bool,
        hi: Option<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> PyResult<Vec<Entry>> {
        let range = page_bounds(lo, lo_excl, hi);
        self.with_tx(py, |tx| take_page(tx.range(range), reverse, limit))
    }

    /// How many keys lie from `lo` (included) to `hi` (excluded), own writes included.
    fn count(&self, py: Python<'_>, lo: Option<Vec<u8>>, hi: Option<Vec<u8>>) -> PyResult<usize> {
        let range = page_bounds(lo, false, hi);
        self.with_tx(py, |tx| count(tx.range(range)))
    }

    /// Removes every key starting with `prefix` (one range deletion).
    fn delete_prefix(&self, py: Python<'_>, prefix: &[u8]) -> PyResult<()> {
        self.with_tx(py, |tx| tx.delete_prefix(prefix))
    }

    /// Removes every key from `start` (included) to `end` (excluded); None is unbounded.
    #[pyo3(signature = (start=None, end=None))]
    fn delete_range(
        &self,
        py: Python<'_>,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
    ) -> PyResult<()> {
        let range = key_range(start, end);
        self.with_tx(py, |tx| tx.delete_range(range))
    }

    /// Sets this transaction's durability ("immediate" or "buffered").
    fn set_durability(&self, py: Python<'_>, durability: &str) -> PyResult<()> {
        let durability = parse_durability(durability)?;
        self.with_tx(py, |tx| {
            tx.set_durability(durability);
            Ok(())
        })
    }

    /// Commits every write at once. Ends the transaction, also when it fails.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let result = py.detach(|| self.tx.lock().value.take().map(WriteTxn::commit));
        match result {
            Some(result) => result.into_py_result(py),
            None => Err(errors::closed(py, "the transaction has ended")),
        }
    }

    /// Discards every write and releases the writer lock. Allowed after the end.
    fn rollback(&self, py: Python<'_>) {
        py.detach(|| {
            if let Some(tx) = self.tx.lock().value.take() {
                tx.abort();
            }
        });
    }

    /// Whether the transaction was committed or rolled back.
    #[getter]
    fn ended(&self, py: Python<'_>) -> bool {
        py.detach(|| self.tx.lock().value.is_none())
    }
}

/// A read snapshot (`walstore.Snapshot` wraps it). Immutable, so no lock.
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeRead {
    pub(crate) read: ReadTxn,
}

#[pymethods]
impl NativeRead {
    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let value = py.detach(|| self.read.get(key)).into_py_result(py)?;
        Ok(to_bytes(py, value))
    }

    /// Up to `limit` entries from `lo` to `hi` (see [`page_bounds`]), descending when
    /// `reverse`: one page of a listing of this snapshot.
    #[pyo3(signature = (lo, lo_excl, hi, reverse, limit))]
    fn page(
        &self,
        py: Python<'_>,
        lo: Option<Vec<u8>>,
        lo_excl: bool,
        hi: Option<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> PyResult<Vec<Entry>> {
        let range = page_bounds(lo, lo_excl, hi);
        py.detach(|| take_page(self.read.range(range), reverse, limit))
            .into_py_result(py)
    }

    /// How many keys of this snapshot lie from `lo` (included) to `hi` (excluded).
    fn count(&self, py: Python<'_>, lo: Option<Vec<u8>>, hi: Option<Vec<u8>>) -> PyResult<usize> {
        let range = page_bounds(lo, false, hi);
        py.detach(|| count(self.read.range(range)))
            .into_py_result(py)
    }

    /// Id of the last transaction this snapshot includes.
    #[getter]
    fn txn_id(&self) -> u64 {
        self.read.txn_id()
    }
}
