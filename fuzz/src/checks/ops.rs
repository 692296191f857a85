//! The `ops` target: operation sequences (transactions, aborts, checkpoints, reopens, crashes,
//! injected I/O faults) against a `BTreeMap` reference model.

use super::common::{must_read, options, State, DIR};
use super::input::Encoder;
use arbitrary::Arbitrary;
use walstore::storage::{MemoryStorage, StorageOp};
use walstore::{Durability, Error, Store, WriteTxn};

/// One step of an operation sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A write transaction: writes (key number, value length or `None` to delete), then
    /// commit (or abort when `commit` is false).
    Txn {
        writes: Vec<(u8, Option<u16>)>,
        commit: bool,
        durability: Durability,
    },
    /// `Store::checkpoint`.
    Checkpoint,
    /// Drop the store and open it again (a process exit: nothing written is lost).
    Reopen,
    /// Drop the store, lose everything not synced, open again.
    Crash,
    /// Arm a fault: the mutating call after `after` more (of kind `only`) fails with
    /// `errno`, and every later one too if `persistent`.
    Fault {
        after: u8,
        only: Option<StorageOp>,
        errno: i32,
        persistent: bool,
    },
    /// Compare the store's state with the model.
    Check,
}

/// The input of the `ops` target: the steps of an operation sequence, made into [`Op`]s by
/// [`Op::parse_all`].
#[derive(Arbitrary, Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsInput {
    pub steps: Vec<Step>,
}

/// One step as the input says it; [`Op::from_step`] bounds its numbers.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A transaction writes at least once: an empty commit writes and syncs nothing, so it
    /// is not a commit the model can count as making earlier ones durable.
    Txn {
        first: WriteStep,
        more: Vec<WriteStep>,
        commit: bool,
        buffered: bool,
    },
    Checkpoint,
    Reopen,
    Crash,
    Fault {
        after: u8,
        only: Option<FaultOn>,
        out_of_space: bool,
        persistent: bool,
    },
    Check,
}

/// A put (of a short or a long value) or a delete of key number `key`.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteStep {
    pub key: u8,
    pub value: ValueStep,
}

/// Some values are long enough to cross the 4 KiB blocks and split snapshot files.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueStep {
    Delete,
    /// A value of `n % 64` bytes.
    Short(u8),
    /// A value of `24 * n` bytes.
    Long(u8),
}

/// The kind of storage call an injected fault hits.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOn {
    Sync,
    Write,
    SetLen,
    Create,
    Rename,
    SyncDir,
}

const STEP_VARIANTS: usize = 6;
const FAULT_ON: [StorageOp; 6] = [
    StorageOp::Sync,
    StorageOp::Write,
    StorageOp::SetLen,
    StorageOp::Create,
    StorageOp::Rename,
    StorageOp::SyncDir,
];
/// Most operations of one sequence, most writes of one transaction, key numbers, and the
/// calls a fault waits for.
const OPS_MAX: usize = 48;
const WRITES_MAX: usize = 8;
const KEYS: u8 = 24;
const FAULT_AFTER_MAX: u8 = 24;

impl FaultOn {
    fn op(self) -> StorageOp {
        FAULT_ON[self as usize]
    }
}

impl ValueStep {
    fn len(self) -> Option<u16> {
        match self {
            ValueStep::Delete => None,
            ValueStep::Short(n) => Some(u16::from(n) % 64),
            ValueStep::Long(n) => Some(u16::from(n) * 24),
        }
    }

    /// The step of a value length (`None`: a delete), if a step can say it.
    fn of(len: Option<u16>) -> Option<ValueStep> {
        match len {
            None => Some(ValueStep::Delete),
            Some(n) if n < 64 => Some(ValueStep::Short(n as u8)),
            Some(n) if n % 24 == 0 => u8::try_from(n / 24).ok().map(ValueStep::Long),
            Some(_) => None,
        }
    }
}

impl Op {
    /// Decodes an `ops` input: up to 48 operations.
    pub fn parse_all(data: &[u8]) -> Vec<Op> {
        let input: OpsInput = super::input::decode(data);
        input
            .steps
            .iter()
            .take(OPS_MAX)
            .map(Op::from_step)
            .collect()
    }

    /// The operation a step asks for, its numbers bounded.
    pub fn from_step(step: &Step) -> Op {
        match step {
            Step::Txn {
                first,
                more,
                commit,
                buffered,
            } => Op::Txn {
                writes: std::iter::once(first)
                    .chain(more)
                    .take(WRITES_MAX)
                    .map(|w| (w.key % KEYS, w.value.len()))
                    .collect(),
                commit: *commit,
                durability: if *buffered {
                    Durability::Buffered
                } else {
                    Durability::Immediate
                },
            },
            Step::Checkpoint => Op::Checkpoint,
            Step::Reopen => Op::Reopen,
            Step::Crash => Op::Crash,
            Step::Fault {
                after,
                only,
                out_of_space,
                persistent,
            } => Op::Fault {
                after: after % FAULT_AFTER_MAX,
                only: only.map(FaultOn::op),
                errno: if *out_of_space { 28 } else { 5 },
                persistent: *persistent,
            },
            Step::Check => Op::Check,
        }
    }

    /// The `ops` input of `ops` (for seeds and regression files). Panics on an operation no
    /// input can say (a key number or fault count out of range, an odd value length, an
    /// errno other than 5 and 28).
    pub fn encode_all(ops: &[Op]) -> Vec<u8> {
        assert!(ops.len() <= OPS_MAX, "{} operations", ops.len());
        let mut e = Encoder::new();
        e.list(ops, |e, op| op.encode(e));
        e.finish()
    }

    fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Txn {
                writes,
                commit,
                durability,
            } => {
                assert!(
                    (1..=WRITES_MAX).contains(&writes.len()),
                    "{} writes",
                    writes.len()
                );
                e.variant(0, STEP_VARIANTS);
                encode_write(e, &writes[0]);
                e.list(&writes[1..], encode_write);
                e.bool(*commit).bool(*durability == Durability::Buffered);
            }
            Op::Checkpoint => {
                e.variant(1, STEP_VARIANTS);
            }
            Op::Reopen => {
                e.variant(2, STEP_VARIANTS);
            }
            Op::Crash => {
                e.variant(3, STEP_VARIANTS);
            }
            Op::Fault {
                after,
                only,
                errno,
                persistent,
            } => {
                assert!(
                    *after < FAULT_AFTER_MAX && matches!(errno, 5 | 28),
                    "{self:?}"
                );
                e.variant(4, STEP_VARIANTS).u8(*after);
                match only {
                    None => e.bool(false),
                    Some(op) => {
                        let i = FAULT_ON.iter().position(|o| o == op).expect("a fault kind");
                        e.bool(true).variant(i, FAULT_ON.len())
                    }
                };
                e.bool(*errno == 28).bool(*persistent);
            }
            Op::Check => {
                e.variant(5, STEP_VARIANTS);
            }
        }
    }
}

fn encode_write(e: &mut Encoder, (key, len): &(u8, Option<u16>)) {
    assert!(*key < KEYS, "key number {key}");
    let value = ValueStep::of(*len).expect("a value length a step can say");
    e.u8(*key);
    match value {
        ValueStep::Delete => e.variant(0, 3),
        ValueStep::Short(n) => e.variant(1, 3).u8(n),
        ValueStep::Long(n) => e.variant(2, 3).u8(n),
    };
}

fn key_of(n: u8) -> Vec<u8> {
    // Keys share a long prefix (exercises the snapshot shared prefix) except a few.
    if n % 6 == 5 {
        vec![b'z', n]
    } else {
        format!("user/{n:04}").into_bytes()
    }
}

fn value_of(txn: u64, i: usize, len: u16) -> Vec<u8> {
    let mut v = format!("{txn}.{i};").into_bytes();
    v.resize(usize::from(len).max(v.len()), b'.');
    v
}

/// The reference model of an operation sequence and the live store it is checked against.
struct OpsRun {
    mem: MemoryStorage,
    store: Option<Store>,
    /// States the store went through since recovery last decided, oldest first; the last one
    /// is what the store shows.
    history: Vec<State>,
    /// Index into `history` of the oldest state a crash may go back to (everything up to it
    /// was acknowledged durable).
    durable: usize,
    /// The state with a commit that failed after its bytes may have been written: the store
    /// may recover it or not, atomically.
    indeterminate: Option<State>,
    /// Whether the handle must refuse writes with `Error::Poisoned`.
    poisoned: bool,
    fault_armed: bool,
    txns: u64,
}

impl OpsRun {
    fn current(&self) -> &State {
        self.history.last().expect("history is never empty")
    }

    fn open(&mut self, when: &str) {
        let store = match options(&self.mem).open(DIR) {
            Ok(store) => store,
            Err(e) if self.fault_armed => {
                assert!(
                    matches!(e, Error::Io { .. }),
                    "{when}: open under an injected fault failed with {e:?}"
                );
                self.mem.clear_fault();
                self.fault_armed = false;
                options(&self.mem)
                    .open(DIR)
                    .unwrap_or_else(|e| panic!("{when}: open after the fault was cleared: {e}"))
            }
            Err(e) => panic!("{when}: open failed: {e}"),
        };
        let (_, state) = must_read(&store, when);
        let allowed: Vec<&State> = self.history[self.durable..]
            .iter()
            .chain(self.indeterminate.as_ref())
            .collect();
        assert!(
            allowed.contains(&&state),
            "{when}: recovered {} keys, which is none of the {} states a valid history allows \
             (the newest has {} keys)",
            state.len(),
            allowed.len(),
            self.current().len()
        );
        self.history = vec![state];
        self.durable = 0;
        self.indeterminate = None;
        self.poisoned = false;
        self.store = Some(store);
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("the store is open")
    }

    fn txn(&mut self, writes: &[(u8, Option<u16>)], commit: bool, durability: Durability) {
        self.txns += 1;
        let n = self.txns;
        let Some(mut tx) = self.begin() else {
            return;
        };
        tx.set_durability(durability);
        let mut next = self.current().clone();
        for (i, (key, value)) in writes.iter().enumerate() {
            let key = key_of(*key);
            match value {
                Some(len) => {
                    let value = value_of(n, i, *len);
                    tx.put(&key, &value).expect("valid put");
                    next.insert(key, value);
                }
                None => {
                    tx.delete(&key).expect("valid delete");
                    next.remove(&key);
                }
            }
        }
        if !commit {
            tx.abort();
            return;
        }
        let committed = tx.commit();
        self.committed(committed, next, durability);
    }

    /// Begins a write transaction; `None` (with the model updated) when the handle refuses.
    fn begin(&mut self) -> Option<WriteTxn> {
        match self.store().begin_write() {
            Ok(tx) => {
                assert!(!self.poisoned, "begin_write succeeded on a poisoned handle");
                Some(tx)
            }
            Err(Error::Poisoned { .. }) => {
                assert!(
                    self.poisoned || self.store().is_poisoned(),
                    "begin_write returned Poisoned on a handle that is not"
                );
                self.poisoned = true;
                None
            }
            Err(e) => {
                assert!(
                    !self.poisoned,
                    "begin_write on a poisoned handle returned {e:?}, not Poisoned"
                );
                assert!(
                    self.fault_armed && matches!(e, Error::Io { .. }),
                    "begin_write failed: {e:?}"
                );
                self.poisoned = true;
                assert!(
                    self.store().is_poisoned(),
                    "an I/O error did not poison the handle"
                );
                None
            }
        }
    }

    /// Updates the model with a commit's outcome: `next` is the state it would make.
    fn committed(&mut self, result: walstore::Result<()>, next: State, durability: Durability) {
        match result {
            Ok(()) => {
                self.history.push(next);
                if durability == Durability::Immediate {
                    self.durable = self.history.len() - 1;
                }
            }
            Err(Error::Io { .. }) if self.fault_armed => {
                assert!(
                    self.store().is_poisoned(),
                    "a commit that failed with an I/O error did not poison the handle"
                );
                self.poisoned = true;
                self.indeterminate = Some(next);
                let again = self.store().update(|tx| tx.put(b"after-failure", b"x"));
                assert!(
                    matches!(again, Err(Error::Poisoned { .. })),
                    "a commit after a failed one returned {again:?}, not Poisoned"
                );
            }
            Err(e) => panic!("commit failed: {e:?}"),
        }
    }

    fn check_visible(&self, when: &str) {
        let (_, state) = must_read(self.store(), when);
        let ok = state == *self.current() || self.indeterminate.as_ref() == Some(&state);
        assert!(
            ok,
            "{when}: the store shows {} keys, the model {}",
            state.len(),
            self.current().len()
        );
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Txn {
                writes,
                commit,
                durability,
            } => self.txn(writes, *commit, *durability),
            Op::Checkpoint => match self.store().checkpoint() {
                Ok(_) => {
                    assert!(
                        !self.poisoned,
                        "a checkpoint succeeded on a poisoned handle"
                    );
                    // A checkpoint makes everything committed durable.
                    if self.indeterminate.is_none() {
                        self.durable = self.history.len() - 1;
                    }
                }
                Err(Error::Poisoned { .. }) => {
                    assert!(
                        self.store().is_poisoned(),
                        "Poisoned from an unpoisoned handle"
                    );
                    self.poisoned = true;
                }
                Err(e) => {
                    assert!(
                        self.fault_armed && matches!(e, Error::Io { .. }),
                        "checkpoint failed: {e:?}"
                    );
                    self.poisoned |= self.store().is_poisoned();
                }
            },
            Op::Reopen => {
                self.store = None;
                // Without a crash every byte written survives: only the newest state (or the
                // failed commit, which may have reached the file) is allowed.
                self.durable = self.history.len() - 1;
                self.open("reopen");
            }
            Op::Crash => {
                self.store = None;
                self.mem.crash();
                self.fault_armed = false;
                self.open("reopen after a crash");
            }
            Op::Fault {
                after,
                only,
                errno,
                persistent,
            } => {
                self.mem
                    .fail_after(u64::from(*after), *only, *errno, *persistent);
                self.fault_armed = true;
            }
            Op::Check => self.check_visible("check"),
        }
        if self.poisoned {
            let write = self.store().update(|tx| tx.put(b"poison-probe", b"x"));
            assert!(
                matches!(write, Err(Error::Poisoned { .. })),
                "a write on a poisoned handle returned {write:?}"
            );
        }
    }
}

/// `ops` target: an operation sequence (transactions, aborts, checkpoints, reopens, crashes,
/// injected I/O faults) against a `BTreeMap` model.
///
/// - every committed `Immediate` transaction survives a crash; a reopen without a crash keeps
///   everything; recovered states are exactly states of the model's history (prefix
///   consistency, atomicity, no phantoms from aborted transactions);
/// - a commit that fails with an I/O error poisons the handle (every later write returns
///   `Poisoned`) and is recovered all or nothing;
/// - a fresh open after every fault is cleared succeeds.
pub fn check(data: &[u8]) {
    let ops = Op::parse_all(data);
    run_ops(&ops);
}

/// Runs `ops` against a fresh in-memory store and the model.
pub fn run_ops(ops: &[Op]) {
    let mem = MemoryStorage::new();
    let store = options(&mem).open(DIR).expect("create a store");
    let mut run = OpsRun {
        mem,
        store: Some(store),
        history: vec![State::new()],
        durable: 0,
        indeterminate: None,
        poisoned: false,
        fault_armed: false,
        txns: 0,
    };
    for op in ops {
        run.step(op);
    }
    // The end of every sequence: clear faults, crash, recover, check, write, crash, check.
    run.mem.clear_fault();
    run.fault_armed = false;
    run.store = None;
    run.mem.crash();
    run.open("final crash");
    run.txn(&[(1, Some(3)), (2, None)], true, Durability::Immediate);
    run.check_visible("final write");
    run.store = None;
    run.mem.crash();
    run.open("final crash after a write");
}
