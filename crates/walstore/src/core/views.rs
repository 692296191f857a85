//! [`Views`]: the versions one handle keeps for its writers and readers (lsm-tree's
//! `SuperVersions`): the head every commit builds on, the version readers are shown, the
//! versions published between the two (the readers' next views, usually), and the commit
//! index's change counter the shown version reflects.
//!
//! Invariant: neither the head nor the shown version ever goes back (generation, last
//! transaction, end of the log).

use crate::run::SegmentSet;
use crate::version::Version;
use crate::wal::LogPosition;
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How many published versions a handle keeps for its readers' next views.
const MAX_RECENT: usize = 64;

/// The versions of one handle (see the module documentation).
#[derive(Debug)]
pub(crate) struct Views {
    /// Every transaction written that this handle knows of.
    head: RwLock<Arc<Version>>,
    /// What readers see with a commit index: the head as of the index's visible LSN.
    shown: RwLock<Arc<Version>>,
    /// Versions published past `shown`, oldest first.
    recent: Mutex<VecDeque<Arc<Version>>>,
    /// The index's change counter as of `shown`, plus one (`u64::MAX`: not looked yet).
    seen: AtomicU64,
}

impl Views {
    /// Views that start at `version`, not yet matched to any change counter.
    pub(crate) fn new(version: Version) -> Views {
        Views {
            shown: RwLock::new(Arc::new(version.clone())),
            head: RwLock::new(Arc::new(version)),
            recent: Mutex::new(VecDeque::new()),
            seen: AtomicU64::new(u64::MAX),
        }
    }

    /// The newest version published.
    pub(crate) fn head(&self) -> Arc<Version> {
        Arc::clone(&self.head.read())
    }

    /// The version shown to readers.
    pub(crate) fn shown(&self) -> Arc<Version> {
        Arc::clone(&self.shown.read())
    }

    /// The change counter the shown version reflects, plus one.
    pub(crate) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// Publishes `version` as the head unless a newer one is already there; `keep_recent`:
    /// readers may be shown it later (there is a commit index).
    pub(crate) fn publish(&self, version: Arc<Version>, keep_recent: bool) {
        let mut head = self.head.write();
        // A clean marker moves the end of the log without a new transaction id.
        let newer = (version.generation, version.last_txn, version.wal_end)
            > (head.generation, head.last_txn, head.wal_end);
        if !newer {
            return;
        }
        // Invariant: within a generation the log only grows.
        debug_assert!(
            version.generation != head.generation || version.wal_end >= head.wal_end,
            "the end of the log went back within generation {}",
            head.generation
        );
        if keep_recent {
            let mut recent = self.recent.lock();
            // A new generation: readers never go back to the old one's versions (their
            // memtables would stay alive for nothing).
            recent.retain(|v| v.generation == version.generation);
            recent.push_back(Arc::clone(&version));
            if recent.len() > MAX_RECENT {
                recent.pop_front();
            }
        }
        *head = version;
    }

    /// Shows `version` to readers, as the view of the index at change counter `counter`
    /// (neither goes back), and forgets the recent versions it passes.
    pub(crate) fn show(&self, version: &Arc<Version>, counter: u64) {
        {
            let mut shown = self.shown.write();
            if version.position() > shown.position() {
                *shown = Arc::clone(version);
            }
            let at = shown.position();
            self.recent.lock().retain(|v| v.position() > at);
        }
        // After `shown`: a reader that finds the counter unchanged finds this version.
        let _ = self
            .seen
            .fetch_max(counter.wrapping_add(1), Ordering::AcqRel);
    }

    /// Sets what readers see at open (it may be older than the head).
    pub(crate) fn install_shown(&self, version: Arc<Version>, counter: u64) {
        *self.shown.write() = version;
        self.seen.store(counter.wrapping_add(1), Ordering::Release);
    }

    /// Installs the version the open loaded as both the head and the shown version,
    /// replacing the empty one the handle started with (whose position it may equal).
    pub(crate) fn install_loaded(&self, version: Arc<Version>) {
        *self.shown.write() = Arc::clone(&version);
        *self.head.write() = version;
    }

    /// The version this handle knows at log position `at`, if any.
    pub(crate) fn known_at(&self, at: LogPosition) -> Option<Arc<Version>> {
        let shown = self.shown.read();
        if shown.position() == at {
            return Some(Arc::clone(&shown));
        }
        drop(shown);
        if let Some(v) = self.recent.lock().iter().find(|v| v.position() == at) {
            return Some(Arc::clone(v));
        }
        let head = self.head();
        (head.position() == at).then_some(head)
    }

    /// The newest version this handle knows at or before `at` in `at`'s generation.
    pub(crate) fn known_before(&self, at: LogPosition) -> Option<Arc<Version>> {
        let mut best: Option<Arc<Version>> = None;
        let mut consider = |v: &Arc<Version>| {
            let p = v.position();
            let candidate = p.generation == at.generation && p <= at;
            if candidate && best.as_ref().is_none_or(|b| b.position() < p) {
                best = Some(Arc::clone(v));
            }
        };
        consider(&self.shown.read());
        for v in self.recent.lock().iter() {
            consider(v);
        }
        consider(&self.head());
        best
    }

    /// Replaces the runs of every version of `generation` with `runs` (a merge's result:
    /// the same data), so readers switch to the merged runs too.
    pub(crate) fn replace_runs(&self, generation: u64, runs: &[Arc<SegmentSet>]) {
        let with_runs = |v: &mut Arc<Version>| {
            if v.generation == generation {
                *v = Arc::new(Version {
                    runs: runs.to_vec(),
                    ..Version::clone(v)
                });
            }
        };
        with_runs(&mut self.head.write());
        with_runs(&mut self.shown.write());
        self.recent.lock().iter_mut().for_each(with_runs);
    }
}
