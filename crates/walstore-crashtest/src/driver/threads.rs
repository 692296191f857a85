//! Two committer threads on one handle, scheduled through the simulated file system's sync
//! gate: the first thread commits; while its WAL `fdatasync` is in progress the second
//! thread commits (its write lands after the sync began, so that sync does not cover it);
//! then the first sync completes. A group commit must acknowledge the second commit only
//! after a sync that began after its write. The schedule is decided by the gate, not by
//! timing, so a run replays exactly.
//!
//! For every acknowledged Immediate commit (here and in the ordinary commit path), the driver
//! asks the file system which WAL writes are still unsynced: a commit acknowledged while its
//! own write is among them was acknowledged on a sync that had not seen it (invariant 3).

use super::visibility::{check_hidden_while_held, read_while_held};
use super::{apply_ops, panic_violation, writes_of, Driver};
use crate::engine::{guarded, EngineError, Handle};
use crate::oracle::{Invariant, Status, Violation};
use crate::workload::{Dur, Step, TxOp};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// One commit of a concurrent pair.
struct Half<'a> {
    serial: u64,
    ops: &'a [TxOp],
    dur: Dur,
    index: usize,
}

impl<'a> Half<'a> {
    fn of((serial, ops, dur): (u64, &'a [TxOp], Dur), index: usize) -> Self {
        Half {
            serial,
            ops,
            dur,
            index,
        }
    }
}

pub(super) fn as_half(step: &Step) -> Option<(u64, &[TxOp], Dur)> {
    match step {
        Step::Txn {
            serial,
            ops,
            durability,
            abort: false,
        } => Some((*serial, ops, *durability)),
        _ => None,
    }
}

pub(super) fn commit_on(store: &dyn Handle, ops: &[TxOp], dur: Dur) -> Result<(), EngineError> {
    let mut tx = store.begin_write(dur)?;
    apply_ops(&mut *tx, ops)?;
    tx.commit()
}

impl Driver<'_> {
    /// Runs two commits on two threads of the current handle (see the module doc). Steps
    /// other than committed transactions run one after the other.
    pub(super) fn concurrent(&mut self, first: &Step, second: &Step) -> Result<(), Violation> {
        if matches!(first, Step::Checkpoint) {
            return self.checkpoint_during(second);
        }
        if matches!(first, Step::Kill) {
            return self.kill_mid_commit(second);
        }
        let (Some(a), Some(b)) = (as_half(first), as_half(second)) else {
            self.step(first)?;
            return self.step(second);
        };
        let phase = format!("commits {} and {} on two threads", a.0, b.0);
        self.fs.set_phase(&phase);
        let fired_before = self.fs.fired().len();
        self.catch_up_before_pair();
        let start = self.fs.op_count();
        let (a, b) = (
            (a.0, a.1, self.engine.promised(a.2)),
            (b.0, b.1, self.engine.promised(b.2)),
        );
        let ia = self
            .history
            .begin_commit(a.0, writes_of(a.1, &self.keys), a.2, start);
        let ib = self
            .history
            .begin_commit(b.0, writes_of(b.1, &self.keys), b.2, start);
        let snapshot = Arc::new(self.history.clone());
        let store = self
            .store
            .clone()
            .expect("a step runs only with an open store");
        let fs = self.fs.clone();
        let readers = self.readers();
        fs.arm_sync_gate();
        let (ra, (held_reads, rb)) = std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                fs.wait_for_held_sync();
                let held_reads = read_while_held(&fs, &readers);
                let result = guarded(|| commit_on(&*store, b.1, b.2));
                fs.release_held_sync();
                (held_reads, result)
            });
            let ra = guarded(|| commit_on(&*store, a.1, a.2));
            fs.disarm_sync_gate();
            let rb = other.join().unwrap_or_else(|_| {
                let died = Err("the second committer thread died".to_string());
                (Vec::new(), died)
            });
            (ra, rb)
        });
        drop(readers);
        self.collect(&snapshot, &phase);
        if a.2 == Dur::Immediate {
            check_hidden_while_held(a.0, &held_reads)?;
        }
        let ra = ra.map_err(|p| panic_violation(&phase, p))?;
        let rb = rb.map_err(|p| panic_violation(&phase, p))?;
        let halves = [(Half::of(a, ia), ra), (Half::of(b, ib), rb)];
        self.finish_pair(start, fired_before, halves)
    }

    /// Catches the handle up on another handle's commits before the pair: a catch-up may
    /// sync the log under the writer lock, and that sync, held by the gate, would wait for a
    /// write the second thread cannot issue until the lock is free.
    fn catch_up_before_pair(&self) {
        if let Some(store) = &self.store {
            let _ = guarded(|| store.begin_write(Dur::Buffered).map(|tx| tx.abort()));
        }
    }

    /// The model learns the outcome of both commits: the pair's WAL writes in trace order
    /// belong to the first commit, then the second.
    fn finish_pair(
        &mut self,
        start: u64,
        fired_before: usize,
        halves: [(Half<'_>, Result<(), EngineError>); 2],
    ) -> Result<(), Violation> {
        let end = self.fs.op_count();
        let writes: Vec<(u64, (u64, u64))> = self
            .fs
            .trace()
            .iter()
            .filter(|t| t.index > start && self.engine.is_log(Path::new(&t.path)))
            .filter_map(|t| t.range.map(|r| (t.index, r)))
            .collect();
        let faulted = self.fs.fired().len() > fired_before;
        self.handle_faulted |= faulted;
        self.note_wal_faults(fired_before, true);
        for (i, (half, result)) in halves.iter().enumerate() {
            let own = writes.get(i).copied();
            if let Some(c) = self.history.commits.get_mut(half.index) {
                c.first_op = own.map_or(start, |(op, _)| op - 1);
                c.wal_ranges = own.map(|(_, r)| r).into_iter().collect();
            }
            let status = match result {
                Ok(()) => Status::Acknowledged,
                Err(_) if own.is_none() => Status::Failed,
                Err(_) => Status::Indeterminate,
            };
            self.history.finish_commit(half.index, status, end);
            if result.is_err() && !self.may_fail() {
                return Err(Violation::new(
                    Invariant::WritableAfterRecovery,
                    format!(
                        "commit {} ({} ops) failed with no fault injected",
                        half.serial,
                        half.ops.len()
                    ),
                    "success",
                    format!("{result:?}"),
                ));
            }
            if result.is_ok() && half.dur == Dur::Immediate && !faulted {
                let ops: Vec<u64> = own.map(|(op, _)| op).into_iter().collect();
                self.check_covered(half.serial, &ops)?;
            }
        }
        if self.handle_faulted && self.reopen_in.is_none() {
            self.reopen_in = Some(1);
        }
        Ok(())
    }

    /// An acknowledged Immediate commit one of whose WAL writes (trace indexes `write_ops`)
    /// is still unsynced was acknowledged on a sync that had not seen it.
    pub(super) fn check_covered(&self, serial: u64, write_ops: &[u64]) -> Result<(), Violation> {
        if write_ops.is_empty() {
            return Ok(());
        }
        let trace = self.fs.trace();
        let logs: BTreeSet<&str> = trace
            .iter()
            .filter(|t| write_ops.contains(&t.index))
            .map(|t| t.path.as_str())
            .collect();
        let unsynced: Vec<u64> = logs
            .into_iter()
            .flat_map(|log| self.fs.unsynced_write_ops(Path::new(log)))
            .collect();
        let Some(op) = write_ops.iter().find(|op| unsynced.contains(op)) else {
            return Ok(());
        };
        Err(Violation::new(
            Invariant::Durability,
            format!("commit {serial} was acknowledged Immediate, but its WAL write (op #{op}) was not covered by any completed sync"),
            "an acknowledgement only after a sync that began after the commit's write",
            "acknowledged with the write still unsynced",
        ))
    }
}
