//! Shrinks a failing case to the fewest workload steps (and no I/O fault when the fault is
//! not needed) that still break the same invariant: delta debugging over the steps, then one
//! pass removing single steps and operations inside transactions, re-running the strategy on
//! every candidate.

use crate::engine::EngineConfig;
use crate::explore::{rerun, Case, Failure};
use crate::workload::Step;

/// The smallest failing case found (the input if nothing smaller fails the same way).
pub fn minimize(failure: &Failure, engine: &EngineConfig) -> Failure {
    let target = failure.violation.invariant;
    let mut best = failure.clone();
    // Any crash point and image may show the failure once steps are gone.
    let general = |case: &Case| Case {
        crash_op: None,
        variant: None,
        image_seed: None,
        ..case.clone()
    };
    let fails = |case: &Case| -> Option<Failure> {
        rerun(case, engine)
            .failure
            .filter(|f| f.violation.invariant == target)
    };
    if best.case.countdown.is_some() || best.case.swarm.is_some() {
        let without = Case {
            countdown: None,
            swarm: None,
            ..general(&best.case)
        };
        if let Some(f) = fails(&without) {
            best = f;
        }
    }
    let mut chunk = best.case.workload.steps.len().div_ceil(2).max(1);
    loop {
        let mut shrunk = false;
        let mut start = 0;
        while start < best.case.workload.steps.len() {
            let mut candidate = general(&best.case);
            let end = (start + chunk).min(candidate.workload.steps.len());
            candidate.workload.steps.drain(start..end);
            match fails(&candidate) {
                Some(f) => {
                    best = f;
                    shrunk = true;
                }
                None => start += chunk,
            }
        }
        if chunk == 1 && !shrunk {
            break;
        }
        if !shrunk {
            chunk = (chunk / 2).max(1);
        }
    }
    shrink_transactions(best, &fails, &general)
}

/// Removes operations inside transactions one at a time.
fn shrink_transactions(
    mut best: Failure,
    fails: &dyn Fn(&Case) -> Option<Failure>,
    general: &dyn Fn(&Case) -> Case,
) -> Failure {
    for step in 0..best.case.workload.steps.len() {
        let mut op = 0;
        loop {
            let mut candidate = general(&best.case);
            let Some(Step::Txn { ops, .. }) = candidate.workload.steps.get_mut(step) else {
                break;
            };
            if op >= ops.len() || ops.len() == 1 {
                break;
            }
            ops.remove(op);
            match fails(&candidate) {
                Some(f) => best = f,
                None => op += 1,
            }
        }
    }
    best
}
