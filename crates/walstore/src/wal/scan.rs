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
//!
//! Every read of a record goes through one probe ([`probe`]: declared length -> bounded read
//! -> validating decode), and every search for a generation's records through
//! [`search_records_of`]: the scan, the look past the end, and the catch-up's search for a
//! lagging header's records share them. The probe and the search live in `wal/probe.rs`, the
//! look past the end in `wal/tail.rs`; this module re-exports both, so callers name one path.

use super::probe::probe;
pub use super::probe::ReadConfig;
pub(crate) use super::probe::{has_record_of, ChunkReader, Probe};
use super::record::{CommitMarker, Op, Record, RecordBody, TxnChecksum};
pub use super::tail::classify_tail;
use crate::snapshot::RangeDelete;
use crate::storage::StorageFile;
use std::io;
use std::sync::Arc;

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
#[derive(Debug, Clone)]
pub struct ScannedTxn {
    pub txn_id: u64,
    /// Its range deletions, applied before its writes.
    pub deletes: Vec<RangeDelete>,
    pub writes: Vec<Write>,
    /// Offset just past its commit record.
    pub end: u64,
    /// The watermark its commit record carries.
    pub watermark: u64,
}

/// Scans committed transactions from `from` (a transaction boundary), calling `on_txn` for
/// each. `limit` bounds the scan (exclusive end offset), normally the file length.
pub fn scan(
    file: &dyn StorageFile,
    limit: u64,
    from: u64,
    salt: u64,
    expected_txn: u64,
    cfg: ReadConfig,
    mut on_txn: impl FnMut(ScannedTxn),
) -> io::Result<ScanEnd> {
    let mut reader = ChunkReader::new(file, limit, cfg);
    let mut txn = TxnInProgress::new(expected_txn);
    let mut pos = from;
    let mut end = from;
    let mut synced_through = 0;
    let stop = loop {
        let rec = match next_record(&mut reader, pos, salt, &txn)? {
            Ok(rec) => rec,
            Err(stop) => break stop,
        };
        let next = pos + rec.len_total as u64;
        match txn.add(rec, pos) {
            Err(stop) => break stop,
            Ok(None) => {}
            Ok(Some(parts)) => {
                synced_through = synced_through.max(parts.marker.synced_through);
                on_txn(ScannedTxn {
                    txn_id: parts.txn_id,
                    deletes: parts.deletes,
                    writes: parts.writes,
                    end: next,
                    watermark: parts.marker.synced_through,
                });
                end = next;
            }
        }
        pos = next;
    };
    Ok(ScanEnd {
        end,
        last_txn: txn.expected - 1,
        synced_through,
        stop,
    })
}

/// The record at `pos` if it continues the log of `salt`, or why the log stops there.
fn next_record<'r>(
    reader: &'r mut ChunkReader<'_>,
    pos: u64,
    salt: u64,
    txn: &TxnInProgress,
) -> io::Result<Result<Record<'r>, Stop>> {
    let unterminated = !txn.pending.is_empty();
    let clean_or_unterminated = || {
        if unterminated {
            damaged(pos, "transaction ends without its commit record")
        } else {
            Stop::Clean { offset: pos }
        }
    };
    Ok(Err(match probe(reader, pos)? {
        Probe::Record(rec) if rec.salt == salt => return Ok(Ok(rec)),
        Probe::Short { zero: true } if !unterminated => Stop::Clean { offset: pos },
        Probe::Short { .. } => damaged(pos, "record header cut short at end of file"),
        Probe::Zero => clean_or_unterminated(),
        Probe::Invalid { salt: s, error, .. } if s == salt => damaged(pos, &error.to_string()),
        // Another generation's bytes (a reused file): the end, unless a transaction is open.
        Probe::Record(_) | Probe::Invalid { .. } => {
            if unterminated {
                damaged(pos, "transaction ends without its commit record")
            } else {
                Stop::Foreign { offset: pos }
            }
        }
    }))
}

/// A transaction read whole.
struct ScannedParts {
    txn_id: u64,
    deletes: Vec<RangeDelete>,
    writes: Vec<Write>,
    marker: CommitMarker,
}

/// The records of the transaction being read, checked against its commit record.
struct TxnInProgress {
    expected: u64,
    deletes: Vec<RangeDelete>,
    pending: Vec<Write>,
    checksum: TxnChecksum,
}

impl TxnInProgress {
    fn new(expected: u64) -> Self {
        TxnInProgress {
            expected,
            deletes: Vec::new(),
            pending: Vec::new(),
            checksum: TxnChecksum::default(),
        }
    }

    /// Adds a record of this generation; on a commit record returns the whole transaction.
    #[allow(clippy::type_complexity)]
    fn add(&mut self, rec: Record<'_>, pos: u64) -> Result<Option<ScannedParts>, Stop> {
        // A clean marker (FORMAT.md §4.3): an empty commit record carrying the id of the
        // transaction it follows. It proves the log durable up to its own start.
        let clean_marker = rec.txn_id.checked_add(1) == Some(self.expected)
            && self.pending.is_empty()
            && self.deletes.is_empty()
            && matches!(&rec.body, RecordBody::Commit(m) if m.record_count == 0);
        if rec.txn_id != self.expected && !clean_marker {
            let detail = format!(
                "transaction id {} where {} was expected",
                rec.txn_id, self.expected
            );
            return Err(damaged(pos, &detail));
        }
        match rec.body {
            RecordBody::Write(op) => self.push(op, pos)?,
            RecordBody::Batch(batch) => {
                // Bounded by the record: every write takes at least 3 bytes of it.
                self.pending.reserve(batch.count() as usize);
                for (_, op) in batch.ops() {
                    self.push(op, pos)?;
                }
            }
            RecordBody::Commit(marker) => {
                return self.commit(rec.txn_id, marker, clean_marker, pos)
            }
        }
        self.checksum.add(rec.crc);
        Ok(None)
    }

    /// Adds one write of the transaction. A range deletion after another write breaks the
    /// grammar (FORMAT.md §4.3), in one batch as across records.
    fn push(&mut self, op: Op<'_>, pos: u64) -> Result<(), Stop> {
        match op {
            Op::Put { key, value } => self.pending.push((Arc::from(key), Some(Arc::from(value)))),
            Op::Delete { key } => self.pending.push((Arc::from(key), None)),
            Op::DeleteRange { start, end } => {
                if !self.pending.is_empty() {
                    let detail = "range deletion after another write of its transaction";
                    return Err(damaged(pos, detail));
                }
                self.deletes.push(RangeDelete {
                    start: Arc::from(start),
                    end: end.map(Arc::from),
                });
            }
        }
        Ok(())
    }

    /// The transaction's commit record: the whole transaction, if the record vouches for
    /// what was read.
    fn commit(
        &mut self,
        txn_id: u64,
        marker: CommitMarker,
        clean_marker: bool,
        pos: u64,
    ) -> Result<Option<ScannedParts>, Stop> {
        if !self.checksum.matches(&marker) {
            let detail = "commit record does not match the transaction's records";
            return Err(damaged(pos, detail));
        }
        self.checksum = TxnChecksum::default();
        if !clean_marker {
            self.expected += 1;
        }
        Ok(Some(ScannedParts {
            txn_id,
            deletes: std::mem::take(&mut self.deletes),
            writes: std::mem::take(&mut self.pending),
            marker,
        }))
    }
}

fn damaged(offset: u64, detail: &str) -> Stop {
    Stop::Damaged {
        offset,
        detail: detail.to_string(),
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
            encode_txn(
                &mut out,
                salt,
                *id,
                std::iter::empty(),
                writes.iter().copied(),
                *synced,
            );
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
        let cfg = ReadConfig::default();
        let end = scan(f.as_ref(), bytes.len() as u64, 0, salt, 1, cfg, |t| {
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
            ReadConfig::default(),
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
        let class = classify_tail(
            f.as_ref(),
            cut as u64,
            5,
            2,
            end.stop.offset(),
            ReadConfig::default(),
        )
        .expect("classify");
        assert_eq!(class.corruption, None);
    }
}
