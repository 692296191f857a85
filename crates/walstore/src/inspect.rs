//! Offline inspection of a store's files, without opening it: every WAL record with its
//! offset and transaction, every checksum of every file, and what recovery would do.
//!
//! These functions only read. They take the same [`Storage`] the store uses, so they work on
//! the simulated file systems too. The `decode_*` functions check raw bytes of one file, for
//! tools and fuzzers.

use crate::error::{Error, Result};
use crate::format::{parse_snapshot_name, snapshot_name, MANIFEST_NAME, WAL_NAME};
use crate::manifest::Manifest;
use crate::snapshot::{Segment, SegmentMeta};
use crate::storage::{Mapping, OpenMode, Storage, StorageFile};
use crate::wal::record::{self, RecordBody, RECORD_HEADER_BYTES, RECORD_PAYLOAD_MAX};
use crate::wal::scan::{classify_tail, scan, ChunkReader, ReadConfig, Stop};
use crate::wal::{WalHeader, WAL_HEADER_BYTES};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One WAL record as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// Byte offset of the record in the WAL.
    pub offset: u64,
    /// `"put"`, `"delete"`, `"commit"`, or `"clean"` (the marker a clean close appends:
    /// FORMAT.md §4.3).
    pub kind: &'static str,
    /// Transaction id.
    pub txn_id: u64,
    /// Header plus payload bytes.
    pub len: u64,
    /// Key of a put or delete.
    pub key: Option<Vec<u8>>,
    /// Value length of a put.
    pub value_len: Option<u64>,
    /// Durable watermark of a commit record.
    pub synced_through: Option<u64>,
    /// Whether the record belongs to a transaction recovery keeps.
    pub committed: bool,
}

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

/// Reads and explains the WAL of the store in `dir`.
pub fn dump_wal(storage: &dyn Storage, dir: &Path) -> Result<WalDump> {
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
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let header = WalHeader::read(file.as_ref())
        .map_err(|e| Error::io("read", &path, e))?
        .map_err(|e| Error::corruption(&path, 0, e.to_string()))?;
    let end = scan(
        file.as_ref(),
        len,
        WAL_HEADER_BYTES,
        header.salt,
        header.base_txn + 1,
        ReadConfig::default(),
        |_| {},
    )
    .map_err(|e| Error::io("read", &path, e))?;
    let class = classify_tail(
        file.as_ref(),
        len,
        header.salt,
        end.last_txn + 1,
        end.stop.offset(),
        ReadConfig::default(),
    )
    .map_err(|e| Error::io("read", &path, e))?;
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
    let records = walk_records(file.as_ref(), len, header.salt, end.end)
        .map_err(|e| Error::io("read", &path, e))?;
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
        let total = RECORD_HEADER_BYTES + (declared as usize).min(RECORD_PAYLOAD_MAX + 1);
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

fn record_info(offset: u64, rec: &record::Record<'_>, committed: bool) -> RecordInfo {
    let (kind, key, value_len, synced_through) = match rec.body {
        RecordBody::Put { key, value } => {
            ("put", Some(key.to_vec()), Some(value.len() as u64), None)
        }
        RecordBody::Delete { key } => ("delete", Some(key.to_vec()), None, None),
        RecordBody::Commit(m) if m.record_count == 0 => {
            ("clean", None, None, Some(m.synced_through))
        }
        RecordBody::Commit(m) => ("commit", None, None, Some(m.synced_through)),
    };
    RecordInfo {
        offset,
        kind,
        txn_id: rec.txn_id,
        len: rec.len_total as u64,
        key,
        value_len,
        synced_through,
        committed,
    }
}

/// The result of checking one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// File name inside the store directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// `None` if every check passed; otherwise the first problem.
    pub problem: Option<Problem>,
}

/// A problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset of the damage.
    pub offset: u64,
    /// What failed.
    pub detail: String,
    /// Whether this is damage (corruption) rather than a benign condition (a torn tail, an
    /// orphan file left by a crash).
    pub is_damage: bool,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every file checked.
    pub files: Vec<FileCheck>,
    /// Bytes checksummed.
    pub bytes_checked: u64,
}

impl VerifyReport {
    /// The first damaged file and its problem, if any.
    pub fn first_damage(&self) -> Option<(&FileCheck, &Problem)> {
        self.files
            .iter()
            .find_map(|f| f.problem.as_ref().filter(|p| p.is_damage).map(|p| (f, p)))
    }
}

/// Checks every checksum of every file of the store in `dir`. `progress` is called with the
/// bytes checked so far and the total.
pub fn verify(
    storage: &dyn Storage,
    dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let mut files = Vec::new();
    let manifest = match Manifest::read(storage, dir) {
        Ok(Some(m)) => Some(m),
        Ok(None) => {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "no MANIFEST".into(),
            })
        }
        Err(Error::Corruption { offset, detail, .. }) => {
            files.push(FileCheck {
                name: MANIFEST_NAME.into(),
                bytes: file_len(storage, &manifest_path),
                problem: Some(Problem {
                    offset,
                    detail,
                    is_damage: true,
                }),
            });
            None
        }
        Err(e) => return Err(e),
    };
    let metas: Vec<SegmentMeta> = manifest
        .as_ref()
        .map(|m| m.segments.clone())
        .unwrap_or_default();
    let total: u64 =
        metas.iter().map(|m| m.file_len).sum::<u64>() + file_len(storage, &dir.join(WAL_NAME));
    let mut done = 0u64;
    if manifest.is_some() {
        files.push(FileCheck {
            name: MANIFEST_NAME.into(),
            bytes: file_len(storage, &manifest_path),
            problem: None,
        });
    }
    for meta in &metas {
        let name = snapshot_name(meta.file_id);
        let problem = match Segment::open(storage, dir, meta) {
            Ok(_) => None,
            Err(Error::Corruption { offset, detail, .. }) => Some(Problem {
                offset,
                detail,
                is_damage: true,
            }),
            Err(Error::Io { source, .. }) => Some(Problem {
                offset: 0,
                detail: format!("cannot read: {source}"),
                is_damage: true,
            }),
            Err(e) => Some(Problem {
                offset: 0,
                detail: e.to_string(),
                is_damage: true,
            }),
        };
        done += meta.file_len;
        progress(done, total);
        files.push(FileCheck {
            name,
            bytes: meta.file_len,
            problem,
        });
    }
    files.push(check_wal(storage, dir, manifest.as_ref()));
    progress(total, total);
    let live: Vec<String> = metas.iter().map(|m| snapshot_name(m.file_id)).collect();
    if let Ok(names) = storage.list_dir(dir) {
        for name in names {
            if parse_snapshot_name(&name).is_some() && !live.contains(&name) {
                files.push(FileCheck {
                    bytes: file_len(storage, &dir.join(&name)),
                    name,
                    problem: Some(Problem {
                        offset: 0,
                        detail: "not referenced by the MANIFEST (left by an interrupted \
                                 checkpoint; removed by the next one)"
                            .into(),
                        is_damage: false,
                    }),
                });
            }
        }
    }
    Ok(VerifyReport {
        files,
        bytes_checked: total,
    })
}

fn check_wal(storage: &dyn Storage, dir: &Path, manifest: Option<&Manifest>) -> FileCheck {
    let bytes = file_len(storage, &dir.join(WAL_NAME));
    let problem = match dump_wal(storage, dir) {
        Err(Error::Corruption { offset, detail, .. }) => {
            // A header that lags the manifest is an interrupted checkpoint, not damage.
            let lagging = manifest.is_some_and(|m| m.generation > 0);
            Some(Problem {
                offset,
                detail,
                is_damage: !lagging,
            })
        }
        Err(e) => Some(Problem {
            offset: 0,
            detail: e.to_string(),
            is_damage: true,
        }),
        Ok(dump) => match (manifest, dump.verdict) {
            (Some(m), _) if m.generation != dump.generation => None,
            (_, TailVerdict::Clean) => None,
            (_, TailVerdict::TornTail { offset, detail }) => Some(Problem {
                offset,
                detail: format!("torn tail (discarded on the next write): {detail}"),
                is_damage: false,
            }),
            (_, TailVerdict::Corruption { offset, detail }) => Some(Problem {
                offset,
                detail,
                is_damage: true,
            }),
        },
    };
    FileCheck {
        name: WAL_NAME.into(),
        bytes,
        problem,
    }
}

fn file_len(storage: &dyn Storage, path: &Path) -> u64 {
    storage
        .open(path, OpenMode::ReadOnly)
        .and_then(|f| f.len())
        .unwrap_or(0)
}

/// Decodes the WAL record at the start of `bytes`.
pub fn decode_wal_record(bytes: &[u8]) -> std::result::Result<RecordInfo, String> {
    record::decode(bytes)
        .map(|r| record_info(0, &r, false))
        .map_err(|e| e.to_string())
}

/// Decodes a WAL header block: (generation, salt, base transaction).
pub fn decode_wal_header(bytes: &[u8]) -> std::result::Result<(u64, u64, u64), String> {
    WalHeader::decode(bytes)
        .map(|h| (h.generation, h.salt, h.base_txn))
        .map_err(|e| e.to_string())
}

/// Fully validates the bytes of snapshot file `id`; returns its entries.
pub fn decode_snapshot(id: u64, bytes: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let map: Arc<dyn Mapping> = Arc::new(bytes.to_vec());
    let seg = Segment::from_mapping(id, PathBuf::from(snapshot_name(id)), map)?;
    (0..seg.len())
        .map(|i| seg.entry(i).map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
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
    /// Snapshot files: (id, bytes, entries, first key).
    pub segments: Vec<(u64, u64, u64, Vec<u8>)>,
}

/// Decodes and validates manifest bytes.
pub fn decode_manifest(bytes: &[u8]) -> Result<ManifestInfo> {
    let m = Manifest::decode(bytes, Path::new(MANIFEST_NAME))?;
    Ok(ManifestInfo {
        generation: m.generation,
        salt: m.salt,
        base_txn: m.base_txn,
        segments: m
            .segments
            .iter()
            .map(|s| (s.file_id, s.file_len, s.entry_count, s.first_key.to_vec()))
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
    let mut out = Vec::new();
    record::encode_txn(
        &mut out,
        salt,
        txn_id,
        writes.iter().copied(),
        synced_through,
    );
    out
}

/// Encodes a WAL header block (FORMAT.md §3).
pub fn encode_wal_header(generation: u64, salt: u64, base_txn: u64) -> Vec<u8> {
    WalHeader {
        generation,
        salt,
        base_txn,
    }
    .encode()
}
