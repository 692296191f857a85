//! Invariant 13: after recovery, the change feed read from the workload's consumer's
//! position yields exactly the commits recovery kept after the ones the consumer
//! acknowledged, in commit order, each once. Checked when the workload registered a feed
//! consumer (it keeps everything it did not acknowledge): a commit skipped, repeated past an
//! acknowledgement, reordered or invented by the feed, a sealed segment lost or incomplete,
//! or a feed that fails, is a violation.

use super::expect::{Expectation, State};
use super::history::apply;
use super::invariant::{Invariant, Violation};
use crate::engine::FeedRecord;
use std::collections::{BTreeMap, BTreeSet};

/// A commit's effect: each key it touched and its value after it (`None`: deleted), over the
/// keys a range deletion can find (every key any candidate commit names).
type Effect = BTreeMap<String, Option<String>>;

/// Checks `feed` against the recovered `state`, whose candidate positions (commits kept) are
/// every `k` in `lo..` with `expectation.states[k] == state`.
pub fn check_feed(
    expectation: &Expectation,
    state: &State,
    lo: usize,
    feed: &[FeedRecord],
) -> Result<(), Violation> {
    let keys: BTreeSet<String> = expectation
        .commits
        .iter()
        .flat_map(|c| c.writes.iter().map(|(k, _)| k.clone()))
        .chain(state.keys().cloned())
        .collect();
    let effects: Vec<Effect> = feed.iter().map(|r| record_effect(r, &keys)).collect();
    let positions: Vec<usize> = (lo..=expectation.hi())
        .filter(|&k| &expectation.states[k] == state)
        .collect();
    let (acked_lo, acked_hi) = expectation.feed_acked;
    // The consumer resumes after candidate `a` (its acknowledged position), the recovery
    // kept candidates up to `k`: the feed is candidates `a+1..=k`, and replayed over the
    // state after `a` it gives the recovered state.
    let agrees = |a: usize, k: usize| {
        let mut replayed = expectation.states[a].clone();
        for e in &effects {
            let writes: Vec<(String, Option<String>)> =
                e.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            apply(&mut replayed, &writes);
        }
        a + feed.len() == k
            && expectation.commits[a..k]
                .iter()
                .zip(&effects)
                .all(|(c, e)| &commit_effect(&c.writes) == e)
            && &replayed == state
    };
    let acked = [acked_lo, acked_hi];
    if positions
        .iter()
        .any(|&k| acked.iter().any(|&a| a <= k && agrees(a, k)))
    {
        return Ok(());
    }
    let kept: Vec<u64> = positions
        .last()
        .map(|&k| {
            let a = acked_lo.min(k);
            expectation.commits[a..k].iter().map(|c| c.serial).collect()
        })
        .unwrap_or_default();
    Err(Violation::new(
        Invariant::FeedAgrees,
        "the change feed read after recovery does not yield exactly the recovered commits",
        format!("{} records: the commits with serials {kept:?}", kept.len()),
        format!("{} records, with serials {:?}", feed.len(), serials(feed)),
    ))
}

/// The serial numbers a record's values carry (a delete-only record has none).
fn serials(feed: &[FeedRecord]) -> Vec<Vec<u64>> {
    feed.iter()
        .map(|r| {
            let mut s: Vec<u64> = r
                .writes
                .iter()
                .filter_map(|(_, v)| v.as_deref().and_then(crate::workload::serial_of))
                .collect();
            s.dedup();
            s
        })
        .collect()
}

fn commit_effect(writes: &[(String, Option<String>)]) -> Effect {
    writes.iter().cloned().collect()
}

fn record_effect(record: &FeedRecord, keys: &BTreeSet<String>) -> Effect {
    let mut effect = Effect::new();
    for (lo, hi) in &record.range_deletes {
        for key in keys
            .iter()
            .filter(|k| *k >= lo && hi.as_ref().is_none_or(|h| *k < h))
        {
            effect.insert(key.clone(), None);
        }
    }
    for (key, value) in &record.writes {
        effect.insert(key.clone(), value.clone());
    }
    effect
}

/// Reports a feed that could not be read after recovery.
pub fn feed_failed(message: String) -> Violation {
    Violation::new(
        Invariant::FeedAgrees,
        "the change feed could not be read after recovery (the workload's consumer keeps \
         every commit it did not acknowledge)",
        "every recovered commit",
        message,
    )
}
