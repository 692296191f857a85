//! A second and a third handle on the same simulated file system (the fault model's other
//! processes): their steps interleave with the first handle's, commit through the same
//! writer lock, catch up on each other's commits, and close with the others still open.
//!
//! The driver keeps one set of per-handle fields (the store, whether a fault fired on it,
//! why it must be poisoned, when to reopen it); a step on another handle (`Other(step)`: the
//! second, `Other(Other(step))`: the third) swaps that handle's set in, runs as any step
//! does, and swaps it back. The model is shared: every handle commits into one history.

use super::{panic_violation, Driver};
use crate::engine::{guarded, Handle};
use crate::oracle::Violation;
use crate::simfs::Process;
use crate::trace::OpClass;
use crate::workload::Step;
use std::path::Path;
use std::sync::Arc;

/// The per-handle fields of a handle that is not running.
#[derive(Default)]
pub(super) struct Parked {
    /// Which handle's fields these are (0: the first).
    pub(super) id: u8,
    store: Option<Arc<dyn Handle>>,
    process: Option<Process>,
    faulted: bool,
    pub(super) poisoned: Option<String>,
    reopen_in: Option<u32>,
    seen: usize,
}

impl Parked {
    /// Handle `id`, not open.
    pub(super) fn handle(id: u8) -> Self {
        Parked {
            id,
            ..Parked::default()
        }
    }

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
        std::mem::swap(&mut self.history.current_handle, &mut self.other.id);
    }

    /// Swaps the parked third slot with the running handle (as [`Driver::swap_handles`]).
    pub(super) fn swap_third(&mut self) {
        std::mem::swap(&mut self.other, &mut self.third);
        self.swap_handles();
        std::mem::swap(&mut self.other, &mut self.third);
    }

    /// `Other(inner)`: `inner` on the second handle, or on the third for `Other(Other(..))`.
    pub(super) fn on_handle(&mut self, inner: &Step) -> Result<(), Violation> {
        match inner {
            Step::Other(third) => self.on_third(third),
            step => self.on_other(step),
        }
    }

    /// Runs `inner` on the handle parked in the third slot.
    pub(super) fn on_third(&mut self, inner: &Step) -> Result<(), Violation> {
        std::mem::swap(&mut self.other, &mut self.third);
        let result = self.on_other(inner);
        std::mem::swap(&mut self.other, &mut self.third);
        result
    }

    /// Whether a handle other than the running one is open.
    pub(super) fn others_open(&self) -> bool {
        self.other.is_open() || self.third.is_open()
    }

    /// Runs `inner` on the second handle, opening it first if needed; `Step::Reopen` closes
    /// it (it opens again at its next step).
    pub(super) fn on_other(&mut self, inner: &Step) -> Result<(), Violation> {
        let before = self.fs.op_count();
        self.swap_handles();
        let result = self.other_step(inner);
        self.note_syncs_since(before);
        self.swap_handles();
        result
    }

    /// The log syncs since trace index `before` were the running handle's.
    pub(super) fn note_syncs_since(&mut self, before: u64) {
        let handle = self.history.current_handle;
        let syncs: Vec<(u64, u8)> = self
            .fs
            .trace()
            .iter()
            .filter(|t| {
                t.index > before
                    && t.class == OpClass::Sync
                    && self.engine.is_log(Path::new(&t.path))
            })
            .map(|t| (t.index, handle))
            .collect();
        self.history.second_handle_syncs.extend(syncs);
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
