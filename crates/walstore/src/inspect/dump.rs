//! The WAL of a store, record by record: where each lies, which transaction it belongs to,
//! and what recovery would conclude about the end of the log.

use super::codec::{record_info, RecordInfo};
use crate::error::{Error, Result};
use crate::format::{MANIFEST_NAME, WAL_NAME};
use crate::storage::{OpenMode, Storage, StorageFile};
use crate::wal::record::{self, MAX_RECORD_PAYLOAD_BYTES, RECORD_HEADER_BYTES};
use crate::wal::scan::{classify_tail, scan, ChunkReader, ReadConfig, Stop};
use crate::wal::{WalHeader, WAL_HEADER_BYTES};
use std::path::{Path, PathBuf};

/// What recovery would conclude about the end of the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailVerdict {
    /// The log ends cleanly.
    Clean,
    /// A torn tail: discarded silently (zeroed before the next append).
    TornTail {
        /// Where the discarded bytes start.
        offset: u64,
        /// What was found there.
        detail: String,
    },
    /// Damage to bytes that had been durable: open fails unless in salvage mode.
    Corruption {
        /// First damaged offset.
        offset: u64,
        /// What was found there.
        detail: String,
    },
}

/// The contents of a WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalDump {
    /// The WAL file.
    pub path: PathBuf,
    /// Size of the WAL file.
    pub file_bytes: u64,
    /// Generation, salt and base transaction of the header.
    pub generation: u64,
    /// Salt of the header.
    pub salt: u64,
    /// Last transaction in the snapshot files.
    pub base_txn: u64,
    /// Records of this generation, in order, up to where they stop decoding.
    pub records: Vec<RecordInfo>,
    /// Transactions recovery keeps.
    pub committed_txns: u64,
    /// Offset just past the last kept transaction.
    pub end: u64,
    /// Why the log stops where it does.
    pub stop_reason: String,
    /// What recovery does about it.
    pub verdict: TailVerdict,
}

/// Reads and explains the WAL of the store in `dir`, by what its header says.
pub fn dump_wal(storage: &dyn Storage, dir: &Path) -> Result<WalDump> {
    let (file, path) = open_wal(storage, dir)?;
    let header = WalHeader::read(file.as_ref())
        .map_err(|e| Error::io("read", &path, e))?
        .map_err(|e| Error::corruption(&path, 0, e.to_string()))?;
    read_log(file.as_ref(), path, &header)
}

/// Opens the WAL of the store in `dir` for reading.
pub(super) fn open_wal(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<(Box<dyn StorageFile>, PathBuf)> {
    let path = dir.join(WAL_NAME);
    let file = storage.open(&path, OpenMode::ReadOnly).map_err(|e| {
        match (e.kind(), storage.exists(&dir.join(MANIFEST_NAME))) {
            (std::io::ErrorKind::NotFound, Ok(true)) => {
                Error::corruption(&path, 0, "the WAL of this store is missing")
            }
            (std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory, _) => {
                Error::NotAStore {
                    path: dir.to_path_buf(),
                    detail: "no WAL and no MANIFEST".into(),
                }
            }
            _ => Error::io("open", &path, e),
        }
    })?;
    Ok((file, path))
}

/// Reads the log of the generation `header` names (its salt and base) and decides where it
/// ends and what that means, as recovery does (RECOVERY.md L1-L6).
pub(super) fn read_log(
    file: &dyn StorageFile,
    path: PathBuf,
    header: &WalHeader,
) -> Result<WalDump> {
    let read_err = |e| Error::io("read", &path, e);
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let first = header.base_txn + 1;
    let cfg = ReadConfig::default();
    let end =
        scan(file, len, WAL_HEADER_BYTES, header.salt, first, cfg, |_| {}).map_err(read_err)?;
    let class = classify_tail(
        file,
        len,
        header.salt,
        end.last_txn + 1,
        end.stop.offset(),
        cfg,
    )
    .map_err(read_err)?;
    let (stop_reason, stop_detail) = match &end.stop {
        Stop::Clean { offset } => (
            format!("zero-filled space or end of file at {offset}"),
            None,
        ),
        Stop::Foreign { offset } => (format!("record of an earlier generation at {offset}"), None),
        Stop::Damaged { offset, detail } => (format!("{detail} at {offset}"), Some(detail.clone())),
    };
    let verdict = match (class.corruption, stop_detail) {
        (Some((offset, detail)), _) => TailVerdict::Corruption { offset, detail },
        (None, Some(detail)) => TailVerdict::TornTail {
            offset: end.end,
            detail,
        },
        (None, None) => TailVerdict::Clean,
    };
    let records = walk_records(file, len, header.salt, end.end).map_err(read_err)?;
    Ok(WalDump {
        path,
        file_bytes: len,
        generation: header.generation,
        salt: header.salt,
        base_txn: header.base_txn,
        records,
        committed_txns: end.last_txn - header.base_txn,
        end: end.end,
        stop_reason,
        verdict,
    })
}

/// Every decodable record of generation `salt` from the start of the log.
fn walk_records(
    file: &dyn StorageFile,
    len: u64,
    salt: u64,
    committed_end: u64,
) -> std::io::Result<Vec<RecordInfo>> {
    let mut reader = ChunkReader::new(file, len, ReadConfig::default());
    let mut out = Vec::new();
    let mut pos = WAL_HEADER_BYTES;
    loop {
        let head = reader.get(pos, RECORD_HEADER_BYTES)?;
        let Some(declared) = record::declared_len(head) else {
            break;
        };
        let total = RECORD_HEADER_BYTES + (declared as usize).min(MAX_RECORD_PAYLOAD_BYTES + 1);
        let bytes = reader.get(pos, total)?;
        let Ok(rec) = record::decode(bytes) else {
            break;
        };
        if rec.salt != salt {
            break;
        }
        out.push(record_info(pos, &rec, pos < committed_end));
        pos += rec.len_total as u64;
    }
    Ok(out)
}
