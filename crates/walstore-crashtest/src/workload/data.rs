//! Workloads as data: the steps, the engine sizes they run with, and the value format that
//! carries each transaction's serial number.

use serde::{Deserialize, Serialize};

/// Durability of one commit, as the workload asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dur {
    /// `Durability::Immediate`: survives power loss once acknowledged.
    Immediate,
    /// `Durability::Buffered`: survives a process kill once acknowledged.
    Buffered,
}

/// One change inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOp {
    /// Put a value.
    Put {
        /// Key.
        key: String,
        /// Value (starts with `s<serial>:`).
        value: String,
    },
    /// Delete a key.
    Delete {
        /// Key.
        key: String,
    },
    /// Delete every key from `lo` (included) to `hi` (excluded).
    DeleteRange {
        /// First key deleted.
        lo: String,
        /// First key after the range.
        hi: String,
    },
}

/// One step of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// A write transaction, committed or aborted.
    Txn {
        /// Unique serial number.
        serial: u64,
        /// Its changes, in order.
        ops: Vec<TxOp>,
        /// Commit durability.
        durability: Dur,
        /// Roll back instead of committing.
        abort: bool,
    },
    /// Read-modify-write of a counter inside one transaction.
    Increment {
        /// Unique serial number.
        serial: u64,
        /// The counter's key.
        key: String,
        /// Commit durability.
        durability: Dur,
    },
    /// `Store::checkpoint`.
    Checkpoint,
    /// `Store::compact` (a checkpoint, then every run merged into one).
    Compact,
    /// The engine's merge policy run once (`Store::merge_by_policy`: runs of one size tier,
    /// newest first, which may leave the oldest out).
    Merge,
    /// `Store::sync` (makes Buffered commits durable).
    Sync,
    /// Close the store and open it again (no crash).
    Reopen,
    /// The step on a second handle of the same store, opened at its first step (a second
    /// process); `Other(Reopen)` closes that handle.
    Other(Box<Step>),
    /// Two transactions committed on two threads of the current handle: the second runs
    /// while the first one's WAL sync is in progress (other steps run one after the other).
    Concurrent(Box<Step>, Box<Step>),
    /// Kill the handle's process (no close: its locks are released, what it wrote stays in
    /// the page cache, nothing it does afterwards reaches the file system); it opens again at
    /// its next step. `Other(Kill)` kills the second handle while the first lives.
    Kill,
    /// The handle reads every key in one read transaction: it must see every acknowledged
    /// commit, and never less than it saw before (`Other(Read)`: the second handle reads).
    Read,
    /// The workload's change feed consumer acknowledges every commit so far (engines without
    /// a feed: nothing): after a crash, the feed resumes after them, never before.
    FeedAck,
}

/// Engine settings a workload runs with (small, so that files and checkpoints are small).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// `Options::wal_preallocate_bytes`.
    pub wal_preallocate_bytes: u64,
    /// `Options::segment_size_bytes_target`.
    pub segment_size_bytes_target: u64,
    /// The engine's WAL read chunk (hidden `Options::read_chunk_bytes`); `None` keeps the
    /// engine's 1 MiB. Small chunks make logs of a few KiB cross chunk boundaries.
    #[serde(default)]
    pub read_chunk_bytes: Option<usize>,
    /// `Options::sector_size` (sector padding; 0: off). `--sector-padding` sets 4096, which
    /// keeps appends apart for 512-byte sectors too.
    #[serde(default)]
    pub sector_size: u32,
    /// `Options::close_checkpoint_bytes`: with a value, the last handle to close folds a log
    /// longer than this into a run (walstore; background checkpoints stay off).
    #[serde(default)]
    pub close_checkpoint_bytes: Option<u64>,
    /// A change feed consumer registered at the first open, which never acknowledges: every
    /// checkpoint seals its log, and after every crash the whole feed is read and checked
    /// against the recovered commits (invariant 13; engines without a feed ignore it).
    #[serde(default)]
    pub feed_consumer: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            wal_preallocate_bytes: 8192,
            segment_size_bytes_target: 4096,
            read_chunk_bytes: None,
            sector_size: 0,
            close_checkpoint_bytes: None,
            feed_consumer: false,
        }
    }
}

/// A named list of steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Name (a scripted scenario, or `random-<seed>`).
    pub name: String,
    /// The steps.
    pub steps: Vec<Step>,
    /// Engine settings.
    pub settings: EngineSettings,
}

impl Workload {
    /// Every key a step of the workload names (puts, deletes, increments, range bounds left
    /// out): the keys a range deletion can find in the store.
    pub fn keys(&self) -> std::collections::BTreeSet<String> {
        fn walk(step: &Step, keys: &mut std::collections::BTreeSet<String>) {
            match step {
                Step::Txn { ops, .. } => {
                    for op in ops {
                        match op {
                            TxOp::Put { key, .. } | TxOp::Delete { key } => {
                                keys.insert(key.clone());
                            }
                            TxOp::DeleteRange { .. } => {}
                        }
                    }
                }
                Step::Increment { key, .. } => {
                    keys.insert(key.clone());
                }
                Step::Other(inner) => walk(inner, keys),
                Step::Concurrent(a, b) => {
                    walk(a, keys);
                    walk(b, keys);
                }
                _ => {}
            }
        }
        let mut keys = std::collections::BTreeSet::new();
        for step in &self.steps {
            walk(step, &mut keys);
        }
        keys
    }

    /// Number of commit attempts (transactions not meant to abort, and increments).
    pub fn commit_count(&self) -> usize {
        fn count(step: &Step) -> usize {
            match step {
                Step::Other(inner) => count(inner),
                Step::Concurrent(a, b) => count(a) + count(b),
                Step::Txn { abort: false, .. } | Step::Increment { .. } => 1,
                _ => 0,
            }
        }
        self.steps.iter().map(count).sum()
    }
}

/// Builds values that carry their transaction's serial number.
pub fn value(serial: u64, body: &str) -> String {
    format!("s{serial}:{body}")
}

/// The transaction serial number a value carries, if it has one.
pub fn serial_of(value: &str) -> Option<u64> {
    let rest = value.strip_prefix('s')?;
    let (digits, _) = rest.split_once(':')?;
    digits.parse().ok()
}

/// The counter a value holds (the part after the serial).
pub fn counter_of(value: &str) -> Option<u64> {
    value.split_once(':')?.1.parse().ok()
}

/// A put whose value carries `serial`.
pub fn put(serial: u64, key: &str, body: &str) -> TxOp {
    TxOp::Put {
        key: key.to_string(),
        value: value(serial, body),
    }
}

/// A transaction committed (not aborted) with `durability`.
pub fn txn(serial: u64, ops: Vec<TxOp>, durability: Dur) -> Step {
    Step::Txn {
        serial,
        ops,
        durability,
        abort: false,
    }
}

/// A deletion of every key from `lo` (included) to `hi` (excluded).
pub fn delete_range(lo: &str, hi: &str) -> TxOp {
    TxOp::DeleteRange {
        lo: lo.to_string(),
        hi: hi.to_string(),
    }
}
