//! The full load of a generation from the files: the manifest and its runs (through
//! `runs/`), the WAL header checked against the manifest (RECOVERY.md H1-H4, repaired by a
//! writer), then the whole log read into the memtable. An open, and a catch-up that finds a
//! new generation, load this way.
//!
//! Invariant: without the writer lock nothing here writes; without final authority a
//! verdict of corruption is confirmed under the lock (or after waiting) before it is reported.

use crate::cases::{classify_header, Authority, HeaderCase};
use crate::core::{Access, Core, WriterGuard};
use crate::error::{Error, Result};
use crate::indexed;
use crate::manifest::Manifest;
use crate::run::SegmentSet;
use crate::runs;
use crate::tail::settle_tail;
use crate::value::Bytes;
use crate::version::{Memtable, Version};

use crate::wal::scan::{has_record_of, scan, ReadConfig, ScanEnd, ScannedTxn};
use crate::wal::WalHeader;
use std::sync::Arc;

/// How many times an unlocked load retries when a concurrent checkpoint changes the files
/// under it before it loads under the writer lock instead.
const UNLOCKED_ATTEMPTS: usize = 64;
/// How many 10 ms waits a read-only handle (which cannot take the lock) then makes.
const READ_ONLY_WAITS: usize = 100;

/// Loads the newest state from the manifest, the snapshot files and the WAL.
pub(crate) fn reload(core: &Core, access: Access<'_>) -> Result<Arc<Version>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = match try_reload(core, access) {
            // Without the lock, a writer in another process may have appended between the
            // scan and the look past its end: only a verdict under the lock is final
            // (RECOVERY.md L5).
            Err(e) if e.is_corruption() && access.authority() != Authority::Final => {
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
    core.with_writer(core.opts().lock_wait, |guard| {
        try_reload(core, Access::Writer(guard))?
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
        if let Some(v) = try_reload(core, Access::Reader)? {
            return Ok(Arc::new(v));
        }
    }
    try_reload(core, Access::ReadOnlyFinal)?
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
fn try_reload(core: &Core, access: Access<'_>) -> Result<Option<Version>> {
    let wal = core.wal().file();
    let path = core.wal().path();
    let Some(manifest) = runs::read(core, access)? else {
        return Ok(None);
    };
    let Some(runs) = runs::map(core, &manifest, &core.current().runs, access)? else {
        return Ok(None);
    };
    let header = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
    let is_final = access.authority() == Authority::Final;
    let case = classify_header(header, manifest.expected(), is_final, || {
        has_record_of(wal, path, manifest.salt, ReadConfig::of(core.opts()))
    })?;
    // Only a writer repairs, and only a read-write one.
    let repairer = match access {
        Access::Writer(guard) if !core.is_read_only() => Some(guard),
        _ => None,
    };
    match case {
        HeaderCase::Current => {
            // The writer's first append learns the log's layout from here, not from a read
            // of its own (a one-shot process reads the header once).
            if let Ok(h) = header {
                core.wal().note_header(&h);
            }
        }
        HeaderCase::LaggingWithRecords => {}
        HeaderCase::LaggingEmpty => {
            if let Some(guard) = repairer {
                repair_header(core, guard, &manifest)?;
            }
            return Ok(Some(start_of(&manifest, runs)));
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
                supported: crate::wal::WAL_VERSION,
            })
        }
    }
    let (version, end) = load_log(core, access, start_of(&manifest, runs))?;
    if access.authority() == Authority::Reader {
        let again = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
        if again != header {
            return Ok(None);
        }
    }
    // Joining live handles at the end their commit index names, the end is known: no look
    // past it (RECOVERY.md "Log index").
    let known_end = matches!(access, Access::Open) && core.ends_where_index_says(&version);
    let look = if known_end { Access::Reader } else { access };
    settle_tail(core, &version, &end, look, true)?;
    if let (HeaderCase::LaggingWithRecords, Some(guard)) = (case, repairer) {
        // Only now that the log checked out: a damaged store is never modified (H3).
        repair_header(core, guard, &manifest)?;
    }
    Ok(Some(version))
}

/// Reads the whole log of `version`'s generation into it: gather every write, then build the
/// memtable from them in key order (inserting a sorted run into the persistent map is several
/// times faster than inserting in log order, which for random keys misses the cache at every
/// level).
fn load_log(core: &Core, access: Access<'_>, version: Version) -> Result<(Version, ScanEnd)> {
    // The log index (FORMAT.md §9) holds the log up to its coverage: only the rest is read.
    // A writer, or a handle that opened the store alone, adds what it reads to it.
    let build = match access {
        Access::Writer(_) => true,
        Access::Open => core.is_building_alone(),
        _ => false,
    };
    let opening_alone = build && matches!(access, Access::Open);
    let existing = core.log_index_for(version.generation, version.salt, false);
    let version = match &existing {
        Some(ix) => match indexed::version_at(ix, &version, ix.covered())? {
            Some(v) => v,
            None => return load_log_privately(core, version),
        },
        None if build && core.index().is_some() => version,
        None => return load_log_privately(core, version),
    };
    if !build {
        return load_log_privately(core, version);
    }
    let rest = scan_rest(core, &version, opening_alone)?;
    let has_data = rest
        .txns
        .iter()
        .any(|t| !t.writes.is_empty() || !t.deletes.is_empty());
    // An index is made only for data: an empty log, or clean markers only, is what a one-shot
    // process finds after a clean close, and making an index costs a file's removal,
    // creation and allocation, most of what such a process spends on its open. The first
    // commit with data makes one then (`indexed::index_for_commit`).
    let ix = match existing {
        Some(ix) => Some(ix),
        None if has_data => core.log_index_for(version.generation, version.salt, true),
        None => None,
    };
    if let Some(ix) = ix {
        let before = match version.shared {
            Some(_) => Some(version.clone()),
            None => indexed::version_at(&ix, &version, ix.covered())?,
        };
        if let Some(before) = before.filter(|b| b.wal_end == version.wal_end) {
            if indexed::add_scanned(&ix, &before, before.wal_end, &rest.txns) {
                if let Some(mut v) = indexed::version_at(&ix, &before, rest.log_end)? {
                    v.synced_through = v.synced_through.max(rest.synced_through);
                    return Ok((v, rest.scan_end));
                }
            }
        }
    }
    // No data, no index to be had, or the index could not take them (full): this handle's own.
    let mut version = version;
    let mut own = KeptInOrder::default();
    for t in rest.txns {
        own.add(&mut version, t);
    }
    own.finish(&mut version);
    version.synced_through = version.synced_through.max(rest.synced_through);
    Ok((version, rest.scan_end))
}

/// Transactions read in log order into a version's own memtable: their writes gathered and
/// built into it in key order ([`add_in_log_order`]), those before a range deletion applied
/// before it (order matters across keys then).
#[derive(Default)]
struct KeptInOrder {
    writes: Vec<(Bytes, Option<Bytes>)>,
}

impl KeptInOrder {
    /// Takes the next transaction of the log into `version`.
    fn add(&mut self, version: &mut Version, t: ScannedTxn) {
        if !t.writes.is_empty() || !t.deletes.is_empty() {
            version.data_end = t.end;
        }
        if !t.deletes.is_empty() {
            add_in_log_order(version, std::mem::take(&mut self.writes));
            version.apply_range_deletes(&t.deletes);
        }
        self.writes.extend(t.writes);
        version.last_txn = t.txn_id;
        version.wal_end = t.end;
    }

    /// Builds what is still gathered into `version`.
    fn finish(self, version: &mut Version) {
        add_in_log_order(version, self.writes);
    }
}

/// What [`scan_rest`] read of the log.
struct Rest {
    /// The transactions, in log order (without the trailing clean markers it left out).
    txns: Vec<ScannedTxn>,
    /// Where the log ends for this handle: past the last of `txns`.
    log_end: u64,
    /// What the log proves durable, up to `log_end`.
    synced_through: u64,
    /// Where and why the scan stopped (past any markers left out): what the look past the
    /// end starts from.
    scan_end: ScanEnd,
}

/// Reads the log past `version.wal_end`. A handle that opens the store alone (no other
/// handle has it open, so none can write it) leaves out the clean markers that end the log
/// when they prove everything before them durable: the log ends at their start for it, and
/// the open zeroes them under the writer lock before anything else (RECOVERY.md S1,
/// `Core::set_open_markers`). The first commit is then written where they were, and its one
/// `fdatasync` is the only one a one-shot write makes (a marker kept in the log would need a
/// sync of its own before a commit record could vouch for it).
fn scan_rest(core: &Core, version: &Version, opening_alone: bool) -> Result<Rest> {
    let mut txns = Vec::new();
    let scan_end = scan(
        core.wal().file(),
        u64::MAX,
        version.wal_end,
        version.salt,
        version.last_txn + 1,
        ReadConfig::of(core.opts()),
        |t| txns.push(t),
    )
    .map_err(|e| Error::io("read", core.wal().path(), e))?;
    let mut rest = Rest {
        log_end: scan_end.end,
        synced_through: scan_end.synced_through,
        txns,
        scan_end,
    };
    if opening_alone {
        leave_out_markers(core, version, &mut rest);
    }
    Ok(rest)
}

/// [`scan_rest`]'s leaving out of trailing clean markers, when they prove the log durable
/// through their start.
fn leave_out_markers(core: &Core, version: &Version, rest: &mut Rest) {
    let with_data = rest
        .txns
        .iter()
        .rposition(|t| !t.writes.is_empty() || !t.deletes.is_empty())
        .map_or(0, |i| i + 1);
    if with_data == rest.txns.len() {
        return;
    }
    let start = match with_data {
        0 => version.wal_end,
        n => rest.txns[n - 1].end,
    };
    let proof = rest.txns[with_data..]
        .iter()
        .map(|t| t.watermark)
        .max()
        .unwrap_or(0);
    // Markers that do not prove what lies before them durable are left to S1's other cases.
    if proof < start {
        return;
    }
    rest.txns.truncate(with_data);
    if let Some(last) = rest.txns.last_mut() {
        // Its node in the index says what is true: the log is durable through its end (the
        // markers, zeroed next, proved it).
        last.watermark = last.watermark.max(start);
    }
    core.set_open_markers(Some(crate::core::OpenMarkers {
        at: crate::wal::LogPosition::new(version.generation, start),
        end: rest.log_end,
    }));
    rest.log_end = start;
    rest.synced_through = start;
}

/// Reads the log of `version`'s generation past `version.wal_end` into its own memtable.
fn load_log_privately(core: &Core, mut version: Version) -> Result<(Version, ScanEnd)> {
    let path = core.wal().path();
    let mut own = KeptInOrder::default();
    let end = scan(
        core.wal().file(),
        u64::MAX,
        version.wal_end,
        version.salt,
        version.last_txn + 1,
        ReadConfig::of(core.opts()),
        |t| own.add(&mut version, t),
    )
    .map_err(|e| Error::io("read", path, e))?;
    own.finish(&mut version);
    version.synced_through = version.synced_through.max(end.synced_through);
    Ok((version, end))
}

/// Writes the WAL header of `manifest`'s generation over one that names another generation
/// or does not decode (RECOVERY.md H2, H3). Rewriting a header that is already wrong cannot
/// lose anything: torn again, it is again a header that recovery rebuilds from the manifest.
fn repair_header(core: &Core, guard: &WriterGuard, manifest: &Manifest) -> Result<()> {
    core.assert_writer(guard);
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

/// The version of `manifest`'s generation before any of its log is read.
fn start_of(manifest: &Manifest, runs: Vec<Arc<SegmentSet>>) -> Version {
    Version::start_of(manifest.generation, manifest.salt, manifest.base_txn, runs)
}
