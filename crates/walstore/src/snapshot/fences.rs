//! A sparse in-memory copy of a snapshot file's index: the key prefix of every
//! [`FENCE_STRIDE`]th index entry ("fences"), built lazily by a long-lived process once the
//! file has served enough searches.
//!
//! Why: the index is 12-byte entries in the mapped file, so each probe of a plain binary
//! search over a large file is a cache miss (and a TLB miss) of its own; a random point read
//! of a 1 M-entry store spent ~40% of its time there. The fences (8 bytes per 64 entries:
//! 33 KiB for a 270 K-entry file) stay in cache; a search of them leaves a window of at most
//! `FENCE_STRIDE - 1` index entries (768 bytes, one or two pages), searched in the file.
//!
//! Why lazily, and only after [`build_after`] searches: building reads every page of the
//! index (and checks each page's CRC, FORMAT.md §5.4). A process that opens a store and reads
//! a key must not pay for that, so nothing is built at open; a file builds its fences once
//! it has served about as many searches as it has fences (each fence read costs about what a
//! search saves), and never if it is small enough that a plain search touches a few pages.
//!
//! Checks: fences are read through the segment's page checks like every other index byte, so
//! a damaged index page found while building means no fences for that file (its searches
//! stay plain and report the damage when they touch the page); a search through the fences
//! still reads its window through the page checks. Nothing here is written to any file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// One fence per this many index entries.
pub(super) const FENCE_STRIDE: usize = 64;

/// Files of fewer entries never build fences: their index is a few pages, and a plain
/// search of it touches only those.
const MIN_ENTRIES: usize = 16 * FENCE_STRIDE;

/// The fewest searches a file serves before it builds its fences.
const MIN_SEARCHES: usize = 4096;

/// Searches a file of `entry_count` entries serves before it builds its fences: about one
/// per fence (one cache line and a share of an index page's CRC each), at least
/// [`MIN_SEARCHES`].
pub(super) fn build_after(entry_count: usize) -> usize {
    (entry_count / FENCE_STRIDE).max(MIN_SEARCHES)
}

/// The fences of one snapshot file, built at most once per process (owned by its
/// [`super::Segment`]); shared by every thread that searches the file.
#[derive(Debug, Default)]
pub(super) struct LazyFences {
    /// Searches served so far (counted only until the fences are built or given up).
    searches: AtomicUsize,
    /// `Some(fences)` once built; `None` when the build met a damaged page (never retried).
    built: OnceLock<Option<Box<[u64]>>>,
}

/// What a search should do about the fences.
pub(super) enum FenceState<'f> {
    /// Search the fences first.
    Ready(&'f [u64]),
    /// This search is the one that builds them (exactly one search does).
    Build,
    /// A plain search.
    Plain,
}

impl LazyFences {
    /// The fences if built; otherwise counts this search and says whether it is the one that
    /// should build them. A file of `entry_count` entries below [`MIN_ENTRIES`] is never
    /// counted.
    #[inline]
    pub(super) fn state(&self, entry_count: usize) -> FenceState<'_> {
        match self.built.get() {
            Some(Some(fences)) => FenceState::Ready(fences),
            Some(None) => FenceState::Plain,
            None if entry_count < MIN_ENTRIES => FenceState::Plain,
            None => {
                let served = self.searches.fetch_add(1, Ordering::Relaxed) + 1;
                if served == build_after(entry_count) {
                    FenceState::Build
                } else {
                    FenceState::Plain
                }
            }
        }
    }

    /// The fences if built (counts no search).
    #[inline]
    pub(super) fn ready(&self) -> Option<&[u64]> {
        self.built.get().and_then(|f| f.as_deref())
    }

    /// Builds the fences of a file of `entry_count` entries from `prefix(i)`, the checked key
    /// prefix of index entry `i` (`Err`: a damaged page, and no fences for this file). Called
    /// by the one search [`LazyFences::state`] chose (or a test), so it builds once.
    #[cold]
    #[inline(never)]
    pub(super) fn build<E>(
        &self,
        entry_count: usize,
        prefix: impl Fn(usize) -> Result<u64, E>,
    ) -> Option<&[u64]> {
        let fences: Result<Box<[u64]>, E> =
            (0..entry_count).step_by(FENCE_STRIDE).map(prefix).collect();
        // Another builder can only be a test's; the first one's fences stay.
        let _ = self.built.set(fences.ok());
        self.ready()
    }

    /// Whether the fences were built (for tests).
    #[cfg(test)]
    pub(super) fn is_built(&self) -> bool {
        matches!(self.built.get(), Some(Some(_)))
    }

    /// Installs `fences` as this file's (a test: fences built from an intact copy of a file
    /// whose page is damaged, as if the damage came after the build).
    #[cfg(test)]
    pub(super) fn install(&self, fences: &[u64]) {
        assert!(
            self.built.set(Some(fences.into())).is_ok(),
            "fences already built"
        );
    }
}

/// The index entries `[lo, hi)` of a file of `entry_count` entries (with fences `fences`)
/// that can hold the first entry whose key prefix is `>= target` or `> target`: every entry
/// before `lo` has a smaller prefix, every entry from `hi` on a larger one, so the answer is
/// in `lo..=hi`. The window spans fewer than [`FENCE_STRIDE`] entries unless a fence
/// equals `target` (then the entries on both sides of it, more when many keys share those
/// 8 bytes).
///
/// Also where in it the answer probably is: interpolated between the two fences
/// that bound the window, when both do and neither equals `target` (`None` otherwise). Keys
/// spread evenly between two fences put the answer within a few entries of the guess; keys
/// that do not (a guess that misses) cost a second read of the window, not a wrong answer.
#[inline]
pub(super) fn window_and_guess(
    fences: &[u64],
    target: u64,
    entry_count: usize,
) -> (usize, usize, Option<usize>) {
    // Fences below the target: the entry of each, and everything before it, is below.
    let below = fences.partition_point(|&f| f < target);
    // Fences up to the target: the first one above it bounds the window. Usually the
    // first fence not below is above (no second search).
    let up_to = match fences.get(below) {
        Some(&f) if f == target => below + fences[below..].partition_point(|&f| f <= target),
        _ => below,
    };
    let lo = match below {
        0 => 0,
        n => (n - 1) * FENCE_STRIDE + 1,
    };
    let hi = if up_to == fences.len() {
        entry_count
    } else {
        up_to * FENCE_STRIDE
    };
    // Entry `lo - 1` holds fence `below - 1`, entry `hi` fence `below` (when no fence equals
    // the target, `up_to == below`).
    let guess = match (below.checked_sub(1).map(|b| fences[b]), fences.get(up_to)) {
        (Some(low), Some(&high)) if up_to == below && low < target && target < high => {
            let span = (hi + 1 - lo) as u128;
            let into = u128::from(target - low) * span / u128::from(high - low);
            Some(lo - 1 + into as usize)
        }
        _ => None,
    };
    (lo, hi, guess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_bound_the_answer() {
        // Prefixes 0, 2, 4, ... for 1000 entries; fences every 64th.
        let prefixes: Vec<u64> = (0..1000u64).map(|i| i * 2).collect();
        let fences: Vec<u64> = prefixes.iter().step_by(FENCE_STRIDE).copied().collect();
        for target in 0..2010u64 {
            let (lo, hi, guess) = window_and_guess(&fences, target, prefixes.len());
            let answer = prefixes.partition_point(|&p| p < target);
            assert!(
                lo <= answer && answer <= hi,
                "{target}: {lo}..{hi} {answer}"
            );
            // Evenly spread prefixes: the guess is the answer or next to it; none where a
            // fence equals the target or no fence bounds the window on one side.
            match guess {
                Some(g) => assert!(g.abs_diff(answer) <= 1, "{target}: {g} {answer}"),
                None => assert!(
                    fences.contains(&target) || lo == 0 || hi == prefixes.len(),
                    "{target}: no guess in {lo}..{hi}"
                ),
            }
            // A fence equal to the target leaves the window open on both of its sides.
            let most = if fences.contains(&target) { 2 } else { 1 } * FENCE_STRIDE;
            assert!(hi - lo < most, "{target}: {lo}..{hi}");
        }
    }

    #[test]
    fn only_the_chosen_search_builds() {
        let lazy = LazyFences::default();
        let n = 100 * FENCE_STRIDE;
        assert!(matches!(lazy.state(MIN_ENTRIES - 1), FenceState::Plain));
        let builds = (0..2 * build_after(n))
            .filter(|_| matches!(lazy.state(n), FenceState::Build))
            .count();
        assert_eq!(builds, 1);
        let fences = lazy.build(n, |i| Ok::<u64, ()>(i as u64)).expect("built");
        assert_eq!(fences.len(), 100);
        assert_eq!(fences[1], FENCE_STRIDE as u64);
        assert!(matches!(lazy.state(n), FenceState::Ready(_)));
        let failed = LazyFences::default();
        assert!(failed.build(n, |_| Err::<u64, ()>(())).is_none());
        assert!(matches!(failed.state(n), FenceState::Plain));
    }
}
