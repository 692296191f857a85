//! The native store, write transaction and read snapshot that `walstore/__init__.py` wraps.
//! Keys and values cross this boundary as bytes; typed values are converted in `value`.
//!
//! Invariant: every engine call runs inside `Python::detach` (the GIL released), and the
//! mutexes here are only locked inside it, so a thread waiting for one never holds the GIL
//! that the holder needs to return.
//!
//! Invariant: an object inherited across `fork()` is never dropped in the child (see
//! [`ForkSafe`]): its writer lock and file handles belong to the parent.
//!
//! Invariant: no engine call waits for the writer lock longer than [`LOCK_SLICE`]: the store
//! is opened with that lock wait, and [`retry_busy`] repeats a call that came back `Busy`
//! until the caller's own `wait` has passed, running Python's signal handlers between two
//! tries (a handler that raises ends the wait with its exception, such as
//! `KeyboardInterrupt`; one that returns lets it go on).

use crate::errors::{self, IntoPyResult};
use crate::support::{
    parse_durability, parse_wait, retry_busy, to_bytes, ForkSafe, Merge, LOCK_SLICE,
};
use crate::txn::{NativeRead, NativeWrite};
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use walstore::{LockWait, Options, RecoveryMode, Store, Watch};

/// Opens (creating if needed, unless read-only) the store in `path`; `salvage` opens a
/// damaged store read-only with everything intact (`RecoveryMode::Salvage`).
#[pyfunction]
#[pyo3(signature = (path, durability, wait, read_only, salvage=false))]
pub(crate) fn open_store(
    py: Python<'_>,
    path: std::path::PathBuf,
    durability: &str,
    wait: Option<f64>,
    read_only: bool,
    salvage: bool,
) -> PyResult<NativeStore> {
    let wait = parse_wait(wait)?;
    let slice = match wait {
        Some(limit) if limit.is_zero() => LockWait::NoWait,
        Some(limit) => LockWait::Timeout(limit.min(LOCK_SLICE)),
        None => LockWait::Timeout(LOCK_SLICE),
    };
    let recovery = if salvage {
        RecoveryMode::Salvage
    } else {
        RecoveryMode::Strict
    };
    let options = Options::new()
        .durability(parse_durability(durability)?)
        .lock_wait(slice)
        .recovery(recovery)
        .read_only(read_only || salvage);
    let store = retry_busy(py, wait, || options.clone().open(&path))?;
    Ok(NativeStore {
        store: Mutex::new(ForkSafe::new(store)),
        wait,
    })
}

/// An open store (`walstore.Store` wraps it).
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeStore {
    store: Mutex<ForkSafe<Store>>,
    /// How long a call waits for the writer lock in all (None: forever), in slices.
    pub(crate) wait: Option<Duration>,
}

impl NativeStore {
    /// A handle to the engine store (clones share it), or `ClosedError`.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<Store> {
        self.store
            .lock()
            .value
            .clone()
            .ok_or_else(|| errors::closed(py, "the store is closed"))
    }
}

/// What `Store.checkpoint` reports: generation, transaction id, keys changed, files written,
/// files kept, bytes written, log bytes folded, microseconds.
type Checkpoint = (u64, u64, usize, usize, usize, u64, u64, u64);

/// What `Store.info` reports, as (name, value) pairs: the fields of `walstore info --json`.
type InfoFields = Vec<(&'static str, Py<PyAny>)>;

#[pymethods]
impl NativeStore {
    /// Starts the write transaction (waits for the writer lock as `wait` said).
    fn begin_write(&self, py: Python<'_>) -> PyResult<NativeWrite> {
        let store = self.handle(py)?;
        let tx = retry_busy(py, self.wait, || store.begin_write())?;
        Ok(NativeWrite {
            tx: Mutex::new(ForkSafe::new(tx)),
        })
    }

    /// A consistent read snapshot.
    fn begin_read(&self, py: Python<'_>) -> PyResult<NativeRead> {
        let store = self.handle(py)?;
        let read = retry_busy(py, None, || store.begin_read())?;
        Ok(NativeRead { read })
    }

    /// The value of `key` in a snapshot of its own.
    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let store = self.handle(py)?;
        let value = retry_busy(py, None, || store.begin_read().and_then(|r| r.get(key)))?;
        Ok(to_bytes(py, value))
    }

    /// The changes under `prefix` committed from now on, by any handle in any process.
    fn watch(slf: &Bound<'_, Self>, prefix: &[u8]) -> PyResult<NativeWatch> {
        let py = slf.py();
        let store = slf.get().handle(py)?;
        let watch = retry_busy(py, None, || store.watch(prefix))?;
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
        let merges = retry_busy(py, self.wait, || store.compact())?;
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

    /// Folds the log into snapshot files (see [`Checkpoint`]).
    fn checkpoint(&self, py: Python<'_>) -> PyResult<Checkpoint> {
        let store = self.handle(py)?;
        let s = retry_busy(py, self.wait, || store.checkpoint())?;
        Ok((
            s.generation,
            s.txn_id,
            s.keys_changed,
            s.files_written,
            s.files_kept,
            s.bytes_written,
            s.wal_bytes,
            s.micros,
        ))
    }

    /// Writes a consistent copy to `dest` (missing or empty): (txn id, keys, bytes, files).
    fn backup(&self, py: Python<'_>, dest: std::path::PathBuf) -> PyResult<(u64, u64, u64, usize)> {
        let store = self.handle(py)?;
        let s = retry_busy(py, None, || store.backup(&dest, |_| {}))?;
        Ok((s.txn_id, s.keys, s.bytes, s.files))
    }

    /// Sizes, generation and counters (the fields of `walstore info --json`).
    fn info(&self, py: Python<'_>) -> PyResult<InfoFields> {
        let store = self.handle(py)?;
        let i = retry_busy(py, None, || store.info())?;
        Ok(vec![
            (
                "path",
                i.path.to_string_lossy().into_owned().into_py_any(py)?,
            ),
            ("generation", i.generation.into_py_any(py)?),
            ("last_txn", i.last_txn.into_py_any(py)?),
            ("checkpoint_txn", i.checkpoint_txn.into_py_any(py)?),
            (
                "txns_since_checkpoint",
                i.txns_since_checkpoint.into_py_any(py)?,
            ),
            ("wal_bytes", i.wal_bytes.into_py_any(py)?),
            ("wal_file_bytes", i.wal_file_bytes.into_py_any(py)?),
            ("runs", i.runs.into_py_any(py)?),
            ("snapshot_files", i.snapshot_files.into_py_any(py)?),
            ("memtable_keys", i.memtable_keys.into_py_any(py)?),
            ("log_index_entries", i.log_index_entries.into_py_any(py)?),
            ("log_index_bytes", i.log_index_bytes.into_py_any(py)?),
            ("commits", i.commits.into_py_any(py)?),
            ("wal_syncs", i.wal_syncs.into_py_any(py)?),
            ("checkpoints", i.checkpoints.into_py_any(py)?),
            ("read_only", i.read_only.into_py_any(py)?),
        ])
    }

    /// Puts (`Some`) or deletes (`None`) every entry in one write transaction.
    fn apply(&self, py: Python<'_>, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> PyResult<()> {
        let store = self.handle(py)?;
        retry_busy(py, self.wait, || {
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
    }

    /// Makes every commit made through this handle durable (after `buffered` ones).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.handle(py)?;
        py.detach(|| store.sync()).into_py_result(py)
    }

    /// Closes the store: makes its commits durable and, as the store's last handle, marks the
    /// log clean. Later calls raise `ClosedError`; closing twice is allowed. In a forked
    /// child: `ForkedError`.
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
    pub(crate) fn closed(&self) -> bool {
        self.store.lock().value.is_none()
    }

    /// Whether the store was opened read-only.
    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.handle(py)?.is_read_only())
    }

    /// Whether this handle holds more of the log in memory of its own than a clean close
    /// leaves (`Store::holds_unfolded_log`).
    #[getter]
    fn holds_unfolded_log(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.handle(py)?.holds_unfolded_log())
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
