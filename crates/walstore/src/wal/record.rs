//! WAL records: encoding and validating decoding (FORMAT.md §4).
//!
//! A record is valid if and only if: its 32-byte header lies within the bytes given, its
//! payload length is at most [`MAX_RECORD_PAYLOAD_BYTES`] and lies within the bytes given, its kind
//! is known, its padding bytes are zero, its payload is well formed for its kind, and the
//! CRC-32 of bytes 4 to the end of the payload equals the stored CRC.
//!
//! Two layouts of a transaction share these records (FORMAT.md §4.2): a log whose header says
//! version 3 holds a transaction's writes in **batch** records (kind 5: many writes under one
//! header, their lengths as varints), the layout this build writes; a version-2 log holds a
//! record per write (kinds 1, 2 and 4), which this build still reads, and still writes into a
//! log whose header it did not write (`LogLayout`). A reader accepts either kind in either
//! log: the header's version tells an older build to keep away, not this one what to expect.

use crate::format::{crc32, read_u32, read_u64, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Size of a record header in bytes.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Size of a commit record's payload without padding.
pub const COMMIT_PAYLOAD_BYTES: usize = 16;
/// Most zero bytes a commit record's payload may carry after its 16 bytes (FORMAT.md §4.2):
/// sector padding pads to at most 4096-byte sectors.
pub const MAX_COMMIT_PADDING_BYTES: usize = 4095;
/// Largest payload any valid record can have: a batch holding one put of the longest key and
/// value (a tag, two varints of at most 5 bytes, the key, the value).
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 1 + 5 + 5 + MAX_KEY_BYTES + MAX_VALUE_BYTES;
/// A batch record takes a transaction's next write while its payload stays within this many
/// bytes; a write that alone is larger gets a batch of its own (FORMAT.md §4.2). Batches of
/// 256 KiB cost 32 header bytes each (0.01%) and keep a scan's reads within its chunk.
pub const BATCH_PAYLOAD_BYTES: usize = 256 << 10;

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
    /// Several writes of one transaction (FORMAT.md §4.2).
    Batch = 5,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Delete),
            3 => Some(RecordKind::Commit),
            4 => Some(RecordKind::DeleteRange),
            5 => Some(RecordKind::Batch),
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
    /// A put, delete or range deletion record: one write.
    Write(Op<'a>),
    Commit(CommitMarker),
    /// The writes of a batch record, validated: [`Batch::ops`] reads them in order.
    Batch(Batch<'a>),
}

/// One write as a transaction holds it: the body of a put, delete or range deletion record,
/// or one operation of a batch record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
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
}

/// The payload of a batch record: one or more operations, each a tag (1 put, 2 delete,
/// 4 range deletion), its lengths as LEB128 varints, then its bytes (FORMAT.md §4.2).
/// Only [`decode`] makes one, after every operation of the payload decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    payload: &'a [u8],
    count: u32,
}

impl<'a> Batch<'a> {
    /// How many operations the batch holds (at least one).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The operations in order, each with its offset in the payload.
    pub fn ops(&self) -> impl Iterator<Item = (usize, Op<'a>)> + 'a {
        let payload = self.payload;
        let mut at = 0;
        std::iter::from_fn(move || {
            let (op, len) = decode_op(payload.get(at..)?).ok()?;
            let item = (at, op);
            at += len;
            Some(item)
        })
    }
}

/// The payload of a commit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitMarker {
    /// Number of records (puts, deletes, range deletions, batches) in the transaction.
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
    (1..=5u8).any(|kind| {
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
            check_put(key, value)?;
            Ok(RecordBody::Write(Op::Put { key, value }))
        }
        RecordKind::Delete => {
            check_key(payload, "delete key length out of range")?;
            Ok(RecordBody::Write(Op::Delete { key: payload }))
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
            check_range(start, end)?;
            let end = (!end.is_empty()).then_some(end);
            Ok(RecordBody::Write(Op::DeleteRange { start, end }))
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
        RecordKind::Batch => {
            let mut at = 0;
            let mut count = 0u32;
            while at < payload.len() {
                let (_, len) = decode_op(&payload[at..])?;
                at += len;
                count += 1;
            }
            if count == 0 {
                return Err(DecodeError::MalformedPayload("empty batch"));
            }
            Ok(RecordBody::Batch(Batch { payload, count }))
        }
    }
}

fn check_key(key: &[u8], why: &'static str) -> Result<(), DecodeError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(DecodeError::MalformedPayload(why));
    }
    Ok(())
}

fn check_put(key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
    check_key(key, "put key length out of range")?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(DecodeError::MalformedPayload("put value too long"));
    }
    Ok(())
}

/// A range deletion's bounds: a start of 1 to 4096 bytes, an end (empty: none) of at most 4096
/// bytes that, when present, is greater than the start.
fn check_range(start: &[u8], end: &[u8]) -> Result<(), DecodeError> {
    check_key(start, "range deletion start length out of range")?;
    if end.len() > MAX_KEY_BYTES || (!end.is_empty() && end <= start) {
        return Err(DecodeError::MalformedPayload(
            "range deletion end out of range",
        ));
    }
    Ok(())
}

/// Most bytes of a LEB128 varint: five carry 35 bits, more than any length here needs.
const MAX_VARINT_BYTES: usize = 5;

/// Appends `n` as an unsigned LEB128 varint: seven bits a byte, least significant first, the
/// high bit set on every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Bytes [`put_varint`] writes for `n`.
pub fn varint_len(n: u32) -> usize {
    (32 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads the varint at `bytes[*at..]` and moves `at` past it. Only the canonical (shortest)
/// encoding of a number at most `max` is accepted: an encoding has one meaning, so the
/// encoder's output is the only valid spelling of a batch.
fn get_varint(bytes: &[u8], at: &mut usize, max: usize) -> Result<usize, DecodeError> {
    let malformed = DecodeError::MalformedPayload("batch length out of range or not canonical");
    let mut n: u64 = 0;
    for i in 0..MAX_VARINT_BYTES {
        let b = *bytes
            .get(*at + i)
            .ok_or(DecodeError::MalformedPayload("batch operation cut short"))?;
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of zero after others would spell the same number in more bytes.
            if (b == 0 && i > 0) || n > max as u64 {
                return Err(malformed);
            }
            *at += i + 1;
            return Ok(n as usize);
        }
    }
    Err(malformed)
}

/// Decodes the operation at the start of a batch payload: the operation and its length.
fn decode_op(bytes: &[u8]) -> Result<(Op<'_>, usize), DecodeError> {
    let cut = DecodeError::MalformedPayload("batch operation cut short");
    let tag = *bytes.first().ok_or(cut)?;
    let mut at = 1;
    let take = |at: &mut usize, len: usize| -> Result<&[u8], DecodeError> {
        let b = bytes.get(*at..*at + len).ok_or(cut)?;
        *at += len;
        Ok(b)
    };
    let op = match tag {
        1 => {
            let key_len = get_varint(bytes, &mut at, MAX_KEY_BYTES)?;
            let value_len = get_varint(bytes, &mut at, MAX_VALUE_BYTES)?;
            let key = take(&mut at, key_len)?;
            let value = take(&mut at, value_len)?;
            check_put(key, value)?;
            Op::Put { key, value }
        }
        2 => {
            let key_len = get_varint(bytes, &mut at, MAX_KEY_BYTES)?;
            let key = take(&mut at, key_len)?;
            check_key(key, "delete key length out of range")?;
            Op::Delete { key }
        }
        4 => {
            let start_len = get_varint(bytes, &mut at, MAX_KEY_BYTES)?;
            let end_len = get_varint(bytes, &mut at, MAX_KEY_BYTES)?;
            let start = take(&mut at, start_len)?;
            let end = take(&mut at, end_len)?;
            check_range(start, end)?;
            Op::DeleteRange {
                start,
                end: (!end.is_empty()).then_some(end),
            }
        }
        _ => return Err(DecodeError::MalformedPayload("unknown batch operation")),
    };
    Ok((op, at))
}

/// How a log lays out a transaction's writes (FORMAT.md §3, §4.2): chosen by the version of the
/// log's header, so that a build that reads only records never meets a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLayout {
    /// A record per write (header version 2).
    Records,
    /// Batch records (header version 3): what this build writes into the logs it starts.
    Batches,
}

/// Bytes of one operation in a batch.
fn op_len(key_or_start: &[u8], second: Option<&[u8]>, with_second_len: bool) -> usize {
    let second_len = second.map_or(0, <[u8]>::len);
    1 + varint_len(key_or_start.len() as u32)
        + if with_second_len {
            varint_len(second_len as u32)
        } else {
            0
        }
        + key_or_start.len()
        + second_len
}

/// Builds the records of a transaction's writes (batches, or a record per write) and the
/// transaction checksum over them.
struct BatchWriter<'o> {
    out: &'o mut Vec<u8>,
    salt: u64,
    txn_id: u64,
    /// Where the open batch record starts in `out`.
    open: Option<usize>,
    txn_crc: crate::checksum::Crc32,
    count: u32,
}

impl BatchWriter<'_> {
    /// Adds one operation of `len` bytes, written by `op`, to the open batch, or to a new one
    /// when it would pass [`BATCH_PAYLOAD_BYTES`].
    fn add(&mut self, len: usize, op: impl FnOnce(&mut Vec<u8>)) {
        if let Some(start) = self.open {
            if self.out.len() - start - RECORD_HEADER_BYTES + len > BATCH_PAYLOAD_BYTES {
                self.close();
            }
        }
        if self.open.is_none() {
            self.open = Some(self.out.len());
            push_header(self.out, RecordKind::Batch, self.salt, self.txn_id);
        }
        let before = self.out.len();
        op(self.out);
        debug_assert_eq!(self.out.len() - before, len);
    }

    /// Seals the open batch record, if any.
    fn close(&mut self) {
        if let Some(start) = self.open.take() {
            self.seal(start);
        }
    }

    /// Writes a record of its own (a version-2 log's put, delete or range deletion), its
    /// payload written by `payload`.
    fn record(&mut self, kind: RecordKind, payload: impl FnOnce(&mut Vec<u8>)) {
        debug_assert!(self.open.is_none(), "a log's transaction has one layout");
        let start = self.out.len();
        push_header(self.out, kind, self.salt, self.txn_id);
        payload(self.out);
        self.seal(start);
    }

    /// Completes the record that starts at `start` and counts it in the transaction.
    fn seal(&mut self, start: usize) {
        let crc = seal_record(self.out, start);
        self.txn_crc.update(&crc.to_le_bytes());
        self.count += 1;
    }
}

/// Appends one transaction to `out` in `layout`: its range deletions first (a transaction's
/// range deletions come before its other writes, FORMAT.md §4.3), then its writes, then the
/// commit record. With [`LogLayout::Batches`] the writes fill batch records of up to
/// [`BATCH_PAYLOAD_BYTES`]; with [`LogLayout::Records`] each write is a record of its own.
/// Returns the number of bytes appended.
pub fn encode_txn_as<'a>(
    layout: LogLayout,
    out: &mut Vec<u8>,
    salt: u64,
    txn_id: u64,
    deletes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    synced_through: u64,
) -> usize {
    let start = out.len();
    let mut batch = BatchWriter {
        out,
        salt,
        txn_id,
        open: None,
        txn_crc: crate::checksum::Crc32::new(),
        count: 0,
    };
    for (from, to) in deletes {
        debug_assert!(!from.is_empty() && to.is_none_or(|t| t > from));
        let to = to.unwrap_or_default();
        if layout == LogLayout::Batches {
            batch.add(op_len(from, Some(to), true), |out| {
                out.push(RecordKind::DeleteRange as u8);
                put_varint(out, from.len() as u32);
                put_varint(out, to.len() as u32);
                out.extend_from_slice(from);
                out.extend_from_slice(to);
            });
            continue;
        }
        batch.record(RecordKind::DeleteRange, |out| {
            out.extend_from_slice(&(from.len() as u32).to_le_bytes());
            out.extend_from_slice(from);
            out.extend_from_slice(to);
        });
    }
    for (key, value) in writes {
        debug_assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
        debug_assert!(value.is_none_or(|v| v.len() <= MAX_VALUE_BYTES));
        if layout == LogLayout::Batches {
            batch.add(op_len(key, value, value.is_some()), |out| match value {
                Some(value) => {
                    out.push(RecordKind::Put as u8);
                    put_varint(out, key.len() as u32);
                    put_varint(out, value.len() as u32);
                    out.extend_from_slice(key);
                    out.extend_from_slice(value);
                }
                None => {
                    out.push(RecordKind::Delete as u8);
                    put_varint(out, key.len() as u32);
                    out.extend_from_slice(key);
                }
            });
            continue;
        }
        match value {
            Some(value) => batch.record(RecordKind::Put, |out| {
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }),
            None => batch.record(RecordKind::Delete, |out| out.extend_from_slice(key)),
        }
    }
    batch.close();
    let (count, txn_crc) = (batch.count, batch.txn_crc.finalize());
    let at = out.len();
    push_header(out, RecordKind::Commit, salt, txn_id);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&txn_crc.to_le_bytes());
    out.extend_from_slice(&synced_through.to_le_bytes());
    seal_record(out, at);
    out.len() - start
}

/// [`encode_txn_as`] in the layout this build starts its logs with: batch records.
pub fn encode_txn<'a>(
    out: &mut Vec<u8>,
    salt: u64,
    txn_id: u64,
    deletes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    synced_through: u64,
) -> usize {
    encode_txn_as(
        LogLayout::Batches,
        out,
        salt,
        txn_id,
        deletes,
        writes,
        synced_through,
    )
}

/// Pads the commit record that ends `out` with `padding` zero bytes (FORMAT.md §4.2), so
/// that the transaction ends where the caller wants it to (a sector boundary). The
/// transaction checksum does not cover the commit record, so only its length and CRC change.
pub fn pad_commit(out: &mut Vec<u8>, padding: usize) {
    debug_assert!(padding <= MAX_COMMIT_PADDING_BYTES);
    let start = out.len() - (RECORD_HEADER_BYTES + COMMIT_PAYLOAD_BYTES);
    debug_assert_eq!(out[start + 8], RecordKind::Commit as u8);
    out.resize(out.len() + padding, 0);
    seal_record(out, start);
}

/// Appends a record header with its CRC and length left zero: [`seal_record`] fills them in
/// once the payload follows.
fn push_header(out: &mut Vec<u8>, kind: RecordKind, salt: u64, txn_id: u64) {
    out.extend_from_slice(&[0u8; 8]);
    out.push(kind as u8);
    out.extend_from_slice(&[0u8; 7]);
    out.extend_from_slice(&salt.to_le_bytes());
    out.extend_from_slice(&txn_id.to_le_bytes());
}

/// Completes the record that starts at `start` and runs to the end of `out`: stores its
/// payload length and its CRC; returns the CRC.
fn seal_record(out: &mut [u8], start: usize) -> u32 {
    let payload_len = out.len() - start - RECORD_HEADER_BYTES;
    debug_assert!(payload_len <= MAX_RECORD_PAYLOAD_BYTES);
    out[start + 4..start + 8].copy_from_slice(&(payload_len as u32).to_le_bytes());
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
    fn round_trip_of_a_transaction_in_records() {
        let mut out = Vec::new();
        let writes: Vec<(&[u8], Option<&[u8]>)> = vec![(b"a", Some(b"1")), (b"b", None)];
        let n = encode_txn_as(
            LogLayout::Records,
            &mut out,
            7,
            3,
            std::iter::empty(),
            writes.into_iter(),
            4096,
        );
        assert_eq!(n, out.len());
        let r1 = decode(&out).expect("first record");
        assert_eq!(
            r1.body,
            RecordBody::Write(Op::Put {
                key: b"a",
                value: b"1"
            })
        );
        let r2 = decode(&out[r1.len_total..]).expect("second record");
        assert_eq!(r2.body, RecordBody::Write(Op::Delete { key: b"b" }));
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
        encode_txn_as(
            LogLayout::Records,
            &mut out,
            9,
            1,
            deletes.into_iter(),
            std::iter::empty(),
            0,
        );
        let first = decode(&out).expect("valid");
        assert_eq!(
            first.body,
            RecordBody::Write(Op::DeleteRange {
                start: b"a/",
                end: Some(b"a0")
            })
        );
        let second = decode(&out[first.len_total..]).expect("valid");
        assert_eq!(
            second.body,
            RecordBody::Write(Op::DeleteRange {
                start: b"z",
                end: None
            })
        );
        let mut empty = Vec::new();
        push_header(&mut empty, RecordKind::DeleteRange, 9, 1);
        empty.extend_from_slice(&1u32.to_le_bytes());
        empty.extend_from_slice(b"ba");
        seal_record(&mut empty, 0);
        assert!(matches!(
            decode(&empty),
            Err(DecodeError::MalformedPayload(_))
        ));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut out = Vec::new();
        encode_txn_as(
            LogLayout::Records,
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

    /// Decodes every record of one encoded transaction: the operations of its records in
    /// order, the records' count, and the commit record's marker (checked against them).
    fn ops_of(bytes: &[u8]) -> (Vec<Op<'_>>, usize, CommitMarker) {
        let mut at = 0;
        let mut ops = Vec::new();
        let mut sum = TxnChecksum::default();
        loop {
            let rec = decode(&bytes[at..]).expect("every record decodes");
            at += rec.len_total;
            match rec.body {
                RecordBody::Batch(batch) => {
                    assert_eq!(batch.ops().count(), batch.count() as usize);
                    ops.extend(batch.ops().map(|(_, op)| op));
                }
                RecordBody::Write(op) => ops.push(op),
                RecordBody::Commit(marker) => {
                    assert!(
                        sum.matches(&marker),
                        "the commit record vouches for its records"
                    );
                    assert_eq!(at, bytes.len());
                    return (ops, marker.record_count as usize, marker);
                }
            }
            sum.add(rec.crc);
        }
    }

    #[test]
    fn a_batch_holds_a_transactions_writes_in_order_under_one_header() {
        let mut out = Vec::new();
        let deletes = [(&b"a/"[..], Some(&b"a0"[..])), (&b"z"[..], None)];
        let long_value = vec![7u8; 200];
        let long_key = vec![b'k'; MAX_KEY_BYTES];
        let writes: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"a", Some(b"1")),
            (b"b", None),
            (b"c", Some(b"")),
            (&long_key, Some(&long_value)),
        ];
        let n = encode_txn(
            &mut out,
            7,
            3,
            deletes.into_iter(),
            writes.clone().into_iter(),
            9,
        );
        assert_eq!(n, out.len());
        let (ops, records, marker) = ops_of(&out);
        assert_eq!(records, 1, "one batch record");
        assert_eq!(marker.synced_through, 9);
        let expected = vec![
            Op::DeleteRange {
                start: b"a/",
                end: Some(b"a0"),
            },
            Op::DeleteRange {
                start: b"z",
                end: None,
            },
            Op::Put {
                key: b"a",
                value: b"1",
            },
            Op::Delete { key: b"b" },
            Op::Put {
                key: b"c",
                value: b"",
            },
            Op::Put {
                key: &long_key,
                value: &long_value,
            },
        ];
        assert_eq!(ops, expected);
        // Tag, two one-byte varints and the bytes for `a`=`1`: 5 bytes, not 4 + 32.
        let first = decode(&out).expect("batch");
        let RecordBody::Batch(batch) = first.body else {
            panic!("expected a batch, got {:?}", first.body)
        };
        assert_eq!(
            batch.ops().nth(2).map(|(at, _)| at),
            Some(1 + 1 + 1 + 2 + 2 + 1 + 1 + 1 + 1)
        );
        let mut records = Vec::new();
        encode_txn_as(
            LogLayout::Records,
            &mut records,
            7,
            3,
            deletes.into_iter(),
            writes.into_iter(),
            9,
        );
        let (record_ops, count, _) = ops_of(&records);
        assert_eq!(
            (record_ops, count),
            (expected, 6),
            "both layouts say the same"
        );
    }

    #[test]
    fn batches_split_at_their_bound_and_a_large_write_travels_alone() {
        let value = vec![1u8; 1000];
        let huge = vec![2u8; BATCH_PAYLOAD_BYTES + 10];
        let keys: Vec<Vec<u8>> = (0..600u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut writes: Vec<(&[u8], Option<&[u8]>)> =
            keys.iter().map(|k| (&k[..], Some(&value[..]))).collect();
        writes.insert(300, (b"huge", Some(&huge)));
        let mut out = Vec::new();
        encode_txn(
            &mut out,
            1,
            1,
            std::iter::empty(),
            writes.clone().into_iter(),
            0,
        );
        let (ops, records, _) = ops_of(&out);
        assert_eq!(ops.len(), writes.len());
        // 300 writes of 1,008 bytes fill 260 per batch; the huge one is alone.
        assert_eq!(records, 5);
        let mut at = 0;
        while let Ok(rec) = decode(&out[at..]) {
            let payload = rec.len_total - RECORD_HEADER_BYTES;
            if let RecordBody::Batch(b) = rec.body {
                assert!(
                    payload <= BATCH_PAYLOAD_BYTES || b.count() == 1,
                    "batch of {payload}"
                );
            }
            at += rec.len_total;
        }
    }

    /// A batch record of `payload`, sealed.
    fn batch_record(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, RecordKind::Batch, 1, 1);
        out.extend_from_slice(payload);
        seal_record(&mut out, 0);
        out
    }

    #[test]
    fn a_batch_accepts_only_canonical_lengths_in_range_and_whole_operations() {
        assert!(decode(&batch_record(&[1, 1, 1, b'k', b'v'])).is_ok());
        let refused: [&[u8]; 11] = [
            &[],                                      // no operation
            &[1, 0x81, 0x00, 1, b'k', b'v'],          // key length 1 spelled in two bytes
            &[1, 1, 0x80, 0x00, b'k'],                // value length 0 spelled in two bytes
            &[1, 0, 1, b'v'],                         // empty key
            &[1, 0x81, 0x20, 0, b'k'],                // key length 4097
            &[1, 0xff, 0xff, 0xff, 0xff, 0x7f],       // a varint of 35 bits
            &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // a varint of six bytes
            &[1, 1, 2, b'k', b'v'],                   // value cut short
            &[3, 1, b'k'],                            // a commit is not an operation
            &[4, 1, 1, b'b', b'a'],                   // a range that ends before it starts
            &[2, 1, b'k', 9],                         // a stray byte after the last operation
        ];
        for payload in refused {
            assert!(
                matches!(
                    decode(&batch_record(payload)),
                    Err(DecodeError::MalformedPayload(_))
                ),
                "payload {payload:?} was accepted"
            );
        }
        // 64 MiB + 1 as a value length: in range of the varint, out of range of a value.
        let mut over = vec![1, 1];
        put_varint(&mut over, MAX_VALUE_BYTES as u32 + 1);
        over.push(b'k');
        assert!(decode(&batch_record(&over)).is_err());
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for n in [
            0u32,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_VALUE_BYTES as u32,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "length of {n}");
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at, MAX_VALUE_BYTES), Ok(n as usize));
            assert_eq!(at, out.len());
        }
    }

    #[test]
    fn every_single_byte_flip_of_a_batch_is_detected() {
        let mut out = Vec::new();
        let writes: [(&[u8], Option<&[u8]>); 2] = [(b"key", Some(b"value")), (b"gone", None)];
        encode_txn(&mut out, 9, 1, std::iter::empty(), writes.into_iter(), 0);
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
}
