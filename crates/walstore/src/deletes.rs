//! Sets of range deletions (sorted by start, disjoint): joining, adding, testing a key.

use crate::snapshot::RangeDelete;
use std::ops::Bound;
use std::sync::Arc;

/// Joins sorted range deletions that overlap or touch.
pub fn join_deletes(sorted: Vec<RangeDelete>) -> Vec<RangeDelete> {
    let mut out: Vec<RangeDelete> = Vec::with_capacity(sorted.len());
    for d in sorted {
        if let Some(last) = out.last_mut() {
            let reaches = last.end.as_ref().is_none_or(|e| e[..] >= d.start[..]);
            if reaches {
                last.end = match (&last.end, &d.end) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(if a >= b { Arc::clone(a) } else { Arc::clone(b) }),
                };
                continue;
            }
        }
        out.push(d);
    }
    out
}

/// `deletes` (sorted, disjoint) with `more` added, joined.
pub fn add_deletes(deletes: &[RangeDelete], more: &[RangeDelete]) -> Vec<RangeDelete> {
    let mut all: Vec<RangeDelete> = deletes.iter().chain(more).cloned().collect();
    all.sort_by(|a, b| a.start.cmp(&b.start));
    join_deletes(all)
}

/// The key range a range deletion covers, as bounds.
pub fn delete_bounds(d: &RangeDelete) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        Bound::Included(&d.start[..]),
        d.end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    )
}
/// Whether one of `deletes` (sorted by start, non-overlapping) covers `key`.
pub fn covered(deletes: &[RangeDelete], key: &[u8]) -> bool {
    let after = deletes.partition_point(|d| &d.start[..] <= key);
    after > 0 && deletes[after - 1].covers(key)
}
