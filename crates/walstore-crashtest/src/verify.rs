//! Checks one post-crash image: reopen, judge the state, reopen again after a crash right
//! after recovery (stability), write and checkpoint (writable, no garbage files), crash and
//! reopen once more (the new commit survives).

use crate::crashgen::Damage;
use crate::engine::{read_state, EngineConfig, EngineError, ErrorKind, Handle, STORE_DIR};
use crate::image::Image;
use crate::oracle::feed::{check_feed, feed_failed};
use crate::oracle::{describe, Expectation, Invariant, State, Violation};
use crate::reads::check_reads;
use crate::simfs::{Capture, CrashPoint, SimFs};
use crate::workload::Dur;
use std::path::Path;

/// Key of the commit made after recovery (no workload uses the `zz-probe` key).
pub const PROBE_KEY: &str = "zz-probe";
const PROBE_VALUE: &str = "written after recovery";

/// The value of the commit made after recovery. When recovery left out a commit whose bytes
/// are known, the probe is sized to take exactly its place in the log, so that any stale
/// record after it would line up as the next transaction: a later commit must never revive
/// what recovery discarded.
fn probe_value(
    engine: &EngineConfig,
    expectation: &Expectation,
    k: usize,
    aligned: bool,
) -> String {
    let Some(structure) = engine.structure() else {
        return PROBE_VALUE.to_string();
    };
    if !aligned {
        return PROBE_VALUE.to_string();
    }
    // From the end of the last commit kept, when it lies before the first one left out in
    // the same log: clean markers between them are left out too by an open alone (its log
    // ends where they start, RECOVERY.md S1), so the probe, written there, ends where the
    // first commit left out ended, and lines up what followed it.
    let kept_end = k
        .checked_sub(1)
        .and_then(|p| expectation.commits.get(p))
        .and_then(|c| c.wal_ranges.last())
        .map(|&(_, end)| end);
    let replaced = expectation
        .commits
        .get(k)
        .and_then(|c| c.wal_ranges.last())
        .map(|&(start, end)| end - kept_end.filter(|&e| e <= start).unwrap_or(start));
    match replaced.and_then(|bytes| structure.probe_value_len(PROBE_KEY, bytes)) {
        Some(len) if len >= 1 => format!("p{}", "r".repeat(len - 1)),
        _ => PROBE_VALUE.to_string(),
    }
}

/// What to check an image against.
#[derive(Debug, Clone, Copy)]
pub struct ImageCase<'a> {
    /// The image.
    pub image: &'a Image,
    /// What recovery may produce.
    pub expectation: &'a Expectation,
    /// A power loss (otherwise a process kill).
    pub power_loss: bool,
    /// Synced bytes damaged in the image (F13), if any.
    pub damage: Option<&'a Damage>,
    /// Size the post-recovery commit to take the place of the first commit recovery left
    /// out (see [`probe_value`]).
    pub aligned_probe: bool,
}

/// What a passing image recovered to.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The prefix of the history found.
    pub k: usize,
    /// The state found (`None` if recovery reported corruption, which was allowed).
    pub state: Option<State>,
    /// Crash points inside the first recovery (if asked for).
    pub recovery_points: Vec<CrashPoint>,
}

/// Checks one image; `capture_recovery` records crash points inside the first reopen.
pub fn check_image(
    case: ImageCase<'_>,
    engine: &EngineConfig,
    capture_recovery: bool,
) -> Result<Recovered, Violation> {
    if let (None, Some(structure)) = (case.damage, engine.structure()) {
        structure.check_image(case.image)?;
    }
    let fs = case.image.to_simfs();
    if capture_recovery {
        fs.set_capture(Capture::EveryOp);
    }
    let lo = case.expectation.lower_bound(case.power_loss, case.damage);
    let store = match open(engine, &fs, "reopen after the crash")? {
        Ok(store) => store,
        Err(e) => return judge_open_error(case, engine, lo, e),
    };
    let state = match read_state(&*store) {
        Ok(state) => state,
        Err(e) => return judge_open_error(case, engine, lo, e),
    };
    let reads = check_reads(&*store, &state, case.image.digest());
    let recovery_points = fs.take_crash_points();
    fs.set_capture(Capture::Off);
    let feed = store.feed();
    drop(store);
    let k = case
        .expectation
        .judge(&state, lo)
        .map_err(|v| name_state_violation(case, v))?;
    if case.damage.is_none() {
        reads?;
        match feed {
            Some(Ok(records)) => check_feed(case.expectation, &state, lo, &records)?,
            Some(Err(e)) => return Err(feed_failed(e.to_string())),
            None => {}
        }
        after_recovery(
            engine,
            &fs,
            &state,
            &probe_value(engine, case.expectation, k, case.aligned_probe),
        )?;
    }
    Ok(Recovered {
        k,
        state: Some(state),
        recovery_points,
    })
}

/// Checks that a crash inside recovery, then a reopen, gives the same state (invariant 6).
pub fn check_recovery_crash(
    image: &Image,
    expected: &State,
    engine: &EngineConfig,
) -> Result<(), Violation> {
    let fs = image.to_simfs();
    let store = open(engine, &fs, "reopen after a crash during recovery")?.map_err(|e| {
        Violation::new(
            Invariant::StableIndeterminate,
            "a crash during recovery left a store that no longer opens",
            describe(expected),
            e.to_string(),
        )
    })?;
    let state = read_state(&*store).map_err(|e| {
        Violation::new(
            Invariant::StableIndeterminate,
            "a crash during recovery left a store that no longer reads",
            describe(expected),
            e.to_string(),
        )
    })?;
    if &state != expected {
        return Err(Violation::new(
            Invariant::StableIndeterminate,
            "a crash during recovery changed what the store recovers to",
            describe(expected),
            describe(&state),
        ));
    }
    Ok(())
}

fn open(
    engine: &EngineConfig,
    fs: &SimFs,
    what: &str,
) -> Result<Result<Box<dyn Handle>, EngineError>, Violation> {
    engine.open(fs).map_err(|panic| {
        Violation::new(
            Invariant::NoPanic,
            format!("the engine panicked in {what}"),
            "Ok or a typed error",
            panic,
        )
    })
}

fn judge_open_error(
    case: ImageCase<'_>,
    engine: &EngineConfig,
    lo: usize,
    e: EngineError,
) -> Result<Recovered, Violation> {
    let actual = e.to_string();
    match (&e.kind, case.damage) {
        // Reporting damage to synced bytes is always right. A damaged version field reads as
        // another format version, which the engine checks before checksums by design
        // (FORMAT.md §1): that names the file too, so it counts as a report.
        (ErrorKind::Corruption { .. }, Some(_)) => Ok(Recovered {
            k: lo,
            state: None,
            recovery_points: Vec::new(),
        }),
        (ErrorKind::UnsupportedFormat { file }, Some(d))
            if Path::new(&d.path) == file.as_path() =>
        {
            Ok(Recovered {
                k: lo,
                state: None,
                recovery_points: Vec::new(),
            })
        }
        (ErrorKind::Corruption { file, offset }, None) => {
            let checkpoints_done = !case.expectation.checkpoints_done.is_empty();
            let checkpoint_file = engine
                .structure()
                .is_some_and(|s| s.is_checkpoint_file(file, *offset, checkpoints_done));
            let invariant = if checkpoint_file || case.expectation.phase == "checkpoint" {
                Invariant::CheckpointAtomicity
            } else {
                Invariant::TornTailVersusCorruption
            };
            Err(Violation::new(
                invariant,
                "recovery reported corruption though no synced byte was damaged",
                "a silent recovery (torn or missing unsynced bytes are not corruption)",
                actual,
            ))
        }
        _ => Err(Violation::new(
            if lo > 0 {
                Invariant::Durability
            } else {
                Invariant::WritableAfterRecovery
            },
            "recovery failed, so acknowledged commits cannot be read",
            "the store opens",
            actual,
        )),
    }
}

/// A wrong state after a damaged image is a missed corruption report; after a crash inside a
/// checkpoint it is a checkpoint that was not atomic.
fn name_state_violation(case: ImageCase<'_>, v: Violation) -> Violation {
    if case.damage.is_some() {
        return v.renamed(
            Invariant::TornTailVersusCorruption,
            "synced bytes were damaged and recovery neither reported it nor recovered correctly",
        );
    }
    if case.expectation.phase == "checkpoint" {
        return v.renamed(
            Invariant::CheckpointAtomicity,
            "the crash happened inside a checkpoint",
        );
    }
    v
}

/// Stability, writability and structural integrity after a recovery that found `state`.
fn after_recovery(
    engine: &EngineConfig,
    fs: &SimFs,
    state: &State,
    probe: &str,
) -> Result<(), Violation> {
    // A power cut right after recovery must not change what recovery showed (S1).
    let fs = Image::durable_of(&fs.state()).to_simfs();
    let store = open(engine, &fs, "second reopen")?.map_err(|e| {
        Violation::new(
            Invariant::StableIndeterminate,
            "the store recovered once, then failed to open after a crash right after recovery",
            describe(state),
            e.to_string(),
        )
    })?;
    let again = read_state(&*store).map_err(|e| writable("reading after a second reopen", e))?;
    if &again != state {
        return Err(Violation::new(
            Invariant::StableIndeterminate,
            "a crash right after recovery changed the recovered state",
            describe(state),
            describe(&again),
        ));
    }
    let probe_write: [(&[u8], Option<&[u8]>); 1] = [(PROBE_KEY.as_bytes(), Some(probe.as_bytes()))];
    crate::engine::apply(&*store, &probe_write, Dur::Immediate)
        .map_err(|e| writable("a commit after recovery failed", e))?;
    // A power cut right after that commit, before anything folds the log: a stale record
    // the probe lined up (RECOVERY.md L6) would be read back here as the next transaction.
    after_probe(engine, &fs, state, probe, ProbeStage::Committed)?;
    store
        .checkpoint()
        .map_err(|e| writable("a checkpoint after recovery failed", e))?;
    if let Some(structure) = engine.structure() {
        structure.check_after_checkpoint(&fs, Path::new(STORE_DIR))?;
    }
    drop(store);
    after_probe(engine, &fs, state, probe, ProbeStage::Checkpointed)
}

/// How far the post-recovery work had gone when [`after_probe`] cuts the power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeStage {
    /// The probe's `Immediate` commit returned; the log still holds it.
    Committed,
    /// A checkpoint after it completed.
    Checkpointed,
}

/// After the probe's commit (and, at `Checkpointed`, a checkpoint) on `fs`: a power cut
/// leaves a store that opens, reads right, and holds `state` with the probe and nothing
/// else.
fn after_probe(
    engine: &EngineConfig,
    fs: &SimFs,
    state: &State,
    probe: &str,
    stage: ProbeStage,
) -> Result<(), Violation> {
    let fs = Image::durable_of(&fs.state()).to_simfs();
    let reopen = match stage {
        ProbeStage::Committed => "reopen after the post-recovery commit",
        ProbeStage::Checkpointed => "reopen after the post-recovery checkpoint",
    };
    let store = open(engine, &fs, reopen)?.map_err(|e| match stage {
        ProbeStage::Checkpointed if e.is_corruption() => Violation::new(
            Invariant::CheckpointAtomicity,
            "a power cut after a completed checkpoint left a store that reports corruption",
            "the new generation, complete",
            e.to_string(),
        ),
        ProbeStage::Committed if e.is_corruption() => Violation::new(
            Invariant::StableIndeterminate,
            "a power cut right after the first commit after recovery left a store that reports corruption",
            "the recovered state and the commit",
            e.to_string(),
        ),
        _ => writable(&format!("{reopen} failed"), e),
    })?;
    let last =
        read_state(&*store).map_err(|e| writable("reading after the post-recovery commit", e))?;
    check_reads(&*store, &last, last.len() as u64)?;
    let mut expected = state.clone();
    expected.insert(PROBE_KEY.into(), probe.into());
    if last != expected {
        // The new commit is there but other keys changed (values or deletions of commits
        // recovery had left out): a discarded transaction came back.
        let resurrected = last.get(PROBE_KEY) == expected.get(PROBE_KEY);
        let (invariant, detail) = if resurrected {
            (
                Invariant::StableIndeterminate,
                match stage {
                    ProbeStage::Committed => "a transaction that recovery had discarded came back after a later commit and a crash",
                    ProbeStage::Checkpointed => "a transaction that recovery had discarded came back after a later commit, checkpoint and crash",
                },
            )
        } else {
            (
                Invariant::WritableAfterRecovery,
                "a commit acknowledged after recovery did not survive the next crash",
            )
        };
        return Err(Violation::new(
            invariant,
            detail,
            describe(&expected),
            describe(&last),
        ));
    }
    Ok(())
}

fn writable(what: &str, e: EngineError) -> Violation {
    Violation::new(
        Invariant::WritableAfterRecovery,
        what,
        "success",
        e.to_string(),
    )
}
