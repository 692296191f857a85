//! CRC-32/ISO-HDLC, the checksum of every record, header, page and file of the store
//! (FORMAT.md §1): this module owns which code computes it.
//!
//! `crc32fast` is the fast one (carry-less multiplication: about 58 GB/s on the development
//! machine), but it picks that code by asking the CPU which instructions it has, the first
//! time a process computes a CRC. Rust's feature detection then runs every `cpuid` leaf it
//! knows, and in a virtual machine each `cpuid` traps to the hypervisor: 60-65 µs on the
//! development machine (8.7 µs for one `cpuid`), about 3% of a whole one-shot `get` process,
//! which checksums a few KiB in all. So a process computes its CRCs with `crc`'s slice-by-16
//! table (about 3.4 GB/s, nothing to detect) until it has checksummed [`TABLE_BYTES`], about
//! what the table covers in the time of the detection, and with `crc32fast` from then on:
//! a short process never pays the detection, a long one pays it once and at most about twice
//! what the better choice would have cost (ski rental). Both compute the same function, so
//! nothing on disk depends on which one ran.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The table-driven CRC: 16 KiB of tables, computed at compile time.
static TABLE: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// Bytes a process checksums with the table before it switches to `crc32fast` (about 75 µs
/// of the table's time, the detection's cost).
pub(crate) const TABLE_BYTES: u64 = 256 * 1024;

/// The process's choice.
static CHOICE: Choice = Choice::new(TABLE_BYTES);

/// Which code checksums the next bytes: the table until `limit` bytes went through it, then
/// `crc32fast`.
#[derive(Debug)]
struct Choice {
    limit: u64,
    table_bytes: AtomicU64,
    fast: AtomicBool,
}

impl Choice {
    const fn new(limit: u64) -> Self {
        Choice {
            limit,
            table_bytes: AtomicU64::new(0),
            fast: AtomicBool::new(false),
        }
    }

    /// Whether `len` more bytes go through `crc32fast`; if not, they are counted against the
    /// table's share. Threads racing past the limit each switch: the count only decides when.
    fn fast(&self, len: usize) -> bool {
        if self.fast.load(Ordering::Relaxed) {
            return true;
        }
        let len = len as u64;
        let before = self.table_bytes.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > self.limit {
            self.fast.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// CRC-32/ISO-HDLC of `bytes`.
#[inline]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_with(&CHOICE, bytes)
}

fn crc32_with(choice: &Choice, bytes: &[u8]) -> u32 {
    if choice.fast(bytes.len()) {
        crc32fast::hash(bytes)
    } else {
        TABLE.checksum(bytes)
    }
}

/// A CRC-32/ISO-HDLC computed over several pieces; the same value as [`crc32`] of them
/// joined.
#[derive(Clone)]
pub struct Crc32 {
    state: State,
}

#[derive(Clone)]
enum State {
    Table(crc::Digest<'static, u32, crc::Table<16>>),
    Fast(crc32fast::Hasher),
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self.state {
            State::Table(_) => "table",
            State::Fast(_) => "crc32fast",
        };
        f.debug_struct("Crc32")
            .field("code", &code)
            .field("so_far", &self.clone().finalize())
            .finish()
    }
}

impl Crc32 {
    /// In the code the process computes its CRCs with now (a later update may still switch).
    pub fn new() -> Self {
        Self::new_with(&CHOICE)
    }

    fn new_with(choice: &Choice) -> Self {
        let state = if choice.fast.load(Ordering::Relaxed) {
            State::Fast(crc32fast::Hasher::new())
        } else {
            State::Table(TABLE.digest())
        };
        Crc32 { state }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.update_with(&CHOICE, bytes);
    }

    fn update_with(&mut self, choice: &Choice, bytes: &[u8]) {
        if let State::Table(digest) = &self.state {
            if choice.fast(bytes.len()) {
                // `crc32fast` continues from the CRC of what came before.
                let so_far = digest.clone().finalize();
                self.state = State::Fast(crc32fast::Hasher::new_with_initial(so_far));
            }
        }
        match &mut self.state {
            State::Table(digest) => digest.update(bytes),
            State::Fast(hasher) => hasher.update(bytes),
        }
    }

    pub fn finalize(self) -> u32 {
        match self.state {
            State::Table(digest) => digest.finalize(),
            State::Fast(hasher) => hasher.finalize(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_table_and_crc32fast_compute_the_same_crc() {
        for len in (0..300).chain([4095, 4096, 4097, 65_536, 1 << 20]) {
            let data = bytes(len, len as u32);
            assert_eq!(
                TABLE.checksum(&data),
                crc32fast::hash(&data),
                "length {len}"
            );
        }
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_process_checksums_with_the_table_until_its_limit_then_with_crc32fast() {
        let choice = Choice::new(1000);
        let data = bytes(600, 7);
        assert_eq!(crc32_with(&choice, &data), crc32fast::hash(&data));
        assert!(!choice.fast.load(Ordering::Relaxed), "600 of 1000 bytes");
        assert_eq!(crc32_with(&choice, &data), crc32fast::hash(&data));
        assert!(choice.fast.load(Ordering::Relaxed), "1200 of 1000 bytes");
        assert!(choice.fast(1), "once switched, always");
    }

    #[test]
    fn a_crc_over_pieces_that_switches_code_midway_is_the_crc_of_the_whole() {
        let data = bytes(10_000, 11);
        for limit in [0, 1, 999, 5000, 9999, 20_000] {
            let choice = Choice::new(limit);
            let mut crc = Crc32::new_with(&choice);
            for piece in data.chunks(333) {
                crc.update_with(&choice, piece);
            }
            let switched = matches!(crc.state, State::Fast(_));
            assert_eq!(switched, limit < 10_000, "limit {limit}");
            assert_eq!(crc.finalize(), crc32fast::hash(&data), "limit {limit}");
        }
    }
}
