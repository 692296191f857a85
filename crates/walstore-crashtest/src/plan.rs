//! Named batches of exploration tasks (the CI tier and the full run), and running a batch with
//! figures, a time budget and a progress callback.

use crate::crashgen::MediaModel;
use crate::engine::EngineConfig;
use crate::explore::{explore, ExploreConfig, Failure, Strategy};
use crate::stats::Stats;
use crate::workload::{random_mix, Workload, SCRIPTED};
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
    let (rounds, seeds, steps, deep_seeds): (u64, u64, usize, u64) = match name {
        "ci" => (3, 120, 24, 15),
        "full" => (6, 1000, 32, 100),
        _ => return None,
    };
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
        tasks.extend(random_tasks(1..=seeds, steps, &config, deep_seeds));
    }
    Some(tasks)
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

/// Runs tasks in order until the budget runs out (or after the first failure when
/// `stop_at_first`); calls `progress` after each task.
pub fn run_tasks(
    tasks: &[Task],
    engine: &EngineConfig,
    budget: Option<Duration>,
    stop_at_first: bool,
    mut progress: impl FnMut(usize, &Stats),
) -> (Stats, Vec<Failure>) {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        if budget.is_some_and(|b| start.elapsed() >= b) {
            break;
        }
        let outcome = explore(&task.workload, task.strategy, engine, &task.config);
        stats.merge(&outcome.stats);
        stats.elapsed = start.elapsed();
        progress(i + 1, &stats);
        if let Some(f) = outcome.failure {
            failures.push(f);
            if stop_at_first {
                break;
            }
        }
    }
    stats.elapsed = start.elapsed();
    (stats, failures)
}
