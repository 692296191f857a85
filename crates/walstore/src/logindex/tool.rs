//! The log index read by every reader over a file's bytes, for tools and the `logindex` fuzz
//! target (`inspect::decode_log_index`).

use super::cold::ColdReader;
use super::layout::MAX_HEIGHT;
use super::{Cursor, Damaged, LogIndex};
use crate::storage::MemSharedFiles;
use std::path::Path;

/// Reads `bytes` as a log index file with every reader (FORMAT.md §9): the keys a view of
/// everything reads forwards, with a lookup of each and the writer's search for it both ways
/// (through the map and with `pread`, which must agree wherever both read the nodes they
/// pass), then backwards, the range deletions and the newest commit. For tools and the
/// `logindex` fuzz target: damage is an error, never a panic, an endless walk or an
/// allocation larger than the file.
#[allow(clippy::type_complexity)]
pub(crate) fn read_file_bytes(bytes: &[u8]) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, Damaged> {
    let files = MemSharedFiles::default();
    let capacity = bytes.len().max(super::layout::HEADER_BYTES);
    let file = files
        .create(Path::new("LOGINDEX"), capacity)
        .map_err(|_| Damaged)?;
    file.grow(bytes.len() as u64).map_err(|_| Damaged)?;
    let index = LogIndex::over(file);
    if !index.bytes.write(0, bytes) {
        return Err(Damaged);
    }
    let deletes = index.deletes_at(u64::MAX)?;
    let _ = index.commit_at(index.covered())?;
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    let mut out = Vec::new();
    let mut cold = ColdReader::new(&index);
    for item in Cursor::new(&index, u64::MAX, &deletes, all.clone(), false) {
        let (key, value) = item?;
        let value = match value {
            Some((s, e)) => Some(index.bytes.bytes(s, e - s).ok_or(Damaged)?.to_vec()),
            None => None,
        };
        index.lookup(key, u64::MAX)?;
        searches_agree(&index, &mut cold, key);
        out.push((key.to_vec(), value));
    }
    for item in Cursor::new(&index, u64::MAX, &deletes, all, true) {
        item?;
    }
    Ok(out)
}

/// The writer's search for `key` through the map and with `pread`: where both read every node
/// they pass without finding damage, the same predecessors and the same entry (a difference
/// is a bug, asserted in debug builds: the fuzz target's and the tests').
fn searches_agree(index: &LogIndex, cold: &mut ColdReader<'_>, key: &[u8]) {
    let mut by_map = [0usize; MAX_HEIGHT];
    let mut by_read = [0usize; MAX_HEIGHT];
    let mapped = index.find_version_of(key, u64::MAX, &mut by_map);
    let read = cold.find(key, u64::MAX, &mut by_read);
    if let (Ok(mapped), Ok(read)) = (mapped, read) {
        debug_assert_eq!(
            mapped, read,
            "the writer's searches disagree on the entry found"
        );
        debug_assert_eq!(
            by_map, by_read,
            "the writer's searches disagree on the predecessors"
        );
    }
}
