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

use crate::cases::{
    classify_header, classify_tail_case, HeaderCase, Looker, PastEnd, TailCase, TailLook,
};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::format::MANIFEST_NAME;
use crate::manifest::Manifest;
use crate::options::RecoveryMode;
use crate::snapshot::Segment;
use crate::storage::StorageFile;
use crate::version::{Bytes, Memtable, SegmentSet, Version};
use crate::wal::scan::{classify_tail, scan, search_records_of, Probe, ReadConfig, ScanEnd};
use crate::wal::{WalHeader, WAL_HEADER_BYTES};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How many times an unlocked reader retries when a concurrent checkpoint changes the files
/// under it before it waits for the writer lock instead.
const UNLOCKED_ATTEMPTS: usize = 64;
/// How many 10 ms waits a read-only handle (which cannot take the lock) then makes.
const READ_ONLY_WAITS: usize = 100;

/// Catches up with commits and checkpoints made since this handle last looked (by any
/// process). Under the writer lock (`locked`) it returns the head: every transaction written,
/// which the next commit builds on. Without it, the readers' view: with a commit index, every
/// transaction shown (durable, or `Buffered`: FORMAT.md §8); without one, the head.
pub(crate) fn refresh(core: &Core, locked: bool) -> Result<Arc<Version>> {
    if !locked {
        return read_view(core);
    }
    let Some(index) = core.index() else {
        return refresh_files(core, true);
    };
    if core.lock_found_clean() {
        if let Ok(state) = index.read() {
            let head = core.current();
            if state.describes(&crate::core::head_of(&head)) {
                return Ok(head); // nothing changed since this handle's last look: no I/O
            }
        }
    }
    let head = refresh_files(core, true)?;
    if !index
        .read()
        .is_ok_and(|state| state.describes(&crate::core::head_of(&head)))
    {
        // Another handle's transactions it did not publish (it died between its write and
        // the index), or a damaged index: the files are the truth under the lock.
        let durable = core.wal().durable_end() >= crate::core::position(&head);
        index.set_head(crate::core::head_of(&head), durable);
    }
    Ok(head)
}

/// The readers' view (see [`refresh`]). Nothing changed since this handle last looked (the
/// index's change counter says so): no system call. Otherwise the view at the index's
/// visible end: a version this handle already has (its own commits), or one read from the
/// log up to there (never further: a commit another process has written but not synced yet
/// is not shown).
fn read_view(core: &Core) -> Result<Arc<Version>> {
    let Some(index) = core.index() else {
        return refresh_files(core, false);
    };
    let counter = index.counter();
    if counter.wrapping_add(1) == core.seen() {
        return Ok(core.visible());
    }
    for _ in 0..UNLOCKED_ATTEMPTS {
        let Ok(state) = index.read() else {
            // A damaged index, or a writer killed while it updated it: the files say what is
            // written, and the next writer repairs the index (RECOVERY.md I4).
            return refresh_files(core, false);
        };
        let at = (state.generation, state.visible_end());
        if let Some(v) = view_at(core, at)? {
            core.show(&v, counter);
            return Ok(core.visible());
        }
        // The files moved on (a checkpoint) between the index and the log: look again.
        std::thread::yield_now();
    }
    refresh_files(core, false)
}

/// The version at log position `at`: one this handle has, or read from the log of `at`'s
/// generation up to `at`. `None` when the files no longer hold that position (another
/// generation started meanwhile).
pub(crate) fn view_at(core: &Core, at: (u64, u64)) -> Result<Option<Arc<Version>>> {
    if let Some(v) = core.known_at(at) {
        return Ok(Some(v));
    }
    let base = match core.known_before(at) {
        Some(base) => base,
        None => {
            // A generation this handle has not loaded: load it, then go back to `at` if the
            // log already holds more.
            let head = refresh_files(core, false)?;
            let p = crate::core::position(&head);
            if p == at {
                return Ok(Some(head));
            }
            if p.0 != at.0 || p.1 < at.1 {
                return Ok(None);
            }
            Arc::new(start_of_generation(&head))
        }
    };
    let mut next = Version::clone(&base);
    scan(
        core.wal().file(),
        at.1,
        base.wal_end,
        base.salt,
        base.last_txn + 1,
        ReadConfig::of(core.opts()),
        |t| apply_scanned(&mut next, t),
    )
    .map_err(|e| Error::io("read", core.wal().path(), e))?;
    if next.wal_end != at.1 {
        return Ok(None);
    }
    let next = Arc::new(next);
    core.publish(Arc::clone(&next));
    Ok(Some(next))
}

/// `head`'s generation before any of its log: its runs only.
fn start_of_generation(head: &Version) -> Version {
    Version {
        generation: head.generation,
        salt: head.salt,
        base_txn: head.base_txn,
        last_txn: head.base_txn,
        wal_end: WAL_HEADER_BYTES,
        synced_through: 0,
        data_end: WAL_HEADER_BYTES,
        runs: head.runs.clone(),
        mem: Default::default(),
        mem_deletes: Default::default(),
        layers: Vec::new(),
    }
}

/// Adds one scanned transaction to `next`.
fn apply_scanned(next: &mut Version, t: crate::wal::scan::ScannedTxn) {
    if !t.writes.is_empty() || !t.deletes.is_empty() {
        next.data_end = t.end;
    }
    next.apply_range_deletes(&t.deletes);
    next.apply(t.writes);
    next.last_txn = t.txn_id;
    next.wal_end = t.end;
}

/// Catches up from the files: the WAL header, the log from where this handle stopped, the
/// header again. Returns the head.
fn refresh_files(core: &Core, locked: bool) -> Result<Arc<Version>> {
    let _g = core.refresh_lock();
    let cur = core.current();
    let wal = core.wal().file();
    let path = core.wal().path();
    let mode = if locked {
        Looker::Locked
    } else {
        Looker::Unlocked
    };
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
    let cfg = ReadConfig::of(core.opts());
    let end = scan(
        wal,
        limit,
        cur.wal_end,
        cur.salt,
        cur.last_txn + 1,
        cfg,
        |t| {
            apply_scanned(&mut next, t);
            news = true;
        },
    )
    .map_err(|e| Error::io("read", path, e))?;
    next.synced_through = next.synced_through.max(end.synced_through);
    if locked {
        settle_tail(core, &next, &end, Looker::Locked, false)?;
        // Another handle's transactions, perhaps acknowledged Immediate commits: durable
        // before anything is appended after them, so this handle's next watermark vouches
        // for them (RECOVERY.md S1b; found by the crash harness with two handles: a bit
        // flip in one handle's synced commit silently lost it and the other's next one).
        if news {
            core.wal().sync_caught_up((next.generation, next.wal_end))?;
        }
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
pub(crate) fn reload(core: &Core, mode: Looker) -> Result<Arc<Version>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = match try_reload(core, mode) {
            // Without the lock, a writer in another process may have appended between the
            // scan and the look past its end: only a verdict under the lock is final
            // (RECOVERY.md L5).
            Err(e) if e.is_corruption() && mode != Looker::Locked => {
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
            // Files kept changing under us: load under the writer lock instead.
            None if core.has_writer_lock() => return reload_locked(core),
            None => return reload_read_only(core),
        }
    }
}

/// Loads under the writer lock, where the files cannot change and every verdict is final.
fn reload_locked(core: &Core) -> Result<Arc<Version>> {
    core.with_writer(core.opts().lock_wait, |_guard| {
        try_reload(core, Looker::Locked)?
            .map(Arc::new)
            .ok_or_else(|| {
                Error::corruption(core.dir(), 0, "store files changed under the writer lock")
            })
    })
}

/// A read-only handle whose files kept changing: it cannot take the writer lock, so it waits
/// for a checkpoint in another process to finish (up to about a second), then takes what it
/// finds as final, as a holder of the lock would (a WAL header still newer than the manifest
/// is corruption, RECOVERY.md H4).
fn reload_read_only(core: &Core) -> Result<Arc<Version>> {
    for _ in 0..READ_ONLY_WAITS {
        std::thread::sleep(std::time::Duration::from_millis(10));
        if let Some(v) = try_reload(core, Looker::Unlocked)? {
            return Ok(Arc::new(v));
        }
    }
    try_reload(core, Looker::Locked)?
        .map(Arc::new)
        .ok_or_else(|| {
            Error::corruption(
                core.dir(),
                0,
                "store files kept changing under a read-only open",
            )
        })
}

/// One attempt; `Ok(None)` means a concurrent checkpoint changed the files: retry.
fn try_reload(core: &Core, mode: Looker) -> Result<Option<Version>> {
    let wal = core.wal().file();
    let path = core.wal().path();
    let Some(manifest) = read_manifest(core, mode)? else {
        return Ok(None);
    };
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    let Some(runs) = load_runs(core, &manifest, mode, salvage)? else {
        return Ok(None);
    };
    let header = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
    let locked = mode == Looker::Locked;
    let case = classify_header(header, manifest.expected(), locked, || {
        has_record_of(wal, path, manifest.salt, ReadConfig::of(core.opts()))
    })?;
    let repair_allowed = locked && !core.is_read_only();
    match case {
        HeaderCase::Current | HeaderCase::LaggingWithRecords => {}
        HeaderCase::LaggingEmpty => {
            if repair_allowed {
                repair_header(core, &manifest)?;
            }
            return Ok(Some(empty_log_version(&manifest, runs)));
        }
        HeaderCase::NewerInFlight => return Ok(None),
        HeaderCase::NewerThanManifest => {
            return Err(Error::corruption(
                path,
                0,
                "WAL generation is newer than the MANIFEST",
            ))
        }
        HeaderCase::Disagrees => {
            return Err(Error::corruption(
                path,
                0,
                "WAL header disagrees with the MANIFEST",
            ))
        }
        HeaderCase::Unsupported(found) => {
            return Err(Error::UnsupportedFormat {
                file: path.to_path_buf(),
                found,
                supported: crate::format::FORMAT_VERSION,
            })
        }
    }
    let (version, end) = load_log(core, empty_log_version(&manifest, runs))?;
    if mode == Looker::Unlocked {
        let again = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
        if again != header {
            return Ok(None);
        }
    }
    settle_tail(core, &version, &end, mode, true)?;
    if case == HeaderCase::LaggingWithRecords && repair_allowed {
        // Only now that the log checked out: a damaged store is never modified (H3).
        repair_header(core, &manifest)?;
    }
    Ok(Some(version))
}

/// The manifest, or `None` when it is missing to a reader without the lock (a checkpoint in
/// another process is between its unlink and rename). In salvage mode a damaged manifest is
/// replaced by what the WAL header says (RECOVERY.md O5).
fn read_manifest(core: &Core, mode: Looker) -> Result<Option<Manifest>> {
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    match Manifest::read(core.storage(), core.dir()) {
        Ok(Some(m)) => Ok(Some(m)),
        Ok(None) if mode == Looker::Unlocked => Ok(None),
        Ok(None) => Err(Error::corruption(
            core.dir().join(MANIFEST_NAME),
            0,
            "MANIFEST is missing",
        )),
        Err(e) if salvage && e.is_corruption() => {
            manifest_from_wal_header(core.wal().file(), core.wal().path()).map(Some)
        }
        Err(e) => Err(e),
    }
}

/// The version of `manifest`'s generation before any of its log is read.
fn empty_log_version(manifest: &Manifest, runs: Vec<Arc<SegmentSet>>) -> Version {
    Version {
        generation: manifest.generation,
        salt: manifest.salt,
        base_txn: manifest.base_txn,
        last_txn: manifest.base_txn,
        wal_end: WAL_HEADER_BYTES,
        synced_through: 0,
        data_end: WAL_HEADER_BYTES,
        runs,
        mem: Default::default(),
        mem_deletes: Default::default(),
        layers: Vec::new(),
    }
}

/// Reads the whole log of `version`'s generation into it: gather every write, then build the
/// memtable from them in key order (inserting a sorted run into the persistent map is several
/// times faster than inserting in log order, which for random keys misses the cache at every
/// level).
fn load_log(core: &Core, mut version: Version) -> Result<(Version, ScanEnd)> {
    let path = core.wal().path();
    let mut writes: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    let end = scan(
        core.wal().file(),
        u64::MAX,
        WAL_HEADER_BYTES,
        version.salt,
        version.base_txn + 1,
        ReadConfig::of(core.opts()),
        |t| {
            if !t.writes.is_empty() || !t.deletes.is_empty() {
                version.data_end = t.end;
            }
            if !t.deletes.is_empty() {
                // Order matters across keys now: apply what came before, then the ranges.
                add_in_log_order(&mut version, std::mem::take(&mut writes));
                version.apply_range_deletes(&t.deletes);
            }
            writes.extend(t.writes);
            version.last_txn = t.txn_id;
            version.wal_end = t.end;
        },
    )
    .map_err(|e| Error::io("read", path, e))?;
    add_in_log_order(&mut version, writes);
    version.synced_through = end.synced_through;
    Ok((version, end))
}

/// Writes the WAL header of `manifest`'s generation over one that names another generation
/// or does not decode (RECOVERY.md H2, H3). Rewriting a header that is already wrong cannot
/// lose anything: torn again, it is again a header that recovery rebuilds from the manifest.
fn repair_header(core: &Core, manifest: &Manifest) -> Result<()> {
    // The checkpoint that renamed this manifest into place may have failed before its
    // directory fsync: make the rename durable before the WAL header depends on it, or a
    // crash could bring back the old manifest under a newer WAL.
    core.sync_store_dir()?;
    core.wal().reset_header(&manifest.wal_header(), false)
}

/// Adds writes in log order to `version`'s memtable (built in key order when it is empty).
fn add_in_log_order(version: &mut Version, writes: Vec<(Bytes, Option<Bytes>)>) {
    if version.mem.is_empty() {
        version.mem = memtable_from_log_order(writes);
    } else {
        version.apply(writes);
    }
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
            runs: Vec::new(),
        }),
        Err(e) => Err(Error::corruption(
            path,
            0,
            format!("manifest and WAL header both unusable: {e}"),
        )),
    }
}

/// Maps the manifest's runs, reusing the files this handle already has mapped.
fn load_runs(
    core: &Core,
    manifest: &Manifest,
    mode: Looker,
    salvage: bool,
) -> Result<Option<Vec<Arc<SegmentSet>>>> {
    let cur = core.current();
    let known = crate::version::mapped_files(&cur.runs);
    let faults = core.opts().faults.range_seek_one_entry_early();
    let mut runs = Vec::with_capacity(manifest.runs.len());
    for metas in &manifest.runs {
        let (mut segments, mut kept) = (Vec::new(), Vec::new());
        for meta in metas {
            if let Some(seg) = known.get(&meta.file_id) {
                segments.push(Arc::clone(seg));
                kept.push(meta.clone());
                continue;
            }
            match Segment::open(core.storage(), core.dir(), meta) {
                Ok(seg) => {
                    segments.push(Arc::new(seg));
                    kept.push(meta.clone());
                }
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && mode == Looker::Unlocked =>
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
        if !segments.is_empty() {
            runs.push(Arc::new(SegmentSet::new(segments, kept, faults)));
        }
    }
    Ok(Some(runs))
}

/// Whether an intact record of generation `salt` lies anywhere after the header. Records of
/// a generation are written only after its header is durable, so one proves the header had
/// been; the whole log is searched because the first record may be damaged as well (found
/// by the recovery fuzz target).
fn has_record_of(wal: &dyn StorageFile, path: &Path, salt: u64, cfg: ReadConfig) -> Result<bool> {
    let len = wal.len().map_err(|e| Error::io("stat", path, e))?;
    let mut found = false;
    search_records_of(wal, len, salt, WAL_HEADER_BYTES, cfg, |_, probe| {
        found = matches!(probe, Probe::Record(rec) if rec.salt == salt);
        !found
    })
    .map_err(|e| Error::io("read", path, e))?;
    Ok(found)
}

/// Decides what the end of the log means (RECOVERY.md L1-L5, [`classify_tail_case`]) and
/// acts on it: report corruption, or (holding the lock) zero and sync a torn tail so nothing
/// appended later can join it.
fn settle_tail(
    core: &Core,
    version: &Version,
    end: &ScanEnd,
    mode: Looker,
    whole_log: bool,
) -> Result<()> {
    let wal = core.wal().file();
    let path = core.wal().path();
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    let look = TailLook {
        looker: mode,
        whole_log,
        writable: !core.is_read_only(),
        salvage,
    };
    let mut seen = None;
    let case = classify_tail_case(&end.stop, look, || {
        let limit = wal.len().map_err(|e| Error::io("stat", path, e))?;
        let class = classify_tail(
            wal,
            limit,
            version.salt,
            version.last_txn + 1,
            end.stop.offset(),
            ReadConfig::of(core.opts()),
        )
        .map_err(|e| Error::io("read", path, e))?;
        seen = Some((limit, class.dirty_end));
        Ok::<_, Error>(match class.corruption {
            Some(_) if core.opts().faults.mid_log_damage_is_torn_tail() => PastEnd::Unproven,
            Some((offset, detail)) => PastEnd::Proven { offset, detail },
            None => PastEnd::Unproven,
        })
    })?;
    match case {
        TailCase::DurableDamage { offset, detail } => Err(Error::corruption(path, offset, detail)),
        TailCase::TornTail { repair: true } => {
            let Some((limit, dirty_end)) = seen else {
                unreachable!("a torn tail is classified only after the look past the end")
            };
            let zero_to = dirty_end
                .max(end.stop.offset() + 1)
                .next_multiple_of(4096)
                .min(limit);
            core.wal().zero_torn_tail(version.wal_end, zero_to)
        }
        TailCase::NotExamined
        | TailCase::CleanEnd
        | TailCase::OlderGeneration
        | TailCase::TornTail { repair: false }
        | TailCase::SalvagedDamage => Ok(()),
    }
}
