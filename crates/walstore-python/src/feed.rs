//! The change feed (`walstore/_feed.py` wraps it): reading it ([`NativeChanges`]), named
//! consumers, the retention policy and replicas (`walstore.apply`).
//!
//! Module functions taking the store rather than methods of [`NativeStore`], so that the
//! store's file keeps to the store. The invariants of `store.rs` hold here too: every engine
//! call runs with the GIL released, the feed's mutex is only locked with the GIL released,
//! and writes wait for the writer lock in slices through [`retry_busy`].

use crate::errors::{self, IntoPyResult};
use crate::store::NativeStore;
use crate::support::{retry_busy, ForkSafe};
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use walstore::{Changes, FeedRecord, Retention};

/// A key and its value or end (None: a deletion, or no end).
type Pair = (Vec<u8>, Option<Vec<u8>>);

/// One record as Python gets and gives it: transaction id, range deletions, writes.
type RecordTuple = (u64, Vec<Pair>, Vec<Pair>);

/// What `feed_state` reports: keep bytes, max bytes, max age in seconds, consumers, sealed
/// segments (generation, first txn, last txn, bytes, sealed at), applied, retained bytes.
type StateTuple = (
    u64,
    u64,
    f64,
    Vec<(String, u64)>,
    Vec<(u64, u64, u64, u64, u64)>,
    Option<u64>,
    u64,
);

/// How long one wait for a record lasts with the GIL released, between two checks for a
/// signal (Ctrl-C raises `KeyboardInterrupt` within this long) and for a closed store.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The change feed from a transaction on (`walstore.Changes` wraps it). The engine feed is
/// behind a mutex locked only with the GIL released.
#[pyclass(frozen, module = "walstore._native")]
pub(crate) struct NativeChanges {
    changes: Mutex<ForkSafe<Changes>>,
    pid: u32,
    prefix: Vec<u8>,
    closed: AtomicBool,
    /// The store it reads: closing it ends the feed (`ClosedError`).
    store: Py<NativeStore>,
}

impl NativeChanges {
    fn new(store: &Bound<'_, NativeStore>, changes: Changes) -> NativeChanges {
        NativeChanges {
            prefix: changes.prefix().to_vec(),
            changes: Mutex::new(ForkSafe::new(changes)),
            pid: std::process::id(),
            closed: AtomicBool::new(false),
            store: store.clone().unbind(),
        }
    }

    /// `ForkedError` in a forked child, `ClosedError` once the feed or its store is closed.
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
            return Err(errors::closed(py, "the change feed is closed"));
        }
        if self.store.get().closed() {
            return Err(errors::closed(py, "the store is closed"));
        }
        Ok(())
    }

    /// One wait of at most `slice` with the GIL released.
    fn wait_once(&self, py: Python<'_>, slice: Duration) -> PyResult<Option<RecordTuple>> {
        let got = py.detach(|| {
            let mut slot = self.changes.lock();
            slot.value.as_mut().map(|c| c.next_timeout(slice))
        });
        match got {
            None => Err(errors::closed(py, "the change feed is closed")),
            Some(result) => Ok(result.into_py_result(py)?.map(to_tuple)),
        }
    }
}

fn to_tuple(r: FeedRecord) -> RecordTuple {
    (r.txn_id, r.range_deletes, r.writes)
}

/// `timeout` seconds as a deadline (None: wait forever); `ValueError` for a negative or NaN.
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be None or a number of seconds >= 0, not {s}"
        ))),
        Some(s) if s.is_infinite() => Ok(None),
        Some(s) => Ok(Instant::now().checked_add(Duration::from_secs_f64(s.min(1e9)))),
    }
}

#[pymethods]
impl NativeChanges {
    /// The next record, waiting at most `timeout` seconds (None: until one comes); None if
    /// none came. The GIL is released while waiting, in slices between which signals are
    /// handled.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<RecordTuple>> {
        let deadline = deadline(timeout)?;
        loop {
            self.check_open(py)?;
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            };
            if let Some(record) = self.wait_once(py, slice)? {
                return Ok(Some(record));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// The last transaction passed: the feed resumes after it.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        self.check_open(py)?;
        let position = py.detach(|| self.changes.lock().value.as_ref().map(Changes::position));
        position.ok_or_else(|| errors::closed(py, "the change feed is closed"))
    }

    #[getter]
    fn prefix(&self) -> Vec<u8> {
        self.prefix.clone()
    }

    /// Ends the feed; later calls raise `ClosedError`. Closing twice is fine.
    fn close(&self, py: Python<'_>) {
        if self.pid != std::process::id() {
            return;
        }
        self.closed.store(true, Ordering::Release);
        py.detach(|| drop(self.changes.lock().value.take()));
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The changes under `prefix` after transaction `since`.
#[pyfunction]
pub(crate) fn feed_changes(
    store: &Bound<'_, NativeStore>,
    prefix: &[u8],
    since: u64,
) -> PyResult<NativeChanges> {
    let py = store.py();
    let handle = store.get().handle(py)?;
    let changes = retry_busy(py, None, || handle.changes(prefix, since))?;
    Ok(NativeChanges::new(store, changes))
}

/// The changes under `prefix` after consumer `name`'s position.
#[pyfunction]
pub(crate) fn feed_consumer_changes(
    store: &Bound<'_, NativeStore>,
    name: &str,
    prefix: &[u8],
) -> PyResult<NativeChanges> {
    let py = store.py();
    let handle = store.get().handle(py)?;
    let changes = retry_busy(py, None, || handle.consumer_changes(name, prefix))?;
    Ok(NativeChanges::new(store, changes))
}

/// Registers `name` after `after` (None: after the newest commit); returns its position.
#[pyfunction]
#[pyo3(signature = (store, name, after=None))]
pub(crate) fn feed_register(
    py: Python<'_>,
    store: &NativeStore,
    name: &str,
    after: Option<u64>,
) -> PyResult<u64> {
    let handle = store.handle(py)?;
    retry_busy(py, store.wait, || match after {
        None => handle.register_consumer(name),
        Some(after) => handle.register_consumer_at(name, after).map(|()| after),
    })
}

#[pyfunction]
pub(crate) fn feed_ack(py: Python<'_>, store: &NativeStore, name: &str, txn: u64) -> PyResult<()> {
    let handle = store.handle(py)?;
    retry_busy(py, store.wait, || handle.ack(name, txn))
}

#[pyfunction]
pub(crate) fn feed_unregister(py: Python<'_>, store: &NativeStore, name: &str) -> PyResult<()> {
    let handle = store.handle(py)?;
    retry_busy(py, store.wait, || handle.unregister_consumer(name))
}

#[pyfunction]
pub(crate) fn feed_consumer(
    py: Python<'_>,
    store: &NativeStore,
    name: &str,
) -> PyResult<Option<u64>> {
    let handle = store.handle(py)?;
    py.detach(|| handle.consumer(name)).into_py_result(py)
}

/// Sets the fields given (the others keep their current value).
#[pyfunction]
#[pyo3(signature = (store, keep_bytes=None, max_bytes=None, max_age=None))]
pub(crate) fn feed_set_retention(
    py: Python<'_>,
    store: &NativeStore,
    keep_bytes: Option<u64>,
    max_bytes: Option<u64>,
    max_age: Option<f64>,
) -> PyResult<()> {
    let max_age = match max_age {
        Some(s) if s.is_nan() || s < 0.0 => {
            return Err(PyValueError::new_err(format!(
                "max_age must be None or a number of seconds >= 0, not {s}"
            )))
        }
        other => other.map(|s| Duration::from_secs_f64(s.min(1e12))),
    };
    let handle = store.handle(py)?;
    retry_busy(py, store.wait, || {
        let current = handle.feed_state()?.retention;
        handle.set_retention(Retention {
            keep_bytes: keep_bytes.unwrap_or(current.keep_bytes),
            max_bytes: max_bytes.unwrap_or(current.max_bytes),
            max_age: max_age.unwrap_or(current.max_age),
        })
    })
}

#[pyfunction]
pub(crate) fn feed_state(py: Python<'_>, store: &NativeStore) -> PyResult<StateTuple> {
    let handle = store.handle(py)?;
    let s = py.detach(|| handle.feed_state()).into_py_result(py)?;
    let r = s.retention;
    Ok((
        r.keep_bytes,
        r.max_bytes,
        r.max_age.as_secs_f64(),
        s.consumers.iter().map(|(n, p)| (n.clone(), *p)).collect(),
        s.segments
            .iter()
            .map(|g| (g.generation, g.first_txn, g.last_txn, g.bytes, g.sealed_at))
            .collect(),
        s.applied,
        s.retained_bytes(),
    ))
}

#[pyfunction]
pub(crate) fn feed_applied_position(py: Python<'_>, store: &NativeStore) -> PyResult<u64> {
    let handle = store.handle(py)?;
    py.detach(|| handle.applied_position()).into_py_result(py)
}

/// Applies `records` in one transaction: (applied, skipped, position).
#[pyfunction]
pub(crate) fn feed_apply(
    py: Python<'_>,
    store: &NativeStore,
    records: Vec<RecordTuple>,
) -> PyResult<(u64, u64, u64)> {
    let handle = store.handle(py)?;
    let records: Vec<FeedRecord> = records
        .into_iter()
        .map(|(txn_id, range_deletes, writes)| FeedRecord {
            txn_id,
            range_deletes,
            writes,
        })
        .collect();
    let stats = retry_busy(py, store.wait, || handle.apply_changes(records.clone()))?;
    Ok((stats.applied, stats.skipped, stats.position))
}
