//! Post-crash images of a crash point, one recipe per fault of the fault model.
//!
//! An image starts from the durable names and bytes and adds a selection of the changes that
//! were not yet durable (each kept, dropped, cut short, torn at sector granularity or filled
//! with garbage), then optionally damages synced bytes. Every recipe is driven by a seed, so
//! `(crash point, variant, seed)` names one image exactly.

mod aimed;
mod bytes;
mod recipes;
#[cfg(test)]
mod tests;

pub use aimed::image_count;

use crate::image::Image;
use crate::simfs::state::FsState;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The faults of the fault model that the harness simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultClass {
    /// All unsynced data lost.
    F1,
    /// A random prefix of each file's unsynced bytes kept.
    F2,
    /// Any subset of unsynced writes kept, across files.
    F3,
    /// Torn sectors (some new, some old).
    F4,
    /// Garbage sectors.
    F5,
    /// Size and data diverge.
    F6,
    /// A new file's directory entry lost.
    F7,
    /// A rename half done: old, new, both or neither name.
    F8,
    /// An unlink or truncation undone.
    F9,
    /// EIO/ENOSPC on a write, `set_len`, create, rename, unlink; short writes.
    F10,
    /// A failed fsync that drops dirty pages.
    F11,
    /// Silent corruption of synced bytes.
    F13,
    /// Process kill: everything written to the OS survives.
    F15,
    /// A crash during recovery.
    F16,
    /// Reordering across files at one crash.
    F18,
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// What the simulated media and file system guarantee beyond the fault model's minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaModel {
    /// Sector size for torn writes (512 or 4096).
    pub sector: usize,
    /// Powersafe overwrite: a torn sector garbles only bytes being written (and bytes past the
    /// durable end of the file), never other durable bytes of that sector. Off, a torn write
    /// may garble earlier synced bytes that share its sector (F5 in full).
    pub powersafe_overwrite: bool,
    /// Name operations of one directory persist in the order they were made (as on ext4 and
    /// XFS, whose journals commit metadata in order), and a rename is atomic. Off, any subset
    /// persists and a rename may leave both names or neither (F7, F8 and F18 in full).
    pub ordered_names: bool,
    /// A failed directory sync shuts the file system down: every later call fails (ext4 and
    /// XFS abort the journal). Off, it is transient: the names stay unsynced and later calls
    /// succeed.
    pub dir_sync_failure_is_fatal: bool,
}

impl Default for MediaModel {
    fn default() -> Self {
        MediaModel {
            sector: 512,
            powersafe_overwrite: true,
            ordered_names: true,
            dir_sync_failure_is_fatal: true,
        }
    }
}

impl MediaModel {
    /// The whole fault model: no powersafe overwrite, names persist in any order.
    pub fn strict(sector: usize) -> Self {
        MediaModel {
            sector,
            powersafe_overwrite: false,
            ordered_names: false,
            dir_sync_failure_is_fatal: false,
        }
    }
}

/// Recipes for post-crash images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Variant {
    /// F1: only durable state.
    DropUnsynced,
    /// F15: the live state (a process kill, no power loss).
    ProcessKill,
    /// F2: a random prefix of each file's unsynced changes, the last one cut at a byte.
    Prefix,
    /// F3 and F18: a random subset of all unsynced changes, across files.
    Subset,
    /// F4: unsynced writes torn at sector granularity, old and new sectors mixed.
    Torn,
    /// F5: torn writes where some sectors hold garbage.
    TornGarbage,
    /// F6: a write that grew a file keeps the size but not the data, or the data but not the
    /// size.
    SizeDivergence,
    /// F7, F8, F9: lost creations, half-done renames, undone unlinks and truncations.
    DirEntries,
    /// F13 on the WAL: a synced byte of the log flipped, zeroed or garbage.
    CorruptWal,
    /// F13 on the manifest or a snapshot file.
    CorruptMeta,
    /// F13 aimed: one bit of one byte of a named header or record field of synced data (WAL
    /// header, record headers, commit records, manifest, snapshot headers).
    CorruptField,
    /// F3, F4, F5 constructed: the WAL's unsynced writes with a hole, or the last one torn
    /// sector by sector (prefix, one garbage sector, one new sector, all but one garbage).
    TornTail,
}

impl Variant {
    /// The recipes that apply to any files (the others aim at walstore's log, manifest and
    /// snapshot files by name): for other engines and for recorded programs.
    pub const GENERIC: [Variant; 8] = [
        Variant::DropUnsynced,
        Variant::ProcessKill,
        Variant::Prefix,
        Variant::Subset,
        Variant::Torn,
        Variant::TornGarbage,
        Variant::SizeDivergence,
        Variant::DirEntries,
    ];

    /// Every recipe, cheapest first.
    pub const ALL: [Variant; 12] = [
        Variant::DropUnsynced,
        Variant::ProcessKill,
        Variant::Prefix,
        Variant::Subset,
        Variant::Torn,
        Variant::TornGarbage,
        Variant::SizeDivergence,
        Variant::DirEntries,
        Variant::CorruptWal,
        Variant::CorruptMeta,
        Variant::CorruptField,
        Variant::TornTail,
    ];

    /// Whether the recipe is a power loss (the process-kill recipe is not).
    pub fn is_power_loss(self) -> bool {
        self != Variant::ProcessKill
    }

    /// Whether the result depends on the seed (otherwise one image per crash point is enough).
    pub fn is_random(self) -> bool {
        !matches!(self, Variant::DropUnsynced | Variant::ProcessKill)
    }

    /// Parses the name printed by `Debug`.
    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| format!("{v:?}") == name)
    }
}

/// Where synced bytes were damaged (fault F13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// The damaged file.
    pub path: String,
    /// The first damaged byte.
    pub offset: u64,
    /// Number of bytes from `offset` through the last damaged byte.
    pub len: u64,
    /// Where the damaged bytes came from: one entry per write whose durable bytes were hit.
    pub origins: Vec<DamagedOrigin>,
    /// What was done (`bit flip`, `zeroed sector`, `garbage sector`).
    pub how: String,
}

/// Damaged bytes that one durable write had put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DamagedOrigin {
    /// First damaged byte of this write.
    pub start: u64,
    /// One past the last damaged byte of this write.
    pub end: u64,
    /// Trace index of the write.
    pub write_op: u64,
    /// Trace index of the sync that had made it durable.
    pub sync_op: u64,
}

/// One post-crash image and how it was made.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The image.
    pub image: Image,
    /// The recipe.
    pub variant: Variant,
    /// The seed of the recipe.
    pub seed: u64,
    /// The faults that actually changed something in this image.
    pub classes: Vec<FaultClass>,
    /// The synced bytes damaged, for F13 recipes.
    pub damage: Option<Damage>,
}

/// What to do with one pending data change.
#[derive(Debug, Clone, PartialEq)]
enum Keep {
    Drop,
    Full,
    /// The first `n` bytes of a write.
    Prefix(usize),
    /// Sector by sector: 0 = old, 1 = new, 2 = garbage.
    Torn(Vec<u8>),
    /// The size change of a growing write, with zeros (false) or garbage (true) as data.
    SizeOnly(bool),
    /// The data of a growing write, cut at the old size.
    DataOnly,
}

/// What to do with one pending name operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKeep {
    Drop,
    Apply,
    /// A rename that left both names.
    Both,
    /// A rename that left neither name.
    Neither,
}

struct Builder<'a> {
    state: &'a FsState,
    rng: StdRng,
    sector: usize,
    media: MediaModel,
    classes: Vec<FaultClass>,
}

/// Makes the image of `variant` with `seed` at a crash point. `None` if the recipe does not
/// apply (nothing to damage for F13).
pub fn generate(
    state: &FsState,
    variant: Variant,
    seed: u64,
    media: &MediaModel,
) -> Option<Generated> {
    let mut b = Builder {
        state,
        rng: StdRng::seed_from_u64(seed ^ (variant as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        sector: media.sector.max(1),
        media: *media,
        classes: Vec::new(),
    };
    let (image, damage) = match variant {
        Variant::DropUnsynced => (b.dropped(), None),
        Variant::ProcessKill => {
            b.classes.push(FaultClass::F15);
            (Image::live_of(state), None)
        }
        Variant::Prefix => (b.prefix(), None),
        Variant::Subset => (b.subset(), None),
        Variant::Torn => (b.torn(false), None),
        Variant::TornGarbage => (b.torn(true), None),
        Variant::SizeDivergence => (b.size_divergence(), None),
        Variant::DirEntries => (b.dir_entries(), None),
        Variant::CorruptWal => {
            let (image, damage) = b.corrupt(|name| name == "wal")?;
            (image, Some(damage))
        }
        Variant::CorruptMeta => {
            let (image, damage) = b.corrupt(|name| {
                name == "MANIFEST" || (name.starts_with("snap-") && name.ends_with(".dat"))
            })?;
            (image, Some(damage))
        }
        Variant::CorruptField => {
            let (image, damage) = b.corrupt_field(seed)?;
            (image, Some(damage))
        }
        Variant::TornTail => (b.torn_tail(seed)?, None),
    };
    if state.has_unsynced() && !b.classes.contains(&FaultClass::F15) {
        b.classes.push(FaultClass::F1);
    }
    b.classes.sort();
    b.classes.dedup();
    Some(Generated {
        image,
        variant,
        seed,
        classes: b.classes,
        damage,
    })
}
