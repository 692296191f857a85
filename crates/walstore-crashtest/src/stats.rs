//! Figures of a run: crash points, images, faults per class, violations, time.

use crate::crashgen::FaultClass;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Counters of an exploration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Workload executions.
    pub runs: u64,
    /// Crash points explored.
    pub crash_points: u64,
    /// Images generated (before deduplication).
    pub images_generated: u64,
    /// Distinct images checked by reopening the engine.
    pub images_checked: u64,
    /// Crash points inside recovery explored.
    pub recovery_crash_points: u64,
    /// Images where recovery reported the injected corruption.
    pub corruption_reported: u64,
    /// Faults that changed something, per class.
    pub faults: BTreeMap<FaultClass, u64>,
    /// Violations found.
    pub violations: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Stats {
    /// Counts one fault of `class`.
    pub fn fault(&mut self, class: FaultClass) {
        *self.faults.entry(class).or_default() += 1;
    }

    /// Adds another run's counters.
    pub fn merge(&mut self, other: &Stats) {
        self.runs += other.runs;
        self.crash_points += other.crash_points;
        self.images_generated += other.images_generated;
        self.images_checked += other.images_checked;
        self.recovery_crash_points += other.recovery_crash_points;
        self.corruption_reported += other.corruption_reported;
        self.violations += other.violations;
        for (class, n) in &other.faults {
            *self.faults.entry(*class).or_default() += n;
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "summary")?;
        writeln!(f, "  workload runs          {}", self.runs)?;
        writeln!(f, "  crash points           {}", self.crash_points)?;
        writeln!(f, "  recovery crash points  {}", self.recovery_crash_points)?;
        writeln!(f, "  images generated       {}", self.images_generated)?;
        writeln!(
            f,
            "  images checked         {} (distinct)",
            self.images_checked
        )?;
        writeln!(f, "  corruption reported    {}", self.corruption_reported)?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect();
        writeln!(f, "  faults fired per class {}", faults.join(" "))?;
        writeln!(f, "  violations             {}", self.violations)?;
        write!(
            f,
            "  time                   {:.1}s",
            self.elapsed.as_secs_f64()
        )
    }
}
