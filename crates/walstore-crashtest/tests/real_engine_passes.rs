//! The real engine passes every strategy on every scripted workload, and seeded random runs.
//!
//! One round of seeded images per recipe and crash point keeps each test to about a second.
//!
//! Every recipe runs, `TornGarbage` (power cut during a write leaving garbage sectors)
//! included, with the aligned probe on (the harness's defaults).

use walstore_crashtest::crashgen::{MediaModel, Variant};
use walstore_crashtest::engine::EngineConfig;
use walstore_crashtest::explore::{explore, ExploreConfig, Strategy};
use walstore_crashtest::workload::{random_mix, Workload, SCRIPTED};

fn assert_passes(workload: &Workload, strategy: Strategy, config: &ExploreConfig) -> u64 {
    let outcome = explore(workload, strategy, &EngineConfig::default(), config);
    if let Some(f) = &outcome.failure {
        let trace: Vec<String> = f
            .trace
            .iter()
            .rev()
            .take(40)
            .map(|t| t.to_string())
            .collect();
        panic!(
            "{} / {strategy}: {}\ncase: {:?} {:?} {:?} {:?}\nlast ops:\n{}",
            workload.name,
            f.violation,
            f.case.crash_op,
            f.case.variant,
            f.case.countdown,
            f.damage,
            trace.join("\n")
        );
    }
    assert!(
        outcome.stats.images_checked > 0,
        "{}: nothing checked",
        workload.name
    );
    outcome.stats.images_checked
}

#[test]
fn scripted_workloads_survive_a_crash_after_every_operation() {
    let config = ExploreConfig {
        rounds: 1,
        ..ExploreConfig::default()
    };
    for name in SCRIPTED {
        let workload = Workload::by_name(name).expect("scripted");
        assert_passes(&workload, Strategy::EveryOp, &config);
    }
}

#[test]
fn scripted_workloads_survive_countdown_io_errors() {
    let config = ExploreConfig::default();
    for name in SCRIPTED {
        let workload = Workload::by_name(name).expect("scripted");
        assert_passes(&workload, Strategy::Countdown, &config);
    }
}

/// Every recipe, `rounds` seeded images each per crash point.
fn every_recipe(rounds: u64) -> ExploreConfig {
    ExploreConfig {
        rounds,
        ..ExploreConfig::default()
    }
}

#[test]
fn deeper_exploration_passes_every_recipe() {
    let config = every_recipe(3);
    for name in SCRIPTED {
        let workload = Workload::by_name(name).expect("scripted");
        assert_passes(&workload, Strategy::EveryOp, &config);
    }
}

#[test]
fn crashes_during_recovery_converge() {
    let config = ExploreConfig::default();
    let workload = Workload::by_name("checkpoints").expect("scripted");
    assert_passes(&workload, Strategy::RecoveryCrash, &config);
}

#[test]
fn seeded_random_runs_pass() {
    let config = every_recipe(1);
    for seed in 1..=12 {
        let workload = random_mix(seed, 20);
        let config = ExploreConfig {
            seed,
            ..config.clone()
        };
        assert_passes(&workload, Strategy::Swarm, &config);
        assert_passes(&workload, Strategy::SyncPoints, &config);
        if seed <= 3 {
            assert_passes(&workload, Strategy::Countdown, &config);
        }
    }
}

/// A crash at every step of a recovery that zeroes a torn tail, with torn and garbage
/// sectors: before the first record header was zeroed and synced on its own, a half-done
/// zeroing could make the torn transaction whole again (the full tier's random-29).
#[test]
fn torn_tail_repair_interrupted_by_a_crash_never_completes_the_torn_transaction() {
    garbage_inside_every_recovery(29, 512);
}

/// A crash at every step of a recovery that zeroes stale records past the end of the log and
/// rewrites a clean marker, with garbage sectors: before the zeroing was synced first, a
/// stale commit's watermark could vouch for a marker the crash had garbled, and the store no
/// longer opened (the full tier's random-3 at 4 KiB sectors).
#[test]
fn stale_records_are_gone_before_recovery_rewrites_a_clean_marker() {
    garbage_inside_every_recovery(3, 4096);
}

/// A 32-step random workload `seed`: a crash after every operation into garbage-sector images
/// at `sector` bytes, and a crash at every step of the recovery of every image.
fn garbage_inside_every_recovery(seed: u64, sector: usize) {
    let config = ExploreConfig {
        seed,
        rounds: 6,
        variants: vec![Variant::TornGarbage],
        // Not of every seventh image only, as the tiers do.
        recovery_every: 1,
        media: MediaModel {
            sector,
            ..MediaModel::default()
        },
        ..ExploreConfig::default()
    };
    assert_passes(&random_mix(seed, 32), Strategy::EveryOp, &config);
}

#[test]
fn a_bit_flip_in_a_commit_another_handle_caught_up_on_is_reported_not_truncated() {
    // Two handles: one commits Immediate, the other catches up and commits Immediate. A bit
    // flip anywhere in the first commit's synced bytes must be reported: the second commit's
    // watermark has to vouch for them (before the fix, both commits vanished silently).
    let workload = Workload::by_name("two-handles").expect("scripted");
    let config = ExploreConfig {
        rounds: 1,
        ..ExploreConfig::default()
    };
    assert_passes(&workload, Strategy::Aimed, &config);
}

#[test]
fn two_handles_and_two_threads_survive_a_crash_after_every_operation_and_inside_recovery() {
    for name in ["two-handles", "threads"] {
        let workload = Workload::by_name(name).expect("scripted");
        for strategy in [Strategy::EveryOp, Strategy::RecoveryCrash] {
            assert_passes(&workload, strategy, &every_recipe(1));
        }
    }
}

#[test]
fn writers_taking_turns_across_a_generation_survive_aimed_corruption() {
    // handoff: the second handle's open folds the first one's log into a new generation and
    // commits; the first handle reloads that generation and commits after it: a bit flip in
    // any field of either handle's synced commits is reported or harmless.
    let workload = Workload::by_name("handoff").expect("scripted");
    assert_passes(&workload, Strategy::Aimed, &every_recipe(1));
}

#[test]
fn a_routine_merge_of_the_newer_runs_survives_a_crash_after_every_operation() {
    let workload = Workload::by_name("merges").expect("scripted");
    for strategy in [Strategy::EveryOp, Strategy::RecoveryCrash] {
        assert_passes(&workload, strategy, &every_recipe(1));
    }
}

#[test]
fn range_deletions_and_reverse_reads_survive_a_crash_after_every_operation_and_inside_recovery() {
    // ranges: range deletions over runs and the memtable, across a second handle, a reopen, a
    // checkpoint and a compaction; reads (forward, reverse, point) checked after each of them.
    let workload = Workload::by_name("ranges").expect("scripted");
    for strategy in [Strategy::EveryOp, Strategy::RecoveryCrash] {
        assert_passes(&workload, strategy, &every_recipe(1));
    }
}

/// A handle killed with a Buffered commit unsynced: the other handle, opened after the kill
/// and committing, reads it (it stays in the page cache), and every crash point after the
/// kill checks what a power cut then leaves.
#[test]
fn a_killed_handles_unsynced_commit_is_read_by_the_survivor() {
    use walstore_crashtest::workload::{value, Dur, EngineSettings, Step, TxOp};
    let put = |serial: u64, key: &str| Step::Txn {
        serial,
        ops: vec![TxOp::Put {
            key: key.into(),
            value: value(serial, "v"),
        }],
        durability: Dur::Buffered,
        abort: false,
    };
    let other = |step: Step| Step::Other(Box::new(step));
    let workload = Workload {
        name: "kill-one-handle".into(),
        steps: vec![
            put(1, "k/1"),
            other(Step::Read),
            put(2, "k/2"),
            Step::Kill,
            other(Step::Read),
            other(put(3, "k/3")),
            other(Step::Sync),
            Step::Read,
        ],
        settings: EngineSettings::default(),
    };
    for strategy in [Strategy::EveryOp, Strategy::Countdown] {
        assert_passes(&workload, strategy, &ExploreConfig::default());
    }
}

/// Three handles (three processes): the third (`Other(Other(step))`) commits, checkpoints and
/// is killed while the other two commit and read; every handle's commits reach the model
/// under its own number, and the run passes every crash point and countdown errors.
#[test]
fn three_handles_commit_read_and_survive_a_kill_of_one() {
    use walstore_crashtest::driver::{run_workload, RunConfig};
    use walstore_crashtest::simfs::Capture;
    use walstore_crashtest::workload::{value, Dur, EngineSettings, Step, TxOp};
    let put = |serial: u64, key: &str, durability| Step::Txn {
        serial,
        ops: vec![TxOp::Put {
            key: key.into(),
            value: value(serial, "v"),
        }],
        durability,
        abort: false,
    };
    let other = |step: Step| Step::Other(Box::new(step));
    let third = |step: Step| other(other(step));
    let workload = Workload {
        name: "three-handles".into(),
        steps: vec![
            put(1, "t/1", Dur::Immediate),
            other(put(2, "t/2", Dur::Buffered)),
            third(put(3, "t/3", Dur::Buffered)),
            Step::Read,
            third(Step::Checkpoint),
            other(Step::Read),
            third(put(4, "t/1", Dur::Buffered)),
            third(Step::Kill),
            put(5, "t/5", Dur::Immediate),
            third(Step::Read),
            other(Step::Sync),
        ],
        settings: EngineSettings::default(),
    };
    let outcome = run_workload(
        &workload,
        &EngineConfig::default(),
        &RunConfig::capture(Capture::Off),
    );
    assert!(outcome.violation.is_none(), "{:?}", outcome.violation);
    let handles: Vec<u8> = outcome.history.commits.iter().map(|c| c.handle).collect();
    assert_eq!(handles, [0, 1, 2, 2, 0]);
    for strategy in [Strategy::EveryOp, Strategy::Countdown] {
        assert_passes(&workload, strategy, &ExploreConfig::default());
    }
}

/// Handles opened through the harness's processes share walstore's log index (a shared file
/// of the simulated file system), as handles of real processes do: the second handle reads
/// the first's commit through it.
#[test]
fn handles_in_simulated_processes_share_the_log_index() {
    use std::path::Path;
    use std::sync::Arc;
    use walstore::storage::Storage;
    use walstore_crashtest::simfs::SimFs;
    use walstore_crashtest::workload::Dur;
    let fs = SimFs::new();
    let engine = EngineConfig::default();
    let open = || {
        engine
            .open_on(Arc::new(fs.process()))
            .expect("no panic")
            .expect("opens")
    };
    let first = open();
    let mut tx = first.begin_write(Dur::Immediate).expect("begin");
    tx.put(b"k", b"v").expect("put");
    tx.commit().expect("commit");
    let second = open();
    let read = second.begin_read().expect("read").get(b"k").expect("get");
    assert_eq!(read.as_deref(), Some(&b"v"[..]));
    let index = fs.open_shared(Path::new("/db/LOGINDEX"), 1 << 20);
    assert!(index.is_ok(), "no log index: {index:?}");
}

/// In `checkpoint-tail`, each commit (another thread's, then the other handle's) is written
/// while the checkpoint writes its first run without the writer lock: after the file of that
/// run was created (its first write is held), before the manifest switch that ends the
/// checkpoint. The run passes every crash point.
#[test]
fn commits_during_a_checkpoint_land_between_its_first_run_and_its_manifest_switch() {
    use walstore_crashtest::driver::{run_workload, RunConfig};
    use walstore_crashtest::simfs::Capture;
    use walstore_crashtest::trace::OpClass;
    let workload = Workload::by_name("checkpoint-tail").expect("shaped workload");
    let run = run_workload(
        &workload,
        &EngineConfig::default(),
        &RunConfig::capture(Capture::Off),
    );
    assert!(run.violation.is_none(), "{:?}", run.violation);
    let trace = run.fs.trace();
    for serial in [3, 5] {
        let phase = format!("checkpoint, commit {serial} while it writes its run");
        let ops: Vec<_> = trace.iter().filter(|t| t.phase == phase).collect();
        let run_file = ops
            .iter()
            .find(|t| t.path.contains("/snap-"))
            .map(|t| t.index)
            .expect("a run");
        let log_write = ops
            .iter()
            .find(|t| t.class == OpClass::Write && t.path.ends_with("/wal"))
            .map(|t| t.index)
            .expect("the commit's write");
        let switch = ops
            .iter()
            .rev()
            .find(|t| t.class == OpClass::Rename && t.detail.contains("MANIFEST"))
            .map(|t| t.index)
            .expect("the manifest switch");
        assert!(
            run_file < log_write && log_write < switch,
            "commit {serial}: run file #{run_file}, log write #{log_write}, switch #{switch}"
        );
    }
    assert_passes(&workload, Strategy::EveryOp, &ExploreConfig::default());
}
