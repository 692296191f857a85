//! The write-ahead log: one file, `wal`, reused across generations (FORMAT.md §3-§4).
//!
//! Layers, one file each: [`record`] (bytes <-> records), `probe` (bounded reads, the probe
//! of one offset, the search for a generation's records), [`scan`] (records -> committed
//! transactions; the public face of `probe` and `tail`), `tail` (the torn-tail versus
//! corruption decision), `writer` (`Wal`, the one owner of the append path, syncing and the
//! poison latch), and this module (the header block and preallocation).
//!
//! Invariant: the header's generation changes only under the writer lock and only after the
//! manifest naming that generation is durable; records of a generation are written only after
//! its header is. A process that reads the header, then records, then the header again, and
//! sees the same generation both times, has read records of that generation only.

mod probe;
pub mod record;
pub mod scan;
mod tail;
pub(crate) mod writer;

use crate::format::{
    check_preamble_of, preamble_of, read_u64, seal_header, PreambleError, PREAMBLE_BYTES,
};
use crate::storage::StorageFile;
use record::LogLayout;
use std::io;

/// The header occupies the whole first 4 KiB block; records start after it.
pub const WAL_HEADER_BYTES: u64 = 4096;

/// A position in the log: an offset in the log of one generation. Positions order by
/// generation first, so a newer generation's position is always later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LogPosition {
    pub(crate) generation: u64,
    pub(crate) offset: u64,
}

impl LogPosition {
    pub(crate) const fn new(generation: u64, offset: u64) -> LogPosition {
        LogPosition { generation, offset }
    }
}
/// Magic bytes at offset 0 of the WAL.
pub const WAL_MAGIC: [u8; 8] = *b"WSTORWAL";
/// The WAL header version of a log that holds a record per write (FORMAT.md §3).
pub const WAL_VERSION_RECORDS: u32 = 2;
/// The WAL header version of a log that holds batch records: what this build writes into
/// every log it starts (FORMAT.md §3). A build that knows only version 2 refuses it with
/// `Error::UnsupportedFormat` instead of reading a batch as a torn tail.
pub const WAL_VERSION: u32 = 3;
/// Header fields after the preamble (FORMAT.md §3).
const GENERATION_AT: usize = PREAMBLE_BYTES;
const SALT_AT: usize = 24;
const BASE_TXN_AT: usize = 32;
/// The header's CRC, over the bytes before it.
const HEADER_CRC_AT: usize = 40;
/// Bytes of the header that carry meaning (the rest of the block is zero).
const HEADER_USED_BYTES: usize = 44;
const _: () = assert!(SALT_AT == GENERATION_AT + 8 && BASE_TXN_AT == SALT_AT + 8);
const _: () = assert!(HEADER_CRC_AT == BASE_TXN_AT + 8 && HEADER_USED_BYTES == HEADER_CRC_AT + 4);
const _: () = assert!(HEADER_USED_BYTES as u64 <= WAL_HEADER_BYTES);

/// What the WAL header says (FORMAT.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// The header's format version: [`WAL_VERSION`] or [`WAL_VERSION_RECORDS`].
    pub version: u32,
    /// Checkpoint generation whose records follow.
    pub generation: u64,
    /// Random salt every record of this generation carries.
    pub salt: u64,
    /// Last transaction id folded into the snapshot; the first record is `base_txn + 1`.
    pub base_txn: u64,
}

/// Why a WAL header did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is shorter than the header.
    Short,
    /// The header is zero (never written).
    Zero,
    /// Not a walstore WAL.
    BadMagic,
    /// Written by another format version.
    Version(u32),
    /// Unknown checksum algorithm.
    Algorithm(u32),
    /// The header's CRC does not match.
    Checksum,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short => write!(f, "WAL shorter than its header"),
            HeaderError::Zero => write!(f, "WAL header never written"),
            HeaderError::BadMagic => write!(f, "bad WAL magic"),
            HeaderError::Version(v) => write!(f, "WAL format version {v}"),
            HeaderError::Algorithm(a) => write!(f, "unknown checksum algorithm {a}"),
            HeaderError::Checksum => write!(f, "WAL header checksum mismatch"),
        }
    }
}

impl WalHeader {
    /// The header of a new log, at the version this build writes.
    pub fn new(generation: u64, salt: u64, base_txn: u64) -> WalHeader {
        WalHeader {
            version: WAL_VERSION,
            generation,
            salt,
            base_txn,
        }
    }

    /// How a transaction is laid out in the log this header starts.
    pub fn layout(&self) -> LogLayout {
        if self.version == WAL_VERSION_RECORDS {
            LogLayout::Records
        } else {
            LogLayout::Batches
        }
    }

    /// The full header block.
    pub fn encode(&self) -> Vec<u8> {
        let mut block = vec![0u8; WAL_HEADER_BYTES as usize];
        block[..PREAMBLE_BYTES].copy_from_slice(&preamble_of(&WAL_MAGIC, self.version));
        block[GENERATION_AT..SALT_AT].copy_from_slice(&self.generation.to_le_bytes());
        block[SALT_AT..BASE_TXN_AT].copy_from_slice(&self.salt.to_le_bytes());
        block[BASE_TXN_AT..HEADER_CRC_AT].copy_from_slice(&self.base_txn.to_le_bytes());
        seal_header(&mut block, HEADER_CRC_AT);
        block
    }

    /// Decodes the first bytes of a WAL.
    pub fn decode(bytes: &[u8]) -> Result<WalHeader, HeaderError> {
        let head = bytes.get(..HEADER_USED_BYTES).ok_or(HeaderError::Short)?;
        if head.iter().all(|b| *b == 0) {
            return Err(HeaderError::Zero);
        }
        let versions = WAL_VERSION_RECORDS..=WAL_VERSION;
        let version =
            check_preamble_of(head, &WAL_MAGIC, HEADER_CRC_AT, versions).map_err(|e| match e {
                PreambleError::Short => HeaderError::Short,
                PreambleError::BadMagic => HeaderError::BadMagic,
                PreambleError::Version(v) => HeaderError::Version(v),
                PreambleError::Checksum => HeaderError::Checksum,
                PreambleError::Algorithm(a) => HeaderError::Algorithm(a),
            })?;
        Ok(WalHeader {
            version,
            generation: read_u64(head, GENERATION_AT).unwrap_or(0),
            salt: read_u64(head, SALT_AT).unwrap_or(0),
            base_txn: read_u64(head, BASE_TXN_AT).unwrap_or(0),
        })
    }

    /// Reads and decodes the header of an open WAL.
    pub fn read(file: &dyn StorageFile) -> io::Result<Result<WalHeader, HeaderError>> {
        let mut buf = [0u8; HEADER_USED_BYTES];
        let n = file.read_full_at(&mut buf, 0)?;
        Ok(WalHeader::decode(&buf[..n]))
    }
}

/// Zero-filled space a new log starts with, and the least the log grows by (FORMAT.md §3).
pub const PREALLOCATE_MIN_BYTES: u64 = 64 << 10;

/// An append larger than this that does not fit the zeroed space extends the file itself,
/// with no zeros written ahead of it or after it (FORMAT.md §3). Between the two appends
/// this choice was measured on (`Wal::grow`): 85 KiB commits run a quarter slower when each
/// extends the file; commits of 1,000 keys of 116 bytes (119 KB in batch records, 152 KB as
/// a record per write) run as fast either way and write the log once instead of twice.
pub const LARGE_APPEND_BYTES: u64 = 96 << 10;

/// Zero-fills a new WAL from `current_len` to `target` and syncs it, so the first commits
/// overwrite allocated blocks.
pub fn preallocate(file: &dyn StorageFile, current_len: u64, target: u64) -> io::Result<()> {
    write_zeros(file, current_len, target.next_multiple_of(4096))?;
    file.sync_data()
}

/// Writes zeros over `[from, to)`.
pub(crate) fn write_zeros(file: &dyn StorageFile, from: u64, to: u64) -> io::Result<()> {
    static ZEROS: [u8; 1 << 16] = [0u8; 1 << 16];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = WalHeader::new(3, 0xdead_beef, 17);
        let block = h.encode();
        assert_eq!(WalHeader::decode(&block), Ok(h));
        assert_eq!(h.layout(), LogLayout::Batches);
        let old = WalHeader {
            version: WAL_VERSION_RECORDS,
            ..h
        };
        assert_eq!(WalHeader::decode(&old.encode()), Ok(old));
        assert_eq!(old.layout(), LogLayout::Records);
        let newer = WalHeader {
            version: WAL_VERSION + 1,
            ..h
        };
        assert_eq!(
            WalHeader::decode(&newer.encode()),
            Err(HeaderError::Version(WAL_VERSION + 1))
        );
        let mut bad = block.clone();
        bad[20] ^= 1;
        assert_eq!(WalHeader::decode(&bad), Err(HeaderError::Checksum));
        assert_eq!(WalHeader::decode(&block[..10]), Err(HeaderError::Short));
        assert_eq!(WalHeader::decode(&[0u8; 64]), Err(HeaderError::Zero));
    }
}
