//! The change feed's face on [`Store`]: reading it, named consumers, the retention policy.

use super::{apply, Changes, FeedEdit, FeedState, Retention};
use crate::catchup::head;
use crate::core::{Core, WriterGuard};
use crate::error::{Error, Result};
use crate::store::Store;
use std::sync::Arc;

impl Store {
    /// The committed transactions after `since_txn` whose changes touch keys under
    /// `prefix`, in commit order, one [`crate::FeedRecord`] each, made by any handle in any
    /// process: only durable ones (a `Buffered` commit once some handle synced it). The
    /// iterator blocks for new commits; `try_next` does not. Transactions before the live
    /// log are read from sealed segments while retention keeps them; an older one is
    /// [`Error::FeedGap`] (GUARANTEES.md "The change feed"). `since_txn` 0 reads from the
    /// first transaction.
    pub fn changes(&self, prefix: &[u8], since_txn: u64) -> Result<Changes> {
        self.core().check_usable(false)?;
        Ok(Changes::new(Arc::clone(self.core()), prefix, since_txn))
    }

    /// The changes under `prefix` after consumer `name`'s last acknowledged transaction.
    pub fn consumer_changes(&self, name: &str, prefix: &[u8]) -> Result<Changes> {
        let Some(after) = self.consumer(name)? else {
            return Err(unknown(name));
        };
        self.changes(prefix, after)
    }

    /// Registers consumer `name`, positioned after the newest committed transaction (it
    /// reads what commits from now on); returns that transaction's id. While it has not
    /// acknowledged a transaction, checkpoints keep the log holding it (within the
    /// retention bounds). The position survives restarts of the consumer and the store.
    pub fn register_consumer(&self, name: &str) -> Result<u64> {
        self.feed_edit(|core, guard| {
            let after = head(core, guard)?.last_txn;
            apply(
                core,
                guard,
                FeedEdit::Register {
                    name: name.into(),
                    after,
                },
            )?;
            Ok(after)
        })
    }

    /// Registers consumer `name` positioned after transaction `after_txn`, which must still
    /// be readable: [`Error::FeedGap`] otherwise.
    pub fn register_consumer_at(&self, name: &str, after_txn: u64) -> Result<()> {
        self.feed_edit(|core, guard| {
            let base = head(core, guard)?;
            let state = FeedState::read(core.storage(), core.dir())?;
            let oldest = oldest_readable(&state, base.generation, base.base_txn);
            if after_txn.saturating_add(1) < oldest {
                return Err(Error::FeedGap {
                    wanted: after_txn + 1,
                    oldest,
                });
            }
            let edit = FeedEdit::Register {
                name: name.into(),
                after: after_txn,
            };
            apply(core, guard, edit).map(|_| ())
        })
    }

    /// Records that consumer `name` has processed every transaction through `txn`: the next
    /// [`Store::consumer_changes`] resumes after it, and the log before it may be dropped.
    /// Durable when it returns, and so is every transaction through `txn` (the log is synced
    /// first if it must be). A position never moves back, nor past the newest commit.
    pub fn ack(&self, name: &str, txn: u64) -> Result<()> {
        self.feed_edit(|core, guard| {
            let base = head(core, guard)?;
            let last = base.last_txn;
            if txn > last {
                return Err(Error::InvalidConsumer {
                    name: name.into(),
                    reason: format!("transaction {txn} is not committed (the last is {last})"),
                });
            }
            // A position past the durable log could outlive the transactions it names (a
            // Buffered commit lost in a power cut): the log is made durable through the
            // head first (no sync when it already is).
            let end = crate::wal::LogPosition::new(base.generation, base.wal_end);
            if !core.opts().faults.ack_without_log_sync() {
                core.wal().sync_caught_up(end)?;
            }
            let edit = FeedEdit::Ack {
                name: name.into(),
                txn,
            };
            apply(core, guard, edit).map(|_| ())
        })
    }

    /// Removes consumer `name`: the log kept only for it is dropped at the next checkpoint.
    pub fn unregister_consumer(&self, name: &str) -> Result<()> {
        self.feed_edit(|core, guard| {
            apply(core, guard, FeedEdit::Unregister { name: name.into() }).map(|_| ())
        })
    }

    /// Consumer `name`'s last acknowledged transaction, if it is registered.
    pub fn consumer(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.feed_state()?.consumers.get(name).copied())
    }

    /// Sets the store's retention policy (kept in the store, for every process).
    pub fn set_retention(&self, retention: Retention) -> Result<()> {
        self.feed_edit(|core, guard| {
            apply(core, guard, FeedEdit::SetRetention(retention)).map(|_| ())
        })
    }

    /// The feed's durable state: retention policy, consumers, sealed segments.
    pub fn feed_state(&self) -> Result<FeedState> {
        self.core().check_usable(false)?;
        FeedState::read(self.core().storage(), self.core().dir())
    }

    /// Runs a feed edit under the writer lock.
    fn feed_edit<T>(&self, f: impl FnOnce(&Core, &WriterGuard) -> Result<T>) -> Result<T> {
        let core = self.core();
        core.check_usable(true)?;
        core.with_writer(core.opts().lock_wait, |guard| f(core, guard))
    }
}

/// The oldest transaction the feed can still read: the first of the oldest sealed segment
/// contiguous with the live log, else the live log's first.
fn oldest_readable(state: &FeedState, generation: u64, base_txn: u64) -> u64 {
    let mut oldest = base_txn + 1;
    for s in state
        .segments
        .iter()
        .rev()
        .filter(|s| s.generation < generation)
    {
        if s.last_txn + 1 != oldest {
            break;
        }
        oldest = s.first_txn;
    }
    oldest
}

fn unknown(name: &str) -> Error {
    Error::InvalidConsumer {
        name: name.into(),
        reason: "no consumer of that name is registered".into(),
    }
}
