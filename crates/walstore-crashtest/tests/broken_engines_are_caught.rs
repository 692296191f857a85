//! Each deliberately broken engine variant is caught, and the violation names the invariant
//! that the missing safety step protects. (The variants exist only with the engine's
//! `fault-injection` feature, which only this crate's dev-dependency enables.)

use std::sync::Arc;
use walstore::{EngineFaults, Options};
use walstore_crashtest::crashgen::{MediaModel, Variant};
use walstore_crashtest::engine::{EngineConfig, Walstore};
use walstore_crashtest::explore::{explore, ExploreConfig, Strategy};
use walstore_crashtest::minimize::minimize;
use walstore_crashtest::oracle::Invariant;
use walstore_crashtest::plan::tier;
use walstore_crashtest::workload::Workload;

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

fn caught(engine: &EngineConfig, workload: &str, strategy: Strategy) -> Invariant {
    caught_with(engine, workload, strategy, &ExploreConfig::default())
}

fn caught_with(
    engine: &EngineConfig,
    workload: &str,
    strategy: Strategy,
    config: &ExploreConfig,
) -> Invariant {
    let workload = Workload::by_name(workload).expect("scripted workload");
    let outcome = explore(&workload, strategy, engine, config);
    let failure = outcome
        .failure
        .unwrap_or_else(|| panic!("the broken engine passed {strategy}: {:?}", outcome.stats));
    eprintln!("{}", failure.violation);
    failure.violation.invariant
}

#[test]
fn skipping_the_wal_fsync_loses_acknowledged_commits() {
    let engine = broken(|f| f.skip_wal_fsync = true);
    // Losing the unsynced bytes (F1) is enough to show it.
    let config = ExploreConfig {
        variants: vec![Variant::DropUnsynced],
        ..ExploreConfig::default()
    };
    assert_eq!(
        caught_with(&engine, "counter", Strategy::SyncPoints, &config),
        Invariant::Durability
    );
}

#[test]
fn renaming_a_snapshot_before_its_fsync_exposes_an_incomplete_file() {
    let engine = broken(|f| f.rename_snapshot_before_fsync = true);
    assert_eq!(
        caught(&engine, "checkpoints", Strategy::EveryOp),
        Invariant::StructuralIntegrity
    );
}

#[test]
fn skipping_the_directory_fsync_breaks_checkpoint_atomicity() {
    let engine = broken(|f| f.skip_dir_fsync = true);
    assert_eq!(
        caught(&engine, "checkpoints", Strategy::SyncPoints),
        Invariant::CheckpointAtomicity
    );
}

#[test]
fn treating_mid_log_damage_as_a_torn_tail_is_a_missed_corruption_report() {
    let engine = broken(|f| f.mid_log_damage_is_torn_tail = true);
    assert_eq!(
        caught(&engine, "context-save", Strategy::SyncPoints),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn trusting_a_retried_fsync_acknowledges_a_commit_after_a_failed_fsync() {
    let engine = broken(|f| f.retry_failed_fsync = true);
    assert_eq!(
        caught(&engine, "counter", Strategy::Countdown),
        Invariant::PoisonAfterFailure
    );
}

#[test]
fn rewriting_the_unproven_tail_in_place_at_open_loses_a_commit_to_garbage_sectors() {
    let engine = broken(|f| f.rewrite_unproven_tail_in_place = true);
    // A power cut inside the recovery that rewrites the last commits, leaving garbage sectors.
    assert_eq!(
        caught(&engine, "counter", Strategy::RecoveryCrash),
        Invariant::StableIndeterminate
    );
}

#[test]
fn trusting_the_page_cache_at_open_after_a_failed_fsync_turns_later_commits_into_corruption() {
    let engine = broken(|f| f.trust_page_cache_at_open = true);
    // The failed commit's pages are clean but never written; later commits' watermarks claim
    // them durable, so a power cut leaves a hole that recovery must report.
    assert_eq!(
        caught(&engine, "counter", Strategy::Countdown),
        Invariant::TornTailVersusCorruption
    );
}

/// Runs the CI tier's own task for `workload` and `strategy` (512-byte sectors) on `engine`;
/// returns the invariant it reports.
fn caught_by_ci_task(engine: &EngineConfig, workload: &str, strategy: Strategy) -> Invariant {
    let tasks = tier("ci", MediaModel::default()).expect("the ci tier");
    let task = tasks
        .iter()
        .find(|t| t.workload.name == workload && t.strategy == strategy)
        .unwrap_or_else(|| panic!("the ci tier has no {workload} / {strategy} task"));
    let outcome = explore(&task.workload, strategy, engine, &task.config);
    let failure = outcome
        .failure
        .unwrap_or_else(|| panic!("the broken engine passed {strategy}: {:?}", outcome.stats));
    eprintln!("{}", failure.violation);
    failure.violation.invariant
}

fn passes(engine: &EngineConfig, workload: &Workload, strategy: Strategy) -> bool {
    let outcome = explore(workload, strategy, engine, &ExploreConfig::default());
    outcome.failure.is_none() && outcome.stats.images_checked > 0
}

#[test]
fn a_record_crc_without_the_kind_byte_is_caught_by_aimed_corruption() {
    let engine = broken(|f| f.record_crc_skips_kind = true);
    // Bit 0 of a commit record's kind turns it into a valid delete: the transaction runs into
    // the next one, recovery stops there silently although a later watermark proves the
    // bytes had been synced.
    assert_eq!(
        caught_by_ci_task(&engine, "config", Strategy::Aimed),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn an_unordered_torn_tail_repair_is_caught_by_constructed_torn_tails() {
    let engine = broken(|f| f.unordered_torn_tail_repair = true);
    // Finding F: the torn transaction's only damage is a garbage sector over the zero high
    // bytes of its watermark; a crash that keeps the zeroing of that sector alone makes it
    // whole again, and the next open brings back what the first one discarded.
    assert_eq!(
        caught_by_ci_task(&engine, "torn-tails", Strategy::TornTails),
        Invariant::StableIndeterminate
    );
}

#[test]
fn a_range_read_that_starts_one_entry_early_is_caught_by_bounded_reads() {
    let engine = broken(|f| f.range_seek_one_entry_early = true);
    // Whole-store scans never seek; a bounded range inside a snapshot file does.
    assert_eq!(
        caught_by_ci_task(&engine, "checkpoints", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_tail_search_of_one_read_chunk_is_caught_only_with_the_read_chunk_shrunk() {
    let engine = broken(|f| f.tail_search_one_chunk = true);
    // With the engine's 1 MiB chunk the whole small log fits in one chunk: nothing to see.
    let mut whole = Workload::by_name("torn-tails").expect("scripted workload");
    whole.settings.read_chunk_bytes = None;
    assert!(passes(&engine, &whole, Strategy::Aimed));
    // With 256-byte chunks, the commit whose watermark proves damaged bytes durable lies past
    // the first chunk: the damage is truncated away silently.
    assert_eq!(
        caught_by_ci_task(&engine, "torn-tails", Strategy::Aimed),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn a_clean_marker_before_the_caught_up_log_is_synced_is_caught_only_with_two_handles() {
    let engine = broken(|f| f.clean_marker_without_sync = true);
    // One handle alone has synced everything it wrote before its marker: nothing to see.
    assert!(passes(
        &engine,
        &Workload::by_name("counter").expect("scripted workload"),
        Strategy::EveryOp
    ));
    // The first handle closes while the second one's Buffered commits are unsynced: the
    // marker's watermark vouches for bytes a power cut may lose.
    assert_eq!(
        caught_by_ci_task(&engine, "two-handles", Strategy::EveryOp),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn a_group_commit_acknowledging_writes_issued_during_its_sync_is_caught_only_with_two_threads() {
    let engine = broken(|f| f.ack_writes_issued_during_sync = true);
    // One thread never writes while its own sync is in progress: nothing to see.
    assert!(passes(
        &engine,
        &Workload::by_name("config").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The second thread's commit lands while the first one's fdatasync is held in progress;
    // that sync's completion acknowledges it though it never covered its write.
    assert_eq!(
        caught_by_ci_task(&engine, "threads", Strategy::SyncPoints),
        Invariant::Durability
    );
}

#[test]
fn a_range_deletion_with_an_inclusive_end_is_caught_only_by_a_workload_that_deletes_ranges() {
    let engine = broken(|f| f.range_delete_end_inclusive = true);
    // No other workload deletes a range: nothing to see.
    assert!(passes(
        &engine,
        &Workload::by_name("checkpoints").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The deletion of r/03..r/07 also deletes r/07, which the reads right after it show.
    assert_eq!(
        caught_by_ci_task(&engine, "ranges", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_merge_of_the_newer_runs_dropping_deletes_is_caught_only_by_a_routine_merge() {
    let engine = broken(|f| f.merge_drops_deletes_above_oldest = true);
    // A compaction merges every run, the oldest too: dropping deletes is right there.
    assert!(passes(
        &engine,
        &Workload::by_name("checkpoints").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The policy merges the four newest runs; the oldest still holds m/a and m/b, which
    // come back when the merged run loses the tombstone and the range deletion.
    assert_eq!(
        caught_by_ci_task(&engine, "merges", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn an_open_that_skips_the_stale_record_check_after_a_clean_marker_is_caught_by_clean_reopen() {
    let engine = broken(|f| f.skip_stale_check_after_clean_marker = true);
    // Unsynced commits after an unclean end: the check still runs (finding E's workload).
    assert!(passes(
        &engine,
        &Workload::by_name("config").expect("scripted workload"),
        Strategy::EveryOp
    ));
    // After a clean close and a reopen alone, a crash keeps the close's marker and the
    // second of two unsynced commits, and loses the open's zeroing of the marker and the
    // first commit (the torn tails' gap): the log ends at the clean marker with a stale
    // transaction past it, which the aligned probe lines up; a power cut right after the
    // probe's commit brings it back. (Neither the gap nor that power cut alone catches it.)
    assert_eq!(
        caught_by_ci_task(&engine, "clean-reopen", Strategy::TornTails),
        Invariant::StableIndeterminate
    );
}

#[test]
fn random_schedules_over_two_handles_catch_the_variants_that_need_a_second_handle_or_thread() {
    // (`clean_marker_without_sync`, a marker that vouches for the other handle's unsynced
    // Buffered commits, was caught here too before the log index: a handle that opens beside
    // a live one now syncs at open (RECOVERY.md X2), and these schedules no longer reach the
    // window. `two-handles` and `handles3-1` still catch it in the CI tier: see their tests.)
    // A pair of commits on two threads of one of the handles.
    let group = broken(|f| f.ack_writes_issued_during_sync = true);
    assert_eq!(
        caught_by_ci_task(&group, "handles-1", Strategy::SyncPoints),
        Invariant::Durability
    );
    // Over three handles.
    assert_eq!(
        caught_by_ci_task(&group, "handles3-2", Strategy::SyncPoints),
        Invariant::Durability
    );
}

/// Runs every task of the CI tier whose workload name starts with `prefix` on `engine`;
/// returns each caught task with its invariant.
fn caught_by_ci_tasks_of(engine: &EngineConfig, prefix: &str) -> Vec<(String, Invariant)> {
    let tasks = tier("ci", MediaModel::default()).expect("the ci tier");
    tasks
        .iter()
        .filter(|t| t.workload.name.starts_with(prefix))
        .filter_map(|t| {
            let outcome = explore(&t.workload, t.strategy, engine, &t.config);
            let name = format!("{} / {}", t.workload.name, t.strategy);
            outcome.failure.map(|f| (name, f.violation.invariant))
        })
        .collect()
}

#[test]
fn an_immediate_commit_shown_before_its_sync_is_caught_by_reads_while_a_sync_is_held() {
    let engine = broken(|f| f.show_immediate_before_sync = true);
    // Nobody reads while a sync is in progress: nothing to see.
    assert!(passes(
        &engine,
        &Workload::by_name("config").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The second thread of the handle and the other handle read while the first thread's
    // WAL sync is held: its Immediate commit is already there.
    assert_eq!(
        caught_by_ci_task(&engine, "visibility", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_poison_not_shared_with_the_other_handle_is_caught_by_countdown_errors_with_two_handles() {
    let engine = broken(|f| f.poison_not_shared = true);
    // One handle: the handle that saw the failure refuses commits as before.
    assert!(passes(
        &engine,
        &Workload::by_name("counter").expect("scripted workload"),
        Strategy::Countdown
    ));
    // A WAL write or sync of one handle fails; the other handle still acknowledges a commit.
    assert_eq!(
        caught_by_ci_task(&engine, "two-handles", Strategy::Countdown),
        Invariant::PoisonAfterFailure
    );
}

#[test]
fn a_buffered_commit_hidden_until_a_sync_is_caught_by_a_read_from_the_other_handle() {
    let engine = broken(|f| f.hide_buffered_until_sync = true);
    // Every Buffered commit is followed by a sync or an Immediate commit before anyone reads.
    assert!(passes(
        &engine,
        &Workload::by_name("torn-tails").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The other handle reads right after a Buffered commit returned: it is not there.
    assert_eq!(
        caught_by_ci_task(&engine, "visibility", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_failure_shrinks_to_fewer_steps_and_still_fails_the_same_way() {
    let engine = broken(|f| f.skip_wal_fsync = true);
    let workload = Workload::by_name("config").expect("scripted workload");
    let outcome = explore(
        &workload,
        Strategy::SyncPoints,
        &engine,
        &ExploreConfig::default(),
    );
    let failure = outcome.failure.expect("caught");
    let small = minimize(&failure, &engine);
    assert_eq!(small.violation.invariant, failure.violation.invariant);
    assert!(
        small.case.workload.steps.len() < failure.case.workload.steps.len(),
        "{} steps did not shrink",
        failure.case.workload.steps.len()
    );
}

#[test]
fn vouching_only_after_a_scan_is_caught_when_a_handle_that_read_commits() {
    let engine = broken(|f| f.vouch_only_after_scan = true);
    // One handle: nothing another handle wrote to vouch for.
    assert!(passes(
        &engine,
        &Workload::by_name("counter").expect("scripted workload"),
        Strategy::Aimed
    ));
    // The second handle read the first's Immediate commit (a catch-up without the lock),
    // then commits: a bit flip in the first's synced commit drops both silently.
    assert_eq!(
        caught_by_ci_task(&engine, "read-then-commit", Strategy::Aimed),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn a_close_that_folds_the_log_is_explored_crash_point_by_crash_point() {
    let engine = broken(|f| f.rename_snapshot_before_fsync = true);
    // The closes of `counter` (it reopens every few increments) append clean markers: no
    // snapshot file is written.
    assert!(passes(
        &engine,
        &Workload::by_name("counter").expect("scripted workload"),
        Strategy::EveryOp
    ));
    // The closes of `close-fold` checkpoint (the last handle, a log above the bound): a
    // snapshot file renamed before its fsync is caught at the close's crash points.
    assert_eq!(
        caught_by_ci_task(&engine, "close-fold", Strategy::EveryOp),
        Invariant::StructuralIntegrity
    );
}

#[test]
fn a_reverse_range_that_starts_one_entry_past_its_end_is_caught_by_reverse_reads() {
    let engine = broken(|f| f.reverse_seek_one_past_end = true);
    // A bounded range read backwards inside a snapshot file shows the key past its end.
    // (Any workload whose recovery folds a log into a run reaches it: no passing workload.)
    assert_eq!(
        caught_by_ci_task(&engine, "checkpoints", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_point_get_that_ignores_range_deletions_is_caught_by_gets_after_a_range_deletion() {
    let engine = broken(|f| f.get_ignores_range_deletes = true);
    // No range deletion: nothing to see.
    assert!(passes(
        &engine,
        &Workload::by_name("checkpoints").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The deletion of r/03..r/07 over an older run: a get of r/04 finds the run's value.
    assert_eq!(
        caught_by_ci_task(&engine, "ranges", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_checkpoint_tail_run_below_the_first_run_is_caught_only_with_commits_during_a_checkpoint() {
    let engine = broken(|f| f.checkpoint_tail_run_below = true);
    // Checkpoints with nobody committing meanwhile write one run: nothing to see.
    assert!(passes(
        &engine,
        &Workload::by_name("checkpoints").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // A commit of another thread while the checkpoint writes its run lands in phase 2's
    // tail run; listed below the first run, the frozen c/a = one wins over the tail's three.
    assert_eq!(
        caught_by_ci_task(&engine, "checkpoint-tail", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

#[test]
fn a_clean_marker_before_the_caught_up_log_is_synced_is_caught_by_schedules_over_three_handles() {
    let engine = broken(|f| f.clean_marker_without_sync = true);
    // Over two handles, a handle that opens beside a live one syncs at open (RECOVERY.md X2):
    // the schedules of `handles-<seed>` reach the window only where injected I/O errors move
    // a sync (countdown; swarm, random errors and crashes: `handles-1` since the log holds
    // batch records), never at their plain crash points.
    for (task, invariant) in caught_by_ci_tasks_of(&engine, "handles-") {
        assert!(
            task.ends_with("/ countdown") || task.ends_with("/ swarm"),
            "{task}"
        );
        assert_eq!(invariant, Invariant::TornTailVersusCorruption, "{task}");
    }
    // Over three, a handle closes while another's Buffered commits, which it caught up on
    // after its open, are unsynced: its marker vouches for them.
    assert_eq!(
        caught_by_ci_task(&engine, "handles3-1", Strategy::SyncPoints),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn a_writer_that_trusts_a_dirty_commit_index_is_caught_only_by_a_kill_in_the_middle_of_a_commit() {
    let engine = broken(|f| f.trust_dirty_lock = true);
    // Kills between steps (never while the lock is held) leave the lock clean: over two
    // handles only an injected I/O error in a commit (countdown) leaves it dirty.
    for (task, _) in caught_by_ci_tasks_of(&engine, "handles-") {
        assert!(task.ends_with("/ countdown"), "{task}");
    }
    // Killed after its log write, the holder never published its commit: the next writer,
    // trusting the commit index, writes over it though the log held it, and what the
    // handles read disagrees with every prefix of the commits.
    assert_eq!(
        caught_by_ci_task(&engine, "kill-mid-commit", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}

/// `zero-runs` with its zero bytes replaced by `x`: no sector of a transaction holds zeros
/// only (but the watermark's high bytes, which its layout puts nowhere near a sector start).
fn zero_runs_without_zeros() -> Workload {
    use walstore_crashtest::workload::{Step, TxOp};
    let mut w = Workload::by_name("zero-runs").expect("shaped workload");
    for step in &mut w.steps {
        if let Step::Txn { ops, .. } = step {
            for op in ops {
                if let TxOp::Put { value, .. } = op {
                    *value = value.replace('\0', "x");
                }
            }
        }
    }
    w
}

#[test]
fn an_unordered_torn_tail_repair_is_caught_at_any_zero_sector_of_a_transaction() {
    let engine = broken(|f| f.unordered_torn_tail_repair = true);
    assert!(passes(
        &engine,
        &zero_runs_without_zeros(),
        Strategy::TornTails
    ));
    // Garbage over a sector of a value's zero run; a crash keeps the repair's zeroing of
    // that sector alone: the transaction the first open discarded is whole again.
    assert_eq!(
        caught_by_ci_task(&engine, "zero-runs", Strategy::TornTails),
        Invariant::StableIndeterminate
    );
}

#[test]
fn a_torn_tail_repair_with_one_sync_for_both_writes_is_caught_by_its_writes_reordered() {
    let engine = broken(|f| f.torn_tail_repair_one_sync = true);
    assert!(passes(
        &engine,
        &zero_runs_without_zeros(),
        Strategy::TornTails
    ));
    // The first record header's zeroing and the rest's, unsynced together: a crash keeps
    // the rest's zeroing of the garbage sector without the header's.
    assert_eq!(
        caught_by_ci_task(&engine, "zero-runs", Strategy::TornTails),
        Invariant::StableIndeterminate
    );
}

#[test]
fn a_sealed_segment_listed_before_it_is_synced_is_caught_by_the_feed_check() {
    let engine = broken(|f| f.seal_segment_without_sync = true);
    // Workloads without a feed consumer never seal: the variant changes nothing there.
    assert!(passes(
        &engine,
        &Workload::by_name("checkpoints").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // A power cut after the segment is listed loses its unsynced records: the feed read
    // after recovery fails or misses the sealed commits.
    assert_eq!(
        caught_by_ci_task(&engine, "feed", Strategy::SyncPoints),
        Invariant::FeedAgrees
    );
}

#[test]
fn an_acknowledgement_past_the_durable_log_is_caught_by_the_feed_check() {
    let engine = broken(|f| f.ack_without_log_sync = true);
    assert!(passes(
        &engine,
        &Workload::by_name("checkpoints").expect("scripted workload"),
        Strategy::SyncPoints
    ));
    // The workload acknowledges a Buffered commit; a power cut loses it, and the
    // consumer's position names a transaction the log no longer holds.
    assert_eq!(
        caught_by_ci_task(&engine, "feed", Strategy::SyncPoints),
        Invariant::FeedAgrees
    );
}

#[test]
fn an_open_that_takes_zeroed_markers_for_durable_log_is_caught() {
    let engine = broken(|f| f.durable_through_zeroed_markers = true);
    // An open alone zeroes the clean marker that ended the log and writes its first commit
    // where it started; taking the log durable through the marker's end gives that commit a
    // watermark past its own start, and a crash that tears it reads as damage to durable
    // bytes. Caught by random workloads and the scripted ones that reopen (26 CI tasks).
    assert_eq!(
        caught_by_ci_task(&engine, "random-11", Strategy::EveryOp),
        Invariant::TornTailVersusCorruption
    );
    assert_eq!(
        caught_by_ci_task(&engine, "ranges", Strategy::EveryOp),
        Invariant::TornTailVersusCorruption
    );
}

#[test]
fn a_durable_end_that_moves_back_is_caught_by_the_other_handles_read() {
    let engine = broken(|f| f.durable_lsn_stored = true);
    // The other handle's sync notice names its open's end, older than the first handle's
    // synced Immediate commit: stored, it moves the durable end back, and the Buffered
    // commit after it stays hidden from the other handle's read.
    assert_eq!(
        caught_by_ci_task(&engine, "visibility", Strategy::SyncPoints),
        Invariant::ReadsAgree
    );
}
