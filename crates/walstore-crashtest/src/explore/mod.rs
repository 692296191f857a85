//! Exploration strategies: crash points ([`points`]), countdown I/O errors ([`countdown`])
//! and seeded random simulation ([`swarm`]). Each turns a workload into crash images, checks
//! every distinct image, and returns the first failure as a [`Failure`] that can be saved,
//! replayed and minimized.

pub mod countdown;
pub mod points;
pub mod swarm;

use crate::crashgen::{Damage, Variant};
use crate::engine::EngineConfig;
use crate::image::Image;
use crate::oracle::{Expectation, Violation};
use crate::simfs::inject::{CountdownFault, FiredFault, SwarmProbabilities};
use crate::stats::Stats;
use crate::trace::TraceEntry;
use crate::workload::Workload;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// An exploration strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// A crash after every fsync-family call.
    SyncPoints,
    /// A crash after every state-changing call.
    EveryOp,
    /// The N-th call fails (every N), transient and persistent, then a crash at the end.
    Countdown,
    /// Crash points inside recovery, then a reopen.
    RecoveryCrash,
    /// Random faults with per-seed probabilities, random crash points.
    Swarm,
    /// Aimed corruption: at every sync point, a bit flip at every byte of every header and
    /// record field of synced data (`rounds` bits per byte, at most 8).
    Aimed,
    /// Constructed torn tails: after every operation, every torn-tail shape of the WAL's
    /// unsynced writes, each recovered with a crash at every point of its repair.
    TornTails,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 7] = [
        Strategy::SyncPoints,
        Strategy::EveryOp,
        Strategy::Countdown,
        Strategy::RecoveryCrash,
        Strategy::Swarm,
        Strategy::Aimed,
        Strategy::TornTails,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::SyncPoints => "sync-points",
            Strategy::EveryOp => "every-op",
            Strategy::Countdown => "countdown",
            Strategy::RecoveryCrash => "recovery-crash",
            Strategy::Swarm => "swarm",
            Strategy::Aimed => "aimed",
            Strategy::TornTails => "torn-tails",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Knobs of an exploration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreConfig {
    /// Sector size and file-system guarantees of the simulated media.
    pub media: crate::crashgen::MediaModel,
    /// Seeded images per recipe and crash point (the deterministic recipes make one).
    pub rounds: u64,
    /// Recipes to use.
    pub variants: Vec<Variant>,
    /// Recipes for the images of a crash inside recovery (recovery's own writes lost,
    /// reordered, torn, or torn into garbage).
    #[serde(default = "recovery_recipes")]
    pub recovery_variants: Vec<Variant>,
    /// Seed of the image recipes (and of swarm probabilities).
    pub seed: u64,
    /// Explore crash points inside recovery for every this-many-th image (0 = never).
    pub recovery_every: u64,
    /// Countdown: the largest N tried.
    pub countdown_max: u64,
    /// Size the post-recovery commit to take exactly the log bytes of the first commit that
    /// recovery left out, so stale records after it would line up (on by default).
    #[serde(default = "yes")]
    pub aligned_probe: bool,
    /// Walk every image of the enumerable recipes (aimed corruption, constructed torn tails)
    /// at each crash point, and inside recovery, instead of `rounds` seeded samples.
    #[serde(default)]
    pub enumerate: bool,
}

fn yes() -> bool {
    true
}

fn recovery_recipes() -> Vec<Variant> {
    vec![
        Variant::DropUnsynced,
        Variant::Subset,
        Variant::Torn,
        Variant::TornGarbage,
    ]
}

impl Default for ExploreConfig {
    fn default() -> Self {
        ExploreConfig {
            media: crate::crashgen::MediaModel::default(),
            rounds: 2,
            variants: Variant::ALL.to_vec(),
            recovery_variants: recovery_recipes(),
            seed: 1,
            recovery_every: 7,
            countdown_max: 10_000,
            aligned_probe: true,
            enumerate: false,
        }
    }
}

/// Everything needed to run one failing case again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The workload.
    pub workload: Workload,
    /// The strategy that found the failure.
    pub strategy: Strategy,
    /// Its knobs.
    pub config: ExploreConfig,
    /// The countdown fault armed, if any.
    pub countdown: Option<CountdownFault>,
    /// The swarm probabilities, if any.
    pub swarm: Option<SwarmProbabilities>,
    /// Trace index of the crash point.
    pub crash_op: Option<u64>,
    /// The image recipe.
    pub variant: Option<Variant>,
    /// The image recipe's seed.
    pub image_seed: Option<u64>,
    /// The failure happened after a crash inside the recovery of that image: a re-run
    /// explores the crash points of that recovery (they depend on the engine's recovery, so
    /// the saved image alone does not show whether a changed engine still fails).
    #[serde(default)]
    pub in_recovery: bool,
}

/// A violation with everything needed to save, replay and minimize it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What broke.
    pub violation: Violation,
    /// How to get there again.
    pub case: Case,
    /// The post-crash image, if the failure was found on one.
    pub image: Option<Image>,
    /// The oracle's expectation for that image.
    pub expectation: Option<Expectation>,
    /// Whether the image is a power loss (not a process kill).
    pub power_loss: bool,
    /// Damage injected into synced bytes.
    pub damage: Option<Damage>,
    /// The operation trace up to the crash.
    pub trace: Vec<TraceEntry>,
    /// The I/O faults that fired.
    pub fired: Vec<FiredFault>,
    /// For a crash during recovery: the state the first, uninterrupted recovery found.
    pub stable_state: Option<crate::oracle::State>,
}

/// Deduplicates images by hash of image and expectation bounds.
#[derive(Debug, Default)]
pub struct Seen {
    seen: HashSet<(u64, usize, usize, usize, bool)>,
}

impl Seen {
    /// Whether this image, judged against these bounds, is new.
    pub fn first_time(&mut self, image: &Image, exp: &Expectation, lo: usize, power: bool) -> bool {
        self.seen
            .insert((image.digest(), exp.hi(), lo, exp.states.len(), power))
    }
}

/// The result of exploring one workload with one strategy.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Figures.
    pub stats: Stats,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

/// Runs `strategy` on `workload`.
pub fn explore(
    workload: &Workload,
    strategy: Strategy,
    engine: &EngineConfig,
    config: &ExploreConfig,
) -> Outcome {
    let engine = engine.with_settings(workload.settings);
    // Engines without a structural check do not run the recipes aimed at walstore's files.
    let config = &restrict(&engine, config);
    match strategy {
        Strategy::SyncPoints => points::explore_points(workload, &engine, config, false, None),
        Strategy::EveryOp => points::explore_points(workload, &engine, config, true, None),
        Strategy::RecoveryCrash => {
            let config = ExploreConfig {
                recovery_every: 1,
                variants: vec![Variant::DropUnsynced, Variant::ProcessKill, Variant::Subset],
                ..config.clone()
            };
            points::explore_points(workload, &engine, &config, false, None)
        }
        Strategy::Countdown => countdown::explore_countdown(workload, &engine, config, None),
        Strategy::Swarm => swarm::explore_swarm(workload, &engine, config, None),
        Strategy::Aimed => {
            let config = restrict(&engine, &aimed(config));
            points::explore_points(workload, &engine, &config, false, None)
        }
        Strategy::TornTails => {
            let config = restrict(&engine, &torn_tails(config));
            points::explore_points(workload, &engine, &config, true, None)
        }
    }
}

/// `config` without the image recipes that aim at walstore's files by name (damage to its
/// log, manifest and snapshot files, constructed torn tails of its log) when the engine has no
/// structural check: judging them needs to know which commits the bytes hit.
fn restrict(engine: &EngineConfig, config: &ExploreConfig) -> ExploreConfig {
    let mut config = config.clone();
    if engine.structure().is_none() {
        let aimed = [
            Variant::CorruptWal,
            Variant::CorruptMeta,
            Variant::CorruptField,
            Variant::TornTail,
        ];
        config.variants.retain(|v| !aimed.contains(v));
        config.recovery_variants.retain(|v| !aimed.contains(v));
    }
    config
}

/// The knobs of the aimed-corruption strategy.
fn aimed(config: &ExploreConfig) -> ExploreConfig {
    ExploreConfig {
        variants: vec![Variant::CorruptField],
        recovery_every: 0,
        enumerate: true,
        ..config.clone()
    }
}

/// The knobs of the constructed-torn-tail strategy.
fn torn_tails(config: &ExploreConfig) -> ExploreConfig {
    ExploreConfig {
        variants: vec![Variant::TornTail],
        recovery_variants: vec![Variant::DropUnsynced, Variant::TornTail],
        recovery_every: 1,
        enumerate: true,
        ..config.clone()
    }
}

/// Runs a saved case again: the same strategy, restricted to its crash point, recipe and
/// faults when they are known.
pub fn rerun(case: &Case, engine: &EngineConfig) -> Outcome {
    let engine = engine.with_settings(case.workload.settings);
    match case.strategy {
        Strategy::SyncPoints | Strategy::EveryOp | Strategy::RecoveryCrash => {
            let every = case.strategy == Strategy::EveryOp || case.crash_op.is_some();
            let mut config = case.config.clone();
            if case.strategy == Strategy::RecoveryCrash {
                config.recovery_every = 1;
            }
            points::explore_points(&case.workload, &engine, &config, every, Some(case))
        }
        Strategy::Countdown => {
            countdown::explore_countdown(&case.workload, &engine, &case.config, Some(case))
        }
        Strategy::Swarm => swarm::explore_swarm(&case.workload, &engine, &case.config, Some(case)),
        Strategy::Aimed | Strategy::TornTails => {
            let every = case.strategy == Strategy::TornTails || case.crash_op.is_some();
            points::explore_points(&case.workload, &engine, &case.config, every, Some(case))
        }
    }
}
