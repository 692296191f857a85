//! The change feed: every committed transaction, in commit order, from a transaction id on
//! ([`Changes`]), with the log that checkpoints would reset kept as sealed segments while
//! named consumers need it ([`Retention`]), and the consumers' positions durable in the
//! `FEED` file (FORMAT.md §10, RECOVERY.md "Change feed").
//!
//! Owners: `file.rs` decodes and encodes the `FEED` file; this module is its only writer
//! ([`apply`], edits as data: [`FeedEdit`]) and seals a generation's log before a checkpoint
//! resets it ([`seal`]); `reader.rs` reads the sealed segments and the live log; `api.rs` is
//! the `Store` face.
//!
//! Order of writes when a checkpoint seals (each step durable before the next):
//! 1. the log `[0, end)` copied to `log-<gen>.seg.tmp`, synced, renamed to `log-<gen>.seg`;
//! 2. `FEED` rewritten listing it (and without the segments retention drops), the directory
//!    synced;
//! 3. the checkpoint's manifest switch and WAL reset (checkpoint.rs);
//! 4. dropped segments' files removed.
//!
//! Invariant: a segment listed in `FEED` is durable, whole and named by its final name; a
//! listed segment of the live generation (a crash between steps 2 and 3) is never read:
//! readers read that generation from the WAL.

mod api;
mod apply;
mod file;
mod reader;

pub use crate::format::{
    parse_segment_name, segment_name, APPLY_LOCK_NAME, FEED_NAME, FEED_TMP_NAME,
};
pub use apply::ApplyStats;
pub use file::{FeedState, Retention, Sealed, MAX_CONSUMERS, MAX_CONSUMER_NAME_BYTES};
pub use reader::{Changes, FeedRecord};

use crate::core::{Core, WriterGuard};
use crate::error::{Error, Result};
use crate::storage::OpenMode;
use crate::version::Version;
use std::time::{SystemTime, UNIX_EPOCH};

/// One change to the feed's durable state: the only way it changes ([`apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FeedEdit {
    /// A new consumer, positioned after transaction `after`.
    Register { name: String, after: u64 },
    /// A consumer has processed every transaction through `txn`.
    Ack { name: String, txn: u64 },
    /// A consumer is gone (its retained log may be dropped).
    Unregister { name: String },
    /// A new retention policy.
    SetRetention(Retention),
    /// A generation's log was sealed (its file is durable under its final name).
    Seal(Sealed),
    /// This store (a replica) has applied another store's feed through `txn`.
    Applied { txn: u64 },
}

/// Applies `edit` (under the writer lock): reads `FEED`, changes it, drops what retention
/// no longer keeps, writes it back durably, then removes the files of dropped segments and
/// leftovers. Returns the new state.
pub(crate) fn apply(core: &Core, guard: &WriterGuard, edit: FeedEdit) -> Result<FeedState> {
    core.assert_writer(guard);
    let mut state = FeedState::read(core.storage(), core.dir())?;
    // Leftover segment files can only appear around a seal (a crash before its listing or
    // after a drop): the directory is listed then, not at every acknowledgement.
    let sealing = matches!(edit, FeedEdit::Seal(_));
    change(&mut state, edit)?;
    let dropped = retain(&mut state, now_secs());
    write(core, &state)?;
    if sealing || !dropped.is_empty() {
        remove_unlisted(core, &state, dropped.iter().map(|s| s.generation));
    }
    Ok(state)
}

/// Checks and makes one edit (nothing written yet).
fn change(state: &mut FeedState, edit: FeedEdit) -> Result<()> {
    let invalid = |name: &str, reason: String| Error::InvalidConsumer {
        name: name.to_string(),
        reason,
    };
    match edit {
        FeedEdit::Register { name, after } => {
            file::check_name(&name).map_err(|r| invalid(&name, r))?;
            if state.consumers.contains_key(&name) {
                return Err(invalid(
                    &name,
                    "a consumer of that name is registered".into(),
                ));
            }
            if state.consumers.len() >= MAX_CONSUMERS {
                let reason = format!("a store registers at most {MAX_CONSUMERS} consumers");
                return Err(invalid(&name, reason));
            }
            state.consumers.insert(name, after);
        }
        FeedEdit::Ack { name, txn } => {
            let Some(pos) = state.consumers.get_mut(&name) else {
                return Err(invalid(
                    &name,
                    "no consumer of that name is registered".into(),
                ));
            };
            if txn < *pos {
                let reason = format!("it acknowledged {pos} already; {txn} would move it back");
                return Err(invalid(&name, reason));
            }
            *pos = txn;
        }
        FeedEdit::Unregister { name } => {
            if state.consumers.remove(&name).is_none() {
                return Err(invalid(
                    &name,
                    "no consumer of that name is registered".into(),
                ));
            }
        }
        FeedEdit::SetRetention(retention) => state.retention = retention,
        FeedEdit::Applied { txn } => state.applied = Some(txn),
        FeedEdit::Seal(sealed) => {
            // A generation sealed again (a crash after its first seal, before the
            // checkpoint's switch) replaces its earlier entry.
            state.segments.retain(|s| s.generation < sealed.generation);
            if let Some(last) = state.segments.last() {
                if last.last_txn + 1 != sealed.first_txn {
                    // The log before this generation was dropped: start afresh from here.
                    state.segments.clear();
                }
            }
            state.segments.push(sealed);
        }
    }
    Ok(())
}

/// Drops the segments retention no longer keeps (oldest first, so the rest stay
/// contiguous); returns them.
fn retain(state: &mut FeedState, now: u64) -> Vec<Sealed> {
    let needed_from = state
        .consumers
        .values()
        .map(|p| p.saturating_add(1))
        .min()
        .unwrap_or(u64::MAX);
    let r = state.retention;
    let mut newer_bytes = 0u64;
    let mut keep = 0usize;
    for s in state.segments.iter().rev() {
        let wanted = s.last_txn >= needed_from || newer_bytes < r.keep_bytes;
        let within = newer_bytes.saturating_add(s.bytes) <= r.max_bytes
            && now.saturating_sub(s.sealed_at) <= r.max_age.as_secs();
        if !(wanted && within) {
            break;
        }
        newer_bytes += s.bytes;
        keep += 1;
    }
    let cut = state.segments.len() - keep;
    state.segments.drain(..cut).collect()
}

/// Whether the log of a generation whose last transaction is `last_txn` is to be sealed.
fn wants_seal(state: &FeedState, last_txn: u64) -> bool {
    state.retention.keep_bytes > 0 || state.consumers.values().any(|p| *p < last_txn)
}

/// Writes `state` as the `FEED` file: temporary, sync, rename, directory sync.
fn write(core: &Core, state: &FeedState) -> Result<()> {
    let (storage, dir) = (core.storage(), core.dir());
    let tmp = dir.join(FEED_TMP_NAME);
    let file = storage
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all_at(&state.encode(), 0)
        .map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(file);
    storage
        .rename(&tmp, &dir.join(FEED_NAME))
        .map_err(|e| Error::io("rename", &tmp, e))?;
    core.sync_store_dir()
}

/// Removes the files of `dropped` segments, and segment files `FEED` does not list (a
/// crash before their listing or after their drop). Failures are harmless and ignored: the
/// next seal or drop removes them.
fn remove_unlisted(core: &Core, state: &FeedState, dropped: impl Iterator<Item = u64>) {
    let (storage, dir) = (core.storage(), core.dir());
    for generation in dropped {
        let _ = storage.remove_file(&dir.join(segment_name(generation)));
    }
    let Ok(names) = storage.list_dir(dir) else {
        return;
    };
    let current = core.current().generation;
    for name in names {
        let Some((generation, _)) = parse_segment_name(&name) else {
            continue;
        };
        let listed = state.segments.iter().any(|s| s.generation == generation);
        // The live generation's files may be a seal in progress in this very checkpoint.
        if !listed && generation < current {
            let _ = storage.remove_file(&dir.join(&name));
        }
    }
}

/// Seals the log of `base`'s generation before a checkpoint resets it, if a consumer or
/// the retention policy wants it (steps 1-2 of the module's order). `base` is the newest
/// version, caught up under the writer lock `guard`.
pub(crate) fn seal(core: &Core, guard: &WriterGuard, base: &Version) -> Result<()> {
    let state = FeedState::read(core.storage(), core.dir())?;
    if base.last_txn <= base.base_txn || !wants_seal(&state, base.last_txn) {
        return Ok(());
    }
    let bytes = copy_log(core, base)?;
    let sealed = Sealed {
        generation: base.generation,
        first_txn: base.base_txn + 1,
        last_txn: base.last_txn,
        bytes,
        sealed_at: now_secs(),
    };
    apply(core, guard, FeedEdit::Seal(sealed)).map(|_| ())
}

/// Copies the log of `base`'s generation, `[0, wal_end)`, to its segment: temporary,
/// sync, rename (the directory sync is `FEED`'s). Returns its length.
fn copy_log(core: &Core, base: &Version) -> Result<u64> {
    let (storage, dir) = (core.storage(), core.dir());
    let tmp = dir.join(crate::format::segment_tmp_name(base.generation));
    let out = storage
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(|e| Error::io("create", &tmp, e))?;
    let wal = core.wal();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < base.wal_end {
        let n = (base.wal_end - at).min(buf.len() as u64) as usize;
        let got = wal
            .file()
            .read_full_at(&mut buf[..n], at)
            .map_err(|e| Error::io("read", wal.path(), e))?;
        if got < n {
            return Err(Error::corruption(
                wal.path(),
                at + got as u64,
                "log shorter than its end",
            ));
        }
        out.write_all_at(&buf[..n], at)
            .map_err(|e| Error::io("write", &tmp, e))?;
        at += n as u64;
    }
    if !core.opts().faults.seal_segment_without_sync() {
        out.sync_data()
            .map_err(|e| Error::io("fdatasync", &tmp, e))?;
    }
    drop(out);
    let path = dir.join(segment_name(base.generation));
    storage
        .rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    Ok(base.wal_end)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seg(generation: u64, first: u64, last: u64, bytes: u64, at: u64) -> Sealed {
        Sealed {
            generation,
            first_txn: first,
            last_txn: last,
            bytes,
            sealed_at: at,
        }
    }

    fn three() -> FeedState {
        FeedState {
            segments: vec![
                seg(1, 1, 10, 100, 1000),
                seg(2, 11, 20, 100, 2000),
                seg(3, 21, 30, 100, 3000),
            ],
            ..FeedState::default()
        }
    }

    #[test]
    fn without_consumers_or_keep_bytes_nothing_is_kept() {
        let mut s = three();
        assert_eq!(retain(&mut s, 3000).len(), 3);
        assert!(s.segments.is_empty());
    }

    #[test]
    fn a_consumer_keeps_what_it_has_not_acknowledged_and_no_more() {
        let mut s = three();
        s.consumers.insert("c".into(), 15);
        let dropped = retain(&mut s, 3000);
        assert_eq!(dropped, vec![seg(1, 1, 10, 100, 1000)]);
        assert_eq!(s.segments.len(), 2);
    }

    #[test]
    fn the_bounds_drop_what_a_consumer_still_needs_oldest_first() {
        let mut s = three();
        s.consumers.insert("c".into(), 0);
        s.retention.max_bytes = 250;
        assert_eq!(retain(&mut s, 3000), vec![seg(1, 1, 10, 100, 1000)]);
        let mut s = three();
        s.consumers.insert("c".into(), 0);
        s.retention.max_age = Duration::from_secs(1500);
        assert_eq!(retain(&mut s, 3000).len(), 1);
        assert_eq!(s.segments[0].generation, 2);
    }

    #[test]
    fn keep_bytes_keeps_at_least_that_much_of_the_newest_log() {
        let mut s = three();
        s.retention.keep_bytes = 150;
        retain(&mut s, 3000);
        assert_eq!(
            s.segments.iter().map(|s| s.generation).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn edits_are_checked() {
        let mut s = FeedState::default();
        let reg = |n: &str| FeedEdit::Register {
            name: n.into(),
            after: 5,
        };
        change(&mut s, reg("a")).expect("accepted");
        assert!(change(&mut s, reg("a")).is_err());
        assert!(change(&mut s, reg("")).is_err());
        let ack = |t| FeedEdit::Ack {
            name: "a".into(),
            txn: t,
        };
        change(&mut s, ack(9)).expect("accepted");
        assert!(matches!(
            change(&mut s, ack(8)),
            Err(Error::InvalidConsumer { .. })
        ));
        assert!(change(&mut s, FeedEdit::Unregister { name: "b".into() }).is_err());
    }

    #[test]
    fn a_generation_sealed_again_replaces_its_entry_and_a_gap_starts_afresh() {
        let mut s = three();
        change(&mut s, FeedEdit::Seal(seg(3, 21, 31, 120, 3100))).expect("accepted");
        assert_eq!(s.segments.len(), 3);
        assert_eq!(s.segments[2].last_txn, 31);
        change(&mut s, FeedEdit::Seal(seg(5, 40, 50, 10, 4000))).expect("accepted");
        assert_eq!(s.segments, vec![seg(5, 40, 50, 10, 4000)]);
    }
}
