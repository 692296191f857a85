//! Reading the change feed: committed transactions in commit order from the sealed segments
//! (oldest first) and then from the live log, durable ones only.
//!
//! The live log is read up to the offset through which some handle's sync made it durable
//! (the commit index's durable LSN), with the generation's salt: a checkpoint that resets
//! the log under a reader makes the reader's scan stop at the first overwritten record (it
//! carries the new salt), and what it read before is the old generation's, intact and
//! checked. A reader that then wants a transaction of a generation before the live one reads
//! it from that generation's sealed segment, or gets [`Error::FeedGap`] if none was kept.

use super::file::{FeedState, Sealed};
use super::segment_name;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::storage::{OpenMode, StorageFile};
use crate::wal::scan::{scan, ReadConfig, ScannedTxn, Stop};
use crate::wal::{WalHeader, WAL_HEADER_BYTES};
use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One committed transaction's changes under the feed's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord {
    /// The transaction's id.
    pub txn_id: u64,
    /// Its range deletions, `[start, end)` (no end: every key from `start` on), clipped to
    /// the prefix; they apply before the writes.
    pub range_deletes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Its writes, in key order (a transaction writes each key once: its last write): a key
    /// and its new value, `None` for a delete.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Bytes of log read at a time (a larger transaction is read whole).
const BATCH_BYTES: u64 = 4 << 20;
/// Looks in a row that may race a checkpoint's reset before a fill gives up for now.
const RETRIES: usize = 8;

/// Where the next transaction is in one source: a sealed segment or the live log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    generation: u64,
    salt: u64,
    sealed: bool,
    offset: u64,
    expected: u64,
}

/// The live log as a look found it: its header and how far it is durable.
struct Live {
    header: WalHeader,
    durable_end: u64,
}

/// The committed transactions after a given one, in commit order, whose changes touch a
/// prefix ([`crate::Store::changes`]). Iterating blocks until the next durable commit, in any
/// process; [`Changes::next_timeout`] waits at most a given time, [`Changes::try_next`] not
/// at all. Transactions with no change under the prefix are passed over (the position moves
/// past them all the same).
pub struct Changes {
    core: Arc<Core>,
    prefix: Vec<u8>,
    next_txn: u64,
    ready: VecDeque<FeedRecord>,
    cursor: Option<Cursor>,
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("prefix", &self.prefix)
            .field("position", &self.position())
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl Changes {
    pub(crate) fn new(core: Arc<Core>, prefix: &[u8], since_txn: u64) -> Changes {
        Changes {
            core,
            prefix: prefix.to_vec(),
            next_txn: since_txn.saturating_add(1),
            ready: VecDeque::new(),
            cursor: None,
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The last transaction id passed (read and queued, or passed over): the feed resumes
    /// after it.
    pub fn position(&self) -> u64 {
        match self.ready.front() {
            Some(r) => r.txn_id - 1,
            None => self.next_txn - 1,
        }
    }

    /// The next record, waiting up to `timeout` for a durable commit; `Ok(None)` if none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<FeedRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.ready.pop_front() {
                return Ok(Some(record));
            }
            let seen = self.core.change_counter();
            if self.fill()? {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.core.wait_change(seen, left);
        }
    }

    /// The next record if one is durable now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<FeedRecord>> {
        self.next_timeout(Duration::ZERO)
    }

    /// Reads one batch from wherever the next transaction is; whether it moved.
    fn fill(&mut self) -> Result<bool> {
        self.core.check_usable(false)?;
        for _ in 0..RETRIES {
            let Some(live) = self.look()? else {
                return Ok(false);
            };
            let before = self.next_txn;
            if before > live.header.base_txn {
                self.read_live(&live)?;
                if self.next_txn > before || self.same_header(&live)? {
                    return Ok(self.next_txn > before);
                }
            } else if self.read_sealed(&live)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The live log's header, and how far it is durable; `None` while a checkpoint resets it.
    fn look(&self) -> Result<Option<Live>> {
        let wal = self.core.wal();
        let header = match WalHeader::read(wal.file()) {
            Ok(Ok(h)) => h,
            Ok(Err(_)) => return Ok(None),
            Err(e) => return Err(Error::io("read", wal.path(), e)),
        };
        let durable_end = match self.core.index() {
            Some(index) => match index.read() {
                Ok(s) if s.generation == header.generation && s.salt == header.salt => {
                    index.durable_end(&s)
                }
                _ => return Ok(None),
            },
            None => {
                let end = wal.durable_end();
                if end.generation != header.generation {
                    return Ok(None);
                }
                end.offset
            }
        };
        Ok(Some(Live {
            header,
            durable_end,
        }))
    }

    fn same_header(&self, live: &Live) -> Result<bool> {
        let wal = self.core.wal();
        match WalHeader::read(wal.file()) {
            Ok(h) => Ok(h == Ok(live.header)),
            Err(e) => Err(Error::io("read", wal.path(), e)),
        }
    }

    fn read_live(&mut self, live: &Live) -> Result<()> {
        let h = live.header;
        let start = self.start(h.generation, h.salt, false, h.base_txn);
        let core = Arc::clone(&self.core);
        let wal = core.wal();
        let stop = self.read_from(wal.file(), start, live.durable_end)?;
        if let Some(stop) = stop {
            if self.same_header(live)? {
                return Err(damage(wal.path(), &stop));
            }
        }
        Ok(())
    }

    /// Reads the next batch from the sealed segment holding the next transaction; whether
    /// it moved.
    fn read_sealed(&mut self, live: &Live) -> Result<bool> {
        let core = Arc::clone(&self.core);
        let (storage, dir) = (core.storage(), core.dir());
        let state = FeedState::read(storage, dir)?;
        let kept: Vec<Sealed> = state
            .segments
            .into_iter()
            .filter(|s| s.generation < live.header.generation)
            .collect();
        let Some(seg) = kept
            .iter()
            .find(|s| s.first_txn <= self.next_txn && self.next_txn <= s.last_txn)
            .copied()
        else {
            let oldest = kept
                .iter()
                .map(|s| s.first_txn)
                .chain([live.header.base_txn + 1])
                .find(|first| *first > self.next_txn)
                .unwrap_or(live.header.base_txn + 1);
            return Err(Error::FeedGap {
                wanted: self.next_txn,
                oldest,
            });
        };
        let path = dir.join(segment_name(seg.generation));
        let file = match storage.open(&path, OpenMode::ReadOnly) {
            Ok(f) => f,
            // Dropped since the look: the next look says what is kept.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let header = match WalHeader::read(file.as_ref()) {
            Ok(Ok(h)) if h.generation == seg.generation && h.base_txn + 1 == seg.first_txn => h,
            Ok(_) => {
                let detail = "sealed segment's header does not match the feed file";
                return Err(Error::corruption(&path, 0, detail));
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let before = self.next_txn;
        let start = self.start(seg.generation, header.salt, true, header.base_txn);
        let stop = self.read_from(file.as_ref(), start, seg.bytes)?;
        let done = self.cursor.is_some_and(|c| c.offset >= seg.bytes);
        if stop.is_some() || (done && self.next_txn <= seg.last_txn) {
            let stop = stop.unwrap_or(Stop::Clean { offset: seg.bytes });
            return Err(damage(&path, &stop));
        }
        Ok(self.next_txn > before)
    }

    /// Where to read from in a source: the cursor if it is in that source, else its start.
    fn start(&self, generation: u64, salt: u64, sealed: bool, base_txn: u64) -> Cursor {
        match self.cursor {
            Some(c) if c.generation == generation && c.salt == salt && c.sealed == sealed => c,
            _ => Cursor {
                generation,
                salt,
                sealed,
                offset: WAL_HEADER_BYTES,
                expected: base_txn + 1,
            },
        }
    }

    /// Reads one batch from `start` up to `end` (a transaction boundary) and queues what it
    /// found; returns the stop if the log stopped before `end` (damage).
    fn read_from(
        &mut self,
        file: &dyn StorageFile,
        start: Cursor,
        end: u64,
    ) -> Result<Option<Stop>> {
        if start.offset >= end {
            return Ok(None);
        }
        let cfg = ReadConfig::of(self.core.opts());
        let mut limit = end.min(start.offset + BATCH_BYTES);
        loop {
            let mut got = Vec::new();
            let scanned = scan(
                file,
                limit,
                start.offset,
                start.salt,
                start.expected,
                cfg,
                |t| got.push(t),
            )
            .map_err(|e| Error::io("read", self.core.wal().path(), e))?;
            if got.is_empty() && limit < end {
                limit = end.min(start.offset + 2 * (limit - start.offset));
                continue;
            }
            for txn in got {
                self.take(txn);
            }
            self.cursor = Some(Cursor {
                offset: scanned.end,
                expected: scanned.last_txn + 1,
                ..start
            });
            let damaged = limit == end
                && scanned.end < end
                && matches!(scanned.stop, Stop::Damaged { .. } | Stop::Foreign { .. });
            return Ok(damaged.then_some(scanned.stop));
        }
    }

    /// Queues a scanned transaction's changes under the prefix (if it is the next one).
    fn take(&mut self, txn: ScannedTxn) {
        if txn.txn_id < self.next_txn {
            return;
        }
        self.next_txn = txn.txn_id + 1;
        let p = &self.prefix[..];
        let writes: Vec<_> = txn
            .writes
            .into_iter()
            .filter(|(k, _)| k.starts_with(p))
            .map(|(k, v)| (k.to_vec(), v.map(|v| v.to_vec())))
            .collect();
        let range_deletes: Vec<_> = txn
            .deletes
            .iter()
            .filter_map(|d| clip(&d.start, d.end.as_deref(), p))
            .collect();
        if !writes.is_empty() || !range_deletes.is_empty() {
            self.ready.push_back(FeedRecord {
                txn_id: txn.txn_id,
                range_deletes,
                writes,
            });
        }
    }
}

/// The part of `[start, end)` under `prefix`, if any.
fn clip(start: &[u8], end: Option<&[u8]>, prefix: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let upper = prefix_end(prefix);
    let lo = start.max(prefix);
    let hi = match (end, upper.as_deref()) {
        (Some(e), Some(u)) => Some(e.min(u)),
        (Some(e), None) => Some(e),
        (None, u) => u,
    };
    if hi.is_some_and(|h| h <= lo) {
        return None;
    }
    Some((lo.to_vec(), hi.map(<[u8]>::to_vec)))
}

/// The first key after every key starting with `prefix` (`None`: no such key).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn damage(path: &Path, stop: &Stop) -> Error {
    let detail = match stop {
        Stop::Damaged { detail, .. } => format!("the change feed found damaged log: {detail}"),
        Stop::Foreign { .. } => "the change feed found another generation's record".into(),
        Stop::Clean { .. } => "the log ends before its last transaction".into(),
    };
    Error::corruption(PathBuf::from(path), stop.offset(), detail)
}

impl Iterator for Changes {
    type Item = Result<FeedRecord>;

    /// Blocks until the next record.
    fn next(&mut self) -> Option<Result<FeedRecord>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(record)) => return Some(Ok(record)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_deletions_are_clipped_to_the_prefix() {
        let c = |s: &[u8], e: Option<&[u8]>, p: &[u8]| clip(s, e, p);
        assert_eq!(
            c(b"a", None, b"b"),
            Some((b"b".to_vec(), Some(b"c".to_vec())))
        );
        assert_eq!(c(b"a", Some(b"b"), b"b"), None);
        assert_eq!(
            c(b"b1", Some(b"b5"), b"b"),
            Some((b"b1".to_vec(), Some(b"b5".to_vec())))
        );
        assert_eq!(c(b"x", None, b""), Some((b"x".to_vec(), None)));
        assert_eq!(c(b"\xff", None, b"\xff"), Some((b"\xff".to_vec(), None)));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
    }
}
