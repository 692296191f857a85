//! Replays a [`Recording`] into the simulated file system and collects a crash point after
//! every file-system operation, each with the number of stdout lines acknowledged by then.

use super::ops::{Op, Recording};
use crate::image::Image;
use crate::simfs::state::{DirOp, FsState};
use crate::simfs::{Capture, SimFs};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use walstore::storage::{OpenMode, Storage};

/// Where the recorded directory lives inside the simulated file system.
pub const ROOT: &str = "/dir";

/// The simulated path of a name relative to the recorded directory.
pub fn sim_path(rel: &str) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(ROOT)
    } else {
        Path::new(ROOT).join(rel)
    }
}

/// The state right after one recorded operation.
#[derive(Debug, Clone)]
pub struct Point {
    /// Index in [`Recording::ops`] of the operation the crash follows (`None`: before the
    /// first one).
    pub after: Option<usize>,
    /// The file system at that moment.
    pub state: FsState,
    /// Number of stdout lines printed before the next file-system operation (all of them
    /// were printed while the files were in this state).
    pub acked: usize,
}

/// The replay: crash points, and operations the simulated file system refused (a sign that
/// the recording missed something).
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// The crash points in order.
    pub points: Vec<Point>,
    /// `op N (what): error`.
    pub refused: Vec<String>,
}

/// Replays `rec` on top of `initial` (all durable).
pub fn replay(initial: &Image, rec: &Recording) -> Replay {
    let mut fs = SimFs::from_state(initial.to_state());
    fs.set_capture(Capture::Off);
    let mut out = Replay::default();
    let stdout_before: Vec<usize> = rec
        .ops
        .iter()
        .scan(0usize, |n, op| {
            let before = *n;
            if !op.is_fs() {
                *n += 1;
            }
            Some(before)
        })
        .collect();
    let total_lines = rec.ops.iter().filter(|op| !op.is_fs()).count();
    // Lines printed before the first file-system operation after index `i`.
    let acked_after = |i: Option<usize>| -> usize {
        let start = i.map_or(0, |i| i + 1);
        rec.ops[start..]
            .iter()
            .position(Op::is_fs)
            .map_or(total_lines, |p| stdout_before[start + p])
    };
    out.points.push(Point {
        after: None,
        state: fs.state(),
        acked: acked_after(None),
    });
    for (i, op) in rec.ops.iter().enumerate() {
        if !op.is_fs() {
            continue;
        }
        let applied = match op {
            Op::Link { from, to } => link(&mut fs, from, to),
            Op::MoveIn { path, data, synced } => move_in(&fs, i, path, data, *synced),
            _ => apply(&fs, op),
        };
        if let Err(e) = applied {
            out.refused.push(format!("op {i} ({op}): {e}"));
            continue;
        }
        out.points.push(Point {
            after: Some(i),
            state: fs.state(),
            acked: acked_after(Some(i)),
        });
    }
    out
}

fn apply(fs: &SimFs, op: &Op) -> std::io::Result<()> {
    match op {
        Op::Create { path } => fs.open(&sim_path(path), OpenMode::Create).map(drop),
        Op::Truncate { path, len } => fs.open(&sim_path(path), OpenMode::ReadWrite)?.set_len(*len),
        Op::Write { path, offset, data } => fs
            .open(&sim_path(path), OpenMode::ReadWrite)?
            .write_all_at(data, *offset),
        Op::Rename { from, to } => fs.rename(&sim_path(from), &sim_path(to)),
        Op::Unlink { path } => fs.remove_file(&sim_path(path)),
        // The simulated file system keeps directories durable from their creation (see
        // docs/CRASHTEST.md, "what the recording cannot see").
        Op::Mkdir { path } => fs.create_dir_all(&sim_path(path)),
        Op::Fsync { path, data_only } => {
            let file = fs.open(&sim_path(path), OpenMode::ReadOnly)?;
            if *data_only {
                file.sync_data()
            } else {
                file.sync_all()
            }
        }
        Op::DirFsync { path } => fs.sync_dir(&sim_path(path)),
        Op::SyncAll => {
            let state = fs.state();
            for path in state.names.keys() {
                fs.open(path, OpenMode::ReadOnly)?.sync_all()?;
            }
            for dir in &state.dirs {
                fs.sync_dir(dir)?;
            }
            Ok(())
        }
        Op::Stdout { .. } | Op::Link { .. } | Op::MoveIn { .. } => Ok(()),
    }
}

/// A hard link: `to` names `from`'s file, a new name that needs a sync of its directory. The
/// storage trait has no link, so the state is edited and the file system rebuilt on it.
fn link(fs: &mut SimFs, from: &str, to: &str) -> std::io::Result<()> {
    let mut state = fs.state();
    let (from, to) = (sim_path(from), sim_path(to));
    let inode = *state
        .names
        .get(&from)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))?;
    if state.names.contains_key(&to) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the new name exists",
        ));
    }
    let op = state
        .pending_dir
        .iter()
        .map(|d| match d {
            DirOp::Create { op, .. } | DirOp::Rename { op, .. } | DirOp::Unlink { op, .. } => *op,
        })
        .max()
        .unwrap_or(0);
    state.names.insert(to.clone(), inode);
    state.pending_dir.push(DirOp::Create {
        op,
        path: to,
        inode,
    });
    *fs = SimFs::from_state(state);
    fs.set_capture(Capture::Off);
    Ok(())
}

/// A file moved in from outside: made outside the recorded directory (its name there made
/// durable at once: only the target's directory matters), written, synced if it was, then
/// renamed onto `path`.
fn move_in(fs: &SimFs, i: usize, path: &str, data: &[u8], synced: bool) -> std::io::Result<()> {
    let outside = PathBuf::from(format!("/moved-in-{i}"));
    let file = fs.open(&outside, OpenMode::Create)?;
    file.write_all_at(data, 0)?;
    if synced {
        file.sync_all()?;
    }
    drop(file);
    fs.sync_dir(Path::new("/"))?;
    fs.rename(&outside, &sim_path(path))
}

/// The name faults an image shows against its crash point: a created name missing (F7), a
/// rename not (or half) done (F8), an unlinked name back (F9).
pub fn name_faults(state: &FsState, image: &Image) -> BTreeSet<crate::crashgen::FaultClass> {
    use crate::crashgen::FaultClass;
    let mut out = BTreeSet::new();
    for op in &state.pending_dir {
        match op {
            DirOp::Create { path, .. } => {
                if state.names.contains_key(path) && !image.files.contains_key(path) {
                    out.insert(FaultClass::F7);
                }
            }
            DirOp::Rename {
                from, to, inode, ..
            } => {
                let half_done = !state.names.contains_key(from) && image.files.contains_key(from);
                // Not done: `to` is missing although the rename made it, or holds the bytes of
                // another file (the one it named before) rather than the renamed file's.
                let not_done = match image.files.get(to) {
                    None => state.names.get(to) == Some(inode),
                    Some(bytes) => {
                        let is = |i: &crate::simfs::state::Inode| {
                            i.live.as_slice() == bytes.as_slice()
                                || i.durable.as_slice() == bytes.as_slice()
                        };
                        let mine = state.inodes.get(inode).is_some_and(is);
                        let other = state.inodes.iter().any(|(id, i)| id != inode && is(i));
                        !mine && other
                    }
                };
                if half_done || not_done {
                    out.insert(FaultClass::F8);
                }
            }
            DirOp::Unlink { path, .. } => {
                if !state.names.contains_key(path) && image.files.contains_key(path) {
                    out.insert(FaultClass::F9);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crashgen::{generate, FaultClass, MediaModel, Variant};

    fn initial() -> Image {
        let mut image = Image::default();
        image.dirs.insert(PathBuf::from("/"));
        image.dirs.insert(PathBuf::from(ROOT));
        image.files.insert(sim_path("a"), b"old".to_vec());
        image
    }

    fn save(dir_fsync: bool) -> Recording {
        let mut ops = vec![
            Op::Create {
                path: "a.tmp".into(),
            },
            Op::Write {
                path: "a.tmp".into(),
                offset: 0,
                data: b"new".to_vec(),
            },
            Op::Fsync {
                path: "a.tmp".into(),
                data_only: false,
            },
            Op::Rename {
                from: "a.tmp".into(),
                to: "a".into(),
            },
        ];
        if dir_fsync {
            ops.push(Op::DirFsync { path: "".into() });
        }
        ops.push(Op::Stdout {
            line: "saved 1".into(),
        });
        Recording {
            ops,
            ..Recording::default()
        }
    }

    #[test]
    fn an_unsynced_rename_is_lost_at_a_power_cut_and_labelled_f8() {
        let replayed = replay(&initial(), &save(false));
        assert!(replayed.refused.is_empty(), "{:?}", replayed.refused);
        let last = replayed.points.last().expect("a crash point");
        assert_eq!(last.after, Some(3));
        assert_eq!(last.acked, 1, "the line printed after the rename");
        let g = generate(
            &last.state,
            Variant::DropUnsynced,
            0,
            &MediaModel::default(),
        )
        .expect("an image");
        assert_eq!(g.image.files.get(&sim_path("a")), Some(&b"old".to_vec()));
        assert!(name_faults(&last.state, &g.image).contains(&FaultClass::F8));
    }

    #[test]
    fn a_directory_fsync_makes_the_rename_durable() {
        let replayed = replay(&initial(), &save(true));
        let last = replayed.points.last().expect("a crash point");
        assert_eq!(last.after, Some(4));
        let g = generate(
            &last.state,
            Variant::DropUnsynced,
            0,
            &MediaModel::default(),
        )
        .expect("an image");
        assert_eq!(g.image.files.get(&sim_path("a")), Some(&b"new".to_vec()));
        assert!(!g.image.files.contains_key(&sim_path("a.tmp")));
        assert!(name_faults(&last.state, &g.image).is_empty());
        // Before the rename, the line was not printed yet.
        assert_eq!(replayed.points[3].acked, 0);
    }
}
