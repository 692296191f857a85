//! Opening a store, recovery, and catching up with other processes.
//!
//! The cases and what is done about each are tabled in `docs/RECOVERY.md`. The code paths:
//! - [`open`] classifies the directory (empty, a store, half-created, foreign), creates a store
//!   under the writer lock if needed, then loads the newest state with [`reload`].
//! - [`refresh`] is the cheap catch-up run by every `begin_read` and `begin_write`: read the
//!   WAL header, scan from where this handle stopped, read the header again. Without news
//!   that is three small reads; a changed generation falls back to [`reload`].
//! - Under the writer lock, the end of the log is authoritative: a torn tail is zeroed and
//!   synced before anything is appended, damage to synced bytes is reported.

use crate::error::{Error, Result};
use crate::format::{
    is_store_file, parse_snapshot_name, random_u64, snapshot_name, LOCK_NAME, MANIFEST_NAME,
    MANIFEST_TMP_NAME, WAL_NAME,
};
use crate::manifest::Manifest;
use crate::options::{Options, RecoveryMode};
use crate::snapshot::Segment;
use crate::storage::{OpenMode, Storage, StorageFile};
use crate::store::{Inner, Store, SyncState, WriterState};
use crate::version::{Bytes, Memtable, SegmentSet, Version};
use crate::wal::scan::{classify_tail, scan, ScanEnd, Stop};
use crate::wal::{preallocate, write_zeros, HeaderError, WalHeader, WAL_HEADER_BYTES};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// How many times an unlocked reader retries when a concurrent checkpoint changes the files
/// under it before it waits for the writer lock instead.
const UNLOCKED_ATTEMPTS: usize = 64;

/// Opens or creates the store in `dir`.
pub(crate) fn open(dir: &Path, opts: Options) -> Result<Store> {
    let storage = Arc::clone(&opts.storage);
    let read_only = opts.read_only || opts.recovery == RecoveryMode::Salvage;
    let exists = storage.exists(dir).map_err(|e| Error::io("stat", dir, e))?;
    if !exists {
        if read_only {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "the directory does not exist".into(),
            });
        }
        storage
            .create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
    }
    let manifest_exists = storage
        .exists(&dir.join(MANIFEST_NAME))
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotADirectory => Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "it is a file, not a directory".into(),
            },
            _ => Error::io("stat", dir, e),
        })?;
    if !manifest_exists {
        check_not_foreign(storage.as_ref(), dir)?;
    }
    let lock = if read_only {
        None
    } else {
        Some(
            storage
                .open_lock(&dir.join(LOCK_NAME))
                .map_err(|e| Error::io("open", dir.join(LOCK_NAME), e))?,
        )
    };
    if !manifest_exists {
        let Some(lock) = lock.as_ref() else {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "no MANIFEST (and the store is opened read-only, so it is not created)"
                    .into(),
            });
        };
        lock.lock()
            .map_err(|e| Error::io("flock", dir.join(LOCK_NAME), e))?;
        let created = create(storage.as_ref(), dir, &opts);
        let _ = lock.unlock();
        created?;
    }
    let wal_path = dir.join(WAL_NAME);
    let mode = if read_only {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    let wal = storage.open(&wal_path, mode).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::corruption(
            &wal_path,
            0,
            "the WAL named by the MANIFEST's store is missing",
        ),
        _ => Error::io("open", &wal_path, e),
    })?;
    let wal_len = wal.len().map_err(|e| Error::io("stat", &wal_path, e))?;
    let store = Store {
        inner: Arc::new(Inner {
            dir: dir.to_path_buf(),
            read_only,
            wal_path,
            wal,
            lock,
            writer: Arc::new(Mutex::new(WriterState {
                scratch: Vec::new(),
                wal_len,
            })),
            current: RwLock::new(Arc::new(empty_version())),
            refresh_lock: Mutex::new(()),
            sync: Mutex::new(SyncState::default()),
            sync_done: Condvar::new(),
            poisoned: Mutex::new(None),
            is_poisoned: AtomicBool::new(false),
            pid: std::process::id(),
            checkpointer: crate::checkpoint::Trigger::default(),
            counters: Default::default(),
            closed_at_commits: AtomicU64::new(0),
            opts,
        }),
    };
    let version = {
        let _g = store.inner.refresh_lock.lock();
        reload(&store, Mode::Open)?
    };
    *store.inner.current.write() = Arc::clone(&version);
    if !read_only {
        settle_after_open(&store, &version)?;
        if store.inner.opts.auto_checkpoint {
            crate::checkpoint::start_background(&store);
        }
    }
    Ok(store)
}

/// Finishes recovery under the writer lock, where it is authoritative: catch up with anything
/// written since the unlocked load, zero a torn tail, make what readers will see durable
/// (so a crash now cannot make a transaction that readers may already see disappear), and
/// remove files an interrupted checkpoint left. If another writer holds the lock past the
/// configured wait, it is a live writer doing the same for its own writes: a plain sync is
/// then enough for what this handle read.
fn settle_after_open(store: &Store, loaded: &Version) -> Result<()> {
    let durable = match store.acquire_writer(store.inner.opts.lock_wait) {
        Ok(guard) => {
            // The names this open found may be in the page cache only: creation (or a
            // checkpoint) whose directory fsync failed, retried by this open (crash harness,
            // strict finding B). One directory fsync makes them durable before anything is
            // appended that depends on them.
            let result = sync_store_dir(store)
                .and_then(|()| refresh(store, true))
                .and_then(|version| {
                    clear_stale_tail(store, &version)?;
                    let version = make_durable(store, &version)?;
                    if let Ok(Some(manifest)) =
                        Manifest::read(store.inner.opts.storage.as_ref(), &store.inner.dir)
                    {
                        if manifest.generation == version.generation {
                            remove_orphans(store, &manifest);
                        }
                    }
                    Ok((version.generation, version.wal_end))
                });
            store.release_writer(guard);
            result?
        }
        Err(Error::Busy { .. }) => {
            store
                .inner
                .wal
                .sync_data()
                .map_err(|e| Error::io("fdatasync", &store.inner.wal_path, e))?;
            (loaded.generation, loaded.wal_end)
        }
        Err(e) => return Err(e),
    };
    store.inner.sync.lock().durable_end = durable;
    Ok(())
}

/// Zeroes every record of this generation that lies past the end of the log. A crash can keep a
/// later write while losing an earlier one (the log then ends at zeros or at an older
/// generation's bytes, with intact records of this generation further on); a later commit of
/// the same length would line them up as the next transaction and bring a discarded
/// transaction back (found by the crash harness). Called under the writer lock.
fn clear_stale_tail(store: &Store, version: &Version) -> Result<()> {
    let wal = store.inner.wal.as_ref();
    let path = &store.inner.wal_path;
    let limit = wal.len().map_err(|e| Error::io("stat", path, e))?;
    let class = classify_tail(
        wal,
        limit,
        version.salt,
        version.last_txn + 1,
        version.wal_end,
    )
    .map_err(|e| Error::io("read", path, e))?;
    if let Some((offset, detail)) = class.corruption {
        if store.inner.opts.recovery != RecoveryMode::Salvage {
            return Err(Error::corruption(path, offset, detail));
        }
    }
    if class.dirty_end > version.wal_end {
        // Synced before anything else is written: a stale commit left past the end carries a
        // watermark that would otherwise vouch for bytes recovery rewrites next (the clean
        // markers of S1), and a torn rewrite of those would read as corruption.
        let to = class.dirty_end.next_multiple_of(4096).min(limit);
        write_zeros(wal, version.wal_end, to)
            .and_then(|()| wal.sync_data())
            .map_err(|e| Error::io("zero stale tail", path, e))?;
    }
    Ok(())
}

/// Makes durable what this open found, without writing over a byte that may already be
/// durable and hold data. Called under the writer lock; returns the version to go on from.
///
/// A plain `fdatasync` is not enough: after an earlier `fdatasync` failed, the kernel may hold
/// log bytes in pages it marked clean without writing them, so a sync would succeed while
/// they stay lost at the next power cut, taking every later commit with them (found by the
/// `ops` fuzz target). Writing those bytes back over themselves dirties them again, but a
/// power cut during that rewrite can tear sectors that were durable into garbage and lose an
/// acknowledged commit (found by the crash harness, finding A). So:
/// - log bytes that hold data and that no commit record's watermark proves durable (the
///   *unproven tail*: normally the last commit group of a writer that did not close cleanly)
///   are copied into new snapshot files by a checkpoint, which writes only new files and
///   resets the WAL (PostgreSQL's end-of-recovery checkpoint, for the same reason). If it
///   fails (a full disk), so does the open: a read-only open still reads everything, and a
///   read-write open succeeds once there is room. Falling back to the rewrite would bring
///   the window back (the full tier of the crash harness found it: swarm seed 455);
/// - an unproven tail of clean markers only carries no data: it is rewritten in place (torn,
///   it is a torn tail);
/// - everything else (zeros cleared past the end of the log) needs only the sync.
fn make_durable(store: &Store, version: &Arc<Version>) -> Result<Arc<Version>> {
    let faults = store.inner.opts.faults;
    let proven = if faults.rewrite_unproven_tail_in_place() {
        version.proven_end()
    } else if faults.trust_page_cache_at_open() {
        version.wal_end
    } else if version.has_unproven_data() {
        crate::checkpoint::fold(store, version)?;
        return Ok(store.current());
    } else {
        version.proven_end()
    };
    let wal = store.inner.wal.as_ref();
    let path = &store.inner.wal_path;
    // Clean markers are 48 bytes each, written one per close: a small range.
    let mut markers = vec![0u8; version.wal_end.saturating_sub(proven).min(1 << 20) as usize];
    let mut at = proven;
    while at < version.wal_end {
        let n = ((version.wal_end - at) as usize).min(markers.len());
        let read = wal
            .read_full_at(&mut markers[..n], at)
            .map_err(|e| Error::io("read", path, e))?;
        wal.write_all_at(&markers[..read], at)
            .map_err(|e| Error::io("write", path, e))?;
        if read < n {
            break;
        }
        at += n as u64;
    }
    wal.sync_data()
        .map_err(|e| Error::io("fdatasync", path, e))?;
    Ok(Arc::clone(version))
}

fn empty_version() -> Version {
    Version {
        generation: 0,
        salt: 0,
        base_txn: 0,
        next_file_id: 1,
        last_txn: 0,
        wal_end: WAL_HEADER_BYTES,
        synced_through: 0,
        data_end: WAL_HEADER_BYTES,
        segments: Arc::new(SegmentSet::default()),
        mem: Default::default(),
        layers: Vec::new(),
    }
}

/// Refuses a directory that holds files a store never creates.
fn check_not_foreign(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    if let Some(foreign) = names.iter().find(|n| !is_store_file(n)) {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            detail: format!("it holds {foreign:?} and no MANIFEST; refusing to touch it"),
        });
    }
    Ok(())
}

/// Creates the store files (under the writer lock). A crash at any point leaves either no
/// MANIFEST (creation is redone) or a complete store.
fn create(storage: &dyn Storage, dir: &Path, opts: &Options) -> Result<()> {
    let manifest_path = dir.join(MANIFEST_NAME);
    if storage
        .exists(&manifest_path)
        .map_err(|e| Error::io("stat", dir, e))?
    {
        return Ok(()); // another process created it while we waited for the lock
    }
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    if let Some(snap) = names
        .iter()
        .find(|n| parse_snapshot_name(n).is_some_and(|(_, tmp)| !tmp))
    {
        return Err(Error::corruption(
            &manifest_path,
            0,
            format!("MANIFEST is missing but snapshot file {snap} exists"),
        ));
    }
    let wal_path = dir.join(WAL_NAME);
    let wal = storage
        .open(&wal_path, OpenMode::Create)
        .map_err(|e| Error::io("create", &wal_path, e))?;
    // A WAL whose generation-0 header survived while the MANIFEST did not (lost directory
    // entry) may hold acknowledged commits: keep its salt so they are found.
    let header = match WalHeader::read(wal.as_ref()).map_err(|e| Error::io("read", &wal_path, e))? {
        Ok(h) if h.generation == 0 && h.base_txn == 0 => h,
        _ => {
            let h = WalHeader {
                generation: 0,
                salt: random_u64(),
                base_txn: 0,
            };
            wal.set_len(0)
                .map_err(|e| Error::io("truncate", &wal_path, e))?;
            wal.write_all_at(&h.encode(), 0)
                .map_err(|e| Error::io("write", &wal_path, e))?;
            h
        }
    };
    let len = wal.len().map_err(|e| Error::io("stat", &wal_path, e))?;
    preallocate(
        wal.as_ref(),
        len,
        WAL_HEADER_BYTES + opts.wal_preallocate_bytes,
    )
    .map_err(|e| Error::io("preallocate", &wal_path, e))?;
    // The `wal` entry must be durable before the MANIFEST that names the store is: with
    // unordered directory operations a crash could keep the rename and lose the WAL
    // (crash harness, strict finding C).
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    let manifest = Manifest {
        generation: 0,
        salt: header.salt,
        base_txn: 0,
        next_file_id: 1,
        segments: Vec::new(),
    };
    manifest.write(storage, dir, true)
}

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
pub(crate) fn refresh(store: &Store, locked: bool) -> Result<Arc<Version>> {
    let _g = store.inner.refresh_lock.lock();
    let cur = store.current();
    let wal = store.inner.wal.as_ref();
    let path = &store.inner.wal_path;
    let mode = if locked { Mode::Locked } else { Mode::Unlocked };
    let h1 = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
    let same_generation =
        matches!(h1, Ok(h) if h.generation == cur.generation && h.salt == cur.salt);
    if !same_generation {
        let v = reload(store, mode)?;
        store.publish(Arc::clone(&v));
        return Ok(store.current());
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
        settle_tail(store, &next, &end, Mode::Locked, false)?;
    } else {
        let h2 = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
        if h2 != h1 {
            let v = reload(store, mode)?;
            store.publish(Arc::clone(&v));
            return Ok(store.current());
        }
    }
    if news {
        store
            .inner
            .counters
            .refreshes_with_news
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        store.publish(Arc::new(next));
        return Ok(store.current());
    }
    Ok(cur)
}

/// Loads the newest state from the manifest, the snapshot files and the WAL.
pub(crate) fn reload(store: &Store, mode: Mode) -> Result<Arc<Version>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = match try_reload(store, mode) {
            // Without the lock, a writer in another process may have appended between the
            // scan and the look past its end: only a verdict under the lock is final.
            Err(e) if e.is_corruption() && mode != Mode::Locked => {
                if store.inner.lock.is_some() {
                    return reload_locked(store);
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
                return reload_locked(store);
            }
        }
    }
}

/// Loads under the writer lock, where the files cannot change and every verdict is final.
fn reload_locked(store: &Store) -> Result<Arc<Version>> {
    let guard = store.acquire_writer(store.inner.opts.lock_wait)?;
    let result = try_reload(store, Mode::Locked);
    store.release_writer(guard);
    result?.map(Arc::new).ok_or_else(|| {
        Error::corruption(
            &store.inner.dir,
            0,
            "store files changed under the writer lock",
        )
    })
}

/// One attempt; `Ok(None)` means a concurrent checkpoint changed the files: retry.
fn try_reload(store: &Store, mode: Mode) -> Result<Option<Version>> {
    let inner = &store.inner;
    let storage = inner.opts.storage.as_ref();
    let salvage = inner.opts.recovery == RecoveryMode::Salvage;
    let wal = inner.wal.as_ref();
    let path = &inner.wal_path;
    let manifest = match Manifest::read(storage, &inner.dir) {
        Ok(Some(m)) => m,
        Ok(None) if mode == Mode::Unlocked => return Ok(None),
        Ok(None) => {
            return Err(Error::corruption(
                inner.dir.join(MANIFEST_NAME),
                0,
                "MANIFEST is missing",
            ))
        }
        Err(e) if salvage && e.is_corruption() => manifest_from_wal_header(wal, path)?,
        Err(e) => return Err(e),
    };
    let segments = match load_segments(store, &manifest, mode, salvage)? {
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
                file: path.clone(),
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
                if mode == Mode::Locked && !inner.read_only {
                    repair_header(store, &manifest)?;
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
    settle_tail(store, &version, &end, mode, true)?;
    if stale_header && mode == Mode::Locked && !inner.read_only {
        // Only now that the log checked out: a damaged store is never modified.
        repair_header(store, &manifest)?;
    }
    Ok(Some(version))
}

/// Writes the WAL header of `manifest`'s generation over one that names another generation
/// or does not decode (RECOVERY.md H2, H3). Rewriting a header that is already wrong cannot
/// lose anything: torn again, it is again a header that recovery rebuilds from the manifest.
fn repair_header(store: &Store, manifest: &Manifest) -> Result<()> {
    // The checkpoint that renamed this manifest into place may have failed before its
    // directory fsync: make the rename durable before the WAL header depends on it, or a
    // crash could bring back the old manifest under a newer WAL.
    sync_store_dir(store)?;
    reset_wal(store, manifest)
}

/// fsyncs the store directory (its names: creations, renames, removals).
fn sync_store_dir(store: &Store) -> Result<()> {
    let inner = &store.inner;
    inner
        .opts
        .storage
        .sync_dir(&inner.dir)
        .map_err(|e| Error::io("fsync directory", &inner.dir, e))
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
    store: &Store,
    manifest: &Manifest,
    mode: Mode,
    salvage: bool,
) -> Result<Option<Arc<SegmentSet>>> {
    let cur = store.current();
    let known: HashMap<u64, &Arc<Segment>> =
        cur.segments.segments.iter().map(|s| (s.id(), s)).collect();
    let mut set = SegmentSet::default();
    for meta in &manifest.segments {
        if let Some(seg) = known.get(&meta.file_id) {
            set.segments.push(Arc::clone(seg));
            set.metas.push(meta.clone());
            continue;
        }
        match Segment::open(store.inner.opts.storage.as_ref(), &store.inner.dir, meta) {
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
    store: &Store,
    version: &Version,
    end: &ScanEnd,
    mode: Mode,
    whole_log: bool,
) -> Result<()> {
    let inner = &store.inner;
    let needs_classification = match mode {
        Mode::Unlocked => false,
        Mode::Open => true,
        Mode::Locked => whole_log || matches!(end.stop, Stop::Damaged { .. }),
    };
    if !needs_classification {
        return Ok(());
    }
    let wal = inner.wal.as_ref();
    let path = &inner.wal_path;
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
        let salvage = inner.opts.recovery == RecoveryMode::Salvage;
        if !salvage && !inner.opts.faults.mid_log_damage_is_torn_tail() {
            let reason = match &end.stop {
                Stop::Damaged { detail: why, .. } => format!("{why}; {detail}"),
                _ => detail,
            };
            return Err(Error::corruption(path, offset, reason));
        }
    }
    if mode == Mode::Locked && !inner.read_only && matches!(end.stop, Stop::Damaged { .. }) {
        let zero_to = class
            .dirty_end
            .max(end.stop.offset() + 1)
            .next_multiple_of(4096)
            .min(limit);
        zero_range(wal, path, version.wal_end, zero_to)
            .inspect_err(|_| store.poison("torn tail repair"))?;
    }
    Ok(())
}

/// Zeroes a torn tail that starts at `from` (the end of the log). The first record header
/// goes first, synced on its own: a torn tail is often a transaction whose only damage is a
/// garbage sector where the record bytes are zeros (a watermark's high bytes, say), and
/// zeroing that sector before the rest would make the transaction whole again if a crash
/// stopped the zeroing half-way: a discarded transaction would come back (found by the crash
/// harness with garbage sectors inside recovery). With its first header zero, the
/// transaction can never count again.
fn zero_range(wal: &dyn StorageFile, path: &Path, from: u64, to: u64) -> Result<()> {
    let head_end = (from + crate::wal::record::RECORD_HEADER_BYTES as u64).min(to);
    write_zeros(wal, from, head_end)
        .and_then(|()| wal.sync_data())
        .and_then(|()| write_zeros(wal, head_end, to))
        .and_then(|()| wal.sync_data())
        .map_err(|e| Error::io("zero torn tail", path, e))
}

/// Writes the WAL header of `manifest`'s generation and syncs it (the last checkpoint step).
pub(crate) fn reset_wal(store: &Store, manifest: &Manifest) -> Result<()> {
    let header = WalHeader {
        generation: manifest.generation,
        salt: manifest.salt,
        base_txn: manifest.base_txn,
    };
    let wal = store.inner.wal.as_ref();
    let path = &store.inner.wal_path;
    let result = wal
        .write_all_at(&header.encode(), 0)
        .map_err(|e| Error::io("write", path, e))
        .and_then(|_| wal.sync_data().map_err(|e| Error::io("fdatasync", path, e)));
    if result.is_err() {
        store.poison("WAL reset");
    }
    result
}

/// Removes snapshot files the manifest does not name, and a stale `MANIFEST.tmp`. Only
/// called while holding the writer lock with `manifest` being the current one. Failures are
/// harmless (the files are removed next time) and ignored.
pub(crate) fn remove_orphans(store: &Store, manifest: &Manifest) {
    let storage = store.inner.opts.storage.as_ref();
    let dir = &store.inner.dir;
    let Ok(names) = storage.list_dir(dir) else {
        return;
    };
    let live: std::collections::HashSet<String> = manifest
        .segments
        .iter()
        .map(|m| snapshot_name(m.file_id))
        .collect();
    for name in names {
        let orphan = name == MANIFEST_TMP_NAME
            || (parse_snapshot_name(&name).is_some() && !live.contains(&name));
        if orphan {
            let _ = storage.remove_file(&dir.join(&name));
        }
    }
}
