//! The reference model: the commits a workload attempted, each marked acknowledged, failed,
//! indeterminate or lost, and from it the set of states a recovery may produce.

use super::expect::{CommitInfo, Expectation, Owner, State};
use crate::workload::Dur;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What is known about one commit attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// `commit` has not returned yet (a crash inside the call).
    InFlight,
    /// `commit` returned Ok.
    Acknowledged,
    /// `commit` returned an error before any byte was issued: it must be absent.
    Failed,
    /// `commit` returned an error after bytes were issued: it may be in or out.
    Indeterminate,
    /// An indeterminate commit that a later reopen showed absent: it must stay absent.
    Lost,
}

/// One commit attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Transaction serial number (values it wrote carry it).
    pub serial: u64,
    /// Keys written (`None` = deleted), last write per key wins.
    pub writes: Vec<(String, Option<String>)>,
    /// What is known.
    pub status: Status,
    /// Durability asked for.
    pub durability: Dur,
    /// Whether it survives a power cut for sure (an Immediate ack, or a later sync,
    /// checkpoint, Immediate commit or reopen).
    pub durable: bool,
    /// Trace index before the commit call's first operation.
    pub first_op: u64,
    /// Trace index of the commit call's last operation.
    pub end_op: u64,
    /// WAL byte ranges the commit call wrote.
    #[serde(default)]
    pub wal_ranges: Vec<(u64, u64)>,
    /// The handle that made it (0 = the first; 1 = the second handle of `Step::Other`; 2 =
    /// the third, of `Step::Other(Other(..))`).
    #[serde(default)]
    pub handle: u8,
}

/// Every commit attempt of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Commits in order.
    pub commits: Vec<CommitRecord>,
    /// Serial numbers of transactions rolled back.
    pub aborted: BTreeSet<u64>,
    /// Trace indexes at which checkpoints completed successfully.
    pub checkpoints_done: Vec<u64>,
    /// The handle whose steps run now (commits record it).
    #[serde(default)]
    pub current_handle: u8,
    /// Trace indexes of the WAL syncs the handles other than the first made, with the handle.
    #[serde(default)]
    pub second_handle_syncs: std::collections::BTreeMap<u64, u8>,
    /// Candidate commits the feed consumer's last completed acknowledgement covered.
    #[serde(default)]
    pub feed_acked: usize,
    /// Candidate commits an acknowledgement in progress covers (it may or may not land).
    #[serde(default)]
    pub feed_ack_pending: Option<usize>,
}

impl History {
    /// Records a commit attempt about to be made; returns its index.
    pub fn begin_commit(
        &mut self,
        serial: u64,
        writes: Vec<(String, Option<String>)>,
        durability: Dur,
        first_op: u64,
    ) -> usize {
        self.commits.push(CommitRecord {
            serial,
            writes,
            status: Status::InFlight,
            durability,
            durable: false,
            first_op,
            end_op: first_op,
            wal_ranges: Vec::new(),
            handle: self.current_handle,
        });
        self.commits.len() - 1
    }

    /// Records how a commit attempt ended.
    pub fn finish_commit(&mut self, index: usize, status: Status, end_op: u64) {
        let durable_ack = status == Status::Acknowledged;
        let Some(c) = self.commits.get_mut(index) else {
            return;
        };
        c.status = status;
        c.end_op = end_op;
        if durable_ack && c.durability == Dur::Immediate {
            // An Immediate commit's fdatasync covers every earlier write of the log.
            self.mark_durable(index + 1);
        }
    }

    /// Everything acknowledged among the first `upto` commits is now durable (after a
    /// successful sync, checkpoint or Immediate commit).
    pub fn mark_durable(&mut self, upto: usize) {
        for c in self.commits.iter_mut().take(upto) {
            if c.status == Status::Acknowledged {
                c.durable = true;
            }
        }
    }

    /// Marks every acknowledged commit durable.
    pub fn mark_all_durable(&mut self) {
        self.mark_durable(self.commits.len());
    }

    /// After `Store::sync` on the current handle: its own acknowledged commits are durable
    /// (it syncs only what it wrote; another handle's commits may stay unsynced).
    pub fn mark_own_durable(&mut self) {
        let handle = self.current_handle;
        for c in &mut self.commits {
            if c.status == Status::Acknowledged && c.handle == handle {
                c.durable = true;
            }
        }
    }

    /// Records that an acknowledgement of every commit so far begins.
    pub fn feed_ack_begins(&mut self) {
        self.feed_ack_pending = Some(self.candidates().count());
    }

    /// Records that it ended (`done`: it returned Ok, so it is durable).
    pub fn feed_ack_ends(&mut self, done: bool) {
        if let (true, Some(count)) = (done, self.feed_ack_pending) {
            self.feed_acked = count;
        }
        // A failed acknowledgement may still have landed: it stays possible until a reopen
        // shows the position (the check accepts either).
        if done {
            self.feed_ack_pending = None;
        }
    }

    /// Records a completed checkpoint.
    pub fn checkpoint_done(&mut self, op: u64) {
        self.checkpoints_done.push(op);
        self.mark_all_durable();
    }

    /// Whether the current state is known exactly (no commit in or out undecided).
    pub fn is_certain(&self) -> bool {
        self.commits
            .iter()
            .all(|c| !matches!(c.status, Status::InFlight | Status::Indeterminate))
    }

    /// How many commit attempts (of every status) come up to the `k`-th candidate commit
    /// (the state after candidate `k` holds those of them that are candidates).
    pub fn commit_count_at(&self, k: usize) -> usize {
        if k == 0 {
            return 0;
        }
        self.commits
            .iter()
            .enumerate()
            .filter(|(_, c)| !matches!(c.status, Status::Failed | Status::Lost))
            .nth(k - 1)
            .map_or(self.commits.len(), |(i, _)| i + 1)
    }

    /// The commits that may be part of a recovered state, in order.
    fn candidates(&self) -> impl Iterator<Item = &CommitRecord> {
        self.commits
            .iter()
            .filter(|c| !matches!(c.status, Status::Failed | Status::Lost))
    }

    /// The model state with every candidate commit applied.
    pub fn current(&self) -> State {
        let mut state = State::new();
        for c in self.candidates() {
            apply(&mut state, &c.writes);
        }
        state
    }

    /// What a recovery from a crash right after trace index `crash_op` may produce.
    pub fn expectation(&self, crash_op: u64, phase: &str) -> Expectation {
        let mut states = vec![State::new()];
        let mut commits = Vec::new();
        let mut owners = BTreeMap::new();
        let (mut lo_power, mut lo_kill) = (0, 0);
        for c in self.candidates() {
            let mut next = states.last().cloned().unwrap_or_default();
            apply(&mut next, &c.writes);
            states.push(next);
            let position = states.len() - 1;
            let acked = c.status == Status::Acknowledged;
            if acked && c.durable {
                lo_power = position;
            }
            if acked {
                lo_kill = position;
            }
            owners.insert(c.serial, Owner::Commit(position));
            commits.push(CommitInfo {
                serial: c.serial,
                first_op: c.first_op,
                end_op: c.end_op,
                durable: acked && c.durable,
                writes: c.writes.clone(),
                wal_ranges: c.wal_ranges.clone(),
                handle: c.handle,
            });
        }
        for c in &self.commits {
            match c.status {
                Status::Failed => owners.insert(c.serial, Owner::Failed),
                Status::Lost => owners.insert(c.serial, Owner::Lost),
                _ => None,
            };
        }
        for serial in &self.aborted {
            owners.insert(*serial, Owner::Aborted);
        }
        Expectation {
            states,
            lo_power,
            lo_kill,
            commits,
            owners,
            checkpoints_done: self.checkpoints_done.clone(),
            crash_op,
            phase: phase.to_string(),
            second_handle_syncs: self
                .second_handle_syncs
                .range(..=crash_op)
                .map(|(op, h)| (*op, *h))
                .collect(),
            feed_acked: (
                self.feed_acked,
                self.feed_ack_pending.unwrap_or(self.feed_acked),
            ),
        }
    }

    /// After a reopen without a crash found the state after candidate `k`: commits up to
    /// `k` are in (and durable: recovery syncs what it found), undecided later ones are out.
    pub fn resolve(&mut self, k: usize) {
        let mut position = 0;
        for c in &mut self.commits {
            if matches!(c.status, Status::Failed | Status::Lost) {
                continue;
            }
            position += 1;
            if position <= k {
                c.status = Status::Acknowledged;
                c.durable = true;
            } else if matches!(c.status, Status::InFlight | Status::Indeterminate) {
                c.status = Status::Lost;
            }
        }
    }
}

/// Applies a transaction's writes to a state.
pub fn apply(state: &mut State, writes: &[(String, Option<String>)]) {
    for (key, value) in writes {
        match value {
            Some(v) => {
                state.insert(key.clone(), v.clone());
            }
            None => {
                state.remove(key);
            }
        }
    }
}
