//! Runs a workload against the engine on a simulated file system, keeps the reference model
//! up to date, checks what can be checked while running (invariant 11: poison after a failed
//! fsync or WAL write; reads inside transactions), and pairs every captured crash point with
//! the model as it stood when the crash happened. Steps can run on a second handle
//! ([`handles`]), and two commits on two threads of one handle ([`threads`]).

mod fold;
mod handles;
mod killmid;
mod ops;
mod poison;
mod threads;
mod visibility;

use crate::engine::{
    guarded, read_state, AtomicityUnit, EngineConfig, EngineError, Handle, WriteTxn,
};
use crate::oracle::{History, Invariant, Status, Violation};
use crate::simfs::inject::{CountdownFault, SwarmProbabilities};
use crate::simfs::{Capture, CrashPoint, Process, SimFs};
use crate::trace::OpClass;
use crate::workload::{counter_of, value, Dur, Step, TxOp, Workload};
use ops::{apply_ops, split_writes, writes_of};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Faults and crash points of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Which operations become crash points.
    pub capture: Capture,
    /// A countdown I/O fault.
    pub countdown: Option<CountdownFault>,
    /// Random I/O faults.
    pub swarm: Option<SwarmProbabilities>,
    /// File-system behaviour that matters while running (a failed directory sync).
    pub media: crate::crashgen::MediaModel,
}

impl RunConfig {
    /// No faults, crash points as given.
    pub fn capture(capture: Capture) -> Self {
        RunConfig {
            capture,
            countdown: None,
            swarm: None,
            media: crate::crashgen::MediaModel::default(),
        }
    }
}

/// A crash point with the model as it stood.
#[derive(Debug, Clone)]
pub struct PointContext {
    /// The file system right after the operation.
    pub point: CrashPoint,
    /// The model at the start of the workload step during which the crash happened (the
    /// step's own commit, if any, is in flight).
    pub history: Arc<History>,
    /// The step (`commit 3`, `checkpoint`, ...).
    pub phase: String,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The file system at the end (the store closed).
    pub fs: SimFs,
    /// The model at the end.
    pub history: History,
    /// Crash points captured, in order.
    pub points: Vec<PointContext>,
    /// A violation found while running, if any (the run stops there).
    pub violation: Option<Violation>,
    /// The file system state just before the store was closed.
    pub final_state: crate::simfs::state::FsState,
}

struct Driver<'a> {
    fs: SimFs,
    engine: &'a EngineConfig,
    store: Option<Arc<dyn Handle>>,
    /// The process the store runs in (a kill ends it).
    process: Option<Process>,
    history: History,
    points: Vec<PointContext>,
    /// A fault fired on this handle since it was opened.
    handle_faulted: bool,
    /// Why the handle must refuse commits (a failed WAL fsync or WAL write), if it must.
    must_be_poisoned: Option<String>,
    /// Reopen after this many more steps (after an error: one step exercises the poisoned
    /// handle first).
    reopen_in: Option<u32>,
    /// The second handle's fields while the first one runs, and the other way round.
    other: handles::Parked,
    /// The third handle's fields (`Step::Other(Other(..))`) while another one runs.
    third: handles::Parked,
    /// How many commit attempts the handle has read as visible (never fewer later).
    reads_seen: usize,
    /// Every key the workload names (what a range deletion can find).
    keys: BTreeSet<String>,
    /// A failed write or sync of the log on some handle since every handle last closed the
    /// store: every handle may be poisoned ([`poison`]).
    shared_poison: Option<String>,
}

/// Runs `workload` with `config`; the engine is created fresh on an empty file system.
pub fn run_workload(workload: &Workload, engine: &EngineConfig, config: &RunConfig) -> RunOutcome {
    let fs = SimFs::new();
    fs.set_capture(config.capture);
    fs.set_dir_sync_failure_is_fatal(config.media.dir_sync_failure_is_fatal);
    if let Some(c) = &config.countdown {
        fs.set_countdown(c.clone());
    }
    if let Some(s) = config.swarm {
        fs.set_swarm(s);
    }
    let mut d = Driver {
        fs: fs.clone(),
        engine,
        store: None,
        process: None,
        history: History::default(),
        points: Vec::new(),
        handle_faulted: false,
        must_be_poisoned: None,
        reopen_in: None,
        other: handles::Parked::handle(1),
        third: handles::Parked::handle(2),
        keys: workload.keys(),
        reads_seen: 0,
        shared_poison: None,
    };
    let steps = match engine.promises().atomicity {
        AtomicityUnit::Transaction => workload.steps.clone(),
        AtomicityUnit::Write => split_writes(&workload.steps),
    };
    let violation = d.run(&steps).err();
    let final_state = fs.state();
    d.store = None;
    d.other.close();
    d.third.close();
    fs.set_capture(Capture::Off);
    RunOutcome {
        fs,
        history: d.history,
        points: d.points,
        violation,
        final_state,
    }
}

impl Driver<'_> {
    fn run(&mut self, steps: &[Step]) -> Result<(), Violation> {
        self.open("create")?;
        for step in steps {
            if self.store.is_none() || self.reopen_in == Some(0) {
                self.reopen_in = None;
                self.open("reopen")?;
                if self.store.is_none() {
                    continue;
                }
            }
            self.reopen_in = self.reopen_in.map(|n| n.saturating_sub(1));
            self.step(step)?;
        }
        self.final_check()
    }

    /// Takes the crash points captured during a step and pairs them with the model.
    fn collect(&mut self, history: &Arc<History>, phase: &str) {
        for point in self.fs.take_crash_points() {
            self.points.push(PointContext {
                point,
                history: Arc::clone(history),
                phase: phase.to_string(),
            });
        }
    }

    /// Opens (or reopens) the store and, on a reopen, resolves undecided commits.
    fn open(&mut self, phase: &str) -> Result<(), Violation> {
        let fired_at_close = self.fs.fired_count();
        self.store = None;
        self.note_shared_poison(fired_at_close);
        self.close_other_if_poisoned()?;
        self.fs.set_phase(phase);
        let snapshot = Arc::new(self.history.clone());
        let fired_before = self.fs.fired_count();
        let process = self.fs.process();
        let opened = self.engine.open_on(Arc::new(process.clone()));
        self.process = Some(process);
        self.collect(&snapshot, phase);
        self.note_shared_poison(fired_before);
        let opened = opened.map_err(|panic| {
            Violation::new(
                Invariant::NoPanic,
                format!("the engine panicked while opening ({phase})"),
                "Ok or a typed error",
                panic,
            )
        })?;
        let faulted = self.fs.fired_count() > fired_before;
        let store: Arc<dyn Handle> = match opened {
            Ok(store) => Arc::from(store),
            Err(_) if faulted => return Ok(()),
            Err(e) => {
                return Err(Violation::new(
                    Invariant::WritableAfterRecovery,
                    format!("{phase} failed with no fault injected and no crash"),
                    "the store opens",
                    e.to_string(),
                ))
            }
        };
        self.handle_faulted = faulted;
        self.must_be_poisoned = None;
        self.reads_seen = 0;
        if phase != "create" {
            self.resolve(&*store)?;
        }
        self.store = Some(store);
        self.clear_poison_if_alone();
        Ok(())
    }

    /// After a reopen without a crash, everything written to the OS is there (F15 rules).
    fn resolve(&mut self, store: &dyn Handle) -> Result<(), Violation> {
        let state = match read_state(store) {
            Ok(state) => state,
            Err(_) if self.fs.fired_count() > 0 => return Ok(()),
            Err(e) => {
                return Err(Violation::new(
                    Invariant::WritableAfterRecovery,
                    "reading the reopened store failed with no fault injected",
                    "a readable store",
                    e.to_string(),
                ))
            }
        };
        let exp = self.history.expectation(self.fs.op_count(), "reopen");
        let k = exp.judge(&state, exp.lo_kill)?;
        self.history.resolve(k);
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), Violation> {
        let fired_before = self.fs.fired_count();
        let result = match step {
            Step::Txn {
                serial,
                ops,
                durability,
                abort,
            } => self.txn(*serial, ops, *durability, *abort),
            Step::Increment {
                serial,
                key,
                durability,
            } => self.increment(*serial, key, *durability),
            Step::Checkpoint => {
                let result = self.simple("checkpoint", |s| s.checkpoint())?;
                if result.is_ok() {
                    self.check_reads_now()?;
                }
                Ok(result)
            }
            Step::Compact => {
                let result = self.simple("compact", |s| s.compact())?;
                if result.is_ok() {
                    self.check_reads_now()?;
                }
                Ok(result)
            }
            Step::Merge => {
                let result = self.simple("merge", |s| s.merge())?;
                if result.is_ok() {
                    self.check_reads_now()?;
                }
                Ok(result)
            }
            Step::Sync => self.simple("sync", |s| s.sync()),
            Step::Reopen => {
                self.reopen_in = Some(0);
                return Ok(());
            }
            Step::Other(inner) => return self.on_handle(inner),
            Step::Concurrent(first, second) => return self.concurrent(first, second),
            Step::Kill => return self.kill(),
            Step::Read => return self.read_step(),
            Step::FeedAck => {
                self.history.feed_ack_begins();
                let result = self.simple("feed-ack", |s| s.feed_ack().unwrap_or(Ok(())))?;
                self.history.feed_ack_ends(result.is_ok());
                Ok(result)
            }
        }?;
        let fired_now = self.fs.fired_count() > fired_before;
        self.handle_faulted |= fired_now;
        self.note_shared_poison(fired_before);
        if let Err(e) = result {
            if !self.may_fail() {
                return Err(Violation::new(
                    Invariant::WritableAfterRecovery,
                    format!("{step:?} failed with no fault injected"),
                    "success",
                    e.to_string(),
                ));
            }
            if self.reopen_in.is_none() {
                self.reopen_in = Some(1);
            }
        }
        Ok(())
    }

    /// Runs a store call that is not a commit.
    fn simple(
        &mut self,
        phase: &str,
        call: impl FnOnce(&dyn Handle) -> Result<(), EngineError>,
    ) -> Result<Result<(), EngineError>, Violation> {
        let store = self
            .store
            .as_ref()
            .expect("a step runs only with an open store");
        self.fs.set_phase(phase);
        let snapshot = Arc::new(self.history.clone());
        let fired_before = self.fs.fired().len();
        let result = guarded(|| call(&**store));
        self.collect(&snapshot, phase);
        let result = result.map_err(|panic| {
            Violation::new(
                Invariant::NoPanic,
                format!("the engine panicked in {phase}"),
                "Ok or a typed error",
                panic,
            )
        })?;
        self.note_wal_faults(fired_before, phase == "sync");
        if result.is_ok() {
            if phase == "checkpoint" {
                self.history.checkpoint_done(self.fs.op_count());
            } else {
                self.history.mark_own_durable();
            }
        }
        Ok(result)
    }

    /// Remembers a failed WAL fsync (any call) or WAL write (in a commit or sync): the handle
    /// must refuse commits from now on.
    fn note_wal_faults(&mut self, fired_before: usize, commit_path: bool) -> Option<String> {
        self.note_shared_poison(fired_before);
        let fired = self.fs.fired();
        let hit = fired[fired_before..].iter().find(|f| {
            self.engine.is_log(Path::new(&f.path))
                && (f.class == OpClass::Sync
                    || (commit_path && matches!(f.class, OpClass::Write | OpClass::SetLen)))
        })?;
        let why = format!("failed {} of the WAL at op #{}", hit.class, hit.op_index);
        if self.must_be_poisoned.is_none() {
            self.must_be_poisoned = Some(why.clone());
        }
        self.poison_other(&why);
        Some(why)
    }

    fn txn(
        &mut self,
        serial: u64,
        ops: &[TxOp],
        dur: Dur,
        abort: bool,
    ) -> Result<Result<(), EngineError>, Violation> {
        let writes = writes_of(ops, &self.keys);
        let apply = |tx: &mut dyn WriteTxn| apply_ops(tx, ops);
        if abort {
            self.history.aborted.insert(serial);
            let phase = format!("abort {serial}");
            self.fs.set_phase(&phase);
            let snapshot = Arc::new(self.history.clone());
            let store = self
                .store
                .as_ref()
                .expect("a step runs only with an open store");
            let result = guarded(|| {
                let mut tx = store.begin_write(Dur::Immediate)?;
                apply(&mut *tx)?;
                tx.abort();
                Ok(())
            });
            self.collect(&snapshot, &phase);
            return result.map_err(|p| panic_violation(&phase, p));
        }
        let result = self.commit(serial, writes, dur, |tx| apply(tx))?;
        let ranged = ops.iter().any(|op| matches!(op, TxOp::DeleteRange { .. }));
        if ranged && result.is_ok() {
            // Range deletions hide keys of the runs below the memtable: bounded reads, reverse
            // reads and point gets must agree with the model right away.
            self.check_reads_now()?;
            self.check_range_deleted_gets(ops)?;
        }
        Ok(result)
    }

    fn increment(
        &mut self,
        serial: u64,
        key: &str,
        dur: Dur,
    ) -> Result<Result<(), EngineError>, Violation> {
        let model = self.history.current().get(key).cloned();
        let certain = self.history.is_certain();
        let next = model.as_deref().and_then(counter_of).unwrap_or(0) + 1;
        let new_value = value(serial, &next.to_string());
        let writes = vec![(key.to_string(), Some(new_value.clone()))];
        let mut mismatch = None;
        let result = self.commit(serial, writes, dur, |tx| {
            let seen = tx
                .get(key.as_bytes())?
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            if certain && seen != model {
                mismatch = Some(seen);
            }
            tx.put(key.as_bytes(), new_value.as_bytes())
        })?;
        if let Some(seen) = mismatch {
            return Err(Violation::new(
                Invariant::PrefixConsistency,
                format!("a write transaction read {key} and saw a state the model never had"),
                format!("{model:?}"),
                format!("{seen:?}"),
            ));
        }
        Ok(result)
    }

    /// One commit attempt: begin, apply, commit; the model learns the outcome.
    fn commit(
        &mut self,
        serial: u64,
        writes: Vec<(String, Option<String>)>,
        dur: Dur,
        apply: impl FnOnce(&mut dyn WriteTxn) -> Result<(), EngineError>,
    ) -> Result<Result<(), EngineError>, Violation> {
        let dur = self.engine.promised(dur);
        let phase = format!("commit {serial}");
        self.fs.set_phase(&phase);
        let index = self
            .history
            .begin_commit(serial, writes, dur, self.fs.op_count());
        let snapshot = Arc::new(self.history.clone());
        let poisoned_before = self.must_be_poisoned.clone();
        let fired_before = self.fs.fired().len();
        let store = self
            .store
            .as_ref()
            .expect("a step runs only with an open store");
        let fs = &self.fs;
        let mut ops_before_commit = fs.op_count();
        let outcome = guarded(|| -> Result<(), EngineError> {
            let mut tx = store.begin_write(dur)?;
            apply(&mut *tx)?;
            ops_before_commit = fs.op_count();
            tx.commit()
        });
        self.collect(&snapshot, &phase);
        let result = outcome.map_err(|p| panic_violation(&phase, p))?;
        let end = self.fs.op_count();
        let wal_writes: Vec<(u64, (u64, u64))> = self
            .fs
            .trace()
            .iter()
            .filter(|t| t.index > ops_before_commit && self.engine.is_log(Path::new(&t.path)))
            .filter_map(|t| t.range.map(|r| (t.index, r)))
            .collect();
        let wal_ranges_ops: Vec<u64> = wal_writes.iter().map(|(op, _)| *op).collect();
        let wal_ranges = wal_writes.into_iter().map(|(_, r)| r).collect();
        if let Some(c) = self.history.commits.get_mut(index) {
            c.first_op = ops_before_commit;
            c.wal_ranges = wal_ranges;
        }
        let during = self.note_wal_faults(fired_before, true);
        let fired_here = self.fs.fired().len() > fired_before;
        if result.is_ok() && dur == Dur::Immediate && !fired_here {
            self.check_covered(serial, &wal_ranges_ops)?;
        }
        let status = match &result {
            Ok(()) => Status::Acknowledged,
            Err(_) if end == ops_before_commit => Status::Failed,
            Err(_) => Status::Indeterminate,
        };
        self.history.finish_commit(index, status, end);
        if result.is_ok() {
            if let Some(why) = poisoned_before.or(during) {
                return Err(Violation::new(
                    Invariant::PoisonAfterFailure,
                    format!("commit {serial} was acknowledged after a {why}, without a reopen"),
                    "Err (Poisoned, or the I/O error) until the store is reopened",
                    "Ok",
                ));
            }
        }
        Ok(result)
    }

    /// At the end, a healthy handle must show exactly the model.
    fn final_check(&mut self) -> Result<(), Violation> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if self.handle_faulted || !self.history.is_certain() {
            return Ok(());
        }
        let state = read_state(&**store).map_err(|e| {
            Violation::new(
                Invariant::WritableAfterRecovery,
                "reading the store at the end of the workload failed",
                "a readable store",
                e.to_string(),
            )
        })?;
        let exp = self.history.expectation(self.fs.op_count(), "end");
        exp.judge(&state, exp.hi())?;
        crate::reads::check_reads(&**store, &state, self.fs.op_count())
    }

    /// After a checkpoint on a healthy handle, bounded reads over the new snapshot files
    /// agree with the model.
    fn check_reads_now(&self) -> Result<(), Violation> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if self.handle_faulted || !self.history.is_certain() {
            return Ok(());
        }
        crate::reads::check_reads(&**store, &self.history.current(), self.fs.op_count())
    }
}

fn panic_violation(phase: &str, panic: String) -> Violation {
    Violation::new(
        Invariant::NoPanic,
        format!("the engine panicked in {phase}"),
        "Ok or a typed error",
        panic,
    )
}
