//! What a violation means for the program's author: one line per fault class saying which
//! step was missing, and the order in which violations are shown (simplest first).

use super::ops::Op;
use crate::crashgen::FaultClass;

/// The remedy for a program that a fault of this class breaks.
pub fn remedy(class: FaultClass) -> &'static str {
    match class {
        FaultClass::F15 => {
            "a process kill alone breaks it: a file is inconsistent between two of its calls; \
             never rewrite the only copy in place: write a new file and rename it over the old one"
        }
        FaultClass::F1 => {
            "data was acknowledged before it was synced: fsync each file you wrote (and the \
             directory of each new or renamed name) before printing the acknowledgement"
        }
        FaultClass::F2
        | FaultClass::F3
        | FaultClass::F4
        | FaultClass::F5
        | FaultClass::F6
        | FaultClass::F18 => {
            "part of an unsynced write survived (cut, torn, reordered or grown with zeros): \
             do not overwrite the only copy; write a new file, fsync it, rename it over the old one"
        }
        FaultClass::F7 => {
            "a new file's name was lost: fsync the directory after creating the file, before \
             acknowledging"
        }
        FaultClass::F8 => {
            "a rename was lost or half done: fsync the directory after the rename, before \
             acknowledging"
        }
        FaultClass::F9 => {
            "an unlink or truncation came undone: fsync the directory after an unlink (the file \
             after a truncation) before acknowledging, or make the old state harmless"
        }
        FaultClass::F10 | FaultClass::F11 => {
            "an I/O error was not handled: check every write and fsync, and stop (or start over \
             from a reopen) after a failed fsync"
        }
        FaultClass::F13 => "synced bytes were damaged: checksum what you read back",
        FaultClass::F16 => "recovery itself is not crash-safe: make each recovery step idempotent",
    }
}

/// The remedy when a rename was kept but the renamed file's data was not synced.
pub const RENAMED_UNSYNCED: &str = "a rename was kept but the renamed file's data was not \
synced: fsync the file before the rename";

/// Whether one of the `lost` names (files whose bytes in the image are not the live ones) was
/// the target of a rename or a move in up to the crash point.
pub(crate) fn renamed_unsynced(ops: &[Op], after: Option<usize>, lost: &[String]) -> bool {
    let end = after.map_or(0, |i| i + 1).min(ops.len());
    ops[..end].iter().any(|op| match op {
        Op::Rename { to, .. } => lost.contains(to),
        Op::MoveIn { path, .. } => lost.contains(path),
        _ => false,
    })
}

/// One line per fault the image shows, the most telling first.
pub(crate) fn diagnose(classes: &[FaultClass], renamed_unsynced: bool) -> Vec<String> {
    let order = [
        FaultClass::F15,
        FaultClass::F7,
        FaultClass::F8,
        FaultClass::F9,
        FaultClass::F1,
    ];
    let mut out: Vec<String> = Vec::new();
    let mut add = |line: &str| {
        if !out.iter().any(|l| l == line) {
            out.push(line.to_string());
        }
    };
    for class in order.iter().filter(|c| classes.contains(c)) {
        // With F8 the rename itself may be what was lost.
        if *class == FaultClass::F1 && renamed_unsynced && !classes.contains(&FaultClass::F8) {
            add(RENAMED_UNSYNCED);
        } else {
            add(remedy(*class));
        }
    }
    for class in classes.iter().filter(|c| !order.contains(c)) {
        add(remedy(*class));
    }
    out
}

/// The order violations are shown in: a process kill first, then fewer faults, fewer files
/// lost, an earlier crash point.
pub(crate) fn simplicity(
    classes: &[FaultClass],
    lost: usize,
    after: Option<usize>,
) -> (usize, usize, usize) {
    let faults = if classes == [FaultClass::F15] {
        0
    } else {
        classes.len()
    };
    (faults, lost, after.map_or(0, |i| i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsynced_file_behind_a_kept_rename_is_diagnosed_as_such() {
        let ops = vec![
            Op::Create {
                path: "a.tmp".into(),
            },
            Op::Rename {
                from: "a.tmp".into(),
                to: "a".into(),
            },
        ];
        assert!(renamed_unsynced(&ops, Some(1), &["a".into()]));
        assert!(
            !renamed_unsynced(&ops, Some(0), &["a".into()]),
            "not renamed yet"
        );
        let lines = diagnose(&[FaultClass::F1], true);
        assert_eq!(lines, vec![RENAMED_UNSYNCED.to_string()]);
        let lines = diagnose(&[FaultClass::F1, FaultClass::F8], true);
        assert_eq!(lines[0], remedy(FaultClass::F8));
        assert_eq!(lines[1], remedy(FaultClass::F1));
    }

    #[test]
    fn a_process_kill_sorts_before_any_power_loss() {
        let kill = simplicity(&[FaultClass::F15], 1, Some(9));
        let power = simplicity(&[FaultClass::F1], 1, Some(0));
        let two = simplicity(&[FaultClass::F1, FaultClass::F8], 0, Some(0));
        assert!(kill < power && power < two);
    }
}
