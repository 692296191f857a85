//! Catching up with the files: the cheap catch-up every transaction begins with
//! ([`refresh`]), the full load from the manifest ([`reload`]), and the decision about the end
//! of the log (RECOVERY.md, the header and tail cases).
//!
//! - [`refresh`] reads the WAL header, scans from where this handle stopped, reads the header
//!   again. Without news that is three small reads; a changed generation falls back to
//!   [`reload`].
//! - Under the writer lock, the end of the log is authoritative: a torn tail is zeroed and
//!   synced before anything is appended, damage to synced bytes is reported.
//!
//! Invariant: without the writer lock nothing here writes; a verdict of corruption reached
//! without the lock is confirmed under it before it is reported.

use crate::core::Core;
use crate::error::{Error, Result};
use crate::format::MANIFEST_NAME;
use crate::manifest::Manifest;
use crate::options::RecoveryMode;
use crate::snapshot::Segment;
use crate::storage::StorageFile;
use crate::version::{Bytes, Memtable, SegmentSet, Version};
use crate::wal::scan::{classify_tail, scan, ScanEnd, Stop};
use crate::wal::{HeaderError, WalHeader, WAL_HEADER_BYTES};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How many times an unlocked reader retries when a concurrent checkpoint changes the files
/// under it before it waits for the writer lock instead.
const UNLOCKED_ATTEMPTS: usize = 64;

/// Why a version is being loaded; decides what is authoritative and what may be repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// At open, without the writer lock: classify the whole tail, repair nothing.
    Open,
    /// A reader catching up, without the lock: files may change underneath; retry.
    Unlocked,
    /// A writer (or checkpoint) holding the lock: authoritative; repair the tail.
    Locked,
}

/// Catches up with commits and checkpoints made since this handle last looked (by any
/// process). Returns the newest version.
pub(crate) fn refresh(core: &Core, locked: bool) -> Result<Arc<Version>> {
    let _g = core.refresh_lock();
    let cur = core.current();
    let wal = core.wal().file();
    let path = core.wal().path();
    let mode = if locked { Mode::Locked } else { Mode::Unlocked };
    let h1 = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
    let same_generation =
        matches!(h1, Ok(h) if h.generation == cur.generation && h.salt == cur.salt);
    if !same_generation {
        let v = reload(core, mode)?;
        core.publish(Arc::clone(&v));
        return Ok(core.current());
    }
    // No fstat here: querying the WAL's timestamps makes the kernel give the next write a
    // fine-grained mtime, which makes every commit's fdatasync ~50% slower (measured with
    // examples/commit_floor.rs). Reads stop at the end of the file by themselves.
    let limit = u64::MAX;
    let mut next = Version::clone(&cur);
    let mut news = false;
    let end = scan(wal, limit, cur.wal_end, cur.salt, cur.last_txn + 1, |t| {
        if !t.writes.is_empty() {
            next.data_end = t.end;
        }
        next.apply(t.writes);
        next.last_txn = t.txn_id;
        next.wal_end = t.end;
        news = true;
    })
    .map_err(|e| Error::io("read", path, e))?;
    next.synced_through = next.synced_through.max(end.synced_through);
    if locked {
        settle_tail(core, &next, &end, Mode::Locked, false)?;
    } else {
        let h2 = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
        if h2 != h1 {
            let v = reload(core, mode)?;
            core.publish(Arc::clone(&v));
            return Ok(core.current());
        }
    }
    if news {
        core.publish(Arc::new(next));
        return Ok(core.current());
    }
    Ok(cur)
}

/// Loads the newest state from the manifest, the snapshot files and the WAL.
pub(crate) fn reload(core: &Core, mode: Mode) -> Result<Arc<Version>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = match try_reload(core, mode) {
            // Without the lock, a writer in another process may have appended between the
            // scan and the look past its end: only a verdict under the lock is final.
            Err(e) if e.is_corruption() && mode != Mode::Locked => {
                if core.has_writer_lock() {
                    return reload_locked(core);
                }
                if attempt < 3 {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                return Err(e);
            }
            other => other?,
        };
        match loaded {
            Some(v) => return Ok(Arc::new(v)),
            None if attempt < UNLOCKED_ATTEMPTS => std::thread::yield_now(),
            None => {
                // Files kept changing under us: load under the writer lock instead.
                return reload_locked(core);
            }
        }
    }
}

/// Loads under the writer lock, where the files cannot change and every verdict is final.
fn reload_locked(core: &Core) -> Result<Arc<Version>> {
    let guard = core.acquire_writer(core.opts().lock_wait)?;
    let result = try_reload(core, Mode::Locked);
    core.release_writer(guard);
    result?.map(Arc::new).ok_or_else(|| {
        Error::corruption(core.dir(), 0, "store files changed under the writer lock")
    })
}

/// One attempt; `Ok(None)` means a concurrent checkpoint changed the files: retry.
fn try_reload(core: &Core, mode: Mode) -> Result<Option<Version>> {
    let storage = core.storage();
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    let wal = core.wal().file();
    let path = core.wal().path();
    let manifest = match Manifest::read(storage, core.dir()) {
        Ok(Some(m)) => m,
        Ok(None) if mode == Mode::Unlocked => return Ok(None),
        Ok(None) => {
            return Err(Error::corruption(
                core.dir().join(MANIFEST_NAME),
                0,
                "MANIFEST is missing",
            ))
        }
        Err(e) if salvage && e.is_corruption() => manifest_from_wal_header(wal, path)?,
        Err(e) => return Err(e),
    };
    let segments = match load_segments(core, &manifest, mode, salvage)? {
        Some(s) => s,
        None => return Ok(None),
    };
    let header = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
    let mut version = Version {
        generation: manifest.generation,
        salt: manifest.salt,
        base_txn: manifest.base_txn,
        next_file_id: manifest.next_file_id,
        last_txn: manifest.base_txn,
        wal_end: WAL_HEADER_BYTES,
        synced_through: 0,
        data_end: WAL_HEADER_BYTES,
        segments,
        mem: Default::default(),
        layers: Vec::new(),
    };
    let mut stale_header = false;
    match header {
        Ok(h) if h.generation == manifest.generation => {
            if h.salt != manifest.salt || h.base_txn != manifest.base_txn {
                return Err(Error::corruption(
                    path,
                    0,
                    "WAL header disagrees with the MANIFEST",
                ));
            }
        }
        Ok(h) if h.generation > manifest.generation && mode != Mode::Locked => return Ok(None),
        Err(HeaderError::Version(found)) => {
            return Err(Error::UnsupportedFormat {
                file: path.to_path_buf(),
                found,
                supported: crate::format::FORMAT_VERSION,
            })
        }
        Ok(h) if h.generation > manifest.generation => {
            return Err(Error::corruption(
                path,
                0,
                "WAL generation is newer than the MANIFEST",
            ))
        }
        _ => {
            // The header does not name the manifest's generation: it is older (the checkpoint
            // that wrote this manifest crashed before resetting the WAL, H2) or it does not
            // decode (damaged, or torn into garbage by a power cut during a reset, H3). The
            // manifest holds all the header says. Records with the manifest's salt were
            // written after this generation's reset: read them under the manifest's
            // generation, salt and base. Without any, the log of this generation is empty.
            let has_records = has_record_of(wal, path, manifest.salt)?;
            if !has_records {
                if mode == Mode::Locked && !core.is_read_only() {
                    repair_header(core, &manifest)?;
                }
                return Ok(Some(version));
            }
            stale_header = true;
        }
    }
    // The whole log of the generation: gather every write, then build the memtable from them
    // in key order (inserting a sorted run into the persistent map is several times faster
    // than inserting in log order, which for random keys misses the cache at every level).
    let mut writes: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    let end = scan(
        wal,
        u64::MAX,
        WAL_HEADER_BYTES,
        manifest.salt,
        manifest.base_txn + 1,
        |t| {
            if !t.writes.is_empty() {
                version.data_end = t.end;
            }
            writes.extend(t.writes);
            version.last_txn = t.txn_id;
            version.wal_end = t.end;
        },
    )
    .map_err(|e| Error::io("read", path, e))?;
    version.mem = memtable_from_log_order(writes);
    version.synced_through = end.synced_through;
    if mode == Mode::Unlocked {
        let again = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
        if again != header {
            return Ok(None);
        }
    }
    settle_tail(core, &version, &end, mode, true)?;
    if stale_header && mode == Mode::Locked && !core.is_read_only() {
        // Only now that the log checked out: a damaged store is never modified.
        repair_header(core, &manifest)?;
    }
    Ok(Some(version))
}

/// Writes the WAL header of `manifest`'s generation over one that names another generation
/// or does not decode (RECOVERY.md H2, H3). Rewriting a header that is already wrong cannot
/// lose anything: torn again, it is again a header that recovery rebuilds from the manifest.
fn repair_header(core: &Core, manifest: &Manifest) -> Result<()> {
    // The checkpoint that renamed this manifest into place may have failed before its
    // directory fsync: make the rename durable before the WAL header depends on it, or a
    // crash could bring back the old manifest under a newer WAL.
    core.sync_store_dir()?;
    core.wal().reset_header(&manifest.wal_header())
}

/// Builds a memtable from writes in log order: the last write of each key wins.
fn memtable_from_log_order(writes: Vec<(Bytes, Option<Bytes>)>) -> Memtable {
    // Sort positions by the keys' first 8 bytes first (contiguous, no pointer chasing), full
    // keys only on ties; position breaks the remaining ties, so log order is kept among
    // writes of one key.
    let mut order: Vec<(u64, u32)> = writes
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (crate::snapshot::key_prefix(k), i as u32))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| writes[a.1 as usize].0.cmp(&writes[b.1 as usize].0))
            .then_with(|| a.1.cmp(&b.1))
    });
    let mut slots: Vec<Option<(Bytes, Option<Bytes>)>> = writes.into_iter().map(Some).collect();
    let mut latest: Vec<(Bytes, Option<Bytes>)> = Vec::with_capacity(slots.len());
    for (_, i) in order {
        let Some((key, value)) = slots[i as usize].take() else {
            continue;
        };
        match latest.last_mut() {
            Some(last) if last.0 == key => last.1 = value,
            _ => latest.push((key, value)),
        }
    }
    latest.into_iter().collect()
}

/// In salvage mode with a damaged manifest: take generation, salt and base from the WAL.
fn manifest_from_wal_header(wal: &dyn StorageFile, path: &Path) -> Result<Manifest> {
    match WalHeader::read(wal).map_err(|e| Error::io("read", path, e))? {
        Ok(h) => Ok(Manifest {
            generation: h.generation,
            salt: h.salt,
            base_txn: h.base_txn,
            next_file_id: u64::MAX,
            segments: Vec::new(),
        }),
        Err(e) => Err(Error::corruption(
            path,
            0,
            format!("manifest and WAL header both unusable: {e}"),
        )),
    }
}

/// Maps the manifest's snapshot files, reusing those this handle already has mapped.
fn load_segments(
    core: &Core,
    manifest: &Manifest,
    mode: Mode,
    salvage: bool,
) -> Result<Option<Arc<SegmentSet>>> {
    let cur = core.current();
    let known: HashMap<u64, &Arc<Segment>> =
        cur.segments.segments.iter().map(|s| (s.id(), s)).collect();
    let mut set = SegmentSet::default();
    for meta in &manifest.segments {
        if let Some(seg) = known.get(&meta.file_id) {
            set.segments.push(Arc::clone(seg));
            set.metas.push(meta.clone());
            continue;
        }
        match Segment::open(core.storage(), core.dir(), meta) {
            Ok(seg) => {
                set.segments.push(Arc::new(seg));
                set.metas.push(meta.clone());
            }
            Err(Error::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound && mode == Mode::Unlocked =>
            {
                return Ok(None)
            }
            Err(e) if salvage && e.is_corruption() => continue,
            Err(Error::Io { source, path, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(Error::corruption(
                    path,
                    0,
                    "snapshot file named by the MANIFEST is missing",
                ))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Arc::new(set)))
}

/// Whether an intact record of generation `salt` lies anywhere after the header. Records of
/// a generation are written only after its header is durable, so one proves the header had
/// been; the whole log is searched because the first record may be damaged as well (found
/// by the recovery fuzz target).
fn has_record_of(wal: &dyn StorageFile, path: &Path, salt: u64) -> Result<bool> {
    use crate::wal::record::{self, RECORD_HEADER_BYTES, RECORD_PAYLOAD_MAX, SALT_FIELD_OFFSET};
    let read_err = |e| Error::io("read", path, e);
    let len = wal.len().map_err(|e| Error::io("stat", path, e))?;
    let salt_bytes = salt.to_le_bytes();
    let finder = memchr::memmem::Finder::new(&salt_bytes);
    let mut reader = crate::wal::scan::ChunkReader::new(wal, len);
    let mut at = WAL_HEADER_BYTES;
    while at < len {
        let chunk = reader.get(at, 1 << 20).map_err(read_err)?.to_vec();
        for hit in finder.find_iter(&chunk) {
            let Some(start) = (at + hit as u64).checked_sub(SALT_FIELD_OFFSET as u64) else {
                continue;
            };
            if start < WAL_HEADER_BYTES {
                continue;
            }
            let head = reader.get(start, RECORD_HEADER_BYTES).map_err(read_err)?;
            let Some(declared) = record::declared_len(head) else {
                continue;
            };
            let total = RECORD_HEADER_BYTES + (declared as usize).min(RECORD_PAYLOAD_MAX + 1);
            let bytes = reader.get(start, total).map_err(read_err)?;
            if record::decode(bytes).is_ok_and(|r| r.salt == salt) {
                return Ok(true);
            }
        }
        if chunk.len() <= RECORD_HEADER_BYTES {
            break;
        }
        at += (chunk.len() - RECORD_HEADER_BYTES) as u64;
    }
    Ok(false)
}

/// Decides what the end of the log means and acts on it: report corruption, or (holding
/// the lock) zero and sync a torn tail so nothing appended later can join it.
///
/// A full load (`whole_log`: open, or a reload under the lock) looks past every kind of stop,
/// because a zeroed stretch of synced records looks like a clean end until the commits after
/// it are seen. A catch-up under the lock only looks past bytes of this generation that do not
/// continue the log; a catch-up without the lock decides nothing.
fn settle_tail(
    core: &Core,
    version: &Version,
    end: &ScanEnd,
    mode: Mode,
    whole_log: bool,
) -> Result<()> {
    let needs_classification = match mode {
        Mode::Unlocked => false,
        Mode::Open => true,
        Mode::Locked => whole_log || matches!(end.stop, Stop::Damaged { .. }),
    };
    if !needs_classification {
        return Ok(());
    }
    let wal = core.wal().file();
    let path = core.wal().path();
    let limit = wal.len().map_err(|e| Error::io("stat", path, e))?;
    let class = classify_tail(
        wal,
        limit,
        version.salt,
        version.last_txn + 1,
        end.stop.offset(),
    )
    .map_err(|e| Error::io("read", path, e))?;
    if let Some((offset, detail)) = class.corruption {
        let salvage = core.opts().recovery == RecoveryMode::Salvage;
        if !salvage && !core.opts().faults.mid_log_damage_is_torn_tail() {
            let reason = match &end.stop {
                Stop::Damaged { detail: why, .. } => format!("{why}; {detail}"),
                _ => detail,
            };
            return Err(Error::corruption(path, offset, reason));
        }
    }
    if mode == Mode::Locked && !core.is_read_only() && matches!(end.stop, Stop::Damaged { .. }) {
        let zero_to = class
            .dirty_end
            .max(end.stop.offset() + 1)
            .next_multiple_of(4096)
            .min(limit);
        core.wal().zero_torn_tail(version.wal_end, zero_to)?;
    }
    Ok(())
}
