//! What every check shares: the store directory and options, the bounded-allocation probe,
//! reading a store's whole state, and little-endian reads and a CRC-32 independent of the
//! engine's.

use std::collections::BTreeMap;
use std::sync::Arc;
use walstore::storage::MemoryStorage;
use walstore::{Error, Options, Store};

/// A key/value state, as the reference model and as read back from a store.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// The store directory on the in-memory file system.
pub const DIR: &str = "/db";

/// Runs `f` and fails if it allocated more than `factor * input + slack` bytes at its peak.
pub fn bounded<T>(
    what: &str,
    input: usize,
    factor: usize,
    slack: usize,
    f: impl FnOnce() -> T,
) -> T {
    let (out, peak) = crate::alloc_probe::peak_during(f);
    if let Some(peak) = peak {
        let limit = factor * input + slack;
        assert!(
            peak <= limit,
            "{what}: allocated {peak} bytes at peak for {input} bytes of input (limit {limit})"
        );
    }
    out
}

pub fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// CRC-32/IEEE (FORMAT.md §1), bitwise: independent of the engine's implementation.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Options every check opens with: in memory, no background thread, small files.
pub fn options(mem: &MemoryStorage) -> Options {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
        .wal_preallocate_bytes(4096)
        .segment_size_bytes_target(4096)
}

/// Everything a store shows, checked for internal consistency: the range scan is in strictly
/// increasing key order and agrees with point lookups, the reverse scan returns the same pairs
/// backwards, and a scan turned around halfway returns the keys it had not returned yet, from
/// the end.
pub fn read_state(store: &Store) -> walstore::Result<(u64, State)> {
    let read = store.begin_read()?;
    let mut state = State::new();
    for item in read.range::<&[u8], _>(..)? {
        let (key, value) = item?;
        if let Some((last, _)) = state.last_key_value() {
            assert!(
                *last < key,
                "range scan not in strictly increasing key order"
            );
        }
        state.insert(key, value.to_vec());
    }
    let mut backwards = Vec::with_capacity(state.len());
    for item in read.range::<&[u8], _>(..)?.rev() {
        let (key, value) = item?;
        backwards.push((key, value.to_vec()));
    }
    let forwards: Vec<(Vec<u8>, Vec<u8>)> = state.clone().into_iter().rev().collect();
    assert!(
        backwards == forwards,
        "the reverse scan differs from the scan"
    );
    let half = state.len().div_ceil(2);
    let mut scan = read.range::<&[u8], _>(..)?;
    for _ in 0..half {
        scan.next().transpose()?;
    }
    let turned: Vec<Vec<u8>> = scan
        .rev()
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()?;
    // Like `DoubleEndedIterator::rev`: the keys not returned yet, from the end.
    let expected: Vec<Vec<u8>> = state.keys().skip(half).rev().cloned().collect();
    assert!(
        turned == expected,
        "a scan turned around after {half} keys does not return the rest from the end"
    );
    for (key, value) in &state {
        let got = read.get(key)?.map(|v| v.to_vec());
        assert_eq!(
            got.as_ref(),
            Some(value),
            "point lookup disagrees with the scan"
        );
    }
    Ok((read.txn_id(), state))
}

pub fn must_read(store: &Store, when: &str) -> (u64, State) {
    read_state(store)
        .unwrap_or_else(|e| panic!("{when}: the state of an open store is unreadable: {e}"))
}

/// Errors an open of arbitrary bytes may end with: the bytes are refused, never an I/O error
/// (the in-memory file system has no faults here) or a panic.
pub fn assert_refusal(e: &Error, when: &str) {
    assert!(
        matches!(
            e,
            Error::Corruption { .. } | Error::UnsupportedFormat { .. } | Error::NotAStore { .. }
        ),
        "{when}: open failed with {e:?}, which is not a refusal of damaged files"
    );
}
