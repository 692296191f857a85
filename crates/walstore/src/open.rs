//! Opening a store: classify the directory (empty, a store, half-created, foreign), create a
//! store under the writer lock if needed, load the newest state, then finish recovery under
//! the writer lock (RECOVERY.md O1-O7, L6, S1), ending with the end-of-recovery checkpoint
//! when the log holds an unproven tail.
//!
//! Invariant: recovery never writes over log bytes that may be durable and hold data.

use crate::cases::{classify_stale, PastEnd, StaleCase};
use crate::core::{Access, Core, CoreParts, WriterGuard};
use crate::error::{Error, Result};
use crate::format::{
    is_store_file, parse_snapshot_name, random_u64, LOCK_NAME, LOG_INDEX_NAME, MANIFEST_NAME,
    MERGE_LOCK_NAME, WAL_NAME,
};
use crate::load::reload;
use crate::manifest::Manifest;
use crate::options::{Options, RecoveryMode};
use crate::storage::{OpenMode, Storage, StorageLock};
use crate::version::Version;
use crate::wal::scan::classify_tail;
use crate::wal::writer::Wal;
use crate::wal::{LogPosition, WalHeader, WAL_HEADER_BYTES};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Opens or creates the store in `dir`.
pub(crate) fn open(dir: &Path, opts: Options) -> Result<Arc<Core>> {
    let read_only = opts.read_only || opts.recovery == RecoveryMode::Salvage;
    let storage = Arc::clone(&opts.storage);
    let manifest_exists = prepare_dir(storage.as_ref(), dir, read_only)?;
    let lock = if read_only {
        None
    } else {
        let path = dir.join(LOCK_NAME);
        Some(
            storage
                .open_lock(&path)
                .map_err(|e| Error::io("open", &path, e))?,
        )
    };
    if !manifest_exists {
        create_locked(storage.as_ref(), dir, lock.as_deref())?;
    }
    let wal = open_wal(storage.as_ref(), dir, &opts, read_only)?;
    refuse_foreign_files(storage.as_ref(), dir, read_only)?;
    let core = Arc::new(Core::new(CoreParts {
        dir: dir.to_path_buf(),
        opts,
        read_only,
        wal,
        lock,
        version: Version::start_of(0, 0, 0, Vec::new()),
    }));
    let fresh_index = attach_index(&core, read_only)?;
    core.set_joined_live(fresh_index == Some(false));
    // Alone with the store, a read-write open builds a new log index as it reads the log
    // (FORMAT.md §9; the fresh commit index names none, so nothing left over is trusted).
    core.set_building_alone(fresh_index == Some(true) && !read_only);
    let version = {
        let _g = core.refresh_lock();
        reload(&core, Access::Open)?
    };
    core.views().install_loaded(Arc::clone(&version));
    // What this open recovered it answers for itself (S1 makes it durable below).
    core.vouched_through(version.position());
    if !read_only {
        settle_after_open(&core, &version)?;
    }
    core.set_building_alone(false);
    if let Some(fresh) = fresh_index {
        finish_index(&core, fresh)?;
    }
    if !read_only && core.opts().auto_checkpoint {
        let weak = Arc::downgrade(&core);
        let signal = core.checkpointer().shared();
        core.checkpointer().arm(Box::new(move || {
            crate::worker::spawn(weak.clone(), Arc::clone(&signal))
        }));
    }
    Ok(core)
}

/// Opens the commit index (FORMAT.md §8), if the storage has shared memory, and gives it to
/// the core. Returns whether it is fresh (no other handle has the store open: this one sets
/// it up, alone, until [`finish_index`]); `None` without an index: a storage without shared
/// memory, a read-only handle in a directory it may not write, or a salvage open that would
/// have to set it up (it reads the files as a handle without an index does).
fn attach_index(core: &Core, read_only: bool) -> Result<Option<bool>> {
    let path = core.dir().join(crate::format::INDEX_NAME);
    let started = std::time::Instant::now();
    let deadline = match core.opts().lock_wait {
        crate::options::LockWait::Forever => None,
        crate::options::LockWait::NoWait => Some(started),
        crate::options::LockWait::Timeout(limit) => Some(started + limit),
    };
    let opened = match core.storage().open_region(&path, deadline) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(Error::Busy {
                waited: started.elapsed(),
            })
        }
        // A link or another kind of file in its place is refused, even read-only.
        Err(e) if crate::storage::NotARegularFile::of(&e).is_some() => {
            return Err(Error::io("open", &path, e))
        }
        // A read-only handle in a directory it may not write: no index (RECOVERY.md I5).
        Err(_) if read_only => return Ok(None),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    // A salvage open reads a store it may not understand: it sets up no index for others.
    if opened.fresh && core.opts().recovery == RecoveryMode::Salvage {
        return Ok(None);
    }
    core.set_index(Arc::new(crate::index::CommitIndex::new(opened.region)));
    Ok(Some(opened.fresh))
}

/// Ends the open's part in the commit index. A fresh index is set up from what recovery
/// found (all of it durable now, but for clean markers rewritten without a sync), then
/// shared with other openers. Otherwise readers start
/// at the index's visible end, which may be short of what the log holds (another process's
/// commit whose sync has not returned).
fn finish_index(core: &Core, fresh: bool) -> Result<()> {
    let Some(index) = core.index() else {
        return Ok(());
    };
    if fresh {
        let head = core.current();
        // Durable through the head, but for clean markers a read-write open rewrote without
        // a sync (a read-only open settles nothing: what it loaded counts, as before).
        let synced = core.wal().durable_end();
        let durable = if !core.is_read_only() && synced.generation == head.generation {
            synced.offset.min(head.wal_end)
        } else {
            head.wal_end
        };
        index.rebuild(crate::core::head_of(&head), durable);
        index.handle_opened();
        index
            .share()
            .map_err(|e| Error::io("flock", core.dir().join(crate::format::INDEX_NAME), e))?;
        core.views().install_shown(head, index.counter());
        return Ok(());
    }
    index.handle_opened();
    for _ in 0..64 {
        let counter = index.counter();
        let Ok(state) = index.read() else {
            break; // damaged: readers read the files until a writer repairs it
        };
        let at = LogPosition::new(state.generation, state.visible_end());
        if let Some(v) = crate::catchup::view_at(core, at)? {
            core.views().install_shown(v, counter);
            return Ok(());
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// Creates the directory if needed (not for a read-only open) and refuses a foreign one.
/// Returns whether a `MANIFEST` exists.
fn prepare_dir(storage: &dyn Storage, dir: &Path, read_only: bool) -> Result<bool> {
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
        check_not_foreign(storage, dir)?;
    }
    Ok(manifest_exists)
}

/// Creates the store under the writer's file lock (RECOVERY.md O1, O3).
fn create_locked(storage: &dyn Storage, dir: &Path, lock: Option<&dyn StorageLock>) -> Result<()> {
    let Some(lock) = lock else {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            detail: "no MANIFEST (and the store is opened read-only, so it is not created)".into(),
        });
    };
    lock.lock()
        .map_err(|e| Error::io("flock", dir.join(LOCK_NAME), e))?;
    let created = create(storage, dir);
    let _ = lock.unlock();
    created
}

/// Opens the store's log file.
fn open_wal(storage: &dyn Storage, dir: &Path, opts: &Options, read_only: bool) -> Result<Wal> {
    let path = dir.join(WAL_NAME);
    let mode = if read_only {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    let file = storage.open(&path, mode).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::corruption(&path, 0, "the WAL named by the MANIFEST's store is missing")
        }
        _ => Error::io("open", &path, e),
    })?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    Ok(Wal::new(file, path, opts, len))
}

/// Refuses the store if a file it opens only later, or only sometimes, is a symbolic link or
/// another kind of file, before this open writes anything: `LOGINDEX` (opened by the first
/// commit with data, or by a handle that joins others; in its place a link would be replaced
/// and a directory would leave every process reading the log into memory of its own), and for
/// a read-write open `MERGE` (whose lock a merge, a checkpoint and this open's clean-up
/// take). Missing, or unreadable for another reason, they are left to the code that opens
/// them.
fn refuse_foreign_files(storage: &dyn Storage, dir: &Path, read_only: bool) -> Result<()> {
    let merge = (!read_only).then_some(MERGE_LOCK_NAME);
    for name in [Some(LOG_INDEX_NAME), merge].into_iter().flatten() {
        let path = dir.join(name);
        if let Err(e) = storage.open(&path, OpenMode::ReadOnly) {
            if crate::storage::NotARegularFile::of(&e).is_some() {
                return Err(Error::io("open", &path, e));
            }
        }
    }
    Ok(())
}

/// Finishes recovery under the writer lock, where it is authoritative: catch up with anything
/// written since the unlocked load, zero a torn tail, make what readers will see durable
/// (so a crash now cannot make a transaction that readers may already see disappear), and
/// remove files an interrupted checkpoint left. If another writer holds the lock past the
/// configured wait, it is a live writer doing the same for its own writes: a plain sync is
/// then enough for what this handle read.
fn settle_after_open(core: &Core, loaded: &Version) -> Result<()> {
    let durable = match core.with_writer(core.opts().lock_wait, |g| settle_locked(core, g)) {
        Ok(durable) => durable,
        // The log ends for this handle where clean markers start, and they could not be
        // zeroed: another handle would find them (no other can have the store open, so this
        // is a process creating or checking it that holds the lock past the wait).
        Err(e @ Error::Busy { .. }) if core.take_open_markers().is_some() => return Err(e),
        Err(Error::Busy { .. }) => {
            core.wal().sync_now("fdatasync at open")?;
            loaded.position()
        }
        Err(e) => return Err(e),
    };
    core.wal().set_durable_end(durable);
    Ok(())
}

/// [`settle_after_open`] under the writer lock; returns where the log is now durable.
fn settle_locked(core: &Core, guard: &WriterGuard) -> Result<LogPosition> {
    // An open alone that found the log ended by clean markers took its end to be their start
    // (`load.rs`): zeroed now, before anything reads the log again, so every reader (this
    // handle's catch-up first) finds it ending there (RECOVERY.md S1).
    let markers = core.take_open_markers();
    if let Some(m) = markers {
        // Stale records past the markers first (L6), synced: a stale commit's watermark may
        // vouch for the markers' bytes, and with them zeroed it would read as proof that
        // durable bytes were damaged, at this check or, after a crash, at the next open (the
        // crash harness's `clean-reopen`, stop 25).
        clear_stale_tail(core, guard, &core.current(), m.end, true)?;
        core.wal().zero_markers(m.at.offset, m.end)?;
    }
    let version = crate::catchup::head(core, guard)?;
    // Joining live handles that left the log as the index says (RECOVERY.md X2): the open
    // that set the index up synced the directory, made the log durable and cleared what lay
    // past its end, and catch-ups under the lock repair what a killed writer leaves; the
    // live writers' last commits are theirs to prove (their next commit's watermark, their
    // clean marker), not a crash's tail to fold. Nothing to look for (no O(preallocation)
    // read) and nothing to fold (no O(log) checkpoint); at most a sync, so that this
    // handle's watermarks are true.
    if core.lock_found_clean(guard) && core.ends_where_index_says(&version) {
        return joined_live(core, &version);
    }
    // The names this open found may be in the page cache only: creation (or a checkpoint)
    // whose directory fsync failed, retried by this open (crash harness, strict finding B).
    // One directory fsync makes them durable before anything is appended that depends on them.
    // A log that ends with a clean marker after all of its data was closed by a handle
    // whose every directory fsync succeeded (a failed one poisons, and a poisoned handle
    // writes no marker) after an open that synced the directory: nothing to do then; nor
    // when it did until this open zeroed its markers.
    let zeroed_here =
        markers.is_some_and(|m| m.at == LogPosition::new(version.generation, version.wal_end));
    let ended_cleanly = version.closed_cleanly() || zeroed_here;
    if !ended_cleanly {
        core.sync_store_dir()?;
    }
    if !zeroed_here {
        clear_stale_tail(core, guard, &version, version.wal_end, ended_cleanly)?;
    }
    let (version, mut durable_end) = make_durable(core, guard, &version)?;
    if let Some(m) = markers.filter(|_| core.opts().faults.durable_through_zeroed_markers()) {
        durable_end = durable_end.max(m.end);
    }
    // A lock file that is not a regular file was refused before anything was written
    // (`refuse_foreign_files`).
    if let Ok(Some(merging)) = core.try_merge_lock() {
        crate::runs::remove_orphans(core, guard, &merging);
    }
    Ok(LogPosition::new(version.generation, durable_end))
}

/// Where the log is durable for a handle that joined live handles: as far as their syncs
/// made it, or, if some of it is not known durable yet, everything after one `fdatasync`.
fn joined_live(core: &Core, version: &Version) -> Result<LogPosition> {
    let durable = core
        .index()
        .and_then(|index| index.read().ok().map(|state| index.durable_end(&state)))
        .unwrap_or(0);
    if durable < version.wal_end {
        core.wal().sync_now("fdatasync at open")?;
    }
    Ok(version.position())
}

/// Zeroes every record of this generation that lies past `from`, the end of the log (or of
/// the clean markers an open alone is about to zero). A crash can keep a
/// later write while losing an earlier one (the log then ends at zeros or at an older
/// generation's bytes, with intact records of this generation further on); a later commit of
/// the same length would line them up as the next transaction and bring a discarded
/// transaction back (found by the crash harness). Called under the writer lock.
fn clear_stale_tail(
    core: &Core,
    guard: &WriterGuard,
    version: &Version,
    from: u64,
    ended_cleanly: bool,
) -> Result<()> {
    core.assert_writer(guard);
    let wal = core.wal().file();
    let path = core.wal().path();
    let limit = core.wal().len()?;
    let limit = core.opts().faults.stale_limit(limit, ended_cleanly, from);
    let class = classify_tail(
        wal,
        limit,
        version.salt,
        version.last_txn + 1,
        from,
        crate::wal::scan::ReadConfig::of(core.opts()),
    )
    .map_err(|e| Error::io("read", path, e))?;
    let past_end = match class.corruption {
        Some((offset, detail)) => PastEnd::Proven { offset, detail },
        None => PastEnd::Unproven,
    };
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    match classify_stale(past_end, class.dirty_end, from, salvage) {
        StaleCase::DurableDamage { offset, detail } => Err(Error::corruption(path, offset, detail)),
        // Synced before anything else is written: a stale commit left past the end carries a
        // watermark that would otherwise vouch for bytes recovery rewrites next (the clean
        // markers of S1), and a torn rewrite of those would read as corruption.
        StaleCase::ZeroThrough { dirty_end } => {
            let to = dirty_end.next_multiple_of(4096).min(limit);
            if from > version.wal_end {
                // Past the clean markers an open alone zeroes next: what starts right at
                // their end is a torn tail as often as a stale record (no gap lies between),
                // so it is zeroed as a torn tail is, its first record header first and
                // synced on its own (finding F: zeroed in any order, a garbage sector could
                // become the zeros it replaced and make a discarded transaction whole; the
                // strict tier with sector padding, `clean-reopen`, stop 25).
                core.wal().zero_torn_tail(from, to)
            } else {
                core.wal().zero_stale_tail(from, to)
            }
        }
        StaleCase::Nothing => Ok(()),
    }
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
/// - an unproven tail of clean markers only carries no data: an open alone zeroed it and
///   ends the log at its start (`load.rs`, [`settle_locked`]), so nothing is unproven here;
///   an open beside other handles rewrites it in place (torn, it is a torn tail) and syncs it;
/// - everything else (zeros cleared past the end of the log) needs only the sync.
fn make_durable(
    core: &Core,
    guard: &WriterGuard,
    version: &Arc<Version>,
) -> Result<(Arc<Version>, u64)> {
    core.assert_writer(guard);
    let faults = core.opts().faults;
    let proven = if faults.rewrite_unproven_tail_in_place() {
        version.proven_end()
    } else if faults.trust_page_cache_at_open() {
        version.wal_end
    } else if version.has_unproven_data() {
        crate::checkpoint::fold(core, guard, version)?;
        let folded = core.current();
        let end = folded.wal_end;
        return Ok((folded, end));
    } else if version.proven_end() < version.wal_end {
        // Clean markers only, found by an open that is not alone with the store, or has no
        // shared memory to know it (one alone left them out, `load.rs`): written back over
        // themselves, then synced below, before anything can vouch for them. Beside live
        // handles, only an open after a writer was killed gets here (RECOVERY.md X2
        // otherwise), so the sync costs nothing that matters.
        version.proven_end()
    } else {
        // Everything is proven durable by a watermark: nothing to write or sync.
        return Ok((Arc::clone(version), version.wal_end));
    };
    // Clean markers (or, in the broken variants, the unproven tail) written back in place
    // (or not at all), then synced.
    core.wal().rewrite_markers(proven, version.wal_end)?;
    core.wal().sync_now("fdatasync at open")?;
    Ok((Arc::clone(version), version.wal_end))
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
fn create(storage: &dyn Storage, dir: &Path) -> Result<()> {
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
    let found = WalHeader::read(wal.as_ref()).map_err(|e| Error::io("read", &wal_path, e))?;
    let (header, rewrite) = match found {
        Ok(h) if h.generation == 0 && h.base_txn == 0 => (h, false),
        _ => {
            let h = WalHeader::new(0, random_u64(), 0);
            (h, true)
        }
    };
    Wal::initialize(
        wal.as_ref(),
        &wal_path,
        rewrite.then_some(&header),
        WAL_HEADER_BYTES + crate::wal::PREALLOCATE_MIN_BYTES,
    )?;
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
        runs: Vec::new(),
    };
    crate::runs::create(storage, dir, &manifest)
}
