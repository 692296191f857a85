//! Constants shared by every on-disk structure, and bounds-checked little-endian helpers.
//! The normative description of every byte is `docs/FORMAT.md`; section numbers are cited.

/// Format version written into every file (FORMAT.md §1). A file with another version is
/// refused with [`crate::Error::UnsupportedFormat`].
pub const FORMAT_VERSION: u32 = 2;

/// Checksum algorithm id recorded in every file header: 1 = CRC-32/IEEE, also named
/// CRC-32/ISO-HDLC (polynomial 0x04C11DB7, reflected, init and xorout 0xFFFFFFFF; computed by
/// `checksum.rs`). FORMAT.md §1.
pub const CHECKSUM_CRC32_IEEE: u32 = 1;

/// Every file starts with this preamble (FORMAT.md §1, §3, §5, §6): an 8-byte magic, the
/// format version, the checksum algorithm. The header's own CRC follows its other fields; where
/// it sits is each file's business, so [`check_preamble`] takes its offset.
pub const PREAMBLE_MAGIC_AT: usize = 0;
/// Offset of the format version.
pub const PREAMBLE_VERSION_AT: usize = 8;
/// Offset of the checksum algorithm id.
pub const PREAMBLE_ALGORITHM_AT: usize = 12;
/// Bytes of the preamble; each file's own header fields start here.
pub const PREAMBLE_BYTES: usize = 16;
const _: () = assert!(PREAMBLE_VERSION_AT == PREAMBLE_MAGIC_AT + 8);
const _: () = assert!(PREAMBLE_ALGORITHM_AT == PREAMBLE_VERSION_AT + 4);
const _: () = assert!(PREAMBLE_BYTES == PREAMBLE_ALGORITHM_AT + 4);

/// Why a file's preamble (or the header CRC that covers it) did not check out, in the order
/// [`check_preamble`] tests: a wrong version is named before any checksum (FORMAT.md §1), so a
/// newer layout is reported as unsupported, never as corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreambleError {
    /// The header is shorter than its checksum field's end.
    Short,
    /// The magic is not the one of this kind of file.
    BadMagic,
    /// Written by another format version (the version found).
    Version(u32),
    /// The header's CRC does not match the bytes before it.
    Checksum,
    /// Unknown checksum algorithm (the id found).
    Algorithm(u32),
}

/// Checks the preamble of a file header: `magic`, [`FORMAT_VERSION`], the header CRC stored at
/// `checksum_at` over `header[..checksum_at]`, and [`CHECKSUM_CRC32_IEEE`], in that order.
pub fn check_preamble(
    header: &[u8],
    magic: &[u8; 8],
    checksum_at: usize,
) -> Result<(), PreambleError> {
    check_preamble_of(header, magic, checksum_at, FORMAT_VERSION..=FORMAT_VERSION).map(|_| ())
}

/// [`check_preamble`] for a file kind that has several versions: accepts any of `versions`
/// and returns the one found.
pub fn check_preamble_of(
    header: &[u8],
    magic: &[u8; 8],
    checksum_at: usize,
    versions: std::ops::RangeInclusive<u32>,
) -> Result<u32, PreambleError> {
    let stored = read_u32(header, checksum_at).ok_or(PreambleError::Short)?;
    if header.get(PREAMBLE_MAGIC_AT..PREAMBLE_MAGIC_AT + 8) != Some(&magic[..]) {
        return Err(PreambleError::BadMagic);
    }
    let version = read_u32(header, PREAMBLE_VERSION_AT).ok_or(PreambleError::Short)?;
    if !versions.contains(&version) {
        return Err(PreambleError::Version(version));
    }
    if crc32(&header[..checksum_at]) != stored {
        return Err(PreambleError::Checksum);
    }
    match read_u32(header, PREAMBLE_ALGORITHM_AT) {
        Some(CHECKSUM_CRC32_IEEE) => Ok(version),
        found => Err(PreambleError::Algorithm(found.unwrap_or(0))),
    }
}

/// The preamble of a file with `magic`: magic, [`FORMAT_VERSION`], [`CHECKSUM_CRC32_IEEE`].
pub fn preamble(magic: &[u8; 8]) -> [u8; PREAMBLE_BYTES] {
    preamble_of(magic, FORMAT_VERSION)
}

/// The preamble of a file with `magic` at format version `version`.
pub fn preamble_of(magic: &[u8; 8], version: u32) -> [u8; PREAMBLE_BYTES] {
    let mut out = [0u8; PREAMBLE_BYTES];
    out[PREAMBLE_MAGIC_AT..PREAMBLE_VERSION_AT].copy_from_slice(magic);
    out[PREAMBLE_VERSION_AT..PREAMBLE_ALGORITHM_AT].copy_from_slice(&version.to_le_bytes());
    out[PREAMBLE_ALGORITHM_AT..PREAMBLE_BYTES].copy_from_slice(&CHECKSUM_CRC32_IEEE.to_le_bytes());
    out
}

/// Stores the CRC of `header[..checksum_at]` at `checksum_at` (the header's own checksum).
pub fn seal_header(header: &mut [u8], checksum_at: usize) {
    let crc = crc32(&header[..checksum_at]);
    header[checksum_at..checksum_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// File names inside a store directory (FORMAT.md §2).
pub const MANIFEST_NAME: &str = "MANIFEST";
pub const MANIFEST_TMP_NAME: &str = "MANIFEST.tmp";
pub const WAL_NAME: &str = "wal";
pub const LOCK_NAME: &str = "LOCK";
/// Locked by the one handle that merges runs (FORMAT.md §2).
pub const MERGE_LOCK_NAME: &str = "MERGE";
/// The commit index's shared-memory file (FORMAT.md §8): never durable state.
pub const INDEX_NAME: &str = "SHM";
/// The log index's shared file (FORMAT.md §9): never durable state.
pub const LOG_INDEX_NAME: &str = "LOGINDEX";
/// The change feed's state (FORMAT.md §10).
pub const FEED_NAME: &str = "FEED";
/// Its temporary while it is replaced.
pub const FEED_TMP_NAME: &str = "FEED.tmp";
/// The lock file that serializes appliers of a replica.
pub const APPLY_LOCK_NAME: &str = "APPLY";
pub const SNAPSHOT_PREFIX: &str = "snap-";
pub const SNAPSHOT_SUFFIX: &str = ".dat";
pub const SNAPSHOT_TMP_SUFFIX: &str = ".tmp";

/// Name of snapshot file `id`.
pub fn snapshot_name(id: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{id:016x}{SNAPSHOT_SUFFIX}")
}

/// Name of the temporary file a snapshot file is written under.
pub fn snapshot_tmp_name(id: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{id:016x}{SNAPSHOT_TMP_SUFFIX}")
}

/// Parses a snapshot (or snapshot temp) file name into its id.
pub fn parse_snapshot_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(SNAPSHOT_PREFIX)?;
    let (hex, tmp) = if let Some(hex) = rest.strip_suffix(SNAPSHOT_SUFFIX) {
        (hex, false)
    } else {
        (rest.strip_suffix(SNAPSHOT_TMP_SUFFIX)?, true)
    };
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|id| (id, tmp))
}

/// Whether `name` is a file a store creates.
pub fn is_store_file(name: &str) -> bool {
    matches!(
        name,
        MANIFEST_NAME
            | MANIFEST_TMP_NAME
            | WAL_NAME
            | LOCK_NAME
            | MERGE_LOCK_NAME
            | INDEX_NAME
            | LOG_INDEX_NAME
            | FEED_NAME
            | FEED_TMP_NAME
            | APPLY_LOCK_NAME
    ) || parse_snapshot_name(name).is_some()
        || parse_segment_name(name).is_some()
}

/// The name of generation `generation`'s sealed segment.
pub fn segment_name(generation: u64) -> String {
    format!("log-{generation:016x}.seg")
}

/// The name of its temporary while it is written.
pub fn segment_tmp_name(generation: u64) -> String {
    format!("log-{generation:016x}.seg.tmp")
}

/// The generation a sealed segment's file name (or its temporary's) names, and whether it
/// is the temporary.
pub fn parse_segment_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("log-")?;
    let (hex, tmp) = match rest.strip_suffix(".seg.tmp") {
        Some(hex) => (hex, true),
        None => (rest.strip_suffix(".seg")?, false),
    };
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|g| (g, tmp))
}

/// CRC-32/IEEE of `bytes` (`checksum.rs` owns which code computes it).
pub use crate::checksum::crc32;

/// A cursor over untrusted bytes: every read is bounds-checked and returns `None` past the end.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}

/// Reads a little-endian u32 at `at`, if in bounds.
#[inline]
pub fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a little-endian u64 at `at`, if in bounds.
#[inline]
pub fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// A fresh random 64-bit value for generation salts (never zero), from the operating
/// system's random source.
pub fn random_u64() -> u64 {
    match getrandom::u64() {
        Ok(value) => value | 1,
        // The OS source fails only where it does not exist or is not yet seeded (early boot
        // of some systems): fall back to a hash of the time and the process id, which is
        // still distinct per generation in practice. A salt needs to differ from the
        // previous generation's, not to be secret.
        Err(_) => time_and_pid_mix(),
    }
}

/// The fallback of [`random_u64`]: a hash (seeded per process) of the time and the pid.
fn time_and_pid_mix() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::time::{SystemTime, UNIX_EPOCH};
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_are_non_zero_and_differ() {
        let salts: Vec<u64> = (0..64).map(|_| random_u64()).collect();
        assert!(salts.iter().all(|s| *s != 0));
        let mut unique = salts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), salts.len());
        assert_ne!(time_and_pid_mix(), 0);
    }

    #[test]
    fn preamble_errors_come_in_order() {
        const MAGIC: [u8; 8] = *b"WSTORTST";
        let mut header = [0u8; 24];
        header[..PREAMBLE_BYTES].copy_from_slice(&preamble(&MAGIC));
        seal_header(&mut header, 20);
        assert_eq!(check_preamble(&header, &MAGIC, 20), Ok(()));
        assert_eq!(
            check_preamble(&header[..23], &MAGIC, 20),
            Err(PreambleError::Short)
        );
        assert_eq!(
            check_preamble(&header, b"WSTOROTH", 20),
            Err(PreambleError::BadMagic)
        );
        // A newer version is named before the checksum it also breaks.
        let mut newer = header;
        newer[PREAMBLE_VERSION_AT] = 3;
        assert_eq!(
            check_preamble(&newer, &MAGIC, 20),
            Err(PreambleError::Version(3))
        );
        let mut flipped = header;
        flipped[17] ^= 1;
        assert_eq!(
            check_preamble(&flipped, &MAGIC, 20),
            Err(PreambleError::Checksum)
        );
        let mut algorithm = header;
        algorithm[PREAMBLE_ALGORITHM_AT] = 9;
        seal_header(&mut algorithm, 20);
        assert_eq!(
            check_preamble(&algorithm, &MAGIC, 20),
            Err(PreambleError::Algorithm(9))
        );
    }
}
