//! What the native classes share: values inherited across `fork()` ([`ForkSafe`]), the
//! lock wait in signal-checked slices ([`retry_busy`]), and the parsing of arguments.
//!
//! Invariant: no engine call waits for the writer lock longer than [`LOCK_SLICE`]: the store
//! is opened with that lock wait, and [`retry_busy`] repeats a call that came back `Busy`
//! until the caller's own `wait` has passed, running Python's signal handlers between two
//! tries (a handler that raises ends the wait with its exception, such as
//! `KeyboardInterrupt`; one that returns lets it go on).

use crate::errors::{self, IntoPyResult};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::ops::Bound as KeyBound;
use std::time::{Duration, Instant};
use walstore::Durability;

/// A key and its value, as bytes.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// Holds an engine object and the process that made it. Dropped in another process (a forked
/// child), the object is leaked instead: dropping it there would release the parent's
/// writer lock (a `flock` is shared across `fork`) or join a thread that does not exist.
pub(crate) struct ForkSafe<T> {
    pub(crate) value: Option<T>,
    pub(crate) pid: u32,
    /// `walstore::fork_epoch()` when it was made: compared on drop without a `getpid`.
    epoch: u64,
}

impl<T> ForkSafe<T> {
    pub(crate) fn new(value: T) -> Self {
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
pub(crate) const LOCK_SLICE: Duration = Duration::from_millis(100);

/// Runs `f` with the GIL released until it returns something other than `Busy`, or until
/// `wait` (None: forever) has passed since the first try; Python's signal handlers run
/// between two tries. `f` must be safe to repeat after `Busy` (it changed nothing).
pub(crate) fn retry_busy<T: Send>(
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

pub(crate) fn parse_durability(durability: &str) -> PyResult<Durability> {
    match durability {
        "immediate" => Ok(Durability::Immediate),
        "buffered" => Ok(Durability::Buffered),
        other => Err(PyValueError::new_err(format!(
            "durability must be \"immediate\" or \"buffered\", not {other:?}"
        ))),
    }
}

/// `wait` in seconds: None waits forever, 0 not at all.
pub(crate) fn parse_wait(wait: Option<f64>) -> PyResult<Option<Duration>> {
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
pub(crate) fn page_bounds(
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
pub(crate) fn take_page(
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
pub(crate) fn count(iter: walstore::Result<walstore::Iter<'_>>) -> walstore::Result<usize> {
    let mut n = 0;
    for item in iter? {
        item?;
        n += 1;
    }
    Ok(n)
}

/// What `Store.compact` reports for one merge: runs merged, files read, files written, bytes
/// read, bytes written, whether the oldest run was included.
pub(crate) type Merge = (usize, usize, usize, u64, u64, bool);

/// `delete_range`'s bounds: `start` included (None, or empty: from the first key, as keys are
/// never empty), `end` excluded (None: to the last key).
pub(crate) fn key_range(
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
) -> (KeyBound<Vec<u8>>, KeyBound<Vec<u8>>) {
    let start = match start {
        Some(start) if !start.is_empty() => KeyBound::Included(start),
        _ => KeyBound::Unbounded,
    };
    (start, end.map_or(KeyBound::Unbounded, KeyBound::Excluded))
}

pub(crate) fn to_bytes<'py>(
    py: Python<'py>,
    value: Option<walstore::Value>,
) -> Option<Bound<'py, PyBytes>> {
    value.map(|v| PyBytes::new(py, &v))
}
