//! Changes to the run set as data: each [`RunEdit`] is a pure transform of a manifest, so
//! what a checkpoint or a merge does to the set of runs can be read, and tested, without any
//! file. [`super::apply`] is the only code that persists one.

use crate::manifest::Manifest;
use crate::snapshot::SegmentMeta;

/// One change to the set of runs (LevelDB's `VersionEdit`; lsm-tree's `with_*` transforms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunEdit {
    /// Moves the next file id past `count` ids, for files written before the edit that
    /// names them (a checkpoint's or a merge's output). Same generation.
    ReserveIds { count: u64 },
    /// Replaces the adjacent runs made of the files `inputs` names (newest first) by
    /// `output` (nothing, when the merge found every entry deleted). Same generation.
    Replace {
        inputs: Vec<Vec<u64>>,
        output: Vec<SegmentMeta>,
    },
    /// A checkpoint of generation `from`: `added` runs (newest first; empty ones are left
    /// out) go in front of the others, the next file id moves to at least `ids_end`, and
    /// generation `from + 1` begins with `salt`, its base at `base_txn`.
    NewGeneration {
        from: u64,
        added: Vec<Vec<SegmentMeta>>,
        ids_end: u64,
        base_txn: u64,
        salt: u64,
    },
}

/// Why an edit does not apply to a manifest: the manifest changed in a way that only another
/// holder of the writer lock, or damage, explains.
pub(crate) type EditError = &'static str;

impl RunEdit {
    /// Whether applying the edit begins a new generation (the WAL is reset after it, so a
    /// failed write of its manifest leaves the handle unable to tell which is durable).
    pub(crate) fn changes_generation(&self) -> bool {
        matches!(self, RunEdit::NewGeneration { .. })
    }

    /// The manifest after the edit; `base` is the manifest read under the writer lock.
    pub(crate) fn transform(&self, base: &Manifest) -> Result<Manifest, EditError> {
        let mut next = base.clone();
        match self {
            RunEdit::ReserveIds { count } => {
                next.next_file_id = base
                    .next_file_id
                    .checked_add(*count)
                    .ok_or("file ids exhausted")?;
            }
            RunEdit::Replace { inputs, output } => {
                let ids: Vec<Vec<u64>> = base.runs.iter().map(|r| file_ids(r)).collect();
                let at = ids
                    .windows(inputs.len().max(1))
                    .position(|w| w == inputs.as_slice())
                    .ok_or(
                        "the runs being merged left the manifest while the merge lock was held",
                    )?;
                let slot = (!output.is_empty()).then(|| output.clone());
                next.runs.splice(at..at + inputs.len(), slot);
            }
            RunEdit::NewGeneration {
                from,
                added,
                ids_end,
                base_txn,
                salt,
            } => {
                if base.generation != *from {
                    return Err("manifest generation differs from the WAL's under the writer lock");
                }
                next.generation = from + 1;
                next.salt = *salt;
                next.base_txn = *base_txn;
                next.next_file_id = base.next_file_id.max(*ids_end);
                let newer = added.iter().filter(|r| !r.is_empty()).cloned();
                next.runs = newer.chain(base.runs.iter().cloned()).collect();
            }
        }
        // Invariant: every file the manifest names has an id below its next file id (the
        // decoder refuses anything else).
        if next.files().any(|m| m.file_id >= next.next_file_id) {
            return Err("an edit names a file id that was not reserved");
        }
        Ok(next)
    }
}

/// The file ids of one run, in key order.
pub(crate) fn file_ids(run: &[SegmentMeta]) -> Vec<u64> {
    run.iter().map(|m| m.file_id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn file(id: u64, first: &[u8]) -> SegmentMeta {
        SegmentMeta {
            file_id: id,
            file_len: 100 * id,
            entry_count: id,
            first_key: Arc::from(first),
        }
    }

    /// Runs (newest first): [4], [2, 3], [1]; next id 5.
    fn three_runs() -> Manifest {
        Manifest {
            generation: 7,
            salt: 11,
            base_txn: 90,
            next_file_id: 5,
            runs: vec![
                vec![file(4, b"a")],
                vec![file(2, b"a"), file(3, b"m")],
                vec![file(1, b"b")],
            ],
        }
    }

    fn ids(m: &Manifest) -> Vec<Vec<u64>> {
        m.runs.iter().map(|r| file_ids(r)).collect()
    }

    #[test]
    fn reserving_ids_moves_only_the_next_file_id() {
        let base = three_runs();
        let next = RunEdit::ReserveIds { count: 3 }
            .transform(&base)
            .expect("applies");
        assert_eq!(next.next_file_id, 8);
        assert_eq!(
            Manifest {
                next_file_id: 5,
                ..next
            },
            base
        );
    }

    #[test]
    fn a_replace_puts_the_output_where_its_inputs_were() {
        let base = Manifest {
            next_file_id: 9,
            ..three_runs()
        };
        let edit = RunEdit::Replace {
            inputs: vec![vec![2, 3], vec![1]],
            output: vec![file(7, b"a"), file(8, b"k")],
        };
        let next = edit.transform(&base).expect("applies");
        assert_eq!(ids(&next), vec![vec![4], vec![7, 8]]);
        assert_eq!((next.generation, next.next_file_id), (7, 9));
    }

    #[test]
    fn a_replace_by_nothing_drops_the_inputs() {
        let edit = RunEdit::Replace {
            inputs: vec![vec![4], vec![2, 3]],
            output: Vec::new(),
        };
        let next = edit.transform(&three_runs()).expect("applies");
        assert_eq!(ids(&next), vec![vec![1]]);
    }

    #[test]
    fn a_replace_of_runs_that_are_not_adjacent_or_gone_is_refused() {
        for inputs in [vec![vec![4], vec![1]], vec![vec![2]], vec![vec![6]]] {
            let edit = RunEdit::Replace {
                inputs: inputs.clone(),
                output: Vec::new(),
            };
            assert!(edit.transform(&three_runs()).is_err(), "{inputs:?}");
        }
    }

    #[test]
    fn a_new_generation_adds_the_runs_newest_first_and_skips_empty_ones() {
        let edit = RunEdit::NewGeneration {
            from: 7,
            added: vec![vec![file(6, b"c")], Vec::new(), vec![file(5, b"a")]],
            ids_end: 7,
            base_txn: 120,
            salt: 12,
        };
        assert!(edit.changes_generation());
        let next = edit.transform(&three_runs()).expect("applies");
        assert_eq!(
            ids(&next),
            vec![vec![6], vec![5], vec![4], vec![2, 3], vec![1]]
        );
        assert_eq!(
            (next.generation, next.salt, next.base_txn, next.next_file_id),
            (8, 12, 120, 7)
        );
    }

    #[test]
    fn a_new_generation_keeps_ids_reserved_beyond_its_files() {
        let base = Manifest {
            next_file_id: 20,
            ..three_runs()
        };
        let edit = RunEdit::NewGeneration {
            from: 7,
            added: vec![vec![file(5, b"a")]],
            ids_end: 6,
            base_txn: 91,
            salt: 1,
        };
        assert_eq!(edit.transform(&base).expect("applies").next_file_id, 20);
    }

    #[test]
    fn a_new_generation_from_another_generation_is_refused() {
        let edit = RunEdit::NewGeneration {
            from: 6,
            added: Vec::new(),
            ids_end: 0,
            base_txn: 90,
            salt: 1,
        };
        assert!(edit.transform(&three_runs()).is_err());
    }

    #[test]
    fn an_edit_naming_an_id_that_was_not_reserved_is_refused() {
        let edit = RunEdit::NewGeneration {
            from: 7,
            added: vec![vec![file(9, b"a")]],
            ids_end: 6,
            base_txn: 91,
            salt: 1,
        };
        assert!(edit.transform(&three_runs()).is_err());
        let edit = RunEdit::Replace {
            inputs: vec![vec![1]],
            output: vec![file(5, b"a")],
        };
        assert!(edit.transform(&three_runs()).is_err());
    }

    #[test]
    fn exhausted_ids_are_refused() {
        let edit = RunEdit::ReserveIds { count: u64::MAX };
        assert!(edit.transform(&three_runs()).is_err());
    }
}
