//! What a recovery may produce at one crash point, and the judgement of what it did produce.
//!
//! The rule for silent corruption (F13) of the WAL: a report of `Error::Corruption` is always
//! accepted. Losing commits *without* a report is accepted only from the commit whose bytes
//! were damaged onwards, and only if no durable commit was started after the sync that had
//! made those bytes durable: such a later commit's watermark would prove the bytes had been
//! synced, so recovery must report the damage instead of truncating (RECOVERY.md L3/L4).
//! A later commit whose own bytes were damaged too proves nothing, and neither does a later
//! commit of the damaged commit's own handle when another handle's sync made the bytes
//! durable (its watermark cannot know of that sync). Damage to bytes of a commit folded into a completed checkpoint is harmless and relaxes
//! nothing. Damage to the manifest or a snapshot file relaxes nothing either: it must be
//! reported or be harmless.

use super::invariant::{Invariant, Violation};
use crate::crashgen::{Damage, DamagedOrigin};
use crate::workload::serial_of;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Keys to values.
pub type State = BTreeMap<String, String>;

/// Who wrote a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    /// The candidate commit at this position (1-based).
    Commit(usize),
    /// A rolled-back transaction.
    Aborted,
    /// A commit that failed before issuing bytes.
    Failed,
    /// An indeterminate commit a reopen had already shown absent.
    Lost,
}

/// One candidate commit, as the expectation needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Serial number.
    pub serial: u64,
    /// Trace index before its first operation.
    pub first_op: u64,
    /// Trace index of its last operation.
    pub end_op: u64,
    /// Acknowledged and durable at the crash.
    pub durable: bool,
    /// Its writes.
    pub writes: Vec<(String, Option<String>)>,
    /// WAL byte ranges its commit call wrote (its commit record is in the last one).
    #[serde(default)]
    pub wal_ranges: Vec<(u64, u64)>,
    /// The handle that made it (0, or 1 for the second handle).
    #[serde(default)]
    pub handle: u8,
}

/// The states a recovery may produce at one crash point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    /// `states[k]`: the model after the first `k` candidate commits.
    pub states: Vec<State>,
    /// Smallest `k` allowed after a power loss.
    pub lo_power: usize,
    /// Smallest `k` allowed after a process kill.
    pub lo_kill: usize,
    /// The candidate commits (position `k` is `commits[k - 1]`).
    pub commits: Vec<CommitInfo>,
    /// Who wrote each serial number.
    pub owners: BTreeMap<u64, Owner>,
    /// Trace indexes at which checkpoints completed.
    pub checkpoints_done: Vec<u64>,
    /// The crash follows this trace index.
    pub crash_op: u64,
    /// What the workload was doing at the crash.
    pub phase: String,
    /// Trace indexes of the WAL syncs the handles other than the first made, with the handle
    /// (a handle's watermarks know only its own syncs and those of the transactions it
    /// caught up on).
    #[serde(default)]
    pub second_handle_syncs: std::collections::BTreeMap<u64, u8>,
    /// The feed consumer's position as candidate commits acknowledged: at least the first,
    /// at most the second (an acknowledgement in progress at the crash).
    #[serde(default)]
    pub feed_acked: (usize, usize),
}

impl Expectation {
    /// Largest `k` allowed.
    pub fn hi(&self) -> usize {
        self.states.len() - 1
    }

    /// Smallest `k` allowed for an image made by a power loss (or not), with `damage`.
    pub fn lower_bound(&self, power_loss: bool, damage: Option<&Damage>) -> usize {
        let lo = if power_loss {
            self.lo_power
        } else {
            self.lo_kill
        };
        match damage {
            Some(d) if d.path.ends_with("/wal") => {
                let damaged = (d.offset, d.offset + d.len);
                d.origins
                    .iter()
                    .map(|o| self.silent_loss_floor(o, damaged))
                    .fold(lo, usize::min)
            }
            _ => lo,
        }
    }

    /// The smallest `k` that damaged bytes of one durable write may silently truncate the WAL
    /// to (see the module doc). The bytes belong to the commit calls that wrote that range
    /// before (recovery may have rewritten them since, unchanged); the earliest unprotected
    /// one bounds the loss.
    fn silent_loss_floor(&self, origin: &DamagedOrigin, damaged: (u64, u64)) -> usize {
        let overlaps = |&(s, e): &(u64, u64)| s < origin.end && origin.start < e;
        self.commits
            .iter()
            .enumerate()
            .filter(|(_, c)| c.first_op < origin.write_op && c.wal_ranges.iter().any(overlaps))
            .map(|(index, _)| self.commit_floor(index, origin.sync_op, damaged))
            .fold(self.hi(), usize::min)
    }

    /// `index` if commit `index` (whose bytes were synced at `sync_op` and then damaged) may
    /// be lost silently, otherwise `hi`.
    fn commit_floor(&self, index: usize, sync_op: u64, damaged: (u64, u64)) -> usize {
        let commit = &self.commits[index];
        let folded = self
            .checkpoints_done
            .iter()
            .any(|&op| op > commit.end_op && op <= self.crash_op);
        // A witness: a durable commit started after the damaged bytes were synced, whose own
        // commit record lies outside the damage, made by the handle that synced them or by
        // another handle than the damaged commit's (which caught up on it, and must sync
        // what it caught up on before appending: RECOVERY.md S1b). A handle's own commit
        // synced by another handle's catch-up is unknown to it: its next commit proves
        // nothing.
        let synced_by = self.second_handle_syncs.get(&sync_op).copied().unwrap_or(0);
        let covered = self.commits[index + 1..].iter().any(|later| {
            later.durable
                && later.first_op >= sync_op
                && (later.handle == synced_by || later.handle != commit.handle)
                && later
                    .wal_ranges
                    .last()
                    .is_some_and(|&(s, e)| e <= damaged.0 || damaged.1 <= s)
        });
        if folded || covered {
            self.hi()
        } else {
            index
        }
    }

    /// Judges a recovered state against the allowed range `lo..=hi`; returns the `k` found.
    pub fn judge(&self, recovered: &State, lo: usize) -> Result<usize, Violation> {
        let hi = self.hi();
        let matches: Vec<usize> = (0..=hi).filter(|&k| &self.states[k] == recovered).collect();
        if let Some(&k) = matches.iter().rev().find(|&&k| k >= lo) {
            return Ok(k);
        }
        let expected = format!(
            "the state after commit k for some k in {lo}..={hi} ({})",
            describe(&self.states[lo.min(hi)])
        );
        if let Some(&k) = matches.last() {
            let missing = self.commits[k..lo]
                .iter()
                .map(|c| c.serial)
                .collect::<Vec<_>>();
            return Err(Violation::new(
                Invariant::Durability,
                format!(
                    "recovered the state after commit {k}; acknowledged commit(s) with serial {missing:?} are missing"
                ),
                expected,
                describe(recovered),
            ));
        }
        Err(self.diagnose(recovered, lo, expected))
    }

    /// Names the invariant a state that matches no prefix breaks.
    fn diagnose(&self, recovered: &State, lo: usize, expected: String) -> Violation {
        let best = (0..=self.hi())
            .min_by_key(|&k| (distance(&self.states[k], recovered), usize::MAX - k))
            .unwrap_or(0);
        let base = &self.states[best];
        let mut partial = None;
        for (key, value) in recovered {
            if base.get(key) == Some(value) {
                continue;
            }
            match serial_of(value).and_then(|s| self.owners.get(&s).map(|o| (s, *o))) {
                Some((s, Owner::Aborted | Owner::Failed)) => {
                    return Violation::new(
                        Invariant::NoPhantoms,
                        format!("{key} holds a value of transaction {s}, which never committed"),
                        expected,
                        describe(recovered),
                    );
                }
                Some((s, Owner::Lost)) => {
                    return Violation::new(
                        Invariant::StableIndeterminate,
                        format!("{key} holds a value of transaction {s}, which an earlier reopen showed absent: a lost commit came back"),
                        expected,
                        describe(recovered),
                    );
                }
                Some((s, Owner::Commit(_))) => partial = Some(s),
                None => {}
            }
        }
        let (invariant, detail) = match partial {
            Some(s) => (
                Invariant::Atomicity,
                format!("part of transaction {s} is visible without the rest (closest prefix: commit {best}, lower bound {lo})"),
            ),
            None => (
                Invariant::PrefixConsistency,
                format!("the state matches no prefix of the commit history (closest: commit {best}, lower bound {lo})"),
            ),
        };
        Violation::new(invariant, detail, expected, describe(recovered))
    }
}

fn distance(a: &State, b: &State) -> usize {
    let differing = a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).count();
    differing + b.keys().filter(|k| !a.contains_key(*k)).count()
}

/// A short rendering of a state for reports.
pub fn describe(state: &State) -> String {
    let shown: Vec<String> = state
        .iter()
        .take(12)
        .map(|(k, v)| {
            let v = if v.len() > 24 {
                format!("{}..", &v[..24])
            } else {
                v.clone()
            };
            format!("{k}={v}")
        })
        .collect();
    let more = state.len().saturating_sub(12);
    if more > 0 {
        format!("{{{} ... and {more} more}}", shown.join(", "))
    } else {
        format!("{{{}}}", shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::history::{History, Status};
    use crate::workload::{value, Dur};

    fn history() -> History {
        let mut h = History::default();
        for serial in 1..=3u64 {
            let i = h.begin_commit(
                serial,
                vec![
                    ("a".into(), Some(value(serial, "a"))),
                    ("b".into(), Some(value(serial, "b"))),
                ],
                Dur::Immediate,
                serial * 10,
            );
            h.commits[i].wal_ranges = vec![(4096 + serial * 100, 4196 + serial * 100)];
            h.finish_commit(i, Status::Acknowledged, serial * 10 + 5);
        }
        h.aborted.insert(9);
        h
    }

    #[test]
    fn losing_an_acknowledged_commit_is_a_durability_violation() {
        let exp = history().expectation(100, "idle");
        let v = exp
            .judge(&exp.states[2], exp.lo_power)
            .expect_err("violation");
        assert_eq!(v.invariant, Invariant::Durability);
        assert_eq!(exp.judge(&exp.states[3], exp.lo_power), Ok(3));
    }

    #[test]
    fn half_a_transaction_is_an_atomicity_violation() {
        let exp = history().expectation(100, "idle");
        let mut half = exp.states[3].clone();
        half.insert("a".into(), value(2, "a"));
        let v = exp.judge(&half, 0).expect_err("violation");
        assert_eq!(v.invariant, Invariant::Atomicity);
    }

    #[test]
    fn an_aborted_value_is_a_phantom() {
        let exp = history().expectation(100, "idle");
        let mut phantom = exp.states[3].clone();
        phantom.insert("a".into(), value(9, "a"));
        let v = exp.judge(&phantom, 0).expect_err("violation");
        assert_eq!(v.invariant, Invariant::NoPhantoms);
    }

    #[test]
    fn damage_in_the_last_group_may_truncate_silently_but_covered_damage_may_not() {
        let exp = history().expectation(100, "idle");
        let damage = |offset: u64, write_op, sync_op| Damage {
            path: "/db/wal".into(),
            offset,
            len: 1,
            origins: vec![DamagedOrigin {
                start: offset,
                end: offset + 1,
                write_op,
                sync_op,
            }],
            how: "bit flip".into(),
        };
        // Commit 3 (ops 30..35, bytes 4396..4496) is the last: nothing covers it.
        assert_eq!(exp.lower_bound(true, Some(&damage(4400, 32, 34))), 2);
        // Commit 2 (ops 20..25) is covered by commit 3, which started after op 24.
        assert_eq!(exp.lower_bound(true, Some(&damage(4300, 22, 24))), 3);
        // Recovery rewrote commit 3's bytes at op 40: still commit 3's bytes.
        assert_eq!(exp.lower_bound(true, Some(&damage(4400, 40, 41))), 2);
    }
}
