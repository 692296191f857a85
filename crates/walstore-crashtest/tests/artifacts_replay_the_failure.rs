//! A failure saved as an artifact replays to the same violation with the engine that had it,
//! and to none with the real engine; the saved image round-trips.

use std::sync::Arc;
use walstore::{EngineFaults, Options};
use walstore_crashtest::artifact;
use walstore_crashtest::engine::{EngineConfig, Walstore};
use walstore_crashtest::explore::{explore, ExploreConfig, Strategy};
use walstore_crashtest::workload::Workload;

/// The engine with the safety steps `set` turns off.
fn broken(set: impl Fn(&mut EngineFaults) + Send + Sync + 'static) -> EngineConfig {
    // Through the trait: walstore, with its options changed.
    EngineConfig::of(Arc::new(Walstore::with_hook(Arc::new(
        move |options: Options| {
            let mut faults = EngineFaults::default();
            set(&mut faults);
            options.inject_engine_faults(faults)
        },
    ))))
}

fn without_wal_fsync() -> EngineConfig {
    broken(|f| f.skip_wal_fsync = true)
}

#[test]
fn a_saved_failure_replays_to_the_same_invariant() {
    let broken = without_wal_fsync();
    let workload = Workload::by_name("context-save").expect("scripted workload");
    let outcome = explore(
        &workload,
        Strategy::EveryOp,
        &broken,
        &ExploreConfig::default(),
    );
    let failure = outcome.failure.expect("the broken engine is caught");
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = artifact::save(&failure, root.path()).expect("save");
    for file in [
        "case.json",
        "verdict.json",
        "violation.txt",
        "trace.txt",
        "faults.txt",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    assert!(artifact::reproduce_command(&dir).starts_with("walstore-crashtest replay "));
    let loaded = artifact::load(&dir).expect("load");
    assert_eq!(loaded.case, failure.case);
    let again = artifact::replay(&loaded, &broken).expect("still fails with the broken engine");
    assert_eq!(again.invariant, failure.violation.invariant);
}

#[test]
fn a_violation_found_while_running_replays_by_running_again() {
    let retrying = broken(|f| f.retry_failed_fsync = true);
    let workload = Workload::by_name("counter").expect("scripted workload");
    let outcome = explore(
        &workload,
        Strategy::Countdown,
        &retrying,
        &ExploreConfig::default(),
    );
    let failure = outcome.failure.expect("caught");
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = artifact::save(&failure, root.path()).expect("save");
    let loaded = artifact::load(&dir).expect("load");
    let again = artifact::replay(&loaded, &retrying).expect("still fails");
    assert_eq!(again.invariant, failure.violation.invariant);
    assert!(
        artifact::replay(&loaded, &EngineConfig::default()).is_none(),
        "the real engine poisons after a failed fsync"
    );
}

#[test]
fn a_failure_inside_recovery_replays_by_crashing_that_recovery_again() {
    let rewriting = broken(|f| f.rewrite_unproven_tail_in_place = true);
    let workload = Workload::by_name("counter").expect("scripted workload");
    let outcome = explore(
        &workload,
        Strategy::RecoveryCrash,
        &rewriting,
        &ExploreConfig::default(),
    );
    let failure = outcome.failure.expect("caught");
    assert!(failure.case.in_recovery, "{:?}", failure.case);
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = artifact::save(&failure, root.path()).expect("save");
    let loaded = artifact::load(&dir).expect("load");
    let again = artifact::replay(&loaded, &rewriting).expect("still fails");
    assert_eq!(again.invariant, failure.violation.invariant);
    // The image saved was made by the broken engine's recovery; the real engine's recovery
    // makes other images, and a replay runs that recovery.
    assert!(
        artifact::replay(&loaded, &EngineConfig::default()).is_none(),
        "the real engine never rewrites the unproven tail in place"
    );
}
