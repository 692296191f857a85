//! The recipes: which unsynced changes and names an image keeps (F2, F3, F4-F9, F18), and
//! where synced bytes are damaged (F13).

use super::{bytes, Builder, Damage, DamagedOrigin, FaultClass, Keep, NameKeep};
use crate::image::Image;
use crate::simfs::state::{to_usize, DirOp, FsState, InodeId, Pending};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Builder<'_> {
    pub(super) fn dropped(&mut self) -> Image {
        Image::durable_of(self.state)
    }

    /// A random prefix of the pending name operations.
    pub(super) fn name_prefix(&mut self) -> Vec<NameKeep> {
        let dir_cut = self.rng.gen_range(0..=self.state.pending_dir.len());
        (0..self.state.pending_dir.len())
            .map(|i| {
                if i < dir_cut {
                    NameKeep::Apply
                } else {
                    NameKeep::Drop
                }
            })
            .collect()
    }

    pub(super) fn prefix(&mut self) -> Image {
        let names = self.name_prefix();
        let mut plans = BTreeMap::new();
        for (id, inode) in &self.state.inodes {
            let n = inode.pending.len();
            let cut = self.rng.gen_range(0..=n);
            let plan: Vec<Keep> = (0..n)
                .map(|i| match (i.cmp(&cut), &inode.pending[i]) {
                    (std::cmp::Ordering::Less, _) => Keep::Full,
                    (std::cmp::Ordering::Equal, Pending::Write { data, .. }) => {
                        Keep::Prefix(self.rng.gen_range(0..=data.len()))
                    }
                    _ => Keep::Drop,
                })
                .collect();
            if n > 0 {
                self.classes.push(FaultClass::F2);
            }
            plans.insert(*id, plan);
        }
        self.build(&names, &plans)
    }

    pub(super) fn subset(&mut self) -> Image {
        let names: Vec<NameKeep> = if self.media.ordered_names {
            self.name_prefix()
        } else {
            (0..self.state.pending_dir.len())
                .map(|_| self.coin(NameKeep::Apply, NameKeep::Drop))
                .collect()
        };
        let plans = self.plans(|b, _| b.coin(Keep::Full, Keep::Drop));
        self.classes.push(FaultClass::F3);
        let files_with_changes = self
            .state
            .inodes
            .values()
            .filter(|i| !i.pending.is_empty())
            .count();
        if files_with_changes + usize::from(!self.state.pending_dir.is_empty()) > 1 {
            self.classes.push(FaultClass::F18);
        }
        self.build(&names, &plans)
    }

    pub(super) fn torn(&mut self, garbage: bool) -> Image {
        let names = vec![NameKeep::Apply; self.state.pending_dir.len()];
        let sector = self.sector;
        let plans = self.plans(|b, change| match change {
            Pending::Write { offset, data, .. } => {
                let first = to_usize(*offset) / sector;
                let last = (to_usize(*offset) + data.len()).div_ceil(sector);
                let mask = (first..last.max(first + 1))
                    .map(|_| {
                        let roll = b.rng.gen_range(0..10u8);
                        match roll {
                            0..=3 => 1,
                            4..=7 => 0,
                            _ if garbage => 2,
                            _ => 1,
                        }
                    })
                    .collect();
                Keep::Torn(mask)
            }
            Pending::SetLen { .. } => b.coin(Keep::Full, Keep::Drop),
        });
        self.classes.push(if garbage {
            FaultClass::F5
        } else {
            FaultClass::F4
        });
        self.build(&names, &plans)
    }

    pub(super) fn size_divergence(&mut self) -> Image {
        let names = vec![NameKeep::Apply; self.state.pending_dir.len()];
        let plans = self.plans(|b, _| match b.rng.gen_range(0..4u8) {
            0 => Keep::SizeOnly(false),
            1 => Keep::SizeOnly(true),
            2 => Keep::DataOnly,
            _ => Keep::Full,
        });
        self.classes.push(FaultClass::F6);
        self.build(&names, &plans)
    }

    pub(super) fn dir_entries(&mut self) -> Image {
        let mut names = Vec::new();
        let ordered = self.media.ordered_names.then(|| self.name_prefix());
        for (i, op) in self.state.pending_dir.iter().enumerate() {
            if let Some(prefix) = &ordered {
                let keep = prefix[i];
                if keep == NameKeep::Drop {
                    self.classes.push(match op {
                        DirOp::Create { .. } => FaultClass::F7,
                        DirOp::Rename { .. } => FaultClass::F8,
                        DirOp::Unlink { .. } => FaultClass::F9,
                    });
                }
                names.push(keep);
                continue;
            }
            let keep = match op {
                DirOp::Create { .. } => {
                    let k = self.coin(NameKeep::Apply, NameKeep::Drop);
                    if k == NameKeep::Drop {
                        self.classes.push(FaultClass::F7);
                    }
                    k
                }
                DirOp::Rename { .. } => {
                    self.classes.push(FaultClass::F8);
                    match self.rng.gen_range(0..4u8) {
                        0 => NameKeep::Drop,
                        1 => NameKeep::Apply,
                        2 => NameKeep::Both,
                        _ => NameKeep::Neither,
                    }
                }
                DirOp::Unlink { .. } => {
                    let k = self.coin(NameKeep::Apply, NameKeep::Drop);
                    if k == NameKeep::Drop {
                        self.classes.push(FaultClass::F9);
                    }
                    k
                }
            };
            names.push(keep);
        }
        // Data is kept whole or dropped per change: a rename may persist before the renamed
        // file's data (F8), and an undone truncation is F9.
        let all_data = self.rng.gen_bool(0.5);
        let plans = self.plans(|b, change| match change {
            Pending::SetLen { .. } => {
                let k = b.coin(Keep::Full, Keep::Drop);
                if k == Keep::Drop {
                    b.classes.push(FaultClass::F9);
                }
                k
            }
            Pending::Write { .. } if all_data => Keep::Full,
            Pending::Write { .. } => b.coin(Keep::Full, Keep::Drop),
        });
        self.build(&names, &plans)
    }

    /// Damages one synced byte range of a file whose name matches, in the durable image.
    pub(super) fn corrupt(&mut self, eligible: impl Fn(&str) -> bool) -> Option<(Image, Damage)> {
        let image = Image::durable_of(self.state);
        let targets: Vec<(PathBuf, InodeId)> = self
            .state
            .durable_names
            .iter()
            .filter(|(p, _)| {
                p.file_name()
                    .is_some_and(|n| eligible(&n.to_string_lossy()))
            })
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        let mut candidates = Vec::new();
        for (path, id) in &targets {
            let inode = self.state.inodes.get(id)?;
            let len = inode.durable.len() as u64;
            for origin in &inode.origins {
                if origin.start < len.min(origin.end) {
                    candidates.push((path.clone(), *id, origin.start, origin.end.min(len)));
                }
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let (path, id, start, end) = candidates[self.rng.gen_range(0..candidates.len())].clone();
        let offset = self.rng.gen_range(start..end);
        let sector = self.sector;
        let rng = &mut self.rng;
        let hit = |bytes: &mut Vec<u8>| bytes::damage_bytes(bytes, to_usize(offset), sector, rng);
        let damaged = damage(self.state, image, &path, id, hit)?;
        self.classes.push(FaultClass::F13);
        Some(damaged)
    }

    pub(super) fn coin<T>(&mut self, heads: T, tails: T) -> T {
        if self.rng.gen_bool(0.5) {
            heads
        } else {
            tails
        }
    }

    pub(super) fn plans(
        &mut self,
        mut choose: impl FnMut(&mut Self, &Pending) -> Keep,
    ) -> BTreeMap<InodeId, Vec<Keep>> {
        let state = self.state;
        state
            .inodes
            .iter()
            .map(|(id, inode)| {
                let plan = inode.pending.iter().map(|c| choose(self, c)).collect();
                (*id, plan)
            })
            .collect()
    }

    pub(super) fn build(
        &mut self,
        names: &[NameKeep],
        plans: &BTreeMap<InodeId, Vec<Keep>>,
    ) -> Image {
        let mut table = self.state.durable_names.clone();
        for (op, keep) in self.state.pending_dir.iter().zip(names) {
            match (keep, op) {
                (NameKeep::Drop, _) => {}
                (NameKeep::Apply, _) => op.apply(&mut table),
                (NameKeep::Both, DirOp::Rename { to, inode, .. }) => {
                    table.insert(to.clone(), *inode);
                }
                (
                    NameKeep::Neither,
                    DirOp::Rename {
                        from, to, inode, ..
                    },
                ) => {
                    if table.get(from) == Some(inode) {
                        table.remove(from);
                    }
                    if table.get(to) == Some(inode) {
                        table.remove(to);
                    }
                }
                (_, _) => op.apply(&mut table),
            }
        }
        let mut contents: BTreeMap<InodeId, Vec<u8>> = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (path, id) in &table {
            let Some(inode) = self.state.inodes.get(id) else {
                continue;
            };
            if !contents.contains_key(id) {
                let empty = Vec::new();
                let plan = plans.get(id).unwrap_or(&empty);
                let bytes = self.content(inode, plan);
                contents.insert(*id, bytes);
            }
            if let Some(bytes) = contents.get(id) {
                files.insert(path.clone(), bytes.clone());
            }
        }
        Image {
            dirs: self.state.dirs.clone(),
            files,
        }
    }
}

/// Applies `hit` to the durable bytes of file `path` (inode `id`) in `image` and maps the
/// changed bytes back to the writes that had put them there (F13). `None` if nothing changed.
pub(super) fn damage(
    state: &FsState,
    mut image: Image,
    path: &PathBuf,
    id: InodeId,
    hit: impl FnOnce(&mut Vec<u8>) -> String,
) -> Option<(Image, Damage)> {
    let inode = state.inodes.get(&id)?;
    let bytes = image.files.get_mut(path)?;
    let before = bytes.clone();
    let how = hit(bytes);
    let changed: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != before[i])
        .collect();
    let (first, last) = (*changed.first()?, *changed.last()?);
    let mut origins: Vec<DamagedOrigin> = Vec::new();
    for &i in &changed {
        let Some(o) = inode.origin_of(i as u64) else {
            continue;
        };
        match origins.last_mut() {
            Some(last) if last.write_op == o.write_op && last.end == i as u64 => {
                last.end += 1;
            }
            _ => origins.push(DamagedOrigin {
                start: i as u64,
                end: i as u64 + 1,
                write_op: o.write_op,
                sync_op: o.sync_op,
            }),
        }
    }
    let damage = Damage {
        path: path.display().to_string(),
        offset: first as u64,
        len: (last - first + 1) as u64,
        origins,
        how,
    };
    Some((image, damage))
}
