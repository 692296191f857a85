//! A second handle on the same simulated file system (the fault model's second process):
//! its steps interleave with the first handle's, commit through the same writer lock, catch
//! up on each other's commits, and close with the other still open.
//!
//! The driver keeps one set of per-handle fields (the store, whether a fault fired on it,
//! why it must be poisoned, when to reopen it); a step on the second handle swaps the second
//! handle's set in, runs as any step does, and swaps it back. The model is shared: both
//! handles commit into one history.

use super::{panic_violation, Driver};
use crate::engine::{guarded, Handle};
use crate::oracle::Violation;
use crate::simfs::Process;
use crate::trace::OpClass;
use crate::workload::Step;
use std::path::Path;
use std::sync::Arc;

/// The per-handle fields of the handle that is not running.
#[derive(Default)]
pub(super) struct Parked {
    store: Option<Arc<dyn Handle>>,
    process: Option<Process>,
    faulted: bool,
    pub(super) poisoned: Option<String>,
    reopen_in: Option<u32>,
    seen: usize,
}

impl Parked {
    /// Drops the parked store (at the end of a run, after the first handle).
    pub(super) fn close(&mut self) {
        self.store = None;
    }

    /// Whether the parked handle is open.
    pub(super) fn is_open(&self) -> bool {
        self.store.is_some()
    }

    /// The parked store, if open.
    pub(super) fn store(&self) -> Option<Arc<dyn Handle>> {
        self.store.clone()
    }
}

impl Driver<'_> {
    pub(super) fn swap_handles(&mut self) {
        std::mem::swap(&mut self.store, &mut self.other.store);
        std::mem::swap(&mut self.process, &mut self.other.process);
        std::mem::swap(&mut self.handle_faulted, &mut self.other.faulted);
        std::mem::swap(&mut self.must_be_poisoned, &mut self.other.poisoned);
        std::mem::swap(&mut self.reopen_in, &mut self.other.reopen_in);
        std::mem::swap(&mut self.reads_seen, &mut self.other.seen);
        self.history.current_handle ^= 1;
    }

    /// Runs `inner` on the second handle, opening it first if needed; `Step::Reopen` closes
    /// it (it opens again at its next step).
    pub(super) fn on_other(&mut self, inner: &Step) -> Result<(), Violation> {
        let before = self.fs.op_count();
        self.swap_handles();
        let result = self.other_step(inner);
        self.swap_handles();
        let syncs: Vec<u64> = self
            .fs
            .trace()
            .iter()
            .filter(|t| {
                t.index > before
                    && t.class == OpClass::Sync
                    && self.engine.is_log(Path::new(&t.path))
            })
            .map(|t| t.index)
            .collect();
        self.history.second_handle_syncs.extend(syncs);
        result
    }

    fn other_step(&mut self, inner: &Step) -> Result<(), Violation> {
        if matches!(inner, Step::Reopen) {
            let phase = "close the second handle";
            self.fs.set_phase(phase);
            let snapshot = Arc::new(self.history.clone());
            let fired_before = self.fs.fired_count();
            self.store = None;
            self.note_shared_poison(fired_before);
            self.collect(&snapshot, phase);
            return Ok(());
        }
        if self.store.is_none() || self.reopen_in == Some(0) {
            self.reopen_in = None;
            self.open("open the second handle")?;
            if self.store.is_none() {
                return Ok(());
            }
        }
        self.reopen_in = self.reopen_in.map(|n| n.saturating_sub(1));
        match inner {
            Step::Other(_) => Ok(()),
            step => self.step(step),
        }
    }

    /// Kills the running handle's process (`simfs/process.rs`): no close runs, its locks are
    /// released, what it wrote stays in the page cache. The handle opens again at its next
    /// step; the other lives on.
    pub(super) fn kill(&mut self) -> Result<(), Violation> {
        let Some(store) = self.store.take() else {
            return Ok(());
        };
        let phase = "kill";
        self.fs.set_phase(phase);
        if let Some(process) = self.process.take() {
            process.kill();
        }
        // The handle's drop runs in a dead process: every call it makes fails untraced.
        guarded(move || drop(store)).map_err(|p| panic_violation(phase, p))?;
        self.reopen_in = None;
        Ok(())
    }
}
