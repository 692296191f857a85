//! Countdown injection: for N = 1, 2, ... the N-th state-changing call fails, transiently or
//! persistently, with EIO or with ENOSPC after a short write (a failing file sync drops the
//! dirty pages, F11). The driver checks poisoning while it runs; the state at the end is then
//! crashed (power loss and process kill) and checked.

use super::points::{final_point, Checker};
use super::{Case, ExploreConfig, Outcome, Strategy};
use crate::crashgen::{FaultClass, Variant};
use crate::driver::{run_workload, RunConfig};
use crate::engine::EngineConfig;
use crate::simfs::inject::{CountdownFault, Errno};
use crate::simfs::Capture;
use crate::trace::OpClass;
use crate::workload::Workload;

/// The fault kinds tried at every N.
pub fn kinds(nth: u64) -> [CountdownFault; 4] {
    let fault = |errno, persistent, short_write| CountdownFault {
        nth,
        class: None,
        errno,
        persistent,
        short_write,
    };
    [
        fault(Errno::Eio, false, false),
        fault(Errno::Eio, true, false),
        fault(Errno::Enospc, false, true),
        fault(Errno::Enospc, true, true),
    ]
}

/// Explores every N up to the number of calls a clean run makes.
pub fn explore_countdown(
    workload: &Workload,
    engine: &EngineConfig,
    config: &ExploreConfig,
    only: Option<&Case>,
) -> Outcome {
    let clean = run_workload(workload, engine, &RunConfig::capture(Capture::Off));
    let total = clean.fs.op_count().min(config.countdown_max);
    let mut outcome = Outcome::default();
    outcome.stats.runs += 1;
    for nth in 1..=total {
        for fault in kinds(nth) {
            if only.is_some_and(|c| c.countdown.as_ref().is_some_and(|f| *f != fault)) {
                continue;
            }
            let run_config = RunConfig {
                capture: Capture::Off,
                countdown: Some(fault.clone()),
                swarm: None,
                media: config.media,
            };
            let run = run_workload(workload, engine, &run_config);
            let base = Case {
                workload: workload.clone(),
                strategy: Strategy::Countdown,
                config: config.clone(),
                countdown: Some(fault),
                swarm: None,
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
            if !checker.in_run(&run) {
                let variants = [Variant::DropUnsynced, Variant::ProcessKill, Variant::Subset];
                checker.point(&final_point(&run), &run, &variants, 1);
            }
            let found = checker.outcome.failure.is_some();
            outcome.stats.merge(&checker.outcome.stats);
            if found {
                outcome.failure = checker.outcome.failure;
                return outcome;
            }
        }
    }
    outcome
}
