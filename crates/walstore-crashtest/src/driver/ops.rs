//! A transaction's changes applied to the engine and seen by the model, and the point gets
//! that check a range deletion right after it.

use super::Driver;
use crate::engine::{EngineError, WriteTxn};
use crate::oracle::{Invariant, Violation};
use crate::workload::{Step, TxOp};
use std::collections::BTreeSet;

/// Applies a transaction's changes to `tx`, in order.
pub(super) fn apply_ops(tx: &mut dyn WriteTxn, ops: &[TxOp]) -> Result<(), EngineError> {
    for op in ops {
        match op {
            TxOp::Put { key, value } => tx.put(key.as_bytes(), value.as_bytes())?,
            TxOp::Delete { key } => tx.delete(key.as_bytes())?,
            TxOp::DeleteRange { lo, hi } => tx.delete_range(lo.as_bytes(), hi.as_bytes())?,
        }
    }
    Ok(())
}

/// A transaction's changes as the model's writes, in order: a range deletion deletes each of
/// `keys` (every key the workload names, so every key the store can hold) that it covers.
pub(super) fn writes_of(ops: &[TxOp], keys: &BTreeSet<String>) -> Vec<(String, Option<String>)> {
    let mut writes = Vec::new();
    for op in ops {
        match op {
            TxOp::Put { key, value } => writes.push((key.clone(), Some(value.clone()))),
            TxOp::Delete { key } => writes.push((key.clone(), None)),
            TxOp::DeleteRange { lo, hi } => writes.extend(
                keys.iter()
                    .filter(|k| *k >= lo && *k < hi)
                    .map(|k| (k.clone(), None)),
            ),
        }
    }
    writes
}

/// The steps with every committed transaction of several writes split into transactions of
/// one write each (for engines whose atomicity unit is a single write). The parts keep the
/// transaction's serial number, so the values they write are the same.
pub(super) fn split_writes(steps: &[Step]) -> Vec<Step> {
    let split = |step: &Step| -> Vec<Step> {
        match step {
            Step::Txn {
                serial,
                ops,
                durability,
                abort: false,
            } if ops.len() > 1 => ops
                .iter()
                .map(|op| Step::Txn {
                    serial: *serial,
                    ops: vec![op.clone()],
                    durability: *durability,
                    abort: false,
                })
                .collect(),
            Step::Other(inner) => split_writes(std::slice::from_ref(inner.as_ref()))
                .into_iter()
                .map(|s| Step::Other(Box::new(s)))
                .collect(),
            step => vec![step.clone()],
        }
    };
    steps.iter().flat_map(split).collect()
}

/// Every key of `keys` a range deletion of `ops` covers.
fn range_deleted(ops: &[TxOp], keys: &BTreeSet<String>) -> Vec<String> {
    let ranges: Vec<(&String, &String)> = ops
        .iter()
        .filter_map(|op| match op {
            TxOp::DeleteRange { lo, hi } => Some((lo, hi)),
            _ => None,
        })
        .collect();
    keys.iter()
        .filter(|k| ranges.iter().any(|(lo, hi)| *k >= *lo && *k < *hi))
        .cloned()
        .collect()
}

impl Driver<'_> {
    /// Right after a committed range deletion on a healthy handle, a point get of every key
    /// it covered agrees with the model (a whole-store scan and bounded reads cannot see a
    /// get that ignores range deletions and finds an older run's value).
    pub(super) fn check_range_deleted_gets(&self, ops: &[TxOp]) -> Result<(), Violation> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if self.handle_faulted || !self.history.is_certain() {
            return Ok(());
        }
        let state = self.history.current();
        let read = store.begin_read().map_err(|e| {
            Violation::new(
                Invariant::ReadsAgree,
                "begin_read failed",
                "a read",
                e.to_string(),
            )
        })?;
        for key in range_deleted(ops, &self.keys) {
            let want = state.get(&key).cloned();
            let got = read
                .get(key.as_bytes())
                .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                .map_err(|e| e.to_string());
            if got.as_ref() != Ok(&want) {
                return Err(Violation::new(
                    Invariant::ReadsAgree,
                    format!("a point get of {key:?}, covered by the range deletion just committed, disagrees with the model"),
                    format!("{want:?}"),
                    format!("{got:?}"),
                ));
            }
        }
        Ok(())
    }
}
