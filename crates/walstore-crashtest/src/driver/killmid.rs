//! A kill of a handle's process in the middle of a commit: after its log write returned,
//! before anything it does next (the commit-index update that publishes the commit, its
//! sync) reaches another process (`simfs/process.rs`). The writer lock is released with the
//! process, so the next writer finds the lock dirty (RECOVERY.md I4) and must read the log
//! past the commit index's section rather than trust it.
//!
//! The model takes the commit as undecided (its process never learnt the outcome): it may be
//! in or out, but a later commit of another handle is in only after it, so once another
//! handle commits, reads (and a reopen) must show it: walstore writes a transaction in one
//! write, and the next holder of the lock keeps what the log holds.

use super::threads::{as_half, commit_on};
use super::Driver;
use crate::engine::guarded;
use crate::oracle::{Status, Violation};
use crate::workload::Step;
use std::path::Path;
use std::sync::Arc;

impl Driver<'_> {
    /// `Step::Concurrent(Kill, commit)`: the commit, its process killed as its log write
    /// returns. Anything else runs as a kill, then the step.
    pub(super) fn kill_mid_commit(&mut self, step: &Step) -> Result<(), Violation> {
        let (Some((serial, ops, dur)), Some(process)) = (as_half(step), self.process.clone())
        else {
            self.kill()?;
            return self.step(step);
        };
        let Some(store) = self.store.clone() else {
            return self.step(step);
        };
        let dur = self.engine.promised(dur);
        let phase = format!("commit {serial}, its process killed after its log write");
        self.fs.set_phase(&phase);
        let start = self.fs.op_count();
        let fired_before = self.fs.fired_count();
        let writes = super::writes_of(ops, &self.keys);
        let index = self.history.begin_commit(serial, writes, dur, start);
        let snapshot = Arc::new(self.history.clone());
        process.kill_after_log_write(true);
        let result = guarded(|| commit_on(&*store, ops, dur));
        process.kill_after_log_write(false);
        drop(store);
        self.collect(&snapshot, &phase);
        let end = self.fs.op_count();
        self.handle_faulted |= self.fs.fired_count() > fired_before;
        let logged: Vec<(u64, u64)> = self
            .fs
            .trace()
            .iter()
            .filter(|t| t.index > start && self.engine.is_log(Path::new(&t.path)))
            .filter_map(|t| t.range)
            .collect();
        if let Some(c) = self.history.commits.get_mut(index) {
            c.first_op = start;
            c.wal_ranges = logged.clone();
        }
        if !process.is_dead() {
            // No log write returned (an injected error): an ordinary outcome.
            self.note_wal_faults(fired_before, true);
            let status = match &result {
                Ok(Ok(())) => Status::Acknowledged,
                _ if end == start => Status::Failed,
                _ => Status::Indeterminate,
            };
            self.history.finish_commit(index, status, end);
            if status != Status::Acknowledged && self.reopen_in.is_none() {
                self.reopen_in = Some(1);
            }
            return Ok(());
        }
        self.note_shared_poison(fired_before);
        let status = if logged.is_empty() {
            Status::Failed
        } else {
            Status::Indeterminate
        };
        self.history.finish_commit(index, status, end);
        // The dead process's handle is dropped there: nothing of its close reaches the disk.
        if let Some(store) = self.store.take() {
            guarded(move || drop(store)).map_err(|p| super::panic_violation(&phase, p))?;
        }
        self.process = None;
        self.reopen_in = None;
        Ok(())
    }
}
