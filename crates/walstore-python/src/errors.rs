//! Engine errors as Python exceptions. The exception classes are defined in Python
//! (`walstore/_errors.py`), because `StorageError` must derive from both `walstore.Error` and
//! `OSError`; this module looks each class up once and raises it.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use walstore::Error;

const ERRORS_MODULE: &str = "walstore._errors";

/// One cached exception class of `walstore._errors`.
struct ErrorClass {
    name: &'static str,
    cell: PyOnceLock<Py<PyType>>,
}

impl ErrorClass {
    const fn new(name: &'static str) -> Self {
        ErrorClass {
            name,
            cell: PyOnceLock::new(),
        }
    }

    /// Raises this class with `args`; if the class cannot be found (the Python half is
    /// missing), raises a plain `Exception` with the same message instead.
    fn raise<A>(&self, py: Python<'_>, args: A, message: &str) -> PyErr
    where
        A: pyo3::PyErrArguments + Send + Sync + 'static,
    {
        match self.cell.import(py, ERRORS_MODULE, self.name) {
            Ok(class) => PyErr::from_type(class.clone(), args),
            Err(_) => PyException::new_err(message.to_owned()),
        }
    }
}

static ERROR: ErrorClass = ErrorClass::new("Error");
static BUSY: ErrorClass = ErrorClass::new("BusyError");
static CORRUPTION: ErrorClass = ErrorClass::new("CorruptionError");
static POISONED: ErrorClass = ErrorClass::new("PoisonedError");
static READ_ONLY: ErrorClass = ErrorClass::new("ReadOnlyError");
static FORKED: ErrorClass = ErrorClass::new("ForkedError");
static NOT_A_STORE: ErrorClass = ErrorClass::new("NotAStoreError");
static UNSUPPORTED: ErrorClass = ErrorClass::new("UnsupportedFormatError");
static STORAGE: ErrorClass = ErrorClass::new("StorageError");
static INVALID_KEY: ErrorClass = ErrorClass::new("InvalidKeyError");
static TOO_LARGE: ErrorClass = ErrorClass::new("ValueTooLargeError");
static TYPE_MISMATCH: ErrorClass = ErrorClass::new("TypeMismatchError");
static CLOSED: ErrorClass = ErrorClass::new("ClosedError");
static FEED_GAP: ErrorClass = ErrorClass::new("FeedGapError");
static INVALID_CONSUMER: ErrorClass = ErrorClass::new("InvalidConsumerError");

/// The Python exception for an engine error, its remedy in Python's spelling.
pub(crate) fn to_py(py: Python<'_>, error: Error) -> PyErr {
    let message = error
        .to_string()
        .replace(
            "(read it as bytes with get)",
            "(read it as bytes with get_bytes)",
        )
        .replace(
            "open it with salvage mode to read what is intact",
            "walstore.open(path, salvage=True) reads what is intact",
        );
    let simple = |class: &ErrorClass| class.raise(py, (message.clone(),), &message);
    match error {
        Error::Busy { .. } => simple(&BUSY),
        Error::Corruption { file, offset, .. } => {
            let file = file.to_string_lossy().into_owned();
            CORRUPTION.raise(py, (message.clone(), file, offset), &message)
        }
        Error::Poisoned { .. } => simple(&POISONED),
        Error::ReadOnly => simple(&READ_ONLY),
        Error::Forked { .. } => simple(&FORKED),
        Error::NotAStore { .. } | Error::NotARegularFile { .. } => simple(&NOT_A_STORE),
        Error::UnsupportedFormat { .. } => simple(&UNSUPPORTED),
        Error::Io { source, path, .. } => {
            let errno = source.raw_os_error().unwrap_or(0);
            let path = path.to_string_lossy().into_owned();
            STORAGE.raise(py, (errno, message.clone(), path), &message)
        }
        Error::InvalidKey { .. } => simple(&INVALID_KEY),
        Error::ValueTooLarge { .. } => simple(&TOO_LARGE),
        Error::TypeMismatch { .. } => simple(&TYPE_MISMATCH),
        Error::FeedGap { wanted, oldest } => {
            FEED_GAP.raise(py, (message.clone(), wanted, oldest), &message)
        }
        Error::InvalidConsumer { name, reason } => {
            INVALID_CONSUMER.raise(py, (message.clone(), name, reason), &message)
        }
        _ => simple(&ERROR),
    }
}

/// `walstore.BusyError` after waiting `waited` in all for the writer lock.
pub(crate) fn busy(py: Python<'_>, waited: std::time::Duration) -> PyErr {
    let message = if waited.is_zero() {
        "the store is busy: another writer holds the lock; this call was not to wait for it \
         (retry later, or open with a longer wait=)"
            .to_owned()
    } else {
        format!(
            "the store is busy: another writer holds the lock; gave up after waiting {:.2} s \
             (retry later, or open with a longer wait=)",
            waited.as_secs_f64()
        )
    };
    BUSY.raise(py, (message.clone(),), &message)
}

/// Whether `error` is a `walstore.TypeMismatchError`.
pub(crate) fn is_type_mismatch(py: Python<'_>, error: &PyErr) -> bool {
    TYPE_MISMATCH
        .cell
        .import(py, ERRORS_MODULE, TYPE_MISMATCH.name)
        .is_ok_and(|class| error.is_instance(py, class.as_any()))
}

/// `walstore.ClosedError`: the store was closed, or the transaction or snapshot has ended.
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    CLOSED.raise(py, (what.to_owned(),), what)
}

/// Runs an engine result through [`to_py`].
pub(crate) trait IntoPyResult<T> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for walstore::Result<T> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
