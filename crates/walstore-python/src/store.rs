//! The native store, write transaction and read snapshot that `walstore/__init__.py` wraps.
//! Keys and values cross this boundary as bytes; typed values are converted in `value`.
//!
//! Invariant: every engine call runs inside `Python::detach` (the GIL released), and the
//! mutexes here are only locked inside it, so a thread waiting for one never holds the GIL
//! that the holder needs to return.
//!
//! Invariant: an object inherited across `fork()` is never dropped in the child (see
//! [`ForkSafe`]): its writer lock and file handles belong to the parent.

use crate::errors::{self, IntoPyResult};
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::ops::Bound as KeyBound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use walstore::{Durability, LockWait, Options, ReadTxn, Store, Watch, WriteTxn};

/// A key and its value, as bytes.
type Entry = (Vec<u8>, Vec<u8>);

/// Holds an engine object and the process that made it. Dropped in another process (a forked
/// child), the object is leaked instead: dropping it there would release the parent's
/// writer lock (a `flock` is shared across `fork`) or join a thread that does not exist.
struct ForkSafe<T> {
    value: Option<T>,
    pid: u32,
    /// `walstore::fork_epoch()` when it was made: compared on drop without a `getpid`.
    epoch: u64,
}

impl<T> ForkSafe<T> {
    fn new(value: T) -> Self {
        ForkSafe {
            value: Some(value),
            pid: std::process::id(),
            epoch: walstore::fork_epoch(),
        }
    }
}

impl<T> Drop for ForkSafe<T> {
    fn drop(&mut self) {
        if walstore::fork_epoch() != self.epoch {
            std::mem::forget(self.value.take());
        }
    }
}

/// Opens (creating if needed, unless read-only) the store in `path`.
#[pyfunction]
#[pyo3(signature = (path, durability, wait, read_only))]
pub(crate) fn open_store(
    py: Python<'_>,
    path: std::path::PathBuf,
    durability: &str,
    wait: Option<f64>,
    read_only: bool,
) -> PyResult<NativeStore> {
    let options = Options::new()
        .durability(parse_durability(durability)?)
        .lock_wait(parse_wait(wait)?)
        .read_only(read_only);
    let store = py.detach(|| options.open(&path)).into_py_result(py)?;
    Ok(NativeStore {
        store: Mutex::new(ForkSafe::new(store)),
    })
}

fn parse_durability(durability: &str) -> PyResult<Durability> {
    match durability {
        "immediate" => Ok(Durability::Immediate),
        "buffered" => Ok(Durability::Buffered),
        other => Err(PyValueError::new_err(format!(
            "durability must be \"immediate\" or \"buffered\", not {other:?}"
        ))),
    }
}

/// `wait` in seconds: None waits forever, 0 not at all.
fn parse_wait(wait: Option<f64>) -> PyResult<LockWait> {
    match wait {
        None => Ok(LockWait::Forever),
        Some(s) if s.is_nan() || s < 0.0 => Err(PyValueError::new_err(format!(
            "wait must be None or a number of seconds >= 0, not {s}"
        ))),
        Some(0.0) => Ok(LockWait::NoWait),
        Some(s) if s.is_infinite() => Ok(LockWait::Forever),
        Some(s) => Ok(LockWait::Timeout(Duration::from_secs_f64(s.min(1e9)))),
    }
}

/// Every key/value pair of `iter`, in descending key order when `reverse`, collected (a
/// Python list is built after the GIL is back).
fn collect(
    iter: walstore::Result<walstore::Iter<'_>>,
    reverse: bool,
) -> walstore::Result<Vec<Entry>> {
    let iter = iter?;
    let iter = if reverse { iter.rev() } else { iter };
    iter.map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
}

/// What `Store.compact` reports for one merge: runs merged, files read, files written, bytes
/// read, bytes written, whether the oldest run was included.
type Merge = (usize, usize, usize, u64, u64, bool);

/// `delete_range`'s bounds: `start` included (None, or empty: from the first key, as keys are
/// never empty), `end` excluded (None: to the last key).
fn key_range(
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
) -> (KeyBound<Vec<u8>>, KeyBound<Vec<u8>>) {
    let start = match start {
        Some(start) if !start.is_empty() => KeyBound::Included(start),
        _ => KeyBound::Unbounded,
    };
    (start, end.map_or(KeyBound::Unbounded, KeyBound::Excluded))
}

fn to_bytes<'py>(py: Python<'py>, value: Option<walstore::Value>) -> Option<Bound<'py, PyBytes>> {
    value.map(|v| PyBytes::new(py, &v))
}

/// An open store (`walstore.Store` wraps it).
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeStore {
    store: Mutex<ForkSafe<Store>>,
}

impl NativeStore {
    /// A handle to the engine store (clones share it), or `ClosedError`.
    fn handle(&self, py: Python<'_>) -> PyResult<Store> {
        self.store
            .lock()
            .value
            .clone()
            .ok_or_else(|| errors::closed(py, "the store is closed"))
    }
}

#[pymethods]
impl NativeStore {
    /// Starts the write transaction (waits for the writer lock as `wait` said).
    fn begin_write(&self, py: Python<'_>) -> PyResult<NativeWrite> {
        let store = self.handle(py)?;
        let tx = py.detach(|| store.begin_write()).into_py_result(py)?;
        Ok(NativeWrite {
            tx: Mutex::new(ForkSafe::new(tx)),
        })
    }

    /// A consistent read snapshot.
    fn begin_read(&self, py: Python<'_>) -> PyResult<NativeRead> {
        let store = self.handle(py)?;
        let read = py.detach(|| store.begin_read()).into_py_result(py)?;
        Ok(NativeRead { read })
    }

    /// The value of `key` in a snapshot of its own.
    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let store = self.handle(py)?;
        let value = py
            .detach(|| store.begin_read().and_then(|r| r.get(key)))
            .into_py_result(py)?;
        Ok(to_bytes(py, value))
    }

    /// Key/value pairs whose key starts with `prefix`, from one snapshot, in key order
    /// (descending when `reverse`).
    #[pyo3(signature = (prefix, reverse=false))]
    fn scan(&self, py: Python<'_>, prefix: &[u8], reverse: bool) -> PyResult<Vec<Entry>> {
        let store = self.handle(py)?;
        py.detach(|| {
            store
                .begin_read()
                .and_then(|r| collect(r.scan_prefix(prefix), reverse))
        })
        .into_py_result(py)
    }

    /// The changes under `prefix` committed from now on, by any handle in any process.
    fn watch(slf: &Bound<'_, Self>, prefix: &[u8]) -> PyResult<NativeWatch> {
        let py = slf.py();
        let store = slf.get().handle(py)?;
        let watch = py.detach(|| store.watch(prefix)).into_py_result(py)?;
        Ok(NativeWatch {
            watch: Mutex::new(ForkSafe::new(watch)),
            pid: std::process::id(),
            prefix: prefix.to_vec(),
            closed: AtomicBool::new(false),
            store: slf.clone().unbind(),
        })
    }

    /// Checkpoints, then merges every run into one; one tuple per merge (see [`Merge`]).
    fn compact(&self, py: Python<'_>) -> PyResult<Vec<Merge>> {
        let store = self.handle(py)?;
        let merges = py.detach(|| store.compact()).into_py_result(py)?;
        Ok(merges
            .iter()
            .map(|m| {
                (
                    m.runs_merged,
                    m.files_read,
                    m.files_written,
                    m.bytes_read,
                    m.bytes_written,
                    m.bottom,
                )
            })
            .collect())
    }

    /// Puts (`Some`) or deletes (`None`) every entry in one write transaction.
    fn apply(&self, py: Python<'_>, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> PyResult<()> {
        let store = self.handle(py)?;
        py.detach(|| {
            store.update(|tx| {
                for (key, value) in &writes {
                    match value {
                        Some(value) => tx.put(key, value)?,
                        None => tx.delete(key)?,
                    }
                }
                Ok::<_, walstore::Error>(())
            })
        })
        .into_py_result(py)
    }

    /// Makes every commit made through this handle durable (after `buffered` ones).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.handle(py)?;
        py.detach(|| store.sync()).into_py_result(py)
    }

    /// Closes the store: makes its commits durable and marks the log clean. Later calls raise
    /// `ClosedError`; closing twice is allowed. In a forked child: `ForkedError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let store = {
            let mut slot = self.store.lock();
            let current = std::process::id();
            if slot.pid != current {
                // Closing here would release the parent's lock: the copy is left to `ForkSafe`.
                let error = walstore::Error::Forked {
                    opened_by: slot.pid,
                    current,
                };
                return Err(errors::to_py(py, error));
            }
            slot.value.take()
        };
        match store {
            Some(store) => py.detach(|| store.close()).into_py_result(py),
            None => Ok(()),
        }
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.store.lock().value.is_none()
    }

    /// Whether the store was opened read-only.
    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.handle(py)?.is_read_only())
    }
}

/// The write transaction (`walstore.Transaction` wraps it).
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeWrite {
    tx: Mutex<ForkSafe<WriteTxn>>,
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

    #[pyo3(signature = (prefix, reverse=false))]
    fn scan(&self, py: Python<'_>, prefix: &[u8], reverse: bool) -> PyResult<Vec<Entry>> {
        self.with_tx(py, |tx| collect(tx.scan_prefix(prefix), reverse))
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
    read: ReadTxn,
}

#[pymethods]
impl NativeRead {
    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let value = py.detach(|| self.read.get(key)).into_py_result(py)?;
        Ok(to_bytes(py, value))
    }

    #[pyo3(signature = (prefix, reverse=false))]
    fn scan(&self, py: Python<'_>, prefix: &[u8], reverse: bool) -> PyResult<Vec<Entry>> {
        py.detach(|| collect(self.read.scan_prefix(prefix), reverse))
            .into_py_result(py)
    }

    /// Id of the last transaction this snapshot includes.
    #[getter]
    fn txn_id(&self) -> u64 {
        self.read.txn_id()
    }
}

/// One change as `NativeWatch.next` returns it: key, value (None: deleted), transaction id.
type ChangeTuple = (Vec<u8>, Option<Vec<u8>>, u64);

/// How long one wait for a change lasts with the GIL released, between two checks for a
/// signal (Ctrl-C raises `KeyboardInterrupt` within this long) and for a closed store.
const WATCH_SLICE: Duration = Duration::from_millis(100);

/// A watch of a prefix (`walstore.Watch` wraps it). The engine watch is behind a mutex
/// locked only with the GIL released (a `next` holds it for up to [`WATCH_SLICE`]); what the
/// other methods need is kept beside it.
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeWatch {
    watch: Mutex<ForkSafe<Watch>>,
    /// The process that made it.
    pid: u32,
    prefix: Vec<u8>,
    closed: AtomicBool,
    /// The store it watches: closing it ends the watch (`ClosedError`).
    store: Py<NativeStore>,
}

impl NativeWatch {
    /// `ForkedError` in a forked child, `ClosedError` once the watch or its store is closed.
    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        let current = std::process::id();
        if self.pid != current {
            let error = walstore::Error::Forked {
                opened_by: self.pid,
                current,
            };
            return Err(errors::to_py(py, error));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::closed(py, "the watch is closed"));
        }
        if self.store.get().store.lock().value.is_none() {
            return Err(errors::closed(py, "the store is closed"));
        }
        Ok(())
    }
}

#[pymethods]
impl NativeWatch {
    /// The next change, waiting at most `timeout` seconds (None: until one comes); None if
    /// none came. The GIL is released while waiting, in slices of [`WATCH_SLICE`] between
    /// which signals are handled (a `KeyboardInterrupt` is raised from here).
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<ChangeTuple>> {
        let deadline = match timeout {
            None => None,
            Some(s) if s.is_nan() || s < 0.0 => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be None or a number of seconds >= 0, not {s}"
                )))
            }
            Some(s) if s.is_infinite() => None,
            Some(s) => Instant::now().checked_add(Duration::from_secs_f64(s.min(1e9))),
        };
        loop {
            self.check_open(py)?;
            let slice = match deadline {
                None => WATCH_SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(WATCH_SLICE),
            };
            let got = py.detach(|| {
                let mut slot = self.watch.lock();
                slot.value.as_mut().map(|watch| watch.next_timeout(slice))
            });
            match got {
                None => return Err(errors::closed(py, "the watch is closed")),
                Some(result) => {
                    if let Some(change) = result.into_py_result(py)? {
                        return Ok(Some((change.key, change.value, change.txn_id)));
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// The watched prefix.
    #[getter]
    fn prefix(&self) -> Vec<u8> {
        self.prefix.clone()
    }

    /// Ends the watch (releases the view it holds); later calls raise `ClosedError`. Closing
    /// twice is fine; in a forked child the copy is left to [`ForkSafe`].
    fn close(&self, py: Python<'_>) {
        if self.pid != std::process::id() {
            return;
        }
        self.closed.store(true, Ordering::Release);
        py.detach(|| drop(self.watch.lock().value.take()));
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
