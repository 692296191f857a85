//! `walstore.verify`: every checksum of every file of a store.

use crate::errors::{self, IntoPyResult};
use pyo3::prelude::*;

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
