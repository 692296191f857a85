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

    /// The running handle must refuse commits because of `why`: so must the others that are
    /// open, if the engine shares its poison.
    pub(super) fn poison_other(&mut self, why: &str) {
        if !self.engine.promises().poison_shared {
            return;
        }
        let on = self.history.current_handle;
        for parked in [&mut self.other, &mut self.third] {
            if parked.is_open() {
                parked
                    .poisoned
                    .get_or_insert_with(|| format!("{why} (on handle {on}, shared poison)"));
            }
        }
    }

    /// Whether an error of the running handle is expected: a fault fired on it, or a failure
    /// of the log on any handle may have poisoned the store.
    pub(super) fn may_fail(&self) -> bool {
        self.handle_faulted || self.shared_poison.is_some()
    }

    /// Before an open: with the store possibly poisoned, the other handles close first
    /// (every handle must close the store before the poison clears).
    pub(super) fn close_other_if_poisoned(&mut self) -> Result<(), Violation> {
        if self.shared_poison.is_none() {
            return Ok(());
        }
        if self.other.is_open() {
            self.swap_handles();
            self.close_for_poison();
            self.swap_handles();
        }
        if self.third.is_open() {
            self.swap_third();
            self.close_for_poison();
            self.swap_third();
        }
        Ok(())
    }

    /// Closes the running handle (another one is about to reopen a poisoned store).
    fn close_for_poison(&mut self) {
        let phase = format!(
            "close handle {} (shared poison)",
            self.history.current_handle
        );
        self.fs.set_phase(&phase);
        let snapshot = Arc::new(self.history.clone());
        let before = self.fs.op_count();
        self.store = None;
        self.collect(&snapshot, &phase);
        self.note_syncs_since(before);
    }

    /// After an open: a handle open alone on the store starts without the poison.
    pub(super) fn clear_poison_if_alone(&mut self) {
        if self.store.is_some() && !self.others_open() {
            self.shared_poison = None;
        }
    }
}
