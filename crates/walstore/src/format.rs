//! Constants shared by every on-disk structure, and bounds-checked little-endian helpers.
//! The normative description of every byte is `docs/FORMAT.md`; section numbers are cited.

/// Format version written into every file (FORMAT.md §1). A file with another version is
/// refused with [`crate::Error::UnsupportedFormat`].
pub const FORMAT_VERSION: u32 = 1;

/// Checksum algorithm id recorded in every file header: 1 = CRC-32/IEEE as computed by
/// `crc32fast` (polynomial 0x04C11DB7, reflected, init and xorout 0xFFFFFFFF). FORMAT.md §1.
pub const CHECKSUM_CRC32_IEEE: u32 = 1;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// File names inside a store directory (FORMAT.md §2).
pub const MANIFEST_NAME: &str = "MANIFEST";
pub const MANIFEST_TMP_NAME: &str = "MANIFEST.tmp";
pub const WAL_NAME: &str = "wal";
pub const LOCK_NAME: &str = "LOCK";
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
        MANIFEST_NAME | MANIFEST_TMP_NAME | WAL_NAME | LOCK_NAME
    ) || parse_snapshot_name(name).is_some()
}

/// CRC-32/IEEE of `bytes`.
#[inline]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

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

/// A fresh random 64-bit value for generation salts (never zero).
pub fn random_u64() -> u64 {
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
