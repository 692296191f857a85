//! Reads by the other handle and by another thread, checked against what the engine promises
//! about visibility (GUARANTEES.md, "Readers see a commit once it is durable"; invariant 12):
//! - at `Step::Read` (`Other(Read)` right after a commit of the first handle: the other
//!   handle reads) the handle reads the state after every acknowledged commit (a Buffered
//!   commit is visible once written, an Immediate one once its sync returned, both before
//!   `commit` returns); checked while no fault fired since every handle last closed the store
//!   (a fault leaves commits undecided);
//! - what a handle reads never moves back: a commit it saw stays visible to it;
//! - while the first thread's WAL sync of a concurrent pair is held in progress, neither the
//!   other handle nor another read of the same handle sees that thread's Immediate commit.
//!
//! Reads are steps of their own, not made after every commit: a read catches a handle up,
//! which changes what it does next (finding I in docs/CRASHTEST.md).

use super::Driver;
use crate::engine::{guarded, read_state, Handle};
use crate::oracle::{Invariant, State, Violation};
use crate::simfs::SimFs;
use crate::workload::serial_of;
use std::sync::Arc;

/// A read made while a WAL sync was held in progress: which handle, and what it saw.
pub(super) type HeldRead = (&'static str, State);

impl Driver<'_> {
    /// `Step::Read`: the running handle reads (`Other(Read)`: the second handle, right after
    /// the first one's commit). It must see every acknowledged commit, and never less than
    /// it saw before.
    pub(super) fn read_step(&mut self) -> Result<(), Violation> {
        let who = format!("handle {}", self.history.current_handle);
        self.fs.set_phase(format!("read on {who}"));
        if self.may_fail() || !self.history.is_certain() {
            return Ok(());
        }
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let state = read_state(&*store).map_err(|e| {
            Violation::new(
                Invariant::ReadsAgree,
                format!("{who} could not read"),
                "a readable store",
                e.to_string(),
            )
        })?;
        let exp = self.history.expectation(self.fs.op_count(), "read");
        let k = exp.judge(&state, exp.lo_kill).map_err(|v| {
            Violation::new(
                Invariant::ReadsAgree,
                format!("{who} did not read every acknowledged commit: {}", v.detail),
                v.expected,
                v.actual,
            )
        })?;
        let seen = self.history.commit_count_at(k);
        if seen < self.reads_seen {
            return Err(Violation::new(
                Invariant::ReadsAgree,
                format!("what {who} reads moved back"),
                format!(
                    "the first {} commit attempts visible, as read before",
                    self.reads_seen
                ),
                format!("only the first {seen}"),
            ));
        }
        self.reads_seen = seen;
        Ok(())
    }

    /// The stores a thread may read from while the running handle's sync is held: this
    /// handle's and the other one's.
    pub(super) fn readers(&self) -> Vec<(&'static str, Arc<dyn Handle>)> {
        let this = self
            .store
            .clone()
            .map(|s| ("another thread of its handle", s));
        let other = self.other.store().map(|s| ("the other handle", s));
        this.into_iter().chain(other).collect()
    }
}

/// Reads every store of `readers` while the WAL sync `fs` holds is in progress; keeps the
/// reads that finished before it was released.
pub(super) fn read_while_held(
    fs: &SimFs,
    readers: &[(&'static str, Arc<dyn Handle>)],
) -> Vec<HeldRead> {
    let mut out = Vec::new();
    for (who, store) in readers {
        if let Ok(Ok(state)) = guarded(|| read_state(&**store)) {
            if fs.sync_held() {
                out.push((*who, state));
            }
        }
    }
    out
}

/// A commit `serial` asked Immediate must not be visible in any read made while its
/// thread's WAL sync was held in progress.
pub(super) fn check_hidden_while_held(serial: u64, reads: &[HeldRead]) -> Result<(), Violation> {
    for (who, state) in reads {
        if let Some((key, _)) = state.iter().find(|(_, v)| serial_of(v) == Some(serial)) {
            return Err(Violation::new(
                Invariant::ReadsAgree,
                format!(
                    "{who} saw Immediate commit {serial} ({key}) while its WAL sync was still in progress"
                ),
                "an Immediate commit visible only once the sync that covers it returned",
                format!("{key} of commit {serial} visible"),
            ));
        }
    }
    Ok(())
}
