//! The report printed by the `program` command.

use super::config::ProgramConfig;
use super::ops::Op;
use super::outcome::{Outcome, Violation};
use crate::crashgen::FaultClass;

/// The report printed by the `program` command.
pub fn report(cfg: &ProgramConfig, outcome: &Outcome) -> String {
    use std::fmt::Write as _;
    let mut s = header(outcome);
    let ops = &outcome.recording.ops;
    let _ = writeln!(
        s,
        "crash points: {}, images generated: {}, distinct images checked: {}",
        outcome.crash_points, outcome.images_generated, outcome.images_checked
    );
    let _ = writeln!(s, "per fault class (distinct images showing it):");
    for (class, count) in &outcome.per_class {
        let _ = writeln!(
            s,
            "  {class:<4} {:<46} checked {:>5}  rejected {:>5}",
            describe(*class),
            count.checked,
            count.rejected
        );
    }
    for (n, v) in outcome.violations.iter().enumerate() {
        if n >= cfg.print_limit {
            let _ = writeln!(
                s,
                "... {} more violations in {}",
                outcome.violations.len() - n,
                cfg.artifacts.join("violations.json").display()
            );
            break;
        }
        violation(&mut s, n, v, ops);
    }
    let verdict = if outcome.violations.is_empty() {
        "PASS: every image accepted".to_string()
    } else {
        let broken: Vec<String> = outcome
            .broken_by()
            .iter()
            .map(|c| format!("{c} ({})", describe(*c)))
            .collect();
        let fix = outcome.violations[0]
            .diagnosis
            .first()
            .cloned()
            .unwrap_or_default();
        format!(
            "FAIL: {} of {} images rejected; broken by {}\nfirst fix (from violation 1, the simplest): {fix}",
            outcome.violations.len(),
            outcome.images_checked,
            broken.join(", ")
        )
    };
    let _ = writeln!(
        s,
        "\n{verdict}\ntime: record {:.2}s, images {:.2}s",
        outcome.record_secs, outcome.check_secs
    );
    s
}

/// The recording's summary line and the shared-memory files.
fn header(outcome: &Outcome) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let ops = &outcome.recording.ops;
    let _ = writeln!(
        s,
        "program: {} operations recorded ({} file-system, {} stdout lines), program exit status {}",
        ops.len(),
        ops.iter().filter(|o| o.is_fs()).count(),
        ops.iter().filter(|o| !o.is_fs()).count(),
        outcome
            .run_status
            .map_or("(signal)".to_string(), |c| c.to_string())
    );
    for m in &outcome.recording.mapped {
        let _ = writeln!(
            s,
            "  shared memory: {m} (mapped writable and shared; bytes written through the map are not recorded)"
        );
    }
    s
}

fn violation(s: &mut String, n: usize, v: &Violation, ops: &[Op]) {
    use std::fmt::Write as _;
    let _ = writeln!(s, "\nVIOLATION {}:", n + 1);
    let classes: Vec<String> = v.classes.iter().map(|c| c.to_string()).collect();
    let crash = v.after_op.map_or("before the first operation".into(), |i| {
        format!("after op {i}")
    });
    let _ = writeln!(
        s,
        "  fault: {} ({}), recipe {:?} seed {}, media {}, crash {crash}",
        classes.join("+"),
        v.classes
            .iter()
            .map(|c| describe(*c))
            .collect::<Vec<_>>()
            .join("; "),
        v.variant,
        v.seed,
        v.media
    );
    for line in &v.diagnosis {
        let _ = writeln!(s, "  diagnosis: {line}");
    }
    if !v.lost_files.is_empty() {
        let _ = writeln!(
            s,
            "  files not as the program left them: {}",
            v.lost_files.join(", ")
        );
    }
    let _ = writeln!(s, "  acknowledged: {:?}", v.acked);
    let _ = writeln!(s, "  operations leading to it:");
    let end = v.after_op.map_or(0, |i| i + 1);
    let start = end.saturating_sub(12);
    for (i, op) in ops.iter().enumerate().take(end).skip(start) {
        let _ = writeln!(s, "    {i:>4} {op}");
    }
    let _ = writeln!(
        s,
        "  checker (exit {}):",
        v.checker_status
            .map_or("signal".to_string(), |c| c.to_string())
    );
    for line in v.checker_output.lines().take(12) {
        let _ = writeln!(s, "    | {line}");
    }
    let _ = writeln!(s, "  materialise: {}", v.materialise);
}

/// One line on a fault class.
pub fn describe(class: FaultClass) -> &'static str {
    match class {
        FaultClass::F1 => "unsynced data lost",
        FaultClass::F2 => "prefix of unsynced writes kept",
        FaultClass::F3 => "subset of unsynced writes kept",
        FaultClass::F4 => "torn sectors",
        FaultClass::F5 => "garbage sectors",
        FaultClass::F6 => "size and data diverge",
        FaultClass::F7 => "new file's directory entry lost",
        FaultClass::F8 => "rename lost or half done",
        FaultClass::F9 => "unlink or truncation undone",
        FaultClass::F10 => "I/O error",
        FaultClass::F11 => "failed fsync dropped pages",
        FaultClass::F13 => "synced bytes corrupted",
        FaultClass::F15 => "process kill (nothing lost)",
        FaultClass::F16 => "crash during recovery",
        FaultClass::F18 => "writes reordered across files",
    }
}
