//! A replica kept by another store's change feed: [`Store::apply_changes`].
//!
//! A batch of records is applied as one transaction (durable when it returns), then the
//! source transaction it reached is recorded in `FEED` (`applied`). A record at or below the
//! recorded position is skipped, so a stream replayed from an earlier point changes nothing.
//! A crash between the two steps leaves the batch applied and the position before it: the
//! next apply applies the batch again, as one transaction, over a state that already holds
//! it. Every write of a record is a blind write (a value, a delete, a range deletion), so the
//! batch maps that state to itself: readers of the replica never see an intermediate state.
//! One applier at a time: the `APPLY` lock file serializes them, across processes, from the
//! read of the position to its write.

use super::{apply as apply_edit, FeedEdit, FeedRecord, FeedState};
use crate::error::{Error, Result};
use crate::format::APPLY_LOCK_NAME;
use crate::options::Durability;
use crate::store::Store;

/// What [`Store::apply_changes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyStats {
    /// Records applied.
    pub applied: u64,
    /// Records skipped (at or below the replica's position).
    pub skipped: u64,
    /// The source transaction the replica has applied through.
    pub position: u64,
}

impl Store {
    /// Applies records of another store's change feed ([`Store::changes`]) to this store, a
    /// replica of it: the records above the replica's position, in one transaction, durable
    /// when this returns; then the new position is recorded. Records at or below the
    /// position (or at or below one before it in the batch) are skipped, so applying a stream
    /// twice changes nothing. Records come in the source's commit order.
    pub fn apply_changes(
        &self,
        records: impl IntoIterator<Item = FeedRecord>,
    ) -> Result<ApplyStats> {
        let core = self.core();
        core.check_usable(true)?;
        let path = core.dir().join(APPLY_LOCK_NAME);
        let lock = core
            .storage()
            .open_lock(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        lock.lock().map_err(|e| Error::io("lock", &path, e))?;
        let result = self.apply_locked(records);
        let _ = lock.unlock();
        result
    }

    /// The source transaction this store (a replica) has applied through: the recorded
    /// position, or, before any apply, this store's own last transaction (0 for a new
    /// store; the source's transaction id for a backup of the source).
    pub fn applied_position(&self) -> Result<u64> {
        let core = self.core();
        match FeedState::read(core.storage(), core.dir())?.applied {
            Some(txn) => Ok(txn),
            None => Ok(self.begin_read()?.txn_id()),
        }
    }

    fn apply_locked(&self, records: impl IntoIterator<Item = FeedRecord>) -> Result<ApplyStats> {
        let mut stats = ApplyStats {
            position: self.applied_position()?,
            ..Default::default()
        };
        let mut tx = self.begin_write()?;
        tx.set_durability(Durability::Immediate);
        for record in records {
            if record.txn_id <= stats.position {
                stats.skipped += 1;
                continue;
            }
            for (start, end) in &record.range_deletes {
                match end {
                    Some(end) => tx.delete_range(&start[..]..&end[..])?,
                    None => tx.delete_range(&start[..]..)?,
                }
            }
            for (key, value) in &record.writes {
                match value {
                    Some(value) => tx.put(key, value)?,
                    None => tx.delete(key)?,
                }
            }
            stats.position = record.txn_id;
            stats.applied += 1;
        }
        if stats.applied == 0 {
            tx.abort();
            return Ok(stats);
        }
        tx.commit()?;
        let core = self.core();
        let txn = stats.position;
        core.with_writer(core.opts().lock_wait, |guard| {
            apply_edit(core, guard, FeedEdit::Applied { txn })
        })?;
        Ok(stats)
    }
}
