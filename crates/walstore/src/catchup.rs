//! Catching up with the files: the cheap catch-up every transaction begins with. A writer
//! catches up to the head ([`head`]), a reader to the view the commit index shows
//! ([`readers_view`]); both fall back to the full load of `load.rs` when the generation
//! changed.
//!
//! - From the files, a catch-up reads the WAL header, scans from where this handle stopped,
//!   and reads the header again. Without news that is three small reads.
//! - Under the writer lock the end of the log is authoritative: a torn tail is zeroed and
//!   synced before anything is appended (`tail.rs`), damage to synced bytes is reported.
//!
//! Invariant: without the writer lock nothing here writes; a verdict of corruption reached
//! without the lock is confirmed under it before it is reported.

use crate::core::{head_of, Access, Core, WriterGuard};
use crate::error::{Error, Result};
use crate::indexed;
use crate::load::reload;
use crate::tail::settle_tail;
use crate::version::Version;
use crate::wal::scan::{scan, ReadConfig, ScannedTxn};
use crate::wal::{LogPosition, WalHeader};
use std::sync::Arc;

/// How many times an unlocked reader retries when a concurrent checkpoint changes the files
/// under it before it reads the files instead.
const UNLOCKED_ATTEMPTS: usize = 64;

/// Catches up, under the writer lock, with commits and checkpoints made since this handle
/// last looked (by any process); returns the head: every transaction written, which the
/// next commit builds on. Nothing to read when the previous holder of the lock left the log
/// as the commit index describes this handle's head.
pub(crate) fn head(core: &Core, guard: &WriterGuard) -> Result<Arc<Version>> {
    let head = head_as_found(core, guard)?;
    // Transactions past what this handle answers for (its own appends, its open's recovery)
    // are other handles'. A reader's catch-up may have taken them in without the lock
    // (through the commit index or the log index): they are vouched for before anything is
    // appended after them, as a catch-up under the lock does (S1b; the crash harness's
    // finding I, `read-then-commit`). Nothing to do when this handle knows them durable.
    let skip = core.opts().faults.vouch_only_after_scan();
    if head.position() > core.vouched_end() && !skip {
        vouch_for_caught_up(core, guard, &head)?;
        core.vouched_through(head.position());
    }
    Ok(head)
}

/// [`head`] before the vouching.
fn head_as_found(core: &Core, guard: &WriterGuard) -> Result<Arc<Version>> {
    let Some(index) = core.index() else {
        return refresh_files(core, Access::Writer(guard));
    };
    if core.lock_found_clean(guard) {
        if let Ok(state) = index.read() {
            let head = core.current();
            if state.describes(&head_of(&head)) {
                return Ok(head); // nothing changed since this handle's last look: no I/O
            }
        }
    }
    let head = refresh_files(core, Access::Writer(guard))?;
    if !index
        .read()
        .is_ok_and(|state| state.describes(&head_of(&head)))
    {
        // Another handle's transactions it did not publish (it died between its write and
        // the index), or a damaged index: the files are the truth under the lock.
        let durable = core.wal().durable_end() >= head.position();
        index.set_head(head_of(&head), durable);
    }
    Ok(head)
}

/// The readers' view, without the writer lock. With a commit index: every transaction
/// shown (durable, or `Buffered`: FORMAT.md §8); nothing changed since this handle last
/// looked (the index's change counter says so): no system call. Otherwise the view at the
/// index's visible end: a version this handle already has (its own commits), or one read
/// from the log up to there (never further: a commit another process has written but not
/// synced yet is not shown). Without an index: the head, from the files.
pub(crate) fn readers_view(core: &Core) -> Result<Arc<Version>> {
    let Some(index) = core.index() else {
        return refresh_files(core, Access::Reader);
    };
    let counter = index.counter();
    if counter.wrapping_add(1) == core.views().seen() {
        return Ok(core.visible());
    }
    for _ in 0..UNLOCKED_ATTEMPTS {
        let Ok(state) = index.read() else {
            // A damaged index, or a writer killed while it updated it: the files say what is
            // written, and the next writer repairs the index (RECOVERY.md I4).
            return refresh_files(core, Access::Reader);
        };
        let at = LogPosition::new(state.generation, state.visible_end());
        if let Some(v) = view_at(core, at)? {
            core.views().show(&v, counter);
            return Ok(core.visible());
        }
        // The files moved on (a checkpoint) between the index and the log: look again.
        std::thread::yield_now();
    }
    refresh_files(core, Access::Reader)
}

/// The version at log position `at`: one this handle has, or read from the log of `at`'s
/// generation up to `at`. `None` when the files no longer hold that position (another
/// generation started meanwhile).
pub(crate) fn view_at(core: &Core, at: LogPosition) -> Result<Option<Arc<Version>>> {
    if let Some(v) = core.views().known_at(at) {
        return Ok(Some(v));
    }
    let base = match core.views().known_before(at) {
        Some(base) => base,
        None => {
            // A generation this handle has not loaded: load it, then go back to `at` if the
            // log already holds more.
            let head = refresh_files(core, Access::Reader)?;
            let p = head.position();
            if p == at {
                return Ok(Some(head));
            }
            if p.generation != at.generation || p < at {
                return Ok(None);
            }
            Arc::new(Version::start_of(
                head.generation,
                head.salt,
                head.base_txn,
                head.runs.clone(),
            ))
        }
    };
    // The log index holds other processes' commits: no log to read.
    if let Some(ix) = core.log_index_for(base.generation, base.salt, false) {
        if let Some(v) = indexed::version_at(&ix, &base, at.offset)? {
            let v = Arc::new(v);
            core.publish(Arc::clone(&v));
            return Ok(Some(v));
        }
    }
    let mut next = Version::clone(&base);
    scan(
        core.wal().file(),
        at.offset,
        base.wal_end,
        base.salt,
        base.last_txn + 1,
        ReadConfig::of(core.opts()),
        |t| apply_scanned(&mut next, t),
    )
    .map_err(|e| Error::io("read", core.wal().path(), e))?;
    if next.wal_end != at.offset {
        return Ok(None);
    }
    let next = Arc::new(next);
    core.publish(Arc::clone(&next));
    Ok(Some(next))
}

/// Adds one scanned transaction to `next`'s own memtable.
fn apply_scanned(next: &mut Version, t: ScannedTxn) {
    next.apply_txn(&t.deletes, t.writes, t.txn_id, t.end);
}

/// Catches up from the files: the WAL header, the log from where this handle stopped, the
/// header again. Returns the head.
fn refresh_files(core: &Core, access: Access<'_>) -> Result<Arc<Version>> {
    let _g = core.refresh_lock();
    let cur = core.current();
    let wal = core.wal().file();
    let path = core.wal().path();
    let h1 = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
    let same_generation =
        matches!(h1, Ok(h) if h.generation == cur.generation && h.salt == cur.salt);
    if !same_generation {
        let loaded = reload(core, access)?;
        if let Access::Writer(guard) = access {
            // The new generation's log holds another handle's transactions: as below (S1b),
            // and just as much after a reload (issue 23's reload-path question: without this
            // sync a bit flip in them silently dropped this writer's next acknowledged
            // commit; `tests/a_writer_vouches_for_what_it_caught_up_on.rs`).
            vouch_for_caught_up(core, guard, &loaded)?;
        }
        core.publish(loaded);
        return Ok(core.current());
    }
    let writer = matches!(access, Access::Writer(_));
    let (next, end, news, txns) = scan_from(core, &cur, writer)?;
    let next = if let Access::Writer(guard) = access {
        settle_tail(core, &next, &end, access, false)?;
        if news {
            vouch_for_caught_up(core, guard, &next)?;
        }
        // What another writer appended (or a killed one did not finish adding) goes into
        // the log index, which then serves the new head.
        if let Some(ix) = core.log_index_for(next.generation, next.salt, false) {
            if cur.private_is_empty() {
                indexed::add_scanned(&ix, &cur, cur.wal_end, &txns);
            }
        }
        indexed::prefer_index(core.log_index(), next)?
    } else {
        let h2 = WalHeader::read(wal).map_err(|e| Error::io("read", path, e))?;
        if h2 != h1 {
            core.publish(reload(core, access)?);
            return Ok(core.current());
        }
        indexed::prefer_index(core.log_index(), next)?
    };
    if news {
        core.publish(Arc::new(next));
        return Ok(core.current());
    }
    Ok(cur)
}

/// Another handle's transactions, perhaps acknowledged Immediate commits, that no watermark
/// proves durable: made durable before anything is appended after them, so this handle's
/// next watermark vouches for them (RECOVERY.md S1b; found by the crash harness with two
/// handles: a bit flip in one handle's synced commit silently lost it and the other's next
/// one). Nothing to do when the log holds nothing past its proven end.
fn vouch_for_caught_up(core: &Core, guard: &WriterGuard, head: &Version) -> Result<()> {
    core.assert_writer(guard);
    // The broken variant leaves the caught-up bytes unsynced here and before its clean
    // marker (`EngineFaults::clean_marker_without_sync`).
    let skip = core.opts().faults.clean_marker_without_sync();
    if head.wal_end > head.proven_end() && !skip {
        core.wal().sync_caught_up(head.position())?;
    }
    Ok(())
}

/// `cur` with the transactions the log holds past its end; whether there were any, and,
/// with `keep` (a writer adds them to the log index), the transactions.
#[allow(clippy::type_complexity)]
fn scan_from(
    core: &Core,
    cur: &Version,
    keep: bool,
) -> Result<(Version, crate::wal::scan::ScanEnd, bool, Vec<ScannedTxn>)> {
    // No fstat here: querying the WAL's timestamps makes the kernel give the next write a
    // fine-grained mtime, which makes every commit's fdatasync ~50% slower (measured with
    // examples/commit_floor.rs). Reads stop at the end of the file by themselves.
    let limit = u64::MAX;
    let mut next = Version::clone(cur);
    let mut news = false;
    let mut txns = Vec::new();
    let end = scan(
        core.wal().file(),
        limit,
        cur.wal_end,
        cur.salt,
        cur.last_txn + 1,
        ReadConfig::of(core.opts()),
        |t| {
            if keep {
                txns.push(t.clone());
            }
            apply_scanned(&mut next, t);
            news = true;
        },
    )
    .map_err(|e| Error::io("read", core.wal().path(), e))?;
    next.synced_through = next.synced_through.max(end.synced_through);
    Ok((next, end, news, txns))
}
