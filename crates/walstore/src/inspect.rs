//! Offline inspection of a store's files, without opening it: every WAL record with its
//! offset and transaction, every checksum of every file, and what recovery would do.
//!
//! These functions only read. They take the same [`Storage`] the store uses, so they work on
//! the simulated file systems too. The `decode_*` functions check raw bytes of one file, for
//! tools and fuzzers.

use crate::cases::{classify_header, HeaderCase};
use crate::error::{Error, Result};
use crate::format::{
    parse_snapshot_name, snapshot_name, MANIFEST_NAME, PREAMBLE_VERSION_AT, WAL_NAME,
};
use crate::manifest::Manifest;
use crate::snapshot::{Segment, SegmentMeta};
use crate::storage::{Mapping, OpenMode, Storage, StorageFile};
use crate::wal::record::{self, RecordBody, MAX_RECORD_PAYLOAD_BYTES, RECORD_HEADER_BYTES};
use crate::wal::scan::{
    classify_tail, scan, search_records_of, ChunkReader, Probe, ReadConfig, Stop,
};
use crate::wal::{WalHeader, WAL_HEADER_BYTES};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One WAL record as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// Byte offset of the record in the WAL.
    pub offset: u64,
    /// `"put"`, `"delete"`, `"delete-range"`, `"commit"`, or `"clean"` (the marker a clean
    /// close appends: FORMAT.md §4.3).
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

/// Reads and explains the WAL of the store in `dir`, by what its header says.
pub fn dump_wal(storage: &dyn Storage, dir: &Path) -> Result<WalDump> {
    let (file, path) = open_wal(storage, dir)?;
    let header = WalHeader::read(file.as_ref())
        .map_err(|e| Error::io("read", &path, e))?
        .map_err(|e| Error::corruption(&path, 0, e.to_string()))?;
    read_log(file.as_ref(), path, &header)
}

/// Opens the WAL of the store in `dir` for reading.
fn open_wal(storage: &dyn Storage, dir: &Path) -> Result<(Box<dyn StorageFile>, PathBuf)> {
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
fn read_log(file: &dyn StorageFile, path: PathBuf, header: &WalHeader) -> Result<WalDump> {
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

fn record_info(offset: u64, rec: &record::Record<'_>, committed: bool) -> RecordInfo {
    let (kind, key, value_len, synced_through) = match rec.body {
        RecordBody::Put { key, value } => {
            ("put", Some(key.to_vec()), Some(value.len() as u64), None)
        }
        RecordBody::Delete { key } => ("delete", Some(key.to_vec()), None, None),
        RecordBody::DeleteRange { start, .. } => ("delete-range", Some(start.to_vec()), None, None),
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
        end: match rec.body {
            RecordBody::DeleteRange { end, .. } => end.map(<[u8]>::to_vec),
            _ => None,
        },
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
    let (manifest, manifest_check) = check_manifest(storage, dir)?;
    let metas: Vec<SegmentMeta> = manifest
        .as_ref()
        .map(|m| m.files().cloned().collect())
        .unwrap_or_default();
    let total: u64 =
        metas.iter().map(|m| m.file_len).sum::<u64>() + file_len(storage, &dir.join(WAL_NAME));
    let mut files = vec![manifest_check];
    let mut done = 0u64;
    for meta in &metas {
        files.push(check_snapshot(storage, dir, meta));
        done += meta.file_len;
        progress(done, total);
    }
    files.push(check_wal(storage, dir, manifest.as_ref()));
    progress(total, total);
    files.extend(unreferenced_snapshots(storage, dir, &metas));
    Ok(VerifyReport {
        files,
        bytes_checked: total,
    })
}

/// Reads the manifest: the manifest (if it checks out) and its line of the report. A store
/// without one is not a store; an I/O error or another format version ends the verify.
fn check_manifest(storage: &dyn Storage, dir: &Path) -> Result<(Option<Manifest>, FileCheck)> {
    let (manifest, problem) = match Manifest::read(storage, dir) {
        Ok(Some(m)) => (Some(m), None),
        Ok(None) => {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "no MANIFEST".into(),
            })
        }
        Err(Error::Corruption { offset, detail, .. }) => (None, Some(damage(offset, detail))),
        Err(e) => return Err(e),
    };
    let check = FileCheck {
        name: MANIFEST_NAME.into(),
        bytes: file_len(storage, &dir.join(MANIFEST_NAME)),
        problem,
    };
    Ok((manifest, check))
}

/// Maps and validates the snapshot file `meta` names; any failure is damage (the manifest
/// names only files that were synced before it).
fn check_snapshot(storage: &dyn Storage, dir: &Path, meta: &SegmentMeta) -> FileCheck {
    let problem = match Segment::open(storage, dir, meta) {
        Ok(_) => None,
        Err(Error::Corruption { offset, detail, .. }) => Some(damage(offset, detail)),
        Err(Error::Io { source, .. }) => Some(damage(0, format!("cannot read: {source}"))),
        Err(e) => Some(damage(0, e.to_string())),
    };
    FileCheck {
        name: snapshot_name(meta.file_id),
        bytes: meta.file_len,
        problem,
    }
}

/// Snapshot files the manifest does not name: harmless leftovers of an interrupted checkpoint.
fn unreferenced_snapshots(
    storage: &dyn Storage,
    dir: &Path,
    metas: &[SegmentMeta],
) -> Vec<FileCheck> {
    let live: Vec<String> = metas.iter().map(|m| snapshot_name(m.file_id)).collect();
    let names = storage.list_dir(dir).unwrap_or_default();
    names
        .into_iter()
        .filter(|name| parse_snapshot_name(name).is_some() && !live.contains(name))
        .map(|name| FileCheck {
            bytes: file_len(storage, &dir.join(&name)),
            name,
            problem: Some(Problem {
                offset: 0,
                detail: "not referenced by the MANIFEST (left by an interrupted checkpoint; \
                         removed by the next one)"
                    .into(),
                is_damage: false,
            }),
        })
        .collect()
}

/// Checks the WAL and reaches the verdict open would (RECOVERY.md H1-H5 against the
/// manifest, then L1-L6 for the end of the log). Without a readable manifest, the WAL is
/// checked by what its own header says.
fn check_wal(storage: &dyn Storage, dir: &Path, manifest: Option<&Manifest>) -> FileCheck {
    let checked = match manifest {
        Some(m) => wal_against_manifest(storage, dir, m),
        None => dump_wal(storage, dir).map(|dump| tail_problem(dump.verdict)),
    };
    let problem = checked.unwrap_or_else(|e| match e {
        Error::Corruption { offset, detail, .. } => Some(damage(offset, detail)),
        e => Some(damage(0, e.to_string())),
    });
    FileCheck {
        name: WAL_NAME.into(),
        bytes: file_len(storage, &dir.join(WAL_NAME)),
        problem,
    }
}

fn damage(offset: u64, detail: impl Into<String>) -> Problem {
    Problem {
        offset,
        detail: detail.into(),
        is_damage: true,
    }
}

/// What the end of the log means, as a problem of the WAL file.
fn tail_problem(verdict: TailVerdict) -> Option<Problem> {
    match verdict {
        TailVerdict::Clean => None,
        TailVerdict::TornTail { offset, detail } => Some(Problem {
            offset,
            detail: format!("torn tail (discarded on the next write): {detail}"),
            is_damage: false,
        }),
        TailVerdict::Corruption { offset, detail } => Some(damage(offset, detail)),
    }
}

/// The WAL's problem, judged against the manifest `m` with the classifier open uses
/// ([`classify_header`], RECOVERY.md H1-H5, O6), as a reader without the writer lock.
fn wal_against_manifest(
    storage: &dyn Storage,
    dir: &Path,
    m: &Manifest,
) -> Result<Option<Problem>> {
    let (file, path) = open_wal(storage, dir)?;
    let read_err = |e| Error::io("read", &path, e);
    let header = WalHeader::read(file.as_ref()).map_err(read_err)?;
    let case = classify_header(header, m.expected(), false, || {
        has_record_of(file.as_ref(), m.salt)
    })
    .map_err(read_err)?;
    let why = match header {
        Ok(h) => format!(
            "WAL header names generation {}, older than the MANIFEST's {}",
            h.generation, m.generation
        ),
        Err(e) => format!("WAL header does not decode ({e})"),
    };
    match case {
        HeaderCase::Current => Ok(tail_problem(
            read_log(file.as_ref(), path, &m.wal_header())?.verdict,
        )),
        HeaderCase::Disagrees => Ok(Some(damage(
            0,
            "WAL header disagrees with the MANIFEST: same generation, another salt or base \
             (RECOVERY.md H5)",
        ))),
        HeaderCase::NewerInFlight | HeaderCase::NewerThanManifest => {
            let generation = header.map(|h| h.generation).unwrap_or(0);
            newer_header(storage, dir, m, generation)
        }
        HeaderCase::Unsupported(found) => {
            let e = Error::UnsupportedFormat {
                file: path,
                found,
                supported: crate::format::FORMAT_VERSION,
            };
            Ok(Some(damage(PREAMBLE_VERSION_AT as u64, e.to_string())))
        }
        HeaderCase::LaggingEmpty => Ok(Some(Problem {
            offset: 0,
            detail: format!(
                "{why}, and no record of the MANIFEST's generation follows: an interrupted \
                 checkpoint; the log is empty and the next writer rewrites the header \
                 (RECOVERY.md H2)"
            ),
            is_damage: false,
        })),
        // H3: open reads the log with the manifest's generation; verify names the header,
        // and what that reading of the log finds.
        HeaderCase::LaggingWithRecords => {
            let log = read_log(file.as_ref(), path, &m.wal_header())?;
            let found = match tail_problem(log.verdict) {
                Some(p) if p.is_damage => {
                    format!("; the log is damaged at offset {}: {}", p.offset, p.detail)
                }
                _ => "; the log read with the MANIFEST's generation checks out".into(),
            };
            Ok(Some(damage(
                0,
                format!(
                    "{why}, but records of the MANIFEST's generation follow it \
                     (RECOVERY.md H3){found}"
                ),
            )))
        }
    }
}

/// A WAL header newer than the manifest is damage (RECOVERY.md H4: the header is reset only
/// after the manifest is durable), unless a checkpoint of another process moved both while
/// verify read them: the manifest is read again to tell.
fn newer_header(
    storage: &dyn Storage,
    dir: &Path,
    m: &Manifest,
    generation: u64,
) -> Result<Option<Problem>> {
    let moved = Manifest::read(storage, dir)
        .ok()
        .flatten()
        .is_some_and(|again| again.generation >= generation);
    if moved {
        return Ok(Some(Problem {
            offset: 0,
            detail: "a checkpoint ran while verify read the files: run verify again".into(),
            is_damage: false,
        }));
    }
    Ok(Some(damage(
        0,
        format!(
            "WAL generation {generation} is newer than the MANIFEST's {} (RECOVERY.md H4)",
            m.generation
        ),
    )))
}

/// Whether an intact record of generation `salt` lies anywhere after the header: what tells
/// H3 from H2, found with the same search recovery uses.
fn has_record_of(file: &dyn StorageFile, salt: u64) -> std::io::Result<bool> {
    let len = file.len()?;
    let mut found = false;
    search_records_of(
        file,
        len,
        salt,
        WAL_HEADER_BYTES,
        ReadConfig::default(),
        |_, probe| {
            found = matches!(probe, Probe::Record(rec) if rec.salt == salt);
            !found
        },
    )?;
    Ok(found)
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

/// A snapshot file's entry: key, and value (`None`: a tombstone).
pub type SnapshotEntry = (Vec<u8>, Option<Vec<u8>>);

/// A range deletion: start, and end (`None`: no end).
pub type RangeDeletion = (Vec<u8>, Option<Vec<u8>>);

/// Fully validates the bytes of snapshot file `id`; returns its entries and its range
/// deletions.
pub fn decode_snapshot(id: u64, bytes: &[u8]) -> Result<(Vec<SnapshotEntry>, Vec<RangeDeletion>)> {
    let map: Arc<dyn Mapping> = Arc::new(bytes.to_vec());
    let seg = Segment::from_mapping(id, PathBuf::from(snapshot_name(id)), map)?;
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

/// Encodes a WAL header block (FORMAT.md §3).
pub fn encode_wal_header(generation: u64, salt: u64, base_txn: u64) -> Vec<u8> {
    WalHeader {
        generation,
        salt,
        base_txn,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    const DIR: &str = "/db";

    fn open(mem: &MemoryStorage) -> Result<crate::Store> {
        crate::Options::new()
            .storage(Arc::new(mem.clone()))
            .auto_checkpoint(false)
            .open(DIR)
    }

    /// A store of generation 1 (one checkpoint) with two transactions in its WAL, closed.
    fn store_after_a_checkpoint() -> MemoryStorage {
        let mem = MemoryStorage::new();
        let store = open(&mem).expect("create");
        store.update(|tx| tx.put(b"a", b"1")).expect("commit");
        store.checkpoint().expect("checkpoint");
        store.update(|tx| tx.put(b"b", b"2")).expect("commit");
        store.update(|tx| tx.put(b"c", b"3")).expect("commit");
        drop(store);
        mem
    }

    fn manifest(mem: &MemoryStorage) -> Manifest {
        Manifest::read(mem, Path::new(DIR))
            .expect("read")
            .expect("manifest")
    }

    fn write_wal_header(mem: &MemoryStorage, header: &[u8]) {
        let path = Path::new(DIR).join(WAL_NAME);
        let mut wal = mem.read_file(&path).expect("wal");
        wal[..header.len()].copy_from_slice(header);
        mem.write_file_durable(&path, &wal);
    }

    fn wal_problem(mem: &MemoryStorage) -> Option<Problem> {
        let report = verify(mem, Path::new(DIR), |_, _| {}).expect("verify");
        let wal = report.files.iter().find(|f| f.name == WAL_NAME);
        wal.expect("the WAL is checked").problem.clone()
    }

    #[test]
    fn intact_store_has_no_wal_problem() {
        let mem = store_after_a_checkpoint();
        assert_eq!(wal_problem(&mem), None);
    }

    /// Verify reports damage at the WAL header (offset 0).
    fn assert_header_damage(mem: &MemoryStorage) {
        let problem = wal_problem(mem);
        assert!(
            problem
                .as_ref()
                .is_some_and(|p| p.is_damage && p.offset == 0),
            "verify: {problem:?}"
        );
    }

    /// RECOVERY.md H4: open refuses a WAL header newer than the manifest; verify called it fine.
    #[test]
    fn wal_header_newer_than_the_manifest_is_damage() {
        let mem = store_after_a_checkpoint();
        let m = manifest(&mem);
        write_wal_header(&mem, &encode_wal_header(m.generation + 1, 7, m.base_txn));
        assert_header_damage(&mem);
        let opened = open(&mem).map(|_| ());
        assert!(
            matches!(opened, Err(Error::Corruption { .. })),
            "open: {opened:?}"
        );
    }

    /// RECOVERY.md H3 after the first checkpoint: a header that does not decode, followed by
    /// records of the manifest's generation. Open reads them with the manifest's generation;
    /// verify names the damaged header (it called any unreadable header harmless once the
    /// generation was above 0).
    #[test]
    fn damaged_wal_header_with_records_of_the_generation_is_damage() {
        let mem = store_after_a_checkpoint();
        let m = manifest(&mem);
        let mut header = m.wal_header().encode();
        header[20] ^= 1;
        write_wal_header(&mem, &header[..64]);
        assert_header_damage(&mem);
        let store = open(&mem).expect("open reads the log with the manifest's generation");
        let read = store.begin_read().expect("read");
        assert!(read.get(b"c").expect("get").is_some(), "open lost a commit");
    }

    /// RECOVERY.md H3 with a header that decodes but names an older generation: verify called
    /// every header of another generation fine.
    #[test]
    fn older_wal_header_with_records_of_the_generation_is_damage() {
        let mem = store_after_a_checkpoint();
        let m = manifest(&mem);
        write_wal_header(&mem, &encode_wal_header(m.generation - 1, 5, 0));
        assert_header_damage(&mem);
    }

    /// RECOVERY.md H2 in generation 0: a header torn into garbage with no record of the
    /// generation after it is harmless (open rewrites it); verify called it damage because
    /// no checkpoint had run yet.
    #[test]
    fn damaged_wal_header_without_records_of_the_generation_is_harmless() {
        let mem = MemoryStorage::new();
        drop(open(&mem).expect("create"));
        assert_eq!(manifest(&mem).generation, 0);
        write_wal_header(&mem, &[0x5a; 44]);
        let problem = wal_problem(&mem);
        assert!(
            problem.as_ref().is_some_and(|p| !p.is_damage),
            "verify: {problem:?}"
        );
        drop(open(&mem).expect("open rewrites the header"));
        assert_eq!(wal_problem(&mem), None);
    }

    /// RECOVERY.md H5: the manifest's generation with another salt is damage.
    #[test]
    fn wal_header_with_another_salt_at_the_same_generation_is_damage() {
        let mem = store_after_a_checkpoint();
        let m = manifest(&mem);
        write_wal_header(
            &mem,
            &encode_wal_header(m.generation, m.salt ^ 2, m.base_txn),
        );
        assert_header_damage(&mem);
        assert!(open(&mem).is_err_and(|e| e.is_corruption()));
    }
}
