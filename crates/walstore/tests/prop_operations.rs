//! Property tests: random operation sequences (multi-key transactions, aborts, checkpoints,
//! reopens, simulated power cuts, injected I/O errors) on the in-memory backend, against a
//! `BTreeMap` model. proptest shrinks a failure to a short sequence and prints it.

#[allow(dead_code)]
#[path = "../../../fuzz/src/checks/mod.rs"]
mod checks;

/// No allocation counting here (the fuzz build has it).
mod alloc_probe {
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
        (f(), None)
    }
}

use checks::common::{options, read_state, State, DIR};
use checks::ops::{run_ops, Op};
use proptest::prelude::*;
use walstore::storage::{MemoryStorage, StorageOp};
use walstore::{Durability, Store};

#[derive(Debug, Clone)]
enum Step {
    /// Writes (key number, value or delete); committed unless `abort`.
    Txn {
        writes: Vec<(u8, Option<Vec<u8>>)>,
        abort: bool,
    },
    Checkpoint,
    /// One transaction: a write, then the range `[lo, hi)` deleted (`hi` past every key: no
    /// end), then `put` written again when given (a write after a range deletion wins).
    DeleteRange {
        before: u8,
        lo: u8,
        hi: u8,
        put: Option<u8>,
    },
    /// Merges every run into one.
    Compact,
    /// Scans `[lo, hi)` in both directions.
    Scan {
        lo: u8,
        hi: u8,
    },
    Reopen,
    Crash,
}

fn key(n: u8) -> Vec<u8> {
    format!("key/{n:02}").into_bytes()
}

fn step() -> impl Strategy<Value = Step> {
    let write = (
        0u8..12,
        prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..300)),
    );
    prop_oneof![
        6 => (prop::collection::vec(write, 1..6), prop::bool::weighted(0.2))
            .prop_map(|(writes, abort)| Step::Txn { writes, abort }),
        2 => Just(Step::Checkpoint),
        1 => Just(Step::Compact),
        1 => (0u8..12, 0u8..13, 0u8..14, prop::option::of(0u8..12))
            .prop_map(|(before, lo, hi, put)| Step::DeleteRange { before, lo, hi, put }),
        1 => (0u8..13, 0u8..13).prop_map(|(lo, hi)| Step::Scan { lo, hi }),
        1 => Just(Step::Reopen),
        1 => Just(Step::Crash),
    ]
}

fn open(mem: &MemoryStorage) -> Store {
    options(mem).open(DIR).expect("open")
}

fn assert_matches(store: &Store, model: &State, last_txn: u64, when: &str) {
    let (txn, state) = read_state(store).expect("read the whole store");
    assert_eq!(&state, model, "{when}: store and model differ");
    assert_eq!(txn, last_txn, "{when}: last transaction id");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// With `Immediate` durability and no faults the store always equals the model: after
    /// every commit, abort, checkpoint, reopen and power cut.
    #[test]
    fn operation_sequences_match_a_btreemap_model_across_reopens_and_crashes(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let mem = MemoryStorage::new();
        let mut store = open(&mem);
        let mut model = State::new();
        let mut last_txn = 0;
        for (i, step) in steps.iter().enumerate() {
            let when = format!("step {i} ({step:?})");
            match step {
                Step::Txn { writes, abort } => {
                    let mut tx = store.begin_write().expect("begin_write");
                    let mut next = model.clone();
                    for (k, v) in writes {
                        match v {
                            Some(v) => {
                                tx.put(&key(*k), v).expect("put");
                                next.insert(key(*k), v.clone());
                            }
                            None => {
                                tx.delete(&key(*k)).expect("delete");
                                next.remove(&key(*k));
                            }
                        }
                    }
                    if *abort {
                        tx.abort();
                    } else {
                        tx.commit().expect("commit");
                        model = next;
                        last_txn += 1;
                    }
                }
                Step::Checkpoint => {
                    store.checkpoint().expect("checkpoint");
                }
                Step::DeleteRange { before, lo, hi, put } => {
                    let mut tx = store.begin_write().expect("begin_write");
                    tx.put(&key(*before), b"before").expect("put");
                    model.insert(key(*before), b"before".to_vec());
                    if *hi >= 13 {
                        tx.delete_range(key(*lo)..).expect("delete_range");
                        model.retain(|k, _| k < &key(*lo));
                    } else {
                        tx.delete_range(key(*lo)..key(*hi)).expect("delete_range");
                        model.retain(|k, _| k < &key(*lo) || k >= &key(*hi));
                    }
                    if let Some(p) = put {
                        tx.put(&key(*p), b"after").expect("put");
                        model.insert(key(*p), b"after".to_vec());
                    }
                    let (_, seen) = {
                        let mut seen = State::new();
                        for item in tx.range::<&[u8], _>(..).expect("range") {
                            let (k, v) = item.expect("item");
                            seen.insert(k, v.to_vec());
                        }
                        ((), seen)
                    };
                    prop_assert_eq!(&seen, &model, "{}: the transaction's own view", when);
                    tx.commit().expect("commit");
                    last_txn += 1;
                }
                Step::Compact => {
                    store.compact().expect("compact");
                    let runs = store.info().expect("info").runs;
                    prop_assert!(runs <= 1, "{when}: {runs} runs after compact");
                }
                Step::Scan { lo, hi } => {
                    let read = store.begin_read().expect("begin_read");
                    let (lo, hi) = (key(*lo), key(*hi));
                    let want: Vec<Vec<u8>> = model
                        .range(lo.clone()..hi.clone().max(lo.clone()))
                        .map(|(k, _)| k.clone())
                        .collect();
                    let keys = |it: walstore::Iter<'_>| -> Vec<Vec<u8>> {
                        it.map(|r| r.expect("scan").0).collect()
                    };
                    let range = lo.clone()..hi.clone().max(lo.clone());
                    prop_assert_eq!(&keys(read.range(range.clone()).expect("range")), &want);
                    let back: Vec<Vec<u8>> = want.iter().rev().cloned().collect();
                    prop_assert_eq!(&keys(read.range(range).expect("range").rev()), &back);
                }
                Step::Reopen => {
                    drop(store);
                    store = open(&mem);
                }
                Step::Crash => {
                    drop(store);
                    mem.crash();
                    store = open(&mem);
                }
            }
            assert_matches(&store, &model, last_txn, &when);
        }
        drop(store);
        mem.crash();
        let store = open(&mem);
        assert_matches(&store, &model, last_txn, "after the final crash");
    }
}

fn fault_op() -> impl Strategy<Value = Op> {
    let only = prop_oneof![
        Just(None),
        Just(Some(StorageOp::Sync)),
        Just(Some(StorageOp::Write)),
        Just(Some(StorageOp::SetLen)),
        Just(Some(StorageOp::Create)),
        Just(Some(StorageOp::Rename)),
        Just(Some(StorageOp::SyncDir)),
        Just(Some(StorageOp::Remove)),
    ];
    (0u8..20, only, prop::bool::ANY, prop::bool::ANY).prop_map(
        |(after, only, enospc, persistent)| Op::Fault {
            after,
            only,
            errno: if enospc { 28 } else { 5 },
            persistent,
        },
    )
}

fn model_op() -> impl Strategy<Value = Op> {
    let write = (0u8..24, prop::option::weighted(0.85, 0u16..2000));
    prop_oneof![
        6 => (prop::collection::vec(write, 1..6), prop::bool::weighted(0.85), prop::bool::weighted(0.25))
            .prop_map(|(writes, commit, buffered)| Op::Txn {
                writes,
                commit,
                durability: if buffered { Durability::Buffered } else { Durability::Immediate },
            }),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::Check),
        2 => fault_op(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// With `Buffered` commits and injected I/O failures of every kind (fdatasync that drops
    /// the dirty pages, write, truncate, create, rename, directory sync, remove; EIO and
    /// ENOSPC; transient and persistent): recovered states are states of the
    /// model's history at or after the last durable commit, a failed commit is all or nothing
    /// and poisons the handle, and the store opens once the faults stop (the checks of the
    /// `ops` fuzz target, `fuzz/src/checks/ops.rs`).
    #[test]
    fn failed_writes_are_atomic_and_poison_the_handle(
        ops in prop::collection::vec(model_op(), 1..40)
    ) {
        run_ops(&ops);
    }
}
