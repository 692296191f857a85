//! Raw bytes of one file, decoded and encoded without a store: a WAL record or header block,
//! a snapshot file, a manifest. For tools and fuzzers; the engine's own paths use the same
//! decoders and encoders.

use crate::error::{Error, Result};
use crate::format::{snapshot_name, MANIFEST_NAME, WAL_NAME};
use crate::manifest::Manifest;
use crate::snapshot::Segment;
use crate::storage::Mapping;
use crate::wal::record::{self, Op, RecordBody};
use crate::wal::{HeaderError, WalHeader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One WAL record as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// Byte offset of the record in the WAL.
    pub offset: u64,
    /// `"put"`, `"delete"`, `"delete-range"`, `"batch"` (several writes: [`RecordInfo::ops`]),
    /// `"commit"`, or `"clean"` (the marker a clean close appends: FORMAT.md §4.3).
    pub kind: &'static str,
    /// Transaction id.
    pub txn_id: u64,
    /// Header plus payload bytes.
    pub len: u64,
    /// Key of a put or delete; start of a range deletion.
    pub key: Option<Vec<u8>>,
    /// End of a range deletion (`None` also for a range deletion without an end).
    pub end: Option<Vec<u8>>,
    /// Value length of a put.
    pub value_len: Option<u64>,
    /// Durable watermark of a commit record.
    pub synced_through: Option<u64>,
    /// Whether the record belongs to a transaction recovery keeps.
    pub committed: bool,
    /// The writes of a batch record, in order, each as a `"put"`, `"delete"` or
    /// `"delete-range"` whose offset is where it starts in the WAL and whose length is its
    /// bytes in the batch (FORMAT.md §4.2). Empty for every other kind.
    pub ops: Vec<RecordInfo>,
}

pub(super) fn record_info(offset: u64, rec: &record::Record<'_>, committed: bool) -> RecordInfo {
    let base = RecordInfo {
        offset,
        kind: "commit",
        txn_id: rec.txn_id,
        len: rec.len_total as u64,
        key: None,
        end: None,
        value_len: None,
        synced_through: None,
        committed,
        ops: Vec::new(),
    };
    let op = match rec.body {
        RecordBody::Write(op) => op,
        RecordBody::Commit(m) => {
            let kind = if m.record_count == 0 {
                "clean"
            } else {
                "commit"
            };
            let synced_through = Some(m.synced_through);
            return RecordInfo {
                kind,
                synced_through,
                ..base
            };
        }
        RecordBody::Batch(batch) => {
            let first = offset + record::RECORD_HEADER_BYTES as u64;
            let mut ops = Vec::with_capacity(batch.count() as usize);
            ops.extend(
                batch
                    .ops()
                    .map(|(at, op)| op_info(first + at as u64, op, &base)),
            );
            // Each operation runs up to the next one; the last to the end of the record.
            let mut end = offset + rec.len_total as u64;
            for info in ops.iter_mut().rev() {
                info.len = end - info.offset;
                end = info.offset;
            }
            return RecordInfo {
                kind: "batch",
                ops,
                ..base
            };
        }
    };
    op_info(offset, op, &base)
}

/// One write, as a record of its own or an operation of a batch.
fn op_info(offset: u64, op: Op<'_>, base: &RecordInfo) -> RecordInfo {
    let (kind, key, end, value_len) = match op {
        Op::Put { key, value } => ("put", key, None, Some(value.len() as u64)),
        Op::Delete { key } => ("delete", key, None, None),
        Op::DeleteRange { start, end } => ("delete-range", start, end.map(<[u8]>::to_vec), None),
    };
    RecordInfo {
        offset,
        kind,
        key: Some(key.to_vec()),
        end,
        value_len,
        ops: Vec::new(),
        ..base.clone()
    }
}

/// Decodes the WAL record at the start of `bytes`. A record that does not decode is
/// [`Error::Corruption`] of the WAL at offset 0 of `bytes`, its detail naming the check that
/// failed.
pub fn decode_wal_record(bytes: &[u8]) -> Result<RecordInfo> {
    record::decode(bytes)
        .map(|r| record_info(0, &r, false))
        .map_err(|e| Error::corruption(WAL_NAME, 0, e.to_string()))
}

/// Decodes a WAL header block: (generation, salt, base transaction). A header of another
/// format version is [`Error::UnsupportedFormat`]; any other that does not decode is
/// [`Error::Corruption`] at offset 0, its detail naming the check that failed.
pub fn decode_wal_header(bytes: &[u8]) -> Result<(u64, u64, u64)> {
    WalHeader::decode(bytes)
        .map(|h| (h.generation, h.salt, h.base_txn))
        .map_err(|e| match e {
            HeaderError::Version(found) => Error::UnsupportedFormat {
                file: PathBuf::from(WAL_NAME),
                found,
                supported: crate::wal::WAL_VERSION,
            },
            e => Error::corruption(WAL_NAME, 0, e.to_string()),
        })
}

/// A snapshot file's entry: key, and value (`None`: a tombstone).
pub type SnapshotEntry = (Vec<u8>, Option<Vec<u8>>);

/// A range deletion: start, and end (`None`: no end).
pub type RangeDeletion = (Vec<u8>, Option<Vec<u8>>);

/// Fully validates the bytes of snapshot file `id`; returns its entries and its range
/// deletions.
pub fn decode_snapshot(id: u64, bytes: &[u8]) -> Result<(Vec<SnapshotEntry>, Vec<RangeDeletion>)> {
    let map: Arc<dyn Mapping> = Arc::new(bytes.to_vec());
    let seg = Segment::from_mapping(id, PathBuf::from(snapshot_name(id)), map)?;
    seg.verify()?;
    let entries = (0..seg.len())
        .map(|i| {
            seg.entry(i)
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        })
        .collect::<Result<_>>()?;
    let deletes = seg
        .range_deletes()
        .iter()
        .map(|d| (d.start.to_vec(), d.end.as_deref().map(<[u8]>::to_vec)))
        .collect();
    Ok((entries, deletes))
}

/// What a manifest says, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Checkpoint generation.
    pub generation: u64,
    /// WAL salt.
    pub salt: u64,
    /// Last transaction in the snapshot files.
    pub base_txn: u64,
    /// Next snapshot file id.
    pub next_file_id: u64,
    /// The sorted runs, newest first; each a list of snapshot files in key order.
    pub runs: Vec<Vec<FileInfo>>,
}

/// A snapshot file as the manifest names it: (id, bytes, entries, first key).
pub type FileInfo = (u64, u64, u64, Vec<u8>);

/// Decodes and validates manifest bytes.
pub fn decode_manifest(bytes: &[u8]) -> Result<ManifestInfo> {
    let m = Manifest::decode(bytes, Path::new(MANIFEST_NAME))?;
    Ok(ManifestInfo {
        generation: m.generation,
        salt: m.salt,
        base_txn: m.base_txn,
        next_file_id: m.next_file_id,
        runs: m
            .runs
            .iter()
            .map(|run| {
                run.iter()
                    .map(|s| (s.file_id, s.file_len, s.entry_count, s.first_key.to_vec()))
                    .collect()
            })
            .collect(),
    })
}

/// Encodes one transaction as WAL records (FORMAT.md §4): a put or delete per write, then the
/// commit record. For tools that build store images (tests, fuzz corpora); the engine's own
/// commit path uses the same encoder.
pub fn encode_transaction(
    salt: u64,
    txn_id: u64,
    writes: &[(&[u8], Option<&[u8]>)],
    synced_through: u64,
) -> Vec<u8> {
    encode_transaction_with_deletes(salt, txn_id, &[], writes, synced_through)
}

/// [`encode_transaction`] in the layout of a version-2 log (FORMAT.md §4.2): a record per
/// write, as builds before batch records wrote every transaction.
pub fn encode_transaction_records(
    salt: u64,
    txn_id: u64,
    writes: &[(&[u8], Option<&[u8]>)],
    synced_through: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    record::encode_txn_as(
        record::LogLayout::Records,
        &mut out,
        salt,
        txn_id,
        std::iter::empty(),
        writes.iter().copied(),
        synced_through,
    );
    out
}

/// [`encode_transaction`] with range deletions (start, end; `None`: no end) first.
pub fn encode_transaction_with_deletes(
    salt: u64,
    txn_id: u64,
    deletes: &[(&[u8], Option<&[u8]>)],
    writes: &[(&[u8], Option<&[u8]>)],
    synced_through: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    record::encode_txn(
        &mut out,
        salt,
        txn_id,
        deletes.iter().copied(),
        writes.iter().copied(),
        synced_through,
    );
    out
}

/// Encodes a WAL header block (FORMAT.md §3) at the version this build writes.
pub fn encode_wal_header(generation: u64, salt: u64, base_txn: u64) -> Vec<u8> {
    WalHeader::new(generation, salt, base_txn).encode()
}

/// [`encode_wal_header`] at another version: 2 (a log of a record per write, FORMAT.md §3)
/// or one no build reads.
pub fn encode_wal_header_version(
    version: u32,
    generation: u64,
    salt: u64,
    base_txn: u64,
) -> Vec<u8> {
    WalHeader {
        version,
        ..WalHeader::new(generation, salt, base_txn)
    }
    .encode()
}

/// The format version of a WAL header block that [`decode_wal_header`] accepts (2 or 3).
pub fn wal_header_version(bytes: &[u8]) -> Result<u32> {
    decode_wal_header(bytes)?;
    Ok(crate::format::read_u32(bytes, crate::format::PREAMBLE_VERSION_AT).unwrap_or(0))
}

/// Reads `bytes` as a log index file (FORMAT.md §9) with every reader the engine has: the
/// keys a view of everything reads (`None`: a tombstone), in order. Damage is
/// `Error::Corruption`; nothing here panics or allocates more than the file holds (the
/// `logindex` fuzz target).
#[allow(clippy::type_complexity)]
pub fn decode_log_index(bytes: &[u8]) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    crate::logindex::read_file_bytes(bytes).map_err(|_| {
        Error::corruption(
            std::path::Path::new(crate::format::LOG_INDEX_NAME),
            0,
            "the log index is damaged",
        )
    })
}
