//! The `index` target: the commit index's words (FORMAT.md §8), checked by
//! `walstore::index::decode` as every reader of the shared memory checks them.

use super::common::le_u64;
use walstore::index::{decode, encode, IndexError, IndexState, INDEX_WORDS};

/// `WSTINDEX`, the index's magic (FORMAT.md §8), and its layout version.
const MAGIC: &[u8; 8] = b"WSTINDEX";
const VERSION: u64 = 1;
/// The WAL header's size (FORMAT.md §3): the smallest log offset of a record.
const WAL_HEADER_BYTES: u64 = 4096;
/// Word numbers (FORMAT.md §8).
const SEQ: usize = 2;
const CHECKSUM: usize = 9;
const DURABLE_LSN: usize = 10;

/// Bit 0 of the input's first byte: store the right magic and version. Bit 1: make the
/// sequence word even. Bit 2: store the right checksum (computed here, independently). They
/// let the fuzzer reach the field checks, which random words almost never do.
const FIX_MAGIC: u8 = 1;
const FIX_SEQ: u8 = 2;
const FIX_CHECKSUM: u8 = 4;

/// The words an input stands for: byte 0 says what to fix up (see [`FIX_MAGIC`]); the rest
/// are the words, little-endian, padded with zeros or cut to [`INDEX_WORDS`].
pub fn words_of(data: &[u8]) -> [u64; INDEX_WORDS] {
    let (fix, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let mut padded = rest[..rest.len().min(8 * INDEX_WORDS)].to_vec();
    padded.resize(8 * INDEX_WORDS, 0);
    let mut words = [0u64; INDEX_WORDS];
    for (i, word) in words.iter_mut().enumerate() {
        *word = le_u64(&padded, 8 * i).unwrap_or(0);
    }
    if fix & FIX_MAGIC != 0 {
        words[0] = u64::from_le_bytes(*MAGIC);
        words[1] = VERSION;
    }
    if fix & FIX_SEQ != 0 {
        words[SEQ] &= !1;
    }
    if fix & FIX_CHECKSUM != 0 {
        words[CHECKSUM] = checksum(&words);
    }
    words
}

/// An input for `words` (none fixed up): the inverse of [`words_of`].
pub fn input_of(words: &[u64; INDEX_WORDS]) -> Vec<u8> {
    let mut out = vec![0u8];
    for word in words {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out
}

/// XXH3-64 of bytes 0-71 (magic through barrier end), as FORMAT.md §8 defines the checksum.
fn checksum(words: &[u64; INDEX_WORDS]) -> u64 {
    let mut bytes = Vec::with_capacity(72);
    for word in &words[..CHECKSUM] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// What FORMAT.md §8 "Reading it" says of `words`, decided here without the engine: the
/// first reason to refuse them, in the order the checks are listed, or `Ok`.
fn verdict(words: &[u64; INDEX_WORDS]) -> Result<(), IndexError> {
    if words[0] != u64::from_le_bytes(*MAGIC) || words[1] != VERSION {
        return Err(IndexError::Foreign);
    }
    if words[SEQ] % 2 == 1 {
        return Err(IndexError::Changing);
    }
    if words[CHECKSUM] != checksum(words) {
        return Err(IndexError::Checksum);
    }
    let [base, written, barrier, visible] =
        [words[5], words[6], words[8], words[11]].map(u128::from);
    let header = u128::from(WAL_HEADER_BYTES);
    let bounds = header <= barrier
        && barrier <= written
        && base + header <= visible
        && visible <= base + written
        // An LSN is a u64: the written end must have one (the engine computes it).
        && base + written <= u128::from(u64::MAX);
    if bounds {
        Ok(())
    } else {
        Err(IndexError::Inconsistent)
    }
}

/// `index` target: the input is the words of the index (see [`words_of`]).
///
/// - `decode` never panics, and accepts exactly the words FORMAT.md §8 says a reader accepts
///   (refusing the others for the first reason listed there);
/// - an accepted state satisfies the documented bounds (`header ≤ barrier ≤ written end`,
///   `base + header ≤ visible LSN ≤ base + written end`), and `encode` with the same sequence
///   number gives back the same words (all but the durable LSN, which `decode` does not read
///   and `encode` leaves 0), which decode to the same state;
/// - flipping any one bit of words 0-9 (those the checksum covers, and the checksum) of an
///   accepted copy makes `decode` refuse it.
pub fn check(data: &[u8]) {
    let words = words_of(data);
    let decoded = decode(&words);
    let expected = verdict(&words);
    assert_eq!(
        decoded.map(|_| ()),
        expected,
        "decode disagrees with FORMAT.md §8 on {words:x?}"
    );
    let Ok(state) = decoded else {
        return;
    };
    check_bounds(&state);
    let again = encode(&state, words[SEQ]);
    for (i, (a, b)) in again.iter().zip(&words).enumerate() {
        assert!(
            i == DURABLE_LSN || a == b,
            "encode(decode(words)) differs in word {i}: {a:#x} != {b:#x}"
        );
    }
    assert_eq!(
        decode(&again),
        Ok(state),
        "the round trip changed the state"
    );
    for i in 0..=CHECKSUM {
        for bit in 0..64 {
            let mut flipped = words;
            flipped[i] ^= 1 << bit;
            assert!(
                decode(&flipped).is_err(),
                "word {i} with bit {bit} flipped is still accepted"
            );
        }
    }
}

fn check_bounds(s: &IndexState) {
    let header = WAL_HEADER_BYTES;
    assert!(
        header <= s.barrier_end && s.barrier_end <= s.written_end,
        "barrier end out of bounds: {s:?}"
    );
    let (base, visible) = (u128::from(s.base_lsn), u128::from(s.visible_lsn));
    assert!(
        base + u128::from(header) <= visible && visible <= base + u128::from(s.written_end),
        "visible LSN out of bounds: {s:?}"
    );
    assert!(
        s.visible_end() >= header && s.visible_end() <= s.written_end,
        "visible end out of bounds: {s:?}"
    );
}
