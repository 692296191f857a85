//! The bloom filter of a snapshot file (FORMAT.md §5.2): which bits a key sets, how the
//! writer fills the filter, and how a reader asks it.

use super::layout::FILTER_BITS_PER_ENTRY;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A key's filter hash (XXH3-64 of the key, FORMAT.md §5.2): computed once per point
/// lookup and asked of every file's filter, which all hash the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

impl KeyHash {
    /// The hash of `key`.
    #[inline]
    pub fn of(key: &[u8]) -> KeyHash {
        KeyHash(xxhash_rust::xxh3::xxh3_64(key))
    }
}

/// The bit positions a key of hash `hash` sets in a filter of `bits` bits with `probes`
/// probes (FORMAT.md §5.2): the hash split into two 32-bit halves `a` and `b | 1`; probe `j`
/// is bit `(a + j * b) mod bits`. `a + j * b` stays below 2^64 for every `j` below 2^32,
/// so the positions are also `a mod bits` stepped by `b mod bits`, wrapping at `bits`: two
/// divisions per key instead of one per probe.
fn filter_bits(hash: KeyHash, bits: u64, probes: u32) -> impl Iterator<Item = u64> {
    let h = hash.0;
    let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
    let step = b % bits;
    let mut bit = a % bits;
    (0..probes).map(move |_| {
        let this = bit;
        // Both below `bits`, so one subtraction wraps the sum.
        bit += step;
        if bit >= bits {
            bit -= bits;
        }
        this
    })
}

/// The filter of `count` keys (`key(i)` for `i` in `0..count`, `count > 0`) with `probes`
/// probes: `FILTER_BITS_PER_ENTRY` bits per key, at least 8 bytes.
pub(super) fn build_filter<'k>(
    count: usize,
    probes: u32,
    key: impl Fn(usize) -> &'k [u8],
) -> Vec<u8> {
    let bytes = (count * FILTER_BITS_PER_ENTRY).div_ceil(8).max(8);
    let mut filter = vec![0u8; bytes];
    for i in 0..count {
        for bit in filter_bits(KeyHash::of(key(i)), bytes as u64 * 8, probes) {
            filter[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    filter
}

/// Whether every bit a key of hash `hash` sets in `filter` (built with `probes` probes) is
/// set: false means the key was certainly not added. `check` is called with the offset in
/// `filter` of each byte before it is read (the reader checks its page, FORMAT.md §5.4); the
/// first clear bit ends the walk, so only the bytes read are checked. (Reading every probe's
/// byte without the early exit, so that the loads go together, measured slower: a negative
/// answer then loads 7 cache lines instead of about 2.)
#[inline]
pub(super) fn filter_holds<E>(
    filter: &[u8],
    probes: u32,
    hash: KeyHash,
    mut check: impl FnMut(usize) -> Result<(), E>,
) -> Result<bool, E> {
    let bits = filter.len() as u64 * 8;
    for bit in filter_bits(hash, bits, probes) {
        let byte = (bit / 8) as usize;
        check(byte)?;
        if filter[byte] & (1 << (bit % 8)) == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One lookup in this many, on average, asks a file's filter and learns from its answer,
/// whatever the file has decided (drawn at random per thread: a count would sample the same
/// files over and over when every read asks the same number of files, a divisor of it).
pub(super) const SAMPLE_EVERY: u32 = 64;

/// Sampled answers a file weighs before it decides again.
pub(super) const WINDOW: u32 = 256;

/// A filter that rules out fewer than one sampled lookup in this many is not asked.
const PAYS_FROM: u32 = 16;

/// Whether asking one file's filter pays, learned from a sample of its point lookups.
///
/// A filter saves a search when it answers "certainly not", and costs the cache lines of its
/// probes on every lookup (all of them when the answer is "maybe"). Asked for keys the file
/// holds, which is what the oldest run of a store mostly is asked for, it saves nothing:
/// reads of keys that run holds spent about a tenth of their time on it (docs/BENCHMARKS.md,
/// stop 34). So a file skips its filter while fewer than one in [`PAYS_FROM`] of its sampled
/// lookups were ruled out by it; one lookup in [`SAMPLE_EVERY`] (drawn at random) still
/// asks, so the decision follows the workload back when misses come. The caller decides only
/// for files whose searches are cheap without the filter (files with fences); a skipped
/// filter changes no answer, since a filter never rules out a key the file holds.
///
/// The counts are approximate (threads race on them, harmlessly): they only choose a path.
#[derive(Debug, Default)]
pub(super) struct FilterUse {
    /// Sampled lookups since the last decision.
    asked: AtomicU32,
    /// Of those, the ones the filter ruled out.
    ruled_out: AtomicU32,
    /// The last decision: skip the filter.
    skip: AtomicBool,
}

/// What one lookup does with a file's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FilterPlan {
    /// Ask it; `learn`: report its answer ([`FilterUse::learn`]).
    Ask { learn: bool },
    /// Search the file without asking it.
    Skip,
}

thread_local! {
    /// This thread's draws for the sample (xorshift64; any nonzero start).
    static DRAWS: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// Whether this lookup is one of the sample: true one time in [`SAMPLE_EVERY`], at random.
#[inline]
fn sampled() -> bool {
    let x = DRAWS.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    });
    x >> (64 - SAMPLE_EVERY.trailing_zeros()) == 0
}

const _: () = assert!(SAMPLE_EVERY.is_power_of_two());

impl FilterUse {
    /// What this lookup does with the filter.
    #[inline]
    pub(super) fn plan(&self) -> FilterPlan {
        if sampled() {
            FilterPlan::Ask { learn: true }
        } else if self.skip.load(Ordering::Relaxed) {
            FilterPlan::Skip
        } else {
            FilterPlan::Ask { learn: false }
        }
    }

    /// Counts a sampled answer (`ruled_out`: the filter said "certainly not"); every
    /// [`WINDOW`] answers, decides again.
    pub(super) fn learn(&self, ruled_out: bool) {
        if ruled_out {
            self.ruled_out.fetch_add(1, Ordering::Relaxed);
        }
        let asked = self.asked.fetch_add(1, Ordering::Relaxed) + 1;
        if asked >= WINDOW {
            self.asked.store(0, Ordering::Relaxed);
            let ruled_out = self.ruled_out.swap(0, Ordering::Relaxed);
            self.skip
                .store(ruled_out * PAYS_FROM < asked, Ordering::Relaxed);
        }
    }

    /// Whether the file skips its filter now (for tests).
    #[cfg(test)]
    pub(super) fn skips(&self) -> bool {
        self.skip.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md §5.2's definition, one division per probe.
    fn spec_bits(hash: KeyHash, bits: u64, probes: u32) -> Vec<u64> {
        let h = hash.0;
        let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
        (0..u64::from(probes))
            .map(|j| a.wrapping_add(j.wrapping_mul(b)) % bits)
            .collect()
    }

    #[test]
    fn probe_positions_are_the_formats() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let hash = KeyHash(x ^ (x >> 29));
            // Filters of 8 bytes up to large ones, and sizes near and above 2^32 bits.
            let bits = match i % 4 {
                0 => 64,
                1 => 8 * (1 + (x >> 40) % 100_000),
                2 => 1 << 32,
                _ => (1 << 33) + 8 * (x >> 50),
            };
            let probes = 1 + (i % 30) as u32;
            let ours: Vec<u64> = filter_bits(hash, bits, probes).collect();
            assert_eq!(
                ours,
                spec_bits(hash, bits, probes),
                "hash {x:x} bits {bits}"
            );
        }
    }

    /// A filter that rules out almost nothing is skipped after a window of answers, and asked
    /// again once it rules out one lookup in `PAYS_FROM` or more.
    #[test]
    fn a_filter_is_skipped_while_it_rules_out_almost_nothing() {
        let use_ = FilterUse::default();
        assert!(!use_.skips(), "a new file asks its filter");
        // One ruled out per 20: below one in 16.
        for i in 0..WINDOW {
            use_.learn(i % 20 == 0);
        }
        assert!(use_.skips());
        // One ruled out per 16: pays again.
        for i in 0..WINDOW {
            use_.learn(i % PAYS_FROM == 0);
        }
        assert!(!use_.skips());
        for _ in 0..WINDOW - 1 {
            use_.learn(false);
        }
        assert!(!use_.skips(), "nothing is decided before a window is full");
        use_.learn(false);
        assert!(use_.skips());
    }

    /// About one lookup in `SAMPLE_EVERY` asks and learns, also while the file skips its
    /// filter, and files asked in turn are each sampled (a count would sample only one of two
    /// files asked alternately).
    #[test]
    fn a_skipping_file_still_samples_its_filter() {
        let files = [FilterUse::default(), FilterUse::default()];
        for use_ in &files {
            for _ in 0..WINDOW {
                use_.learn(false);
            }
            assert!(use_.skips());
        }
        let each = 100 * SAMPLE_EVERY;
        let mut learning = [0; 2];
        let mut skipped = 0;
        for _ in 0..each {
            for (i, use_) in files.iter().enumerate() {
                match use_.plan() {
                    FilterPlan::Ask { learn: true } => learning[i] += 1,
                    FilterPlan::Skip => skipped += 1,
                    FilterPlan::Ask { learn: false } => panic!("a skipping file asked"),
                }
            }
        }
        for n in learning {
            assert!((50..=200).contains(&n), "{learning:?} of {each} each");
        }
        assert_eq!(skipped + learning[0] + learning[1], 2 * each);
    }

    #[test]
    fn added_keys_hold_and_most_others_do_not() {
        let keys: Vec<Vec<u8>> = (0..5000u32).map(|i| format!("k{i}").into_bytes()).collect();
        let filter = build_filter(keys.len(), 7, |i| &keys[i]);
        let holds = |k: &[u8]| {
            filter_holds(&filter, 7, KeyHash::of(k), |_| Ok::<(), ()>(())).expect("no check")
        };
        assert!(keys.iter().all(|k| holds(k)));
        let false_positives = (0..5000u32)
            .filter(|i| holds(format!("other{i}").as_bytes()))
            .count();
        assert!(false_positives < 150, "{false_positives} of 5000");
    }
}
