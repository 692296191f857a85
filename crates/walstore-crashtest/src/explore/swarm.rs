//! Seeded random simulation ("swarm" testing): each seed draws its own fault probabilities,
//! runs the workload with random I/O errors, and checks random images of random crash points.
//! One seed reproduces a run exactly.

use super::points::{final_point, Checker};
use super::{Case, ExploreConfig, Outcome, Strategy};
use crate::crashgen::{FaultClass, Variant};
use crate::driver::{run_workload, RunConfig};
use crate::engine::EngineConfig;
use crate::simfs::inject::SwarmProbabilities;
use crate::simfs::Capture;
use crate::trace::OpClass;
use crate::workload::Workload;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Crash points sampled per run.
const POINTS_PER_RUN: usize = 24;

/// One swarm run with the probabilities of `config.seed`.
pub fn explore_swarm(
    workload: &Workload,
    engine: &EngineConfig,
    config: &ExploreConfig,
    only: Option<&Case>,
) -> Outcome {
    let probabilities = only
        .and_then(|c| c.swarm)
        .unwrap_or_else(|| SwarmProbabilities::for_seed(config.seed));
    let run_config = RunConfig {
        capture: Capture::EveryOp,
        countdown: None,
        swarm: Some(probabilities),
        media: config.media,
    };
    let run = run_workload(workload, engine, &run_config);
    let base = Case {
        workload: workload.clone(),
        strategy: Strategy::Swarm,
        config: config.clone(),
        countdown: None,
        swarm: Some(probabilities),
        crash_op: None,
        variant: None,
        image_seed: None,
        in_recovery: false,
    };
    let mut checker = Checker::new(engine, config, base, only);
    checker.outcome.stats.runs = 1;
    for fired in &run.fs.fired() {
        checker
            .outcome
            .stats
            .fault(if fired.class == OpClass::Sync {
                FaultClass::F11
            } else {
                FaultClass::F10
            });
    }
    if checker.in_run(&run) {
        return checker.outcome;
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut points = run.points.clone();
    if only.is_none() {
        points.shuffle(&mut rng);
        points.truncate(POINTS_PER_RUN);
        points.sort_by_key(|p| p.point.op_index);
    }
    points.push(final_point(&run));
    for point in &points {
        let mut variants = config.variants.clone();
        if only.is_none() {
            variants.shuffle(&mut rng);
            variants.truncate(3);
            variants.push(Variant::DropUnsynced);
        }
        if checker.point(point, &run, &variants, 1) {
            break;
        }
    }
    checker.outcome
}
