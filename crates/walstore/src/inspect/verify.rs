//! Every checksum of every file of a store, and the verdict open would reach about its WAL,
//! as a reader without the writer lock.

use super::dump::{dump_wal, open_wal, read_log, TailVerdict};
use crate::cases::{classify_header, HeaderCase};
use crate::error::{Error, Result};
use crate::feed::{segment_name, FeedState, Sealed, FEED_NAME};
use crate::format::{
    parse_snapshot_name, snapshot_name, MANIFEST_NAME, PREAMBLE_VERSION_AT, WAL_NAME,
};
use crate::manifest::Manifest;
use crate::snapshot::{Segment, SegmentMeta};
use crate::storage::{OpenMode, Storage};
use crate::wal::scan::{has_record_of, ReadConfig};
use crate::wal::WalHeader;
use std::path::Path;

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
    files.extend(check_feed(storage, dir, manifest.as_ref()));
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
    let problem = match Segment::open(storage, dir, meta).and_then(|s| s.verify_against(meta)) {
        Ok(()) => None,
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

/// The change feed's files (FORMAT.md §10): `FEED` decodes, and every sealed segment it
/// lists of a generation before the manifest's has its header and reads to its last
/// transaction. Nothing when the store has no `FEED`.
fn check_feed(storage: &dyn Storage, dir: &Path, manifest: Option<&Manifest>) -> Vec<FileCheck> {
    let path = dir.join(FEED_NAME);
    if !storage.exists(&path).unwrap_or(false) {
        return Vec::new();
    }
    let bytes = file_len(storage, &path);
    let state = match FeedState::read(storage, dir) {
        Ok(state) => state,
        Err(e) => {
            let (offset, detail) = match e {
                Error::Corruption { offset, detail, .. } => (offset, detail),
                other => (0, other.to_string()),
            };
            let problem = Some(damage(offset, detail));
            let name = FEED_NAME.into();
            return vec![FileCheck {
                name,
                bytes,
                problem,
            }];
        }
    };
    let live = manifest.map_or(u64::MAX, |m| m.generation);
    let mut files = vec![FileCheck {
        name: FEED_NAME.into(),
        bytes,
        problem: None,
    }];
    for seg in state.segments.iter().filter(|s| s.generation < live) {
        files.push(FileCheck {
            name: segment_name(seg.generation),
            bytes: seg.bytes,
            problem: check_segment(storage, dir, seg).err(),
        });
    }
    files
}

/// Reads a sealed segment whole: its header matches its listing, its transactions run from
/// the first listed to the last.
fn check_segment(
    storage: &dyn Storage,
    dir: &Path,
    seg: &Sealed,
) -> std::result::Result<(), Problem> {
    let path = dir.join(segment_name(seg.generation));
    let file = storage
        .open(&path, OpenMode::ReadOnly)
        .map_err(|e| damage(0, format!("listed in FEED but cannot be opened: {e}")))?;
    let header = match WalHeader::read(file.as_ref()) {
        Ok(Ok(h)) if h.generation == seg.generation && h.base_txn + 1 == seg.first_txn => h,
        Ok(_) => return Err(damage(0, "header does not match its listing in FEED")),
        Err(e) => return Err(damage(0, format!("cannot read: {e}"))),
    };
    let end = crate::wal::scan::scan(
        file.as_ref(),
        seg.bytes,
        crate::wal::WAL_HEADER_BYTES,
        header.salt,
        seg.first_txn,
        ReadConfig::default(),
        |_| {},
    )
    .map_err(|e| damage(0, format!("cannot read: {e}")))?;
    if end.last_txn != seg.last_txn {
        let detail = format!(
            "ends at transaction {} where FEED lists {}",
            end.last_txn, seg.last_txn
        );
        return Err(damage(end.stop.offset(), detail));
    }
    Ok(())
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
        has_record_of(file.as_ref(), &path, m.salt, ReadConfig::default())
    })?;
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
                supported: crate::wal::WAL_VERSION,
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

fn file_len(storage: &dyn Storage, path: &Path) -> u64 {
    storage
        .open(path, OpenMode::ReadOnly)
        .and_then(|f| f.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::encode_wal_header;
    use crate::storage::MemoryStorage;
    use std::sync::Arc;

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
        // Torn while the store was created: nothing lies after it then (not even the clean
        // marker the creating handle's close appended).
        let path = Path::new(DIR).join(WAL_NAME);
        let mut wal = mem.read_file(&path).expect("wal");
        wal[crate::wal::WAL_HEADER_BYTES as usize..].fill(0);
        mem.write_file_durable(&path, &wal);
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
