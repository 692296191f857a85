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
/// is bit `(a + j * b) mod bits`.
fn filter_bits(hash: KeyHash, bits: u64, probes: u32) -> impl Iterator<Item = u64> {
    let h = hash.0;
    let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..u64::from(probes)).map(move |j| a.wrapping_add(j.wrapping_mul(b)) % bits)
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
/// first clear bit ends the walk, so only the bytes read are checked.
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
