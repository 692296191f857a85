//! Named batches of exploration tasks (the CI tier and the full run), and running a batch with
//! figures, a time budget and a progress callback.

use crate::crashgen::{MediaModel, Variant};
use crate::engine::EngineConfig;
use crate::explore::{explore, ExploreConfig, Failure, Outcome, Strategy};
use crate::stats::Stats;
use crate::workload::{handles_mix_over, random_mix, Workload, HANDLES_STEPS, SCRIPTED};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// One workload explored with one strategy.
#[derive(Debug, Clone)]
pub struct Task {
    /// The workload.
    pub workload: Workload,
    /// The strategy.
    pub strategy: Strategy,
    /// Its knobs.
    pub config: ExploreConfig,
}

/// The tasks of a tier: `ci` (a few minutes) or `full`.
pub fn tier(name: &str, media: MediaModel) -> Option<Vec<Task>> {
    let (rounds, seeds, steps, deep_seeds, handle_seeds): (u64, u64, usize, u64, u64) = match name {
        "ci" => (3, 120, 24, 15, 4),
        "full" => (6, 1000, 32, 100, 40),
        _ => return None,
    };
    // Bits flipped per aimed byte; a bit flip does not depend on the sector size, so the CI
    // tier aims at 512-byte sectors only.
    let aimed_bits = if name == "ci" { 1 } else { 2 };
    let sectors = [512, 4096];
    let mut tasks = Vec::new();
    for sector in sectors {
        let config = ExploreConfig {
            rounds,
            media: MediaModel { sector, ..media },
            ..ExploreConfig::default()
        };
        for name in SCRIPTED {
            let Some(workload) = Workload::by_name(name) else {
                continue;
            };
            for strategy in [
                Strategy::SyncPoints,
                Strategy::EveryOp,
                Strategy::Countdown,
                Strategy::RecoveryCrash,
            ] {
                tasks.push(Task {
                    workload: workload.clone(),
                    strategy,
                    config: config.clone(),
                });
            }
        }
        let aimed = (name != "ci" || sector == 512).then_some(aimed_bits);
        tasks.extend(shaped_tasks(&config, aimed));
        tasks.extend(random_tasks(1..=seeds, steps, &config, deep_seeds));
        if sector == 512 {
            tasks.extend(handles_tasks(1..=handle_seeds, &config, 2));
            tasks.extend(handles_tasks(1..=handle_seeds / 2, &config, 3));
        }
    }
    Some(tasks)
}

/// Aimed corruption of every scripted workload (`aimed_bits` bits per byte; none if `None`),
/// every constructed torn tail of `torn-tails` with every crash point of its repair, and
/// `large` (records and a transaction over the engine's 1 MiB read chunk, hundreds of keys
/// over many snapshot files) at its sync points with the cheaper recipes (its images are
/// megabytes each), `merges` (a routine merge that leaves the oldest run out) at its sync
/// points, `clean-reopen` (two unsynced commits after a clean close and reopen) with every
/// constructed torn tail (a stale transaction past a hole at the clean marker), `zero-runs`
/// (values with zero runs over whole sectors) with every constructed torn tail,
/// `close-fold` (closes that fold a log above `close_checkpoint_bytes` into a run) at sync
/// points, every operation and countdown errors,
/// `checkpoint-tail` (commits of another thread and of the other handle while a checkpoint
/// writes its run) and `kill-mid-commit` (a handle killed between its log write and its
/// commit-index update, the other writing next) with the crash-point strategies and
/// countdown errors,
/// `read-then-commit` (a handle that caught up by reading commits next: finding I) at its sync
/// points and with aimed corruption, and `two-handles` (a second handle next to the first), `handoff`,
/// `threads` (two committer threads, one writing while the other's sync is in progress) and
/// `ranges` (range deletions over runs, the memtable, a second handle's catch-up and a reopen)
/// and `visibility` (reads by the other handle after commits and while a sync is held; no
/// aimed corruption)
/// with the crash-point strategies and aimed corruption; `two-handles`, `handoff` and `ranges`
/// also with countdown I/O errors (a failed write or sync on one handle poisons the other:
/// `driver/poison.rs`).
pub fn shaped_tasks(config: &ExploreConfig, aimed_bits: Option<u64>) -> Vec<Task> {
    let task = |name: &str, strategy, config: ExploreConfig| {
        Workload::by_name(name).map(|workload| Task {
            workload,
            strategy,
            config,
        })
    };
    let mut tasks: Vec<Task> = Vec::new();
    if let Some(bits) = aimed_bits {
        let aimed = ExploreConfig {
            rounds: bits,
            ..config.clone()
        };
        tasks.extend(
            SCRIPTED
                .iter()
                .filter_map(|name| task(name, Strategy::Aimed, aimed.clone())),
        );
    }
    tasks.extend(task("torn-tails", Strategy::TornTails, config.clone()));
    let large = ExploreConfig {
        rounds: 1,
        recovery_every: 0,
        variants: vec![
            Variant::DropUnsynced,
            Variant::ProcessKill,
            Variant::Subset,
            Variant::CorruptWal,
            Variant::CorruptField,
        ],
        ..config.clone()
    };
    tasks.extend(task("large", Strategy::SyncPoints, large));
    tasks.extend(task("merges", Strategy::SyncPoints, config.clone()));
    tasks.extend(task("clean-reopen", Strategy::TornTails, config.clone()));
    // Zero runs over whole sectors: a torn tail whose only damage lies in zero bytes, at any
    // sector of a transaction, and the repair's writes reordered without a sync between.
    tasks.extend(task("zero-runs", Strategy::TornTails, config.clone()));
    // Closes that fold the log into a run (the last handle, a log above the bound).
    for strategy in [Strategy::SyncPoints, Strategy::EveryOp, Strategy::Countdown] {
        tasks.extend(task("close-fold", strategy, config.clone()));
    }
    // Commits of another thread and of the other handle while a checkpoint writes its run;
    // a kill of the writer lock's holder in the middle of its commit.
    for strategy in [
        Strategy::SyncPoints,
        Strategy::EveryOp,
        Strategy::RecoveryCrash,
        Strategy::Countdown,
    ] {
        tasks.extend(task("checkpoint-tail", strategy, config.clone()));
        tasks.extend(task("kill-mid-commit", strategy, config.clone()));
    }
    // Checkpoints that seal their log for a change feed consumer; the feed is read and
    // checked after every crash (invariant 13).
    for strategy in [Strategy::SyncPoints, Strategy::EveryOp] {
        tasks.extend(task("feed", strategy, config.clone()));
    }
    // A handle that read (caught up without the lock) commits next: finding I.
    tasks.extend(task(
        "read-then-commit",
        Strategy::SyncPoints,
        config.clone(),
    ));
    if let Some(bits) = aimed_bits {
        let aimed = ExploreConfig {
            rounds: bits,
            ..config.clone()
        };
        tasks.extend(task("read-then-commit", Strategy::Aimed, aimed));
    }
    for name in ["two-handles", "handoff", "threads", "ranges", "visibility"] {
        for strategy in [
            Strategy::SyncPoints,
            Strategy::EveryOp,
            Strategy::RecoveryCrash,
        ] {
            tasks.extend(task(name, strategy, config.clone()));
        }
        if name != "threads" {
            tasks.extend(task(name, Strategy::Countdown, config.clone()));
        }
        if let Some(bits) = aimed_bits.filter(|_| name != "visibility") {
            let aimed = ExploreConfig {
                rounds: bits,
                ..config.clone()
            };
            tasks.extend(task(name, Strategy::Aimed, aimed));
        }
    }
    tasks
}

/// Seeded random workloads: swarm and sync points for each seed, and every operation and
/// countdown errors for seeds up to `deep_seeds`.
pub fn random_tasks(
    seeds: std::ops::RangeInclusive<u64>,
    steps: usize,
    config: &ExploreConfig,
    deep_seeds: u64,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for seed in seeds {
        let workload = random_mix(seed, steps);
        let config = ExploreConfig {
            seed,
            ..config.clone()
        };
        let mut strategies = vec![Strategy::Swarm, Strategy::SyncPoints];
        if seed <= deep_seeds {
            strategies.extend([Strategy::EveryOp, Strategy::Countdown]);
        }
        for strategy in strategies {
            tasks.push(Task {
                workload: workload.clone(),
                strategy,
                config: config.clone(),
            });
        }
    }
    tasks
}

/// Seeded random schedules over `handles` handles (`handles-<seed>` over two,
/// `handles3-<seed>` over three: threads, a kill of one handle while the others live) with
/// sync points, swarm faults and countdown errors.
pub fn handles_tasks(
    seeds: std::ops::RangeInclusive<u64>,
    config: &ExploreConfig,
    handles: u32,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for seed in seeds {
        let workload = handles_mix_over(seed, HANDLES_STEPS, handles);
        let config = ExploreConfig {
            seed,
            ..config.clone()
        };
        for strategy in [Strategy::SyncPoints, Strategy::Swarm, Strategy::Countdown] {
            tasks.push(Task {
                workload: workload.clone(),
                strategy,
                config: config.clone(),
            });
        }
    }
    tasks
}

/// Runs `tasks` on `jobs` worker threads (at least one), each task alone on its thread with its
/// own simulated disk. Tasks are taken in order and their outcomes merged in task order, so the
/// figures and the failures reported do not depend on the number of workers. `progress` sees the
/// number of tasks done and the running figures, on the calling thread. A `budget` stops the
/// taking of new tasks once spent; `stop_at_first` stops it at the first failure (tasks already
/// running finish, and failures found by them are reported too).
pub fn run_tasks(
    tasks: &[Task],
    engine: &EngineConfig,
    budget: Option<Duration>,
    stop_at_first: bool,
    jobs: usize,
    mut progress: impl FnMut(usize, &Stats),
) -> (Stats, Vec<Failure>) {
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut outcomes: Vec<Option<Outcome>> = (0..tasks.len()).map(|_| None).collect();
    let mut stats = Stats::default();
    thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel();
        for _ in 0..jobs.clamp(1, tasks.len().max(1)) {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) || budget.is_some_and(|b| start.elapsed() >= b) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(task) = tasks.get(i) else { break };
                let outcome = explore(&task.workload, task.strategy, engine, &task.config);
                if stop_at_first && outcome.failure.is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
                if sender.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        let mut done = 0;
        for (i, outcome) in receiver {
            done += 1;
            stats.merge(&outcome.stats);
            stats.elapsed = start.elapsed();
            progress(done, &stats);
            outcomes[i] = Some(outcome);
        }
    });
    stats.elapsed = start.elapsed();
    let mut failures: Vec<Failure> = outcomes
        .into_iter()
        .flatten()
        .filter_map(|o| o.failure)
        .collect();
    if stop_at_first {
        failures.truncate(1);
    }
    (stats, failures)
}
