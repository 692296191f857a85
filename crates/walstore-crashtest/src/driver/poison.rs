//! The poison a store shares across its handles. A failed write or sync of the log on one
//! handle poisons every handle of the store (walstore keeps the poison in the shared commit
//! index): the others' writes fail too, until every handle has closed the store; the next
//! first opener starts clean. The driver expects exactly that:
//! - any fault fired on any handle since the store was last closed by every handle makes an
//!   error of any handle expected ([`Driver::may_fail`]), as a fault on a handle since it
//!   opened makes its own errors expected (the engine poisons on a failed write or sync of
//!   the log, and on a failed manifest switch of a checkpoint, in a recovery too);
//! - when the engine promises a shared poison ([`crate::engine::Promises::poison_shared`]),
//!   the failures that poison the handle that saw them (see `note_wal_faults`) make the
//!   other handle refuse commits as well (invariant 11);
//! - a handle reopens only after the other one closed too (as every process must), so the
//!   reopen is the first opener and clears the poison.

use super::Driver;
use crate::oracle::Violation;
use crate::workload::Step;
use std::sync::Arc;

impl Driver<'_> {
    /// Notes the first fault fired from index `fired_before` on: it may have poisoned every
    /// handle.
    pub(super) fn note_shared_poison(&mut self, fired_before: usize) {
        if self.shared_poison.is_some() {
            return;
        }
        let fired = self.fs.fired();
        if let Some(f) = fired.get(fired_before..).unwrap_or_default().first() {
            self.shared_poison = Some(format!(
                "failed {} of {} at op #{} on handle {}",
                f.class, f.path, f.op_index, self.history.current_handle
            ));
        }
    }

    /// The running handle must refuse commits because of `why`: so must the other one, if it
    /// is open and the engine shares its poison.
    pub(super) fn poison_other(&mut self, why: &str) {
        if self.engine.promises().poison_shared && self.other.is_open() {
            let on = self.history.current_handle;
            self.other
                .poisoned
                .get_or_insert_with(|| format!("{why} (on handle {on}, shared poison)"));
        }
    }

    /// Whether an error of the running handle is expected: a fault fired on it, or a failure
    /// of the log on any handle may have poisoned the store.
    pub(super) fn may_fail(&self) -> bool {
        self.handle_faulted || self.shared_poison.is_some()
    }

    /// Before an open: with the store possibly poisoned, the other handle closes first (every
    /// handle must close the store before the poison clears).
    pub(super) fn close_other_if_poisoned(&mut self) -> Result<(), Violation> {
        if self.shared_poison.is_none() || !self.other.is_open() {
            return Ok(());
        }
        if self.history.current_handle == 0 {
            return self.on_other(&Step::Reopen);
        }
        self.swap_handles();
        let phase = "close the first handle (shared poison)";
        self.fs.set_phase(phase);
        let snapshot = Arc::new(self.history.clone());
        self.store = None;
        self.collect(&snapshot, phase);
        self.swap_handles();
        Ok(())
    }

    /// After an open: a handle open alone on the store starts without the poison.
    pub(super) fn clear_poison_if_alone(&mut self) {
        if self.store.is_some() && !self.other.is_open() {
            self.shared_poison = None;
        }
    }
}
