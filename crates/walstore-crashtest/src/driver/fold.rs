//! A checkpoint with a commit made while it writes its run: walstore's two-phase checkpoint
//! writes the frozen memtable as a run without the writer lock (phase 1), then, under the
//! lock, the commits made meanwhile as a second run (phase 2). The simulated file system
//! holds the checkpoint's first snapshot write (`simfs/rungate.rs`) while another thread of
//! the handle, or the other handle, commits; the write goes on once that commit returned.
//! The schedule is decided by the gate, not by timing, so a run replays.

use super::threads::{as_half, commit_on};
use super::{panic_violation, writes_of, Driver};
use crate::engine::{guarded, EngineError, Handle};
use crate::oracle::{Invariant, Status, Violation};
use crate::trace::OpClass;
use crate::workload::{Dur, Step, TxOp};
use std::path::Path;
use std::sync::Arc;

/// What the committing thread saw: its result, the trace window of its commit and whether
/// the commit ran while the checkpoint's write was held.
struct Committed {
    result: Result<Result<(), EngineError>, String>,
    window: (u64, u64),
    held: bool,
}

impl Driver<'_> {
    /// `Step::Concurrent(Checkpoint, commit)`: the commit (`Txn`, or `Other(Txn)` on the
    /// second handle) runs while the checkpoint writes its run. Anything else, or a second
    /// handle that is not open, runs one step after the other.
    pub(super) fn checkpoint_during(&mut self, second: &Step) -> Result<(), Violation> {
        let (on_other, inner) = match second {
            Step::Other(inner) => (true, &**inner),
            step => (false, step),
        };
        let committer = if on_other {
            self.other.store()
        } else {
            self.store.clone()
        };
        let (Some(half), Some(committer)) = (as_half(inner), committer) else {
            self.step(&Step::Checkpoint)?;
            return self.step(second);
        };
        let (serial, ops, dur) = (half.0, half.1, self.engine.promised(half.2));
        let phase = format!("checkpoint, commit {serial} while it writes its run");
        self.fs.set_phase(&phase);
        let fired_before = self.fs.fired().len();
        let start = self.fs.op_count();
        let handle = if on_other {
            self.other.id
        } else {
            self.history.current_handle
        };
        let index = self
            .history
            .begin_commit(serial, writes_of(ops, &self.keys), dur, start);
        if let Some(c) = self.history.commits.get_mut(index) {
            c.handle = handle;
        }
        let snapshot = Arc::new(self.history.clone());
        let (checkpoint, committed) = self.run_both(&*committer, ops, dur);
        self.collect(&snapshot, &phase);
        let checkpoint = checkpoint.map_err(|p| panic_violation(&phase, p))?;
        let result = committed
            .result
            .clone()
            .map_err(|p| panic_violation(&phase, p))?;
        if on_other {
            let syncs = self.log_ops(committed.window, OpClass::Sync);
            let syncs = syncs.into_iter().map(|op| (op, handle));
            self.history.second_handle_syncs.extend(syncs);
        }
        let faulted = self.fs.fired().len() > fired_before;
        self.handle_faulted |= faulted;
        self.note_wal_faults(fired_before, true);
        // The checkpoint folds the commit only if the commit ran while it was held.
        if checkpoint.is_ok() && !committed.held {
            self.history.checkpoint_done(self.fs.op_count());
        }
        self.finish_commit_during(index, serial, dur, &committed, faulted)?;
        if checkpoint.is_ok() && committed.held {
            self.history.checkpoint_done(self.fs.op_count());
        }
        self.after_both(&checkpoint, &result, ops)
    }

    /// The checkpoint on this thread, the commit on another once the checkpoint's first
    /// snapshot write is held.
    fn run_both(
        &self,
        committer: &dyn Handle,
        ops: &[TxOp],
        dur: Dur,
    ) -> (Result<Result<(), EngineError>, String>, Committed) {
        let store = self
            .store
            .clone()
            .expect("a step runs only with an open store");
        let fs = self.fs.clone();
        fs.arm_run_gate();
        std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let held = fs.wait_for_held_run();
                let begin = fs.op_count();
                let result = guarded(|| commit_on(committer, ops, dur));
                let end = fs.op_count();
                fs.release_held_run();
                Committed {
                    result,
                    window: (begin, end),
                    held,
                }
            });
            let checkpoint = guarded(|| store.checkpoint());
            fs.release_held_run();
            let committed = other.join().unwrap_or_else(|_| Committed {
                result: Err("the committing thread died".into()),
                window: (0, 0),
                held: false,
            });
            (checkpoint, committed)
        })
    }

    /// Trace indexes of the operations of `class` on the log inside `window`.
    fn log_ops(&self, (begin, end): (u64, u64), class: OpClass) -> Vec<u64> {
        self.fs
            .trace()
            .iter()
            .filter(|t| t.index > begin && t.index <= end && t.class == class)
            .filter(|t| self.engine.is_log(Path::new(&t.path)))
            .map(|t| t.index)
            .collect()
    }

    /// The model learns the commit's outcome (its log writes are those of its window).
    fn finish_commit_during(
        &mut self,
        index: usize,
        serial: u64,
        dur: Dur,
        committed: &Committed,
        faulted: bool,
    ) -> Result<(), Violation> {
        let (begin, end) = committed.window;
        let writes: Vec<(u64, (u64, u64))> = self
            .fs
            .trace()
            .iter()
            .filter(|t| t.index > begin && t.index <= end)
            .filter(|t| self.engine.is_log(Path::new(&t.path)))
            .filter_map(|t| t.range.map(|r| (t.index, r)))
            .collect();
        if let Some(c) = self.history.commits.get_mut(index) {
            c.first_op = begin;
            c.wal_ranges = writes.iter().map(|(_, r)| *r).collect();
        }
        let ok = matches!(committed.result, Ok(Ok(())));
        let status = match ok {
            true => Status::Acknowledged,
            false if writes.is_empty() => Status::Failed,
            false => Status::Indeterminate,
        };
        self.history.finish_commit(index, status, end);
        if ok && dur == Dur::Immediate && !faulted {
            let ops: Vec<u64> = writes.iter().map(|(op, _)| *op).collect();
            self.check_covered(serial, &ops)?;
        }
        Ok(())
    }

    /// A failure without a fault is a violation; a failure with one reopens the handle; on
    /// success, reads agree with the model (the new runs, in their order).
    fn after_both(
        &mut self,
        checkpoint: &Result<(), EngineError>,
        commit: &Result<(), EngineError>,
        ops: &[TxOp],
    ) -> Result<(), Violation> {
        if checkpoint.is_ok() && commit.is_ok() {
            return self.check_reads_now();
        }
        if !self.may_fail() {
            return Err(Violation::new(
                Invariant::WritableAfterRecovery,
                format!(
                    "a checkpoint with a commit of {} ops during it failed with no fault injected",
                    ops.len()
                ),
                "success",
                format!("checkpoint {checkpoint:?}, commit {commit:?}"),
            ));
        }
        if self.reopen_in.is_none() {
            self.reopen_in = Some(1);
        }
        Ok(())
    }
}
