//! The bloom filter of a snapshot file (FORMAT.md §5.2): which bits a key sets, how the
//! writer fills the filter, and how a reader asks it.

use super::layout::FILTER_BITS_PER_ENTRY;

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
