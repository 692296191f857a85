//! The log index read by every reader over a file's bytes, for tools and the `logindex` fuzz
//! target (`inspect::decode_log_index`).

use super::{Cursor, Damaged, LogIndex};
use crate::storage::{MemSharedFiles, SharedBytes};
use std::path::Path;

/// Reads `bytes` as a log index file with every reader (FORMAT.md §9): the keys a view of
/// everything reads forwards, with a lookup of each, then backwards, the range deletions and
/// the newest commit. For tools and the `logindex` fuzz target: damage is an error, never a
/// panic, an endless walk or an allocation larger than the file.
#[allow(clippy::type_complexity)]
pub(crate) fn read_file_bytes(bytes: &[u8]) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, Damaged> {
    let files = MemSharedFiles::default();
    let capacity = bytes.len().max(super::layout::HEADER_BYTES);
    let file = files
        .create(Path::new("LOGINDEX"), capacity)
        .map_err(|_| Damaged)?;
    file.grow(bytes.len() as u64).map_err(|_| Damaged)?;
    let index = LogIndex {
        bytes: SharedBytes::new(file),
    };
    if !index.bytes.write(0, bytes) {
        return Err(Damaged);
    }
    let deletes = index.deletes_at(u64::MAX)?;
    let _ = index.commit_at(index.covered())?;
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    let mut out = Vec::new();
    for item in Cursor::new(&index, u64::MAX, &deletes, all.clone(), false) {
        let (key, value) = item?;
        let value = match value {
            Some((s, e)) => Some(index.bytes.bytes(s, e - s).ok_or(Damaged)?.to_vec()),
            None => None,
        };
        index.lookup(key, u64::MAX)?;
        out.push((key.to_vec(), value));
    }
    for item in Cursor::new(&index, u64::MAX, &deletes, all, true) {
        item?;
    }
    Ok(out)
}
