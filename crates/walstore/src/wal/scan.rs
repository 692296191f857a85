//! Reading committed transactions out of the WAL, and deciding what its end means.
//!
//! A scan starts at a transaction boundary with the generation's salt and the next expected
//! transaction id, and hands every transaction whose commit marker is intact to a callback.
//! It stops at the first byte that does not continue the log: zero-filled space ([`Stop::Clean`]),
//! a record of another generation ([`Stop::Foreign`]), or anything carrying this generation's
//! salt that is not the next valid record ([`Stop::Damaged`]: a torn write, stale leftovers
//! of a killed writer, or media damage).
//!
//! [`classify_tail`] then tells a torn tail from corruption deterministically (RECOVERY.md):
//! every commit marker records the offset through which the log was durable when it was
//! written; a later intact marker of this generation whose watermark lies beyond the stop
//! offset proves the bytes at the stop had been synced, so their damage is corruption.

use super::record::{
    self, CommitMarker, DecodeError, RecordBody, TxnChecksum, COMMIT_PAYLOAD_BYTES,
    RECORD_HEADER_BYTES, RECORD_PAYLOAD_MAX, SALT_FIELD_OFFSET,
};
use crate::format::{read_u32, read_u64};
use crate::storage::StorageFile;
use std::io;
use std::sync::Arc;

/// Bytes read from the file at a time, at most.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of the first read of a scan.
const FIRST_CHUNK_BYTES: usize = 4096;

/// One write of a committed transaction: a key and its new value, or `None` for a delete.
pub type Write = (Arc<[u8]>, Option<Arc<[u8]>>);

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// End of file or zero-filled space: the clean end of the log.
    Clean { offset: u64 },
    /// A record of another generation (stale bytes of a reused file).
    Foreign { offset: u64 },
    /// Bytes of this generation that do not continue the log.
    Damaged { offset: u64, detail: String },
}

impl Stop {
    /// Where the scan stopped.
    pub fn offset(&self) -> u64 {
        match self {
            Stop::Clean { offset } | Stop::Foreign { offset } | Stop::Damaged { offset, .. } => {
                *offset
            }
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Offset just past the last committed transaction.
    pub end: u64,
    /// Id of the last committed transaction (or the starting `expected - 1`).
    pub last_txn: u64,
    /// Largest durable watermark carried by the commit markers read.
    pub synced_through: u64,
    /// Why the scan stopped.
    pub stop: Stop,
}

/// A committed transaction as the scan hands it over.
#[derive(Debug)]
pub struct ScannedTxn {
    pub txn_id: u64,
    pub writes: Vec<Write>,
    /// Offset just past its commit record.
    pub end: u64,
}

/// Reads a file through a buffer of whole chunks, never allocating more than the largest
/// valid record beyond the chunk size, whatever lengths the bytes declare.
///
/// The first read is small (a catch-up that finds nothing new costs one 4 KiB read); each
/// further read doubles, up to [`CHUNK_BYTES`], so long scans run at full speed.
pub(crate) struct ChunkReader<'f> {
    file: &'f dyn StorageFile,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

impl<'f> ChunkReader<'f> {
    pub(crate) fn new(file: &'f dyn StorageFile, file_len: u64) -> Self {
        ChunkReader {
            file,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
            chunk: FIRST_CHUNK_BYTES,
        }
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    pub(crate) fn get(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let want_end = offset.saturating_add(len as u64).min(self.file_len);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset < self.buf_start || want_end > buf_end {
            let read_len = (self.file_len.saturating_sub(offset)).min(len.max(self.chunk) as u64);
            self.chunk = (self.chunk * 2).min(CHUNK_BYTES);
            // Grow the buffer only as the file proves it has the bytes: a catch-up scan does
            // not know the file's length (it passes u64::MAX), and a length declared by
            // damaged bytes must not size an allocation (found by the recovery fuzz target).
            let read_len = read_len as usize;
            let mut step = read_len.min(CHUNK_BYTES);
            self.buf.clear();
            loop {
                let filled = self.buf.len();
                let target = (filled + step).min(read_len);
                self.buf.resize(target, 0);
                let n = self
                    .file
                    .read_full_at(&mut self.buf[filled..], offset + filled as u64)?;
                self.buf.truncate(filled + n);
                if filled + n < target || self.buf.len() >= read_len {
                    break;
                }
                step = step.saturating_mul(2);
            }
            self.buf_start = offset;
        }
        let start = (offset - self.buf_start) as usize;
        let end = ((want_end.max(offset) - self.buf_start) as usize).min(self.buf.len());
        Ok(&self.buf[start.min(end)..end])
    }
}

/// Scans committed transactions from `from` (a transaction boundary), calling `on_txn` for
/// each. `limit` bounds the scan (exclusive end offset), normally the file length.
pub fn scan(
    file: &dyn StorageFile,
    limit: u64,
    from: u64,
    salt: u64,
    expected_txn: u64,
    mut on_txn: impl FnMut(ScannedTxn),
) -> io::Result<ScanEnd> {
    let mut reader = ChunkReader::new(file, limit);
    let mut pos = from;
    let mut end = from;
    let mut expected = expected_txn;
    let mut synced_through = 0;
    let mut pending: Vec<Write> = Vec::new();
    let mut checksum = TxnChecksum::default();
    let stop = loop {
        let header = reader.get(pos, RECORD_HEADER_BYTES)?;
        if header.len() < RECORD_HEADER_BYTES {
            break if header.iter().all(|b| *b == 0) && pending.is_empty() {
                Stop::Clean { offset: pos }
            } else {
                Stop::Damaged {
                    offset: pos,
                    detail: "record header cut short at end of file".into(),
                }
            };
        }
        if header.iter().all(|b| *b == 0) {
            break clean_or_unterminated(pos, &pending);
        }
        if read_u64(header, SALT_FIELD_OFFSET) != Some(salt) {
            break if pending.is_empty() {
                Stop::Foreign { offset: pos }
            } else {
                damaged(pos, "transaction ends without its commit record")
            };
        }
        let declared = read_u32(header, 4).unwrap_or(0) as usize;
        let total = RECORD_HEADER_BYTES + declared.min(RECORD_PAYLOAD_MAX + 1);
        let bytes = reader.get(pos, total)?;
        let rec = match record::decode(bytes) {
            Ok(rec) => rec,
            Err(DecodeError::Zero) => break clean_or_unterminated(pos, &pending),
            Err(e) => break damaged(pos, &e.to_string()),
        };
        // A clean marker (FORMAT.md §4.3): an empty commit record carrying the id of the
        // transaction it follows. It proves the log durable up to its own start.
        let clean_marker = rec.txn_id.checked_add(1) == Some(expected)
            && pending.is_empty()
            && matches!(&rec.body, RecordBody::Commit(m) if m.record_count == 0);
        if rec.txn_id != expected && !clean_marker {
            break damaged(
                pos,
                &format!(
                    "transaction id {} where {expected} was expected",
                    rec.txn_id
                ),
            );
        }
        let next = pos + rec.len_total as u64;
        match rec.body {
            RecordBody::Put { key, value } => {
                checksum.add(rec.crc);
                pending.push((Arc::from(key), Some(Arc::from(value))));
            }
            RecordBody::Delete { key } => {
                checksum.add(rec.crc);
                pending.push((Arc::from(key), None));
            }
            RecordBody::Commit(marker) => {
                if !checksum.matches(&marker) {
                    break damaged(
                        pos,
                        "commit record does not match the transaction's records",
                    );
                }
                synced_through = synced_through.max(marker.synced_through);
                on_txn(ScannedTxn {
                    txn_id: rec.txn_id,
                    writes: std::mem::take(&mut pending),
                    end: next,
                });
                checksum = TxnChecksum::default();
                if !clean_marker {
                    expected += 1;
                }
                end = next;
            }
        }
        pos = next;
    };
    // A stop inside a transaction is reported at the transaction's first byte when nothing
    // of it could be read as damaged; otherwise at the record that broke it.
    Ok(ScanEnd {
        end,
        last_txn: expected - 1,
        synced_through,
        stop,
    })
}

fn damaged(offset: u64, detail: &str) -> Stop {
    Stop::Damaged {
        offset,
        detail: detail.to_string(),
    }
}

fn clean_or_unterminated(pos: u64, pending: &[Write]) -> Stop {
    if pending.is_empty() {
        Stop::Clean { offset: pos }
    } else {
        damaged(pos, "transaction ends without its commit record")
    }
}

/// What lies after the point where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailClass {
    /// `Some((offset, detail))` when bytes that had been synced are damaged.
    pub corruption: Option<(u64, String)>,
    /// End of the last byte that plausibly belongs to a record of this generation; the torn
    /// tail to clear before appending spans from the log's end to here.
    pub dirty_end: u64,
}

/// Decides whether the log's stop at `stop_offset` is a torn tail or corruption, by looking
/// for later intact commit markers of this generation (see the module documentation).
pub fn classify_tail(
    file: &dyn StorageFile,
    limit: u64,
    salt: u64,
    expected_txn: u64,
    stop_offset: u64,
) -> io::Result<TailClass> {
    let salt_bytes = salt.to_le_bytes();
    let finder = memchr::memmem::Finder::new(&salt_bytes);
    let mut dirty_end = stop_offset;
    let mut corruption = None;
    let mut reader = ChunkReader::new(file, limit);
    // Candidate record starts are searched chunk by chunk; a chunk overlaps the next by a
    // record header plus a commit payload so no header is split unseen.
    let overlap = (RECORD_HEADER_BYTES + COMMIT_PAYLOAD_BYTES) as u64;
    let mut chunk_start = stop_offset + 1;
    while chunk_start < limit {
        let chunk = reader.get(chunk_start, CHUNK_BYTES)?.to_vec();
        for at in finder.find_iter(&chunk) {
            let salt_pos = chunk_start + at as u64;
            let Some(rec_start) = salt_pos.checked_sub(SALT_FIELD_OFFSET as u64) else {
                continue;
            };
            if rec_start <= stop_offset {
                continue;
            }
            let header = reader.get(rec_start, RECORD_HEADER_BYTES + COMMIT_PAYLOAD_BYTES)?;
            let Some(declared) = read_u32(header, 4) else {
                continue;
            };
            if declared as usize <= RECORD_PAYLOAD_MAX {
                let rec_end = rec_start + (RECORD_HEADER_BYTES as u64) + u64::from(declared);
                if rec_end <= limit {
                    dirty_end = dirty_end.max(rec_end);
                }
            }
            if corruption.is_none() {
                if let Some(marker) = commit_marker(header, salt, expected_txn) {
                    if marker.synced_through > stop_offset {
                        corruption = Some((
                            stop_offset,
                            format!(
                                "damaged log record followed by an intact commit at offset \
                                 {rec_start} that proves offsets up to {} were durable",
                                marker.synced_through
                            ),
                        ));
                    }
                }
            }
        }
        if chunk.len() as u64 <= overlap {
            break;
        }
        chunk_start += chunk.len() as u64 - overlap;
    }
    Ok(TailClass {
        corruption,
        dirty_end,
    })
}

fn commit_marker(bytes: &[u8], salt: u64, expected_txn: u64) -> Option<CommitMarker> {
    let rec = record::decode(bytes).ok()?;
    match rec.body {
        RecordBody::Commit(marker) if rec.salt == salt && rec.txn_id >= expected_txn => {
            Some(marker)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, OpenMode, Storage};
    use crate::wal::record::encode_txn;
    use std::path::Path;

    type TxnSpec<'a> = (u64, &'a [(&'a [u8], Option<&'a [u8]>)], u64);

    fn log_of(txns: &[TxnSpec<'_>], salt: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, writes, synced) in txns {
            encode_txn(&mut out, salt, *id, writes.iter().copied(), *synced);
        }
        out
    }

    fn file_with(bytes: &[u8]) -> Box<dyn StorageFile> {
        let fs = MemoryStorage::new();
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let f = fs
            .open(Path::new("/d/wal"), OpenMode::Create)
            .expect("open");
        f.write_all_at(bytes, 0).expect("write");
        f
    }

    fn scan_all(bytes: &[u8], salt: u64) -> (Vec<u64>, ScanEnd) {
        let f = file_with(bytes);
        let mut ids = Vec::new();
        let end = scan(f.as_ref(), bytes.len() as u64, 0, salt, 1, |t| {
            ids.push(t.txn_id)
        })
        .expect("scan");
        (ids, end)
    }

    #[test]
    fn empty_log_is_clean() {
        let (ids, end) = scan_all(&[], 5);
        assert!(ids.is_empty());
        assert_eq!(end.stop, Stop::Clean { offset: 0 });
    }

    #[test]
    fn zero_filled_tail_is_clean() {
        let mut log = log_of(&[(1, &[(b"a", Some(b"1"))], 0)], 5);
        let len = log.len() as u64;
        log.extend_from_slice(&[0u8; 4096]);
        let (ids, end) = scan_all(&log, 5);
        assert_eq!(ids, vec![1]);
        assert_eq!(end.stop, Stop::Clean { offset: len });
        assert_eq!(end.end, len);
    }

    #[test]
    fn record_cut_by_one_byte_at_tail_is_damaged_but_prefix_kept() {
        let log = log_of(
            &[(1, &[(b"a", Some(b"1"))], 0), (2, &[(b"b", Some(b"2"))], 0)],
            5,
        );
        let (ids, end) = scan_all(&log[..log.len() - 1], 5);
        assert_eq!(ids, vec![1]);
        assert!(matches!(end.stop, Stop::Damaged { .. }));
    }

    #[test]
    fn stale_generation_is_foreign() {
        let mut log = log_of(&[(1, &[(b"a", Some(b"1"))], 0)], 5);
        let len = log.len() as u64;
        log.extend(log_of(&[(2, &[(b"x", Some(b"y"))], 0)], 6));
        let (ids, end) = scan_all(&log, 5);
        assert_eq!(ids, vec![1]);
        assert_eq!(end.stop, Stop::Foreign { offset: len });
    }

    #[test]
    fn regressing_transaction_id_stops_the_log() {
        let log = log_of(
            &[(1, &[(b"a", Some(b"1"))], 0), (1, &[(b"b", Some(b"2"))], 0)],
            5,
        );
        let (ids, end) = scan_all(&log, 5);
        assert_eq!(ids, vec![1]);
        assert!(matches!(end.stop, Stop::Damaged { .. }));
    }

    #[test]
    fn damage_covered_by_a_later_watermark_is_corruption() {
        let first = log_of(&[(1, &[(b"a", Some(b"1"))], 0)], 5);
        let second_start = first.len() as u64;
        let mut log = first.clone();
        log.extend(log_of(&[(2, &[(b"b", Some(b"2"))], second_start)], 5));
        let third_watermark = log.len() as u64;
        log.extend(log_of(&[(3, &[(b"c", Some(b"3"))], third_watermark)], 5));
        log[second_start as usize + 40] ^= 0xff;
        let f = file_with(&log);
        let (ids, end) = scan_all(&log, 5);
        assert_eq!(ids, vec![1]);
        let class = classify_tail(
            f.as_ref(),
            log.len() as u64,
            5,
            end.last_txn + 1,
            end.stop.offset(),
        )
        .expect("classify");
        assert!(class.corruption.is_some(), "{class:?}");
    }

    #[test]
    fn torn_last_transaction_is_not_corruption() {
        let mut log = log_of(&[(1, &[(b"a", Some(b"1"))], 0)], 5);
        let start = log.len() as u64;
        log.extend(log_of(&[(2, &[(b"b", Some(b"2"))], start)], 5));
        let cut = log.len() - 3;
        let f = file_with(&log[..cut]);
        let (ids, end) = scan_all(&log[..cut], 5);
        assert_eq!(ids, vec![1]);
        let class =
            classify_tail(f.as_ref(), cut as u64, 5, 2, end.stop.offset()).expect("classify");
        assert_eq!(class.corruption, None);
    }
}
