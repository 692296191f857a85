//! The byte layout of the log index file (FORMAT.md §9): the header's words, the three kinds
//! of node, and checked reads of each. Nothing here writes.

use crate::storage::SharedBytes;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `LOGINDEX`'s magic, stored last when a new file is set up.
pub const MAGIC: u64 = u64::from_le_bytes(*b"WSLOGIX\0");
/// Version of the layout.
pub const LAYOUT_VERSION: u64 = 3;
/// Bytes of the header; nodes start here.
pub const HEADER_BYTES: usize = 4096;
/// Most levels of the skip list.
pub const MAX_HEIGHT: usize = 12;
/// `val_len` of a tombstone.
pub const TOMBSTONE: u32 = u32::MAX;
/// `end_len` of a range deletion without an end.
pub const NO_END: u32 = u32::MAX;

/// Header words (byte offsets).
pub const AT_MAGIC: usize = 0;
pub const AT_LAYOUT: usize = 8;
pub const AT_GENERATION: usize = 16;
pub const AT_SALT: usize = 24;
/// Log offset up to which every committed transaction of the generation is in the index.
pub const AT_COVERED: usize = 32;
/// Next free byte (the writer's).
pub const AT_ALLOC: usize = 40;
/// Newest range-deletion node (0: none).
pub const AT_DELETES: usize = 48;
/// Newest commit node (0: none).
pub const AT_COMMITS: usize = 56;
/// Nonzero: no more transactions are added (full, or a write through the map failed).
pub const AT_SEALED: usize = 64;
/// Entry nodes in the list (bounds every walk).
pub const AT_ENTRIES: usize = 72;
/// The random id the commit index names this file by (never 0).
pub const AT_ID: usize = 80;
/// The point-read table (`table.rs`; 0: none yet).
pub const AT_TABLE: usize = 88;
/// Newest entry of the recent chain (0: none): entries added without a search of the list.
pub const AT_RECENT: usize = 96;
/// Log offset up to which every entry of the recent chain is also linked in the list.
pub const AT_MERGED: usize = 104;
/// Entries put on the recent chain since it was last merged (the writer's).
pub const AT_RECENT_COUNT: usize = 112;
/// The head's `MAX_HEIGHT` next pointers.
pub const AT_HEAD: usize = 128;

/// An entry node: `stamp u64, key_len u32, val_len u32, height u32, older u32, chain u32,
/// next[height] u32`, key, value. The stamp is the log offset just past the transaction that
/// wrote it; `older` the key's entry that was newest before it (0: none); `chain` the next
/// older entry of the recent chain (0: none, or not on it).
pub const ENTRY_FIXED: usize = 28;
/// Offset of `older` in an entry node.
pub const ENTRY_OLDER: usize = 20;
/// Offset of `chain` in an entry node.
pub const ENTRY_CHAIN: usize = 24;
/// A range-deletion node: `stamp u64, prev u32, start_len u32, end_len u32`, start, end.
pub const DELETE_FIXED: usize = 20;
/// A commit node: `end u64, txn u64, synced_through u64, data_end u64, prev u32, pad u32`.
pub const COMMIT_BYTES: usize = 40;

/// Rounds `n` up to the nodes' alignment.
pub fn align(n: usize) -> usize {
    n.next_multiple_of(8)
}

/// A word of the header.
pub fn word(bytes: &SharedBytes, at: usize) -> u64 {
    bytes.u64_at(at).map_or(0, |w| w.load(Ordering::Acquire))
}

/// An entry node, read through checked accessors.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub stamp: u64,
    pub key: &'a [u8],
    /// `None`: a tombstone.
    pub value: Option<(usize, usize)>,
    /// The key's entry that was newest before this one (0: none).
    pub older: usize,
    /// The next older entry of the recent chain (0: none).
    pub chain: usize,
}

/// Reads the entry node at `at`; `None` if it does not fit the file or is malformed.
pub fn entry(bytes: &SharedBytes, at: usize) -> Option<Entry<'_>> {
    if at < HEADER_BYTES || !at.is_multiple_of(8) {
        return None;
    }
    let fixed = bytes.bytes(at, ENTRY_FIXED)?;
    let stamp = u64::from_le_bytes(fixed[0..8].try_into().ok()?);
    let key_len = u32::from_le_bytes(fixed[8..12].try_into().ok()?) as usize;
    let val_len = u32::from_le_bytes(fixed[12..16].try_into().ok()?);
    let height = u32::from_le_bytes(fixed[16..20].try_into().ok()?) as usize;
    let older = u32::from_le_bytes(fixed[20..24].try_into().ok()?) as usize;
    let chain = u32::from_le_bytes(fixed[24..28].try_into().ok()?) as usize;
    if height == 0 || height > MAX_HEIGHT {
        return None;
    }
    let key_at = at + ENTRY_FIXED + 4 * height;
    let key = bytes.bytes(key_at, key_len)?;
    let value = if val_len == TOMBSTONE {
        None
    } else {
        let start = key_at + key_len;
        bytes.bytes(start, val_len as usize)?;
        Some((start, start + val_len as usize))
    };
    Some(Entry {
        stamp,
        key,
        value,
        older,
        chain,
    })
}

/// The height of the entry node at `at`; `None` if it does not fit the file or is malformed.
pub fn node_height(bytes: &SharedBytes, at: usize) -> Option<usize> {
    if at < HEADER_BYTES || !at.is_multiple_of(8) {
        return None;
    }
    let fixed = bytes.bytes(at, ENTRY_FIXED)?;
    let height = u32::from_le_bytes(fixed[16..20].try_into().ok()?) as usize;
    (1..=MAX_HEIGHT).contains(&height).then_some(height)
}

/// The `level` next pointer of the node at `at` (`at == 0`: the head).
pub fn next_slot(bytes: &SharedBytes, at: usize, level: usize) -> Option<&AtomicU32> {
    if level >= MAX_HEIGHT {
        return None;
    }
    if at == 0 {
        bytes.u32_at(AT_HEAD + 4 * level)
    } else {
        bytes.u32_at(at + ENTRY_FIXED + 4 * level)
    }
}

/// A range-deletion node.
#[derive(Debug, Clone)]
pub struct DeleteNode<'a> {
    pub stamp: u64,
    pub prev: usize,
    pub start: &'a [u8],
    pub end: Option<&'a [u8]>,
}

/// Reads the range-deletion node at `at`.
pub fn delete_node(bytes: &SharedBytes, at: usize) -> Option<DeleteNode<'_>> {
    if at < HEADER_BYTES || !at.is_multiple_of(8) {
        return None;
    }
    let fixed = bytes.bytes(at, DELETE_FIXED)?;
    let stamp = u64::from_le_bytes(fixed[0..8].try_into().ok()?);
    let prev = u32::from_le_bytes(fixed[8..12].try_into().ok()?) as usize;
    let start_len = u32::from_le_bytes(fixed[12..16].try_into().ok()?) as usize;
    let end_len = u32::from_le_bytes(fixed[16..20].try_into().ok()?);
    let start = bytes.bytes(at + DELETE_FIXED, start_len)?;
    let end = if end_len == NO_END {
        None
    } else {
        Some(bytes.bytes(at + DELETE_FIXED + start_len, end_len as usize)?)
    };
    Some(DeleteNode {
        stamp,
        prev,
        start,
        end,
    })
}

/// A commit node: where a transaction ends, its id, and what the log's commit records said
/// up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitNode {
    pub end: u64,
    pub txn: u64,
    pub synced_through: u64,
    pub data_end: u64,
    pub prev: usize,
}

/// Reads the commit node at `at`.
pub fn commit_node(bytes: &SharedBytes, at: usize) -> Option<CommitNode> {
    if at < HEADER_BYTES || !at.is_multiple_of(8) {
        return None;
    }
    let b = bytes.bytes(at, COMMIT_BYTES)?;
    let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    Some(CommitNode {
        end: u(0),
        txn: u(8),
        synced_through: u(16),
        data_end: u(24),
        prev: u32::from_le_bytes(b[32..36].try_into().ok()?) as usize,
    })
}

/// Encodes a commit node.
pub fn encode_commit(c: &CommitNode) -> [u8; COMMIT_BYTES] {
    let mut out = [0u8; COMMIT_BYTES];
    out[0..8].copy_from_slice(&c.end.to_le_bytes());
    out[8..16].copy_from_slice(&c.txn.to_le_bytes());
    out[16..24].copy_from_slice(&c.synced_through.to_le_bytes());
    out[24..32].copy_from_slice(&c.data_end.to_le_bytes());
    out[32..36].copy_from_slice(&(c.prev as u32).to_le_bytes());
    out
}

/// Loads a next pointer.
pub fn load_next(slot: Option<&AtomicU32>) -> usize {
    slot.map_or(0, |s| s.load(Ordering::Acquire) as usize)
}

/// The header word at `at`, as an atomic.
pub fn header_word(bytes: &SharedBytes, at: usize) -> Option<&AtomicU64> {
    bytes.u64_at(at)
}
