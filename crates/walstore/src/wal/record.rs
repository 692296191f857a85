//! WAL records: encoding and validating decoding (FORMAT.md §4).
//!
//! A record is valid if and only if: its 32-byte header lies within the bytes given, its
//! payload length is at most [`MAX_RECORD_PAYLOAD_BYTES`] and lies within the bytes given, its kind
//! is known, its padding bytes are zero, its payload is well formed for its kind, and the
//! CRC-32 of bytes 4 to the end of the payload equals the stored CRC.

use crate::format::{crc32, read_u32, read_u64, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Size of a record header in bytes.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Size of a commit record's payload without padding.
pub const COMMIT_PAYLOAD_BYTES: usize = 16;
/// Most zero bytes a commit record's payload may carry after its 16 bytes (FORMAT.md §4.2):
/// sector padding pads to at most 4096-byte sectors.
pub const MAX_COMMIT_PADDING_BYTES: usize = 4095;
/// Largest payload any valid record can have: a put of the longest key and value.
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 4 + MAX_KEY_BYTES + MAX_VALUE_BYTES;

const _: () = assert!(MAX_RECORD_PAYLOAD_BYTES < u32::MAX as usize);
const _: () = assert!(RECORD_HEADER_BYTES == 4 + 4 + 1 + 7 + 8 + 8);

/// Offset of the salt field inside a record header.
pub const SALT_FIELD_OFFSET: usize = 16;

/// Record kinds (FORMAT.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// Sets a key to a value.
    Put = 1,
    /// Removes a key.
    Delete = 2,
    /// Ends a transaction and makes it count.
    Commit = 3,
    /// Removes every key of a range (FORMAT.md §4.2).
    DeleteRange = 4,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Delete),
            3 => Some(RecordKind::Commit),
            4 => Some(RecordKind::DeleteRange),
            _ => None,
        }
    }
}

/// A decoded, validated record borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub crc: u32,
    pub kind: RecordKind,
    pub salt: u64,
    pub txn_id: u64,
    pub body: RecordBody<'a>,
    /// Header plus payload length.
    pub len_total: usize,
}

/// The payload of a record, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordBody<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        key: &'a [u8],
    },
    /// Keys `>= start` and `< end` (no end: every key `>= start`).
    DeleteRange {
        start: &'a [u8],
        end: Option<&'a [u8]>,
    },
    Commit(CommitMarker),
}

/// The payload of a commit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitMarker {
    /// Number of put and delete records in the transaction.
    pub record_count: u32,
    /// CRC-32 over the CRC fields (little-endian) of the transaction's records, in order.
    pub txn_crc: u32,
    /// WAL offset up to which the log was known durable when this record was written.
    pub synced_through: u64,
}

/// Why bytes do not decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header, or than the length the header declares.
    Truncated { needed: usize },
    /// The header is all zeros: preallocated space, the clean end of the log.
    Zero,
    /// The declared length is larger than any valid record.
    LengthTooLarge(u32),
    /// The kind byte is not a known kind.
    UnknownKind(u8),
    /// A padding byte is not zero.
    NonZeroPadding,
    /// The payload does not fit its kind.
    MalformedPayload(&'static str),
    /// The CRC does not match.
    ChecksumMismatch { stored: u32, computed: u32 },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { needed } => {
                write!(f, "record cut short ({needed} bytes needed)")
            }
            DecodeError::Zero => write!(f, "zero-filled space"),
            DecodeError::LengthTooLarge(n) => write!(f, "record length {n} exceeds the maximum"),
            DecodeError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            DecodeError::NonZeroPadding => write!(f, "non-zero padding in record header"),
            DecodeError::MalformedPayload(why) => write!(f, "malformed payload: {why}"),
            DecodeError::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
        }
    }
}

/// Reads the declared payload length of the header at the start of `bytes`, if present.
pub fn declared_len(bytes: &[u8]) -> Option<u32> {
    read_u32(bytes, 4)
}

/// Decodes and validates the record at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    decode_with(bytes, false)
}

/// [`decode`]; `crc_skips_kind` is the broken variant `EngineFaults::record_crc_skips_kind`:
/// the checksum is also accepted when it matches with another valid kind byte.
pub(crate) fn decode_with(bytes: &[u8], crc_skips_kind: bool) -> Result<Record<'_>, DecodeError> {
    let header = bytes
        .get(..RECORD_HEADER_BYTES)
        .ok_or(DecodeError::Truncated {
            needed: RECORD_HEADER_BYTES,
        })?;
    if header.iter().all(|b| *b == 0) {
        return Err(DecodeError::Zero);
    }
    let stored = read_u32(header, 0).unwrap_or(0);
    let len = read_u32(header, 4).unwrap_or(0);
    if len as usize > MAX_RECORD_PAYLOAD_BYTES {
        return Err(DecodeError::LengthTooLarge(len));
    }
    let len_total = RECORD_HEADER_BYTES + len as usize;
    let whole = bytes
        .get(..len_total)
        .ok_or(DecodeError::Truncated { needed: len_total })?;
    let computed = crc32(&whole[4..]);
    if computed != stored && !(crc_skips_kind && crc_matches_some_kind(whole, stored)) {
        return Err(DecodeError::ChecksumMismatch { stored, computed });
    }
    let kind = RecordKind::from_u8(header[8]).ok_or(DecodeError::UnknownKind(header[8]))?;
    if header[9..16].iter().any(|b| *b != 0) {
        return Err(DecodeError::NonZeroPadding);
    }
    let salt = read_u64(header, 16).unwrap_or(0);
    let txn_id = read_u64(header, 24).unwrap_or(0);
    let payload = &whole[RECORD_HEADER_BYTES..];
    let body = decode_body(kind, payload)?;
    Ok(Record {
        crc: stored,
        kind,
        salt,
        txn_id,
        body,
        len_total,
    })
}

fn crc_matches_some_kind(whole: &[u8], stored: u32) -> bool {
    let mut copy = whole[4..].to_vec();
    (1..=4u8).any(|kind| {
        copy[4] = kind;
        crc32(&copy) == stored
    })
}

fn decode_body(kind: RecordKind, payload: &[u8]) -> Result<RecordBody<'_>, DecodeError> {
    match kind {
        RecordKind::Put => {
            let key_len = read_u32(payload, 0).ok_or(DecodeError::MalformedPayload(
                "put shorter than its key length",
            ))? as usize;
            if key_len == 0 || key_len > MAX_KEY_BYTES {
                return Err(DecodeError::MalformedPayload("put key length out of range"));
            }
            let key = payload
                .get(4..4 + key_len)
                .ok_or(DecodeError::MalformedPayload("put key past payload"))?;
            let value = &payload[4 + key_len..];
            if value.len() > MAX_VALUE_BYTES {
                return Err(DecodeError::MalformedPayload("put value too long"));
            }
            Ok(RecordBody::Put { key, value })
        }
        RecordKind::Delete => {
            if payload.is_empty() || payload.len() > MAX_KEY_BYTES {
                return Err(DecodeError::MalformedPayload(
                    "delete key length out of range",
                ));
            }
            Ok(RecordBody::Delete { key: payload })
        }
        RecordKind::DeleteRange => {
            let start_len = read_u32(payload, 0).ok_or(DecodeError::MalformedPayload(
                "range deletion shorter than its start length",
            ))? as usize;
            if start_len == 0 || start_len > MAX_KEY_BYTES {
                return Err(DecodeError::MalformedPayload(
                    "range deletion start length out of range",
                ));
            }
            let start = payload
                .get(4..4 + start_len)
                .ok_or(DecodeError::MalformedPayload(
                    "range deletion start past payload",
                ))?;
            let end = &payload[4 + start_len..];
            if end.len() > MAX_KEY_BYTES || (!end.is_empty() && end <= start) {
                return Err(DecodeError::MalformedPayload(
                    "range deletion end out of range",
                ));
            }
            let end = (!end.is_empty()).then_some(end);
            Ok(RecordBody::DeleteRange { start, end })
        }
        RecordKind::Commit => {
            let padding = payload.get(COMMIT_PAYLOAD_BYTES..).unwrap_or_default();
            if payload.len() < COMMIT_PAYLOAD_BYTES || padding.len() > MAX_COMMIT_PADDING_BYTES {
                return Err(DecodeError::MalformedPayload("commit payload size"));
            }
            if padding.iter().any(|b| *b != 0) {
                return Err(DecodeError::MalformedPayload("non-zero commit padding"));
            }
            Ok(RecordBody::Commit(CommitMarker {
                record_count: read_u32(payload, 0).unwrap_or(0),
                txn_crc: read_u32(payload, 4).unwrap_or(0),
                synced_through: read_u64(payload, 8).unwrap_or(0),
            }))
        }
    }
}

/// Appends one transaction's records to `out`: a record per range deletion (first: a
/// transaction's range deletions come before its other writes, FORMAT.md §4.3), a record per
/// write, then the commit record. Returns the number of bytes appended.
pub fn encode_txn<'a>(
    out: &mut Vec<u8>,
    salt: u64,
    txn_id: u64,
    deletes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    synced_through: u64,
) -> usize {
    let start = out.len();
    let mut txn_crc = crate::checksum::Crc32::new();
    let mut count = 0u32;
    for (from, to) in deletes {
        debug_assert!(!from.is_empty() && to.is_none_or(|t| t > from));
        let to = to.unwrap_or_default();
        let len = 4 + from.len() + to.len();
        let crc = encode_record(out, RecordKind::DeleteRange, salt, txn_id, len, |out| {
            out.extend_from_slice(&(from.len() as u32).to_le_bytes());
            out.extend_from_slice(from);
            out.extend_from_slice(to);
        });
        txn_crc.update(&crc.to_le_bytes());
        count += 1;
    }
    for (key, value) in writes {
        debug_assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
        let crc = match value {
            Some(value) => {
                debug_assert!(value.len() <= MAX_VALUE_BYTES);
                let len = 4 + key.len() + value.len();
                encode_record(out, RecordKind::Put, salt, txn_id, len, |out| {
                    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    out.extend_from_slice(key);
                    out.extend_from_slice(value);
                })
            }
            None => encode_record(out, RecordKind::Delete, salt, txn_id, key.len(), |out| {
                out.extend_from_slice(key)
            }),
        };
        txn_crc.update(&crc.to_le_bytes());
        count += 1;
    }
    let txn_crc = txn_crc.finalize();
    encode_record(
        out,
        RecordKind::Commit,
        salt,
        txn_id,
        COMMIT_PAYLOAD_BYTES,
        |out| {
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&txn_crc.to_le_bytes());
            out.extend_from_slice(&synced_through.to_le_bytes());
        },
    );
    out.len() - start
}

/// Pads the commit record that ends `out` with `padding` zero bytes (FORMAT.md §4.2), so
/// that the transaction ends where the caller wants it to (a sector boundary). The
/// transaction checksum does not cover the commit record, so only its length and CRC change.
pub fn pad_commit(out: &mut Vec<u8>, padding: usize) {
    debug_assert!(padding <= MAX_COMMIT_PADDING_BYTES);
    let start = out.len() - (RECORD_HEADER_BYTES + COMMIT_PAYLOAD_BYTES);
    debug_assert_eq!(out[start + 8], RecordKind::Commit as u8);
    let len = (COMMIT_PAYLOAD_BYTES + padding) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    out.resize(out.len() + padding, 0);
    let crc = crc32(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Writes one record (header, then the payload produced by `payload`); returns its CRC.
fn encode_record(
    out: &mut Vec<u8>,
    kind: RecordKind,
    salt: u64,
    txn_id: u64,
    payload_len: usize,
    payload: impl FnOnce(&mut Vec<u8>),
) -> u32 {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&[0u8; 7]);
    out.extend_from_slice(&salt.to_le_bytes());
    out.extend_from_slice(&txn_id.to_le_bytes());
    payload(out);
    debug_assert_eq!(out.len() - start, RECORD_HEADER_BYTES + payload_len);
    let crc = crc32(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// Folds record CRCs into a transaction CRC, as the commit marker stores it.
#[derive(Debug, Default)]
pub struct TxnChecksum {
    hasher: crate::checksum::Crc32,
    count: u32,
}

impl TxnChecksum {
    pub fn add(&mut self, record_crc: u32) {
        self.hasher.update(&record_crc.to_le_bytes());
        self.count = self.count.saturating_add(1);
    }

    pub fn matches(&self, marker: &CommitMarker) -> bool {
        self.count == marker.record_count && self.hasher.clone().finalize() == marker.txn_crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_padded_commit_decodes_and_non_zero_padding_does_not() {
        let mut out = Vec::new();
        encode_txn(&mut out, 7, 3, std::iter::empty(), std::iter::empty(), 4096);
        pad_commit(&mut out, 100);
        assert_eq!(out.len(), RECORD_HEADER_BYTES + COMMIT_PAYLOAD_BYTES + 100);
        let rec = decode(&out).expect("padded commit");
        assert_eq!(rec.len_total, out.len());
        assert!(matches!(rec.body, RecordBody::Commit(m) if m.synced_through == 4096));
        let mut bad = out.clone();
        *bad.last_mut().expect("byte") = 1;
        let crc = crc32(&bad[4..]);
        bad[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&bad),
            Err(DecodeError::MalformedPayload("non-zero commit padding"))
        );
        let mut long = Vec::new();
        encode_txn(
            &mut long,
            7,
            3,
            std::iter::empty(),
            std::iter::empty(),
            4096,
        );
        pad_commit(&mut long, MAX_COMMIT_PADDING_BYTES);
        assert!(decode(&long).is_ok());
        long.push(0);
        let len = (COMMIT_PAYLOAD_BYTES + MAX_COMMIT_PADDING_BYTES + 1) as u32;
        long[4..8].copy_from_slice(&len.to_le_bytes());
        let crc = crc32(&long[4..]);
        long[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&long),
            Err(DecodeError::MalformedPayload("commit payload size"))
        );
    }

    #[test]
    fn round_trip_of_a_transaction() {
        let mut out = Vec::new();
        let writes: Vec<(&[u8], Option<&[u8]>)> = vec![(b"a", Some(b"1")), (b"b", None)];
        let n = encode_txn(&mut out, 7, 3, std::iter::empty(), writes.into_iter(), 4096);
        assert_eq!(n, out.len());
        let r1 = decode(&out).expect("first record");
        assert_eq!(
            r1.body,
            RecordBody::Put {
                key: b"a",
                value: b"1"
            }
        );
        let r2 = decode(&out[r1.len_total..]).expect("second record");
        assert_eq!(r2.body, RecordBody::Delete { key: b"b" });
        let r3 = decode(&out[r1.len_total + r2.len_total..]).expect("commit");
        let RecordBody::Commit(marker) = r3.body else {
            panic!("expected a commit record, got {:?}", r3.body)
        };
        let mut sum = TxnChecksum::default();
        sum.add(r1.crc);
        sum.add(r2.crc);
        assert!(sum.matches(&marker));
        assert_eq!(marker.synced_through, 4096);
        assert_eq!((r3.salt, r3.txn_id), (7, 3));
    }

    #[test]
    fn a_range_deletion_round_trips_and_refuses_an_empty_range() {
        let mut out = Vec::new();
        let deletes = [(&b"a/"[..], Some(&b"a0"[..])), (&b"z"[..], None)];
        encode_txn(&mut out, 9, 1, deletes.into_iter(), std::iter::empty(), 0);
        let first = decode(&out).expect("valid");
        assert_eq!(
            first.body,
            RecordBody::DeleteRange {
                start: b"a/",
                end: Some(b"a0")
            }
        );
        let second = decode(&out[first.len_total..]).expect("valid");
        assert_eq!(
            second.body,
            RecordBody::DeleteRange {
                start: b"z",
                end: None
            }
        );
        let mut empty = Vec::new();
        encode_record(
            &mut empty,
            RecordKind::DeleteRange,
            9,
            1,
            4 + 1 + 1,
            |out| {
                out.extend_from_slice(&1u32.to_le_bytes());
                out.extend_from_slice(b"b");
                out.extend_from_slice(b"a");
            },
        );
        assert!(matches!(
            decode(&empty),
            Err(DecodeError::MalformedPayload(_))
        ));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut out = Vec::new();
        encode_txn(
            &mut out,
            9,
            1,
            std::iter::empty(),
            [(&b"key"[..], Some(&b"value"[..]))].into_iter(),
            0,
        );
        let first = decode(&out).expect("valid").len_total;
        for i in 0..first {
            let mut damaged = out.clone();
            damaged[i] ^= 0x40;
            assert!(
                decode(&damaged[..first]).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn huge_declared_length_is_rejected_without_allocation() {
        let mut header = [0u8; RECORD_HEADER_BYTES];
        header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&header), Err(DecodeError::LengthTooLarge(u32::MAX)));
    }
}
