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
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use std::ops::Bound as KeyBound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use walstore::{Durability, LockWait, Options, ReadTxn, RecoveryMode, Store, Watch, WriteTxn};

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

/// Longest single wait for the writer lock with the GIL released: signals are handled
/// between two of them, so Ctrl-C ends a wait within about this long.
const LOCK_SLICE: Duration = Duration::from_millis(100);

/// Runs `f` with the GIL released until it returns something other than `Busy`, or until
/// `wait` (None: forever) has passed since the first try; Python's signal handlers run
/// between two tries. `f` must be safe to repeat after `Busy` (it changed nothing).
fn retry_busy<T: Send>(
    py: Python<'_>,
    wait: Option<Duration>,
    mut f: impl FnMut() -> walstore::Result<T> + Send,
) -> PyResult<T> {
    let started = Instant::now();
    loop {
        match py.detach(&mut f) {
            Err(walstore::Error::Busy { .. }) => {
                let waited = started.elapsed();
                if let Some(limit) = wait.filter(|limit| waited >= *limit) {
                    let waited = if limit.is_zero() { limit } else { waited };
                    return Err(errors::busy(py, waited));
                }
                py.check_signals()?;
            }
            other => return other.into_py_result(py),
        }
    }
}

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
fn parse_wait(wait: Option<f64>) -> PyResult<Option<Duration>> {
    match wait {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => Err(PyValueError::new_err(format!(
            "wait must be None or a number of seconds >= 0, not {s}"
        ))),
        Some(s) if s.is_infinite() => Ok(None),
        Some(s) => Ok(Some(Duration::from_secs_f64(s.min(1e9)))),
    }
}

/// The bounds of one page of a listing: from `lo` (excluded when `lo_excl`; None: the first
/// key) to `hi` (excluded; None: the last key).
fn page_bounds(
    lo: Option<Vec<u8>>,
    lo_excl: bool,
    hi: Option<Vec<u8>>,
) -> (KeyBound<Vec<u8>>, KeyBound<Vec<u8>>) {
    let lo = match lo {
        Some(k) if lo_excl => KeyBound::Excluded(k),
        Some(k) if !k.is_empty() => KeyBound::Included(k),
        _ => KeyBound::Unbounded,
    };
    (lo, hi.map_or(KeyBound::Unbounded, KeyBound::Excluded))
}

/// Up to `limit` key/value pairs of `iter` (descending when `reverse`), copied out so that a
/// Python list can be built after the GIL is back.
fn take_page(
    iter: walstore::Result<walstore::Iter<'_>>,
    reverse: bool,
    limit: usize,
) -> walstore::Result<Vec<Entry>> {
    let iter = iter?;
    let iter = if reverse { iter.rev() } else { iter };
    iter.take(limit)
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
}

/// How many entries `iter` yields.
fn count(iter: walstore::Result<walstore::Iter<'_>>) -> walstore::Result<usize> {
    let mut n = 0;
    for item in iter? {
        item?;
        n += 1;
    }
    Ok(n)
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
    /// How long a call waits for the writer lock in all (None: forever), in slices.
    wait: Option<Duration>,
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
    read: ReadTxn,
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

/// One file as `verify` reports it: name, bytes, benign problem (None: every check passed).
type FileReport = (String, u64, Option<String>);

/// Checks every checksum of every file of the store in `path` with the GIL released:
/// `CorruptionError` (with `.file` and `.offset`) at the first damaged file; otherwise the
/// bytes checked and, per file, (name, bytes, benign problem or None), such as a torn tail.
#[pyfunction]
pub(crate) fn verify(py: Python<'_>, path: std::path::PathBuf) -> PyResult<(u64, Vec<FileReport>)> {
    let storage = walstore::storage::FsStorage::new();
    let report = py
        .detach(|| walstore::inspect::verify(&storage, &path, |_, _| {}))
        .into_py_result(py)?;
    if let Some((file, problem)) = report.first_damage() {
        let error = walstore::Error::Corruption {
            file: path.join(&file.name),
            offset: problem.offset,
            detail: problem.detail.clone(),
        };
        return Err(errors::to_py(py, error));
    }
    let files = report
        .files
        .iter()
        .map(|f| {
            let problem = f
                .problem
                .as_ref()
                .map(|p| format!("at byte offset {}: {}", p.offset, p.detail));
            (f.name.clone(), f.bytes, problem)
        })
        .collect();
    Ok((report.bytes_checked, files))
}
