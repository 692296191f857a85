//! Crash-point exploration: run the workload once, capture the file system after every
//! fsync-family call (or every call), make several images of each crash point, check each
//! distinct image, and for some of them crash again inside recovery.

use super::{Case, ExploreConfig, Failure, Outcome, Seen, Strategy};
use crate::crashgen::{generate, image_count, FaultClass, Variant};
use crate::driver::{run_workload, PointContext, RunConfig, RunOutcome};
use crate::engine::EngineConfig;
use crate::simfs::{Capture, CrashPoint};
use crate::trace::OpClass;
use crate::verify::{check_image, check_recovery_crash, ImageCase};
use crate::workload::Workload;
use std::sync::Arc;

/// Explores the crash points of one run of `workload`.
pub fn explore_points(
    workload: &Workload,
    engine: &EngineConfig,
    config: &ExploreConfig,
    every_op: bool,
    only: Option<&Case>,
) -> Outcome {
    let capture = if every_op {
        Capture::EveryOp
    } else {
        Capture::Syncs
    };
    let strategy = match (only.map(|c| c.strategy), config.recovery_every, every_op) {
        (Some(s), _, _) => s,
        (None, _, _) if config.variants == [Variant::CorruptField] => Strategy::Aimed,
        (None, _, _) if config.variants == [Variant::TornTail] => Strategy::TornTails,
        (None, 1, _) => Strategy::RecoveryCrash,
        (None, _, true) => Strategy::EveryOp,
        (None, _, false) => Strategy::SyncPoints,
    };
    let run_config = RunConfig {
        media: config.media,
        ..RunConfig::capture(capture)
    };
    let run = run_workload(workload, engine, &run_config);
    let mut checker = Checker::new(
        engine,
        config,
        Case {
            workload: workload.clone(),
            strategy,
            config: config.clone(),
            countdown: None,
            swarm: None,
            crash_op: None,
            variant: None,
            image_seed: None,
            in_recovery: false,
        },
        only,
    );
    checker.outcome.stats.runs = 1;
    if checker.in_run(&run) {
        return checker.outcome;
    }
    let mut points = run.points.clone();
    points.push(final_point(&run));
    for point in &points {
        if checker.point(point, &run, &config.variants, config.rounds) {
            break;
        }
    }
    checker.outcome
}

/// The state after the whole workload, as one more crash point.
pub fn final_point(run: &RunOutcome) -> PointContext {
    PointContext {
        point: CrashPoint {
            op_index: run.fs.op_count(),
            class: OpClass::Sync,
            state: run.final_state.clone(),
        },
        history: Arc::new(run.history.clone()),
        phase: "end".into(),
    }
}

/// Checks images of crash points and keeps the figures and the first failure.
#[derive(Debug)]
pub struct Checker<'a> {
    engine: &'a EngineConfig,
    config: &'a ExploreConfig,
    base: Case,
    only: Option<&'a Case>,
    seen: Seen,
    /// Figures and first failure so far.
    pub outcome: Outcome,
}

impl<'a> Checker<'a> {
    /// A checker for failures described by `base` (a strategy and its knobs).
    pub fn new(
        engine: &'a EngineConfig,
        config: &'a ExploreConfig,
        base: Case,
        only: Option<&'a Case>,
    ) -> Self {
        Checker {
            engine,
            config,
            base,
            only,
            seen: Seen::default(),
            outcome: Outcome::default(),
        }
    }

    /// Records a violation found while running; returns whether there was one.
    pub fn in_run(&mut self, run: &RunOutcome) -> bool {
        let Some(v) = &run.violation else {
            return false;
        };
        self.outcome.stats.violations += 1;
        self.outcome.failure = Some(Failure {
            violation: v.clone(),
            case: self.base.clone(),
            image: None,
            expectation: None,
            power_loss: false,
            damage: None,
            trace: run.fs.trace(),
            fired: run.fs.fired(),
            stable_state: None,
        });
        true
    }

    /// Checks images of one crash point; returns whether a failure was found.
    pub fn point(
        &mut self,
        ctx: &PointContext,
        run: &RunOutcome,
        variants: &[Variant],
        rounds: u64,
    ) -> bool {
        let op = ctx.point.op_index;
        if self
            .only
            .is_some_and(|c| c.crash_op.is_some_and(|o| o != op))
        {
            return false;
        }
        self.outcome.stats.crash_points += 1;
        let exp = ctx.history.expectation(op, &ctx.phase);
        for &variant in variants {
            let listed = self.listed(&ctx.point.state, variant);
            let n = listed.unwrap_or(if variant.is_random() { rounds } else { 1 });
            for round in 0..n {
                let seed = match listed {
                    Some(_) => round,
                    None => image_seed(self.config.seed, op, round),
                };
                if let Some(c) = self.only {
                    if c.variant.is_some_and(|v| v != variant)
                        || c.image_seed.is_some_and(|s| s != seed)
                    {
                        continue;
                    }
                }
                if self.image(ctx, run, &exp, variant, seed) {
                    return true;
                }
            }
        }
        false
    }

    /// The number of images of `variant` to walk at a crash point, when the exploration
    /// enumerates and the recipe has a finite list (the seed is then the list index).
    fn listed(&self, state: &crate::simfs::state::FsState, variant: Variant) -> Option<u64> {
        if !self.config.enumerate {
            return None;
        }
        image_count(state, variant, &self.config.media, self.config.rounds)
    }

    /// Crashes inside a recovery that found `state`: a power cut inside recovery's own
    /// writes (lost, reordered, torn and garbage sectors; recovery must never write over data
    /// it cannot afford to lose), then a reopen. Returns the first violation and its image.
    fn recovery_images(
        &mut self,
        points: &[CrashPoint],
        state: &crate::oracle::State,
        seed: u64,
    ) -> Option<(crate::oracle::Violation, crate::image::Image)> {
        for point in points {
            self.outcome.stats.recovery_crash_points += 1;
            for &v in &self.config.recovery_variants {
                let seeds: Vec<u64> = match self.listed(&point.state, v) {
                    Some(n) => (0..n).collect(),
                    None => vec![seed ^ point.op_index],
                };
                for s in seeds {
                    let Some(g) = generate(&point.state, v, s, &self.config.media) else {
                        continue;
                    };
                    self.outcome.stats.images_generated += 1;
                    self.outcome.stats.images_checked += 1;
                    self.outcome.stats.fault(FaultClass::F16);
                    if let Err(v) = check_recovery_crash(&g.image, state, self.engine) {
                        return Some((v, g.image));
                    }
                }
            }
        }
        None
    }

    fn image(
        &mut self,
        ctx: &PointContext,
        run: &RunOutcome,
        exp: &crate::oracle::Expectation,
        variant: Variant,
        seed: u64,
    ) -> bool {
        let Some(generated) = generate(&ctx.point.state, variant, seed, &self.config.media) else {
            return false;
        };
        let stats = &mut self.outcome.stats;
        stats.images_generated += 1;
        let power = variant.is_power_loss();
        let lo = exp.lower_bound(power, generated.damage.as_ref());
        if !self.seen.first_time(&generated.image, exp, lo, power) {
            return false;
        }
        stats.images_checked += 1;
        for class in &generated.classes {
            stats.fault(*class);
        }
        let recovery = generated.damage.is_none()
            && (self
                .only
                .is_some_and(|c| c.strategy == Strategy::RecoveryCrash || c.in_recovery)
                || (self.config.recovery_every > 0
                    && stats
                        .images_checked
                        .is_multiple_of(self.config.recovery_every)));
        let case = ImageCase {
            image: &generated.image,
            expectation: exp,
            power_loss: power,
            damage: generated.damage.as_ref(),
            aligned_probe: self.config.aligned_probe,
        };
        let found = match check_image(case, self.engine, recovery) {
            Err(v) => Some((v, generated.image.clone(), None)),
            Ok(recovered) => {
                let Some(state) = recovered.state else {
                    self.outcome.stats.corruption_reported += 1;
                    return false;
                };
                self.recovery_images(&recovered.recovery_points, &state, seed)
                    .map(|(v, image)| (v, image, Some(state)))
            }
        };
        let Some((violation, image, stable_state)) = found else {
            return false;
        };
        self.fail(ctx, run, exp, &generated, violation, image, stable_state);
        true
    }

    /// Records the failure found on an image of `generated`'s recipe (or inside its recovery,
    /// with the state the uninterrupted recovery found).
    #[allow(clippy::too_many_arguments)] // reason: the parts of one failure, used once
    fn fail(
        &mut self,
        ctx: &PointContext,
        run: &RunOutcome,
        exp: &crate::oracle::Expectation,
        generated: &crate::crashgen::Generated,
        violation: crate::oracle::Violation,
        image: crate::image::Image,
        stable_state: Option<crate::oracle::State>,
    ) {
        self.outcome.stats.violations += 1;
        self.outcome.failure = Some(Failure {
            violation,
            case: Case {
                crash_op: Some(ctx.point.op_index),
                variant: Some(generated.variant),
                image_seed: Some(generated.seed),
                in_recovery: stable_state.is_some(),
                ..self.base.clone()
            },
            image: Some(image),
            expectation: Some(exp.clone()),
            power_loss: generated.variant.is_power_loss(),
            damage: generated.damage.clone(),
            trace: run
                .fs
                .trace()
                .into_iter()
                .filter(|t| t.index <= ctx.point.op_index)
                .collect(),
            fired: run.fs.fired(),
            stable_state,
        });
    }
}

/// The seed of one image recipe at one crash point.
pub fn image_seed(seed: u64, op: u64, round: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (op << 16) ^ round
}
