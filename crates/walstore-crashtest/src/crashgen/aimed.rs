//! Images made on purpose rather than at random: aimed corruption (F13 at one bit of one byte
//! of a named header or record field of synced data) and constructed torn tails (F3, F4, F5
//! shapes of the WAL's unsynced writes). Each recipe has a finite list of images at a crash
//! point; the seed picks one, so an exploration can walk the whole list ([`image_count`]) and
//! a failure replays from its seed like any other image.

use super::recipes::damage;
use super::{Builder, Damage, FaultClass, Keep, MediaModel, NameKeep, Variant};
use crate::image::Image;
use crate::layout::fields_of;
use crate::simfs::state::{to_usize, FsState, InodeId, Pending};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One byte of a named field of synced data.
#[derive(Debug, Clone)]
struct Target {
    path: PathBuf,
    id: InodeId,
    offset: u64,
    field: &'static str,
}

/// Bits flipped per aimed byte when the whole list is walked: bit 0 first (it turns a commit
/// record's kind 3 into a delete's 2).
const BITS: u64 = 8;

/// A constructed torn tail of the WAL's unsynced writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Every unsynced WAL write kept except this one: later records left past a hole (a stale
    /// transaction of the same length past the end).
    Hole(usize),
    /// The unsynced WAL writes from this one up to the last dropped, the rest kept: a run of
    /// writes lost between an older one and the last (a clean marker kept, the open's zeroing
    /// of it and the commit written over it lost, the commit after them kept: a stale
    /// transaction past a durable marker, RECOVERY.md L6).
    Gap(usize),
    /// The last write's sectors up to this one new, the rest old.
    SectorPrefix(usize),
    /// The last write's earlier sectors new, this one garbage, the rest old.
    GarbageAt(usize),
    /// Only this sector of the last write new.
    OnlySector(usize),
    /// Every sector of the last write new except this one, garbage (garbage over bytes of
    /// the record that are zeros, such as a watermark's high bytes).
    WholeButGarbage(usize),
    /// Only this sector of the last write new and every earlier unsynced WAL write dropped:
    /// two writes with no sync between them persisted in the other order, the later one
    /// torn (a torn-tail repair that zeroes the first record header and the rest with one
    /// sync after both: only the rest's zeroing of a garbage sector lands).
    AloneOnlySector(usize),
}

/// How many distinct images `variant` has at a crash point (`None` for the random recipes);
/// aimed corruption counts `bits` bits per byte (at most 8).
pub fn image_count(
    state: &FsState,
    variant: Variant,
    media: &MediaModel,
    bits: u64,
) -> Option<u64> {
    match variant {
        Variant::CorruptField => Some(targets(state).len() as u64 * bits.clamp(1, BITS)),
        Variant::TornTail => Some(shapes(state, media.sector.max(1)).len() as u64),
        _ => None,
    }
}

impl Builder<'_> {
    /// Flips one bit of one byte of a named field of synced data: image `index` of the list
    /// (byte `index % n`, bit `index / n`).
    pub(super) fn corrupt_field(&mut self, index: u64) -> Option<(Image, Damage)> {
        let targets = targets(self.state);
        let n = targets.len() as u64;
        if n == 0 {
            return None;
        }
        let index = index % (n * BITS);
        let t = &targets[to_usize(index % n)];
        let bit = index / n;
        let at = to_usize(t.offset);
        let hit = |bytes: &mut Vec<u8>| {
            bytes[at] ^= 1 << bit;
            format!("bit {bit} of the {} flipped", t.field)
        };
        let damaged = damage(
            self.state,
            Image::durable_of(self.state),
            &t.path,
            t.id,
            hit,
        )?;
        self.classes.push(FaultClass::F13);
        Some(damaged)
    }

    /// Constructed torn tail `index` of the list (see [`Shape`]); other files' unsynced
    /// changes and every name operation are kept. Garbage sectors keep powersafe overwrite
    /// even under `--strict`: garbage over synced bytes that share a sector with an append is
    /// finding D, which the `TornGarbage` recipe covers (and `--without TornGarbage` leaves
    /// out); these shapes are about the torn tail itself.
    pub(super) fn torn_tail(&mut self, index: u64) -> Option<Image> {
        self.media.powersafe_overwrite = true;
        let shapes = shapes(self.state, self.sector);
        let shape = *shapes.get(to_usize(index % (shapes.len().max(1) as u64)))?;
        let (wal, writes) = wal_writes(self.state)?;
        let last = *writes.last()?;
        let names = vec![NameKeep::Apply; self.state.pending_dir.len()];
        let mut plans: BTreeMap<InodeId, Vec<Keep>> = self
            .state
            .inodes
            .iter()
            .map(|(id, inode)| (*id, vec![Keep::Full; inode.pending.len()]))
            .collect();
        let plan = plans.get_mut(&wal)?;
        match shape {
            Shape::Hole(i) => {
                plan[writes[i]] = Keep::Drop;
                self.classes.push(FaultClass::F3);
            }
            Shape::Gap(i) => {
                for &w in &writes[i..writes.len() - 1] {
                    plan[w] = Keep::Drop;
                }
                self.classes.push(FaultClass::F3);
            }
            Shape::SectorPrefix(j) => plan[last] = Keep::Torn(mask(self, last, wal, |k| k <= j)),
            Shape::OnlySector(j) => plan[last] = Keep::Torn(mask(self, last, wal, |k| k == j)),
            Shape::GarbageAt(j) => {
                let mut m = mask(self, last, wal, |k| k < j);
                m[j] = 2;
                plan[last] = Keep::Torn(m);
            }
            Shape::WholeButGarbage(j) => {
                let mut m = mask(self, last, wal, |_| true);
                m[j] = 2;
                plan[last] = Keep::Torn(m);
            }
            Shape::AloneOnlySector(j) => {
                for &i in &writes[..writes.len() - 1] {
                    plan[i] = Keep::Drop;
                }
                plan[last] = Keep::Torn(mask(self, last, wal, |k| k == j));
                self.classes.push(FaultClass::F18);
            }
        }
        Some(self.build(&names, &plans))
    }
}

/// A sector mask for pending change `index` of inode `wal`: 1 (new) where `new(k)`, else 0.
fn mask(b: &Builder<'_>, index: usize, wal: InodeId, new: impl Fn(usize) -> bool) -> Vec<u8> {
    let sectors = b
        .state
        .inodes
        .get(&wal)
        .and_then(|inode| inode.pending.get(index))
        .map_or(1, |p| sector_count(p, b.sector));
    (0..sectors).map(|k| u8::from(new(k))).collect()
}

fn sector_count(change: &Pending, sector: usize) -> usize {
    match change {
        Pending::Write { offset, data, .. } => {
            let first = to_usize(*offset) / sector;
            let last = (to_usize(*offset) + data.len()).div_ceil(sector);
            last.max(first + 1) - first
        }
        Pending::SetLen { .. } => 1,
    }
}

/// The WAL's inode and the indexes of its pending writes.
fn wal_writes(state: &FsState) -> Option<(InodeId, Vec<usize>)> {
    let id = state
        .names
        .iter()
        .chain(state.durable_names.iter())
        .find(|(p, _)| p.file_name().is_some_and(|n| n == "wal"))
        .map(|(_, id)| *id)?;
    let inode = state.inodes.get(&id)?;
    let writes: Vec<usize> = (0..inode.pending.len())
        .filter(|&i| matches!(inode.pending[i], Pending::Write { .. }))
        .collect();
    (!writes.is_empty()).then_some((id, writes))
}

/// The torn-tail shapes at a crash point. A write of many sectors gets shapes at its first
/// four, middle and last four sectors only.
fn shapes(state: &FsState, sector: usize) -> Vec<Shape> {
    let Some((wal, writes)) = wal_writes(state) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if writes.len() > 1 {
        out.extend((0..writes.len()).map(Shape::Hole));
    }
    // A gap of one write before the last is a hole.
    out.extend((0..writes.len().saturating_sub(2)).map(Shape::Gap));
    let sectors = state
        .inodes
        .get(&wal)
        .and_then(|inode| writes.last().and_then(|&i| inode.pending.get(i)))
        .map_or(0, |p| sector_count(p, sector));
    let mut chosen: Vec<usize> = (0..sectors)
        .filter(|&k| k < 4 || k + 4 >= sectors || k == sectors / 2)
        .collect();
    chosen.dedup();
    for j in chosen {
        out.extend([
            Shape::SectorPrefix(j),
            Shape::GarbageAt(j),
            Shape::OnlySector(j),
            Shape::WholeButGarbage(j),
        ]);
        if writes.len() > 1 {
            out.push(Shape::AloneOnlySector(j));
        }
    }
    out
}

/// Every byte of every named field of the synced bytes of the WAL, the manifest and the
/// snapshot files, in file and offset order.
fn targets(state: &FsState) -> Vec<Target> {
    let mut out = Vec::new();
    for (path, id) in &state.durable_names {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(inode) = state.inodes.get(id) else {
            continue;
        };
        for field in fields_of(&name, &inode.durable) {
            for offset in field.start..field.start + field.len {
                if inode.origin_of(offset).is_some() {
                    out.push(Target {
                        path: path.clone(),
                        id: *id,
                        offset,
                        field: field.name,
                    });
                }
            }
        }
    }
    out
}
