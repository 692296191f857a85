//! The result of a run: images checked and rejected per fault class, and every violation.

use super::ops::Recording;
use crate::crashgen::{FaultClass, Variant};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One rejected image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Violation {
    /// Index of the operation the crash follows (`None`: before the first one).
    pub after_op: Option<usize>,
    /// The recipe.
    pub variant: Variant,
    /// Its seed.
    pub seed: u64,
    /// The media model's name.
    pub media: String,
    /// The faults the image shows.
    pub classes: Vec<FaultClass>,
    /// The acknowledged lines the checker was given.
    pub acked: Vec<String>,
    /// The checker's exit status and output.
    pub checker_status: Option<i32>,
    /// The checker's standard output and error.
    pub checker_output: String,
    /// A command that materialises the image.
    pub materialise: String,
    /// Files of the directory whose bytes (or presence) in the image are not the live ones.
    #[serde(default)]
    pub lost_files: Vec<String>,
    /// What the faults mean for the program, one line each, the most telling first.
    #[serde(default)]
    pub diagnosis: Vec<String>,
}

/// Images checked and rejected, per fault class.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ClassCount {
    /// Distinct images showing the class that were checked.
    pub checked: u64,
    /// Of those, rejected by the checker.
    pub rejected: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// The recording.
    pub recording: Recording,
    /// Crash points explored.
    pub crash_points: usize,
    /// Images generated (before deduplication).
    pub images_generated: u64,
    /// Distinct images checked.
    pub images_checked: u64,
    /// Per fault class.
    pub per_class: BTreeMap<FaultClass, ClassCount>,
    /// Every rejected image.
    pub violations: Vec<Violation>,
    /// Operations the replay refused (the recording missed something).
    pub refused: Vec<String>,
    /// The program's exit status.
    pub run_status: Option<i32>,
    /// Seconds recording, seconds checking.
    pub record_secs: f64,
    /// Seconds generating and checking images.
    pub check_secs: f64,
}

impl Outcome {
    /// The fault classes that break the program, from the weakest violation(s): a process kill
    /// if one breaks it, else the loss of unsynced data alone if that does, else the classes
    /// of the violations showing the fewest faults besides F1.
    pub fn broken_by(&self) -> Vec<FaultClass> {
        if self
            .violations
            .iter()
            .any(|v| v.classes == [FaultClass::F15])
        {
            return vec![FaultClass::F15];
        }
        if self
            .violations
            .iter()
            .any(|v| v.classes == [FaultClass::F1])
        {
            return vec![FaultClass::F1];
        }
        // F1 (some unsynced change lost) comes with every power-loss image; a more specific
        // class names the fault better when there is one.
        let specific = |v: &Violation| -> Vec<FaultClass> {
            let rest: Vec<FaultClass> = v
                .classes
                .iter()
                .copied()
                .filter(|c| *c != FaultClass::F1)
                .collect();
            if rest.is_empty() {
                v.classes.clone()
            } else {
                rest
            }
        };
        let Some(fewest) = self.violations.iter().map(|v| specific(v).len()).min() else {
            return Vec::new();
        };
        let set: BTreeSet<FaultClass> = self
            .violations
            .iter()
            .map(specific)
            .filter(|c| c.len() == fewest)
            .flatten()
            .collect();
        set.into_iter().collect()
    }

    /// Every class some rejected image shows.
    pub fn rejected_classes(&self) -> Vec<FaultClass> {
        self.per_class
            .iter()
            .filter(|(_, c)| c.rejected > 0)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// How long a run took, for tests and reports.
pub fn total_time(outcome: &Outcome) -> Duration {
    Duration::from_secs_f64(outcome.record_secs + outcome.check_secs)
}
