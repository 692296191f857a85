//! The log index's point-read table (FORMAT.md §9): open addressing over the keys' hashes,
//! each slot the offset of a key's newest entry and the upper half of its key's hash, so a
//! point read costs a probe or two and a short walk back through the key's older versions
//! instead of a descent of the skip list. A slot whose hash half differs is passed over
//! without reading its entry: a key the log does not hold (half of a random read right after
//! a load) costs its probes' cache lines, not an entry node (a cache miss) per occupied slot.
//! Kept at most half full; when it would pass that, the writer builds a table twice as large
//! from the list and the recent chain and publishes it in the header (the old one stays
//! valid and is never written again). A key's older versions are reached through each
//! entry's `older`, wherever the entries lie (list or recent chain).

use super::layout::{entry, header_word, load_next, next_slot, word, Entry, AT_TABLE};
use super::{Budget, Damaged, LogIndex};
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots of the first table.
const FIRST_SLOTS: usize = 1 << 12;
/// Bytes before the slots: the slot count (`u32`) and padding.
const TABLE_FIXED: usize = 8;
/// Bytes of a slot: the entry's offset (low 32 bits) and the key's hash's upper 32 bits.
const SLOT_BYTES: usize = 8;

/// A key's place in the table: its first slot (of `mask + 1`) and the hash half its slots
/// carry.
#[derive(Clone, Copy)]
struct Hashed {
    start: usize,
    tag: u64,
}

impl Hashed {
    fn of(key: &[u8], mask: usize) -> Hashed {
        let h = xxhash_rust::xxh3::xxh3_64(key);
        Hashed {
            start: h as usize & mask,
            tag: h >> 32,
        }
    }

    /// The slot word naming `node` for this key.
    fn word(self, node: usize) -> u64 {
        (self.tag << 32) | node as u64
    }

    /// The node a slot word names, if it names one of a key with this hash half (0: an empty
    /// slot; `None`: another key's).
    fn node_in(self, word: u64) -> Option<usize> {
        (word == 0 || word >> 32 == self.tag).then_some((word & 0xFFFF_FFFF) as usize)
    }
}

/// The table's offset and slot count, if there is one.
fn current(index: &LogIndex) -> Option<(usize, usize)> {
    let at = word(index.bytes(), AT_TABLE) as usize;
    if at == 0 {
        return None;
    }
    let slots = index.bytes().u32_at(at)?.load(Ordering::Acquire) as usize;
    let whole = slots.is_power_of_two()
        && slots >= FIRST_SLOTS
        && index.bytes().holds(at + TABLE_FIXED + SLOT_BYTES * slots);
    whole.then_some((at, slots))
}

/// The slot `i` of the table at `at`.
fn slot(index: &LogIndex, at: usize, i: usize) -> Option<&AtomicU64> {
    index.bytes().u64_at(at + TABLE_FIXED + SLOT_BYTES * i)
}

/// A slot of the table, the hash it was found by, and the node it names with its entry
/// (`None`: an empty slot).
type Found<'i> = (&'i AtomicU64, Hashed, Option<(usize, Entry<'i>)>);

/// The first slot on `key`'s probe path of the table at `at` that is empty or names an entry
/// of `key`, with `key`'s hash and the node the slot names and its entry (`None`: an empty
/// slot). Another key's slot is passed over by its hash half, or, when the halves match, by
/// its entry's key.
fn find<'i>(
    index: &'i LogIndex,
    at: usize,
    slots: usize,
    key: &[u8],
) -> Result<Found<'i>, Damaged> {
    let mask = slots - 1;
    let hashed = Hashed::of(key, mask);
    for i in 0..slots {
        let cell = slot(index, at, (hashed.start + i) & mask).ok_or(Damaged)?;
        let Some(node) = hashed.node_in(cell.load(Ordering::Acquire)) else {
            continue;
        };
        if node == 0 {
            return Ok((cell, hashed, None));
        }
        let e = entry(index.bytes(), node).ok_or(Damaged)?;
        if e.key == key {
            return Ok((cell, hashed, Some((node, e))));
        }
    }
    Err(Damaged)
}

/// The newest version of `key` visible at `limit`, through the table; `None` in the outer
/// option when there is no table (the caller walks the list instead).
pub(super) fn lookup<'i>(
    index: &'i LogIndex,
    key: &[u8],
    limit: u64,
) -> Option<Result<Option<Entry<'i>>, Damaged>> {
    let (at, slots) = current(index)?;
    Some(
        find(index, at, slots, key).and_then(|(_, _, newest)| match newest {
            None => Ok(None),
            Some((_, e)) => visible_version(index, e, key, limit),
        }),
    )
}

/// Whether the index has a table (the writer's side: a recent entry needs one).
pub(super) fn exists(index: &LogIndex) -> bool {
    current(index).is_some()
}

/// The entry the table holds for `key` (its newest), if there is a table and it holds one.
pub(super) fn newest(index: &LogIndex, key: &[u8]) -> Result<Option<usize>, Damaged> {
    match current(index) {
        Some((at, slots)) => probe(index, at, slots, key),
        None => Ok(None),
    }
}

/// The node the table holds for `key` (its newest entry), if any.
fn probe(index: &LogIndex, at: usize, slots: usize, key: &[u8]) -> Result<Option<usize>, Damaged> {
    let (_, _, newest) = find(index, at, slots, key)?;
    Ok(newest.map(|(node, _)| node))
}

/// From `key`'s newest entry `newest` (whose key the table's probe compared), back through
/// its older versions (each entry's `older`) to the first one stamped up to `limit`.
fn visible_version<'i>(
    index: &'i LogIndex,
    newest: Entry<'i>,
    key: &[u8],
    limit: u64,
) -> Result<Option<Entry<'i>>, Damaged> {
    let mut steps = Budget::of(index);
    let mut e = newest;
    loop {
        if e.stamp <= limit {
            return Ok(Some(e));
        }
        steps.take()?;
        if e.older == 0 {
            return Ok(None);
        }
        e = entry(index.bytes(), e.older).ok_or(Damaged)?;
        if e.key != key {
            return Ok(None);
        }
    }
}

/// Points `key`'s slot at `node`, its newest entry (just linked): the writer's side. Grows
/// the table first when it would pass half full. `Err` when there is no room.
pub(super) fn note(index: &LogIndex, key: &[u8], node: usize) -> Result<(), Damaged> {
    let entries = word(index.bytes(), super::layout::AT_ENTRIES) as usize;
    let (at, slots) = match current(index) {
        Some((at, slots)) if entries * 2 <= slots => (at, slots),
        other => return rebuild(index, other.map_or(FIRST_SLOTS, |(_, s)| s * 2)),
    };
    put(index, at, slots, key, node)
}

/// Stores `node` in `key`'s slot of the table at `at`.
fn put(index: &LogIndex, at: usize, slots: usize, key: &[u8], node: usize) -> Result<(), Damaged> {
    let (cell, hashed, _) = find(index, at, slots, key)?;
    cell.store(hashed.word(node), Ordering::Release);
    Ok(())
}

/// Stores `node` (entry `e`) in its key's slot of the table at `at`, unless the slot holds a
/// newer version of the key.
fn put_if_newer(
    index: &LogIndex,
    at: usize,
    slots: usize,
    e: Entry<'_>,
    node: usize,
) -> Result<(), Damaged> {
    let (cell, hashed, held) = find(index, at, slots, e.key)?;
    if held.is_none_or(|(_, held)| held.stamp <= e.stamp) {
        cell.store(hashed.word(node), Ordering::Release);
    }
    Ok(())
}

/// Builds a table of at least `slots` slots (more if the list needs it) from the list, each
/// key's first entry (its newest), and publishes it.
pub(super) fn rebuild(index: &LogIndex, slots: usize) -> Result<(), Damaged> {
    let entries = word(index.bytes(), super::layout::AT_ENTRIES) as usize;
    let slots = slots
        .max(FIRST_SLOTS)
        .max((2 * entries + 2).next_power_of_two());
    let at = index
        .alloc(TABLE_FIXED + SLOT_BYTES * slots)
        .ok_or(Damaged)?;
    index
        .bytes()
        .u32_at(at)
        .ok_or(Damaged)?
        .store(slots as u32, Ordering::Relaxed);
    let mut steps = Budget::of(index);
    let mut prev_key: Option<&[u8]> = None;
    let mut node = load_next(next_slot(index.bytes(), 0, 0));
    while node != 0 {
        steps.take()?;
        let e = entry(index.bytes(), node).ok_or(Damaged)?;
        if prev_key != Some(e.key) {
            put(index, at, slots, e.key, node)?;
            prev_key = Some(e.key);
        }
        node = load_next(next_slot(index.bytes(), node, 0));
    }
    // Then the recent chain's entries not merged into the list, oldest first: each replaces
    // an older version of its key.
    for (node, e) in index.unmerged()?.into_iter().rev() {
        put_if_newer(index, at, slots, e, node)?;
    }
    header_word(index.bytes(), AT_TABLE)
        .ok_or(Damaged)?
        .store(at as u64, Ordering::Release);
    Ok(())
}
