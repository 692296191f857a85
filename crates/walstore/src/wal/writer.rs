//! [`Wal`]: the one owner of the log file's writer path (FORMAT.md §3-§4, RECOVERY.md).
//!
//! Everything that writes or syncs WAL bytes is a method here: appending a transaction (with
//! growth of the preallocated space), group commit and waiting for durability, the clean
//! marker, zeroing torn and stale tails, rewriting the clean-marker tail in place, and the
//! header reset of a checkpoint. Readers (`scan`, the header) read through [`Wal::file`].
//!
//! Invariant: any failed write or sync latches the poison flag, and from then on every write
//! and sync of this handle returns [`Error::Poisoned`] without touching the file (the
//! fsyncgate lesson: after a failed `fdatasync` the kernel may have dropped the dirty pages,
//! and a retried sync would report success over lost data).
//!
//! Invariant: an append acknowledged by [`Wal::wait_durable`] was covered by an
//! `fdatasync` that began after the append's `pwrite` returned.

use crate::error::{Error, Result};
use crate::faults::EngineFaults;
use crate::storage::StorageFile;
use crate::wal::record::LogLayout;
use crate::wal::{record, write_zeros, LogPosition, WalHeader};
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The log file of an open store and everything that writes it.
pub(crate) struct Wal {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    faults: EngineFaults,
    preallocate_bytes: u64,
    /// Every append ends on a multiple of this (0: no padding; `Options::sector_size`).
    sector_size: u64,
    /// Used only by the holder of the writer lock (never contended).
    appender: Mutex<Appender>,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    poison: Poison,
    /// Called once, when the poison flag is latched (the commit index shares it).
    on_poison: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    syncs: AtomicU64,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal").field("path", &self.path).finish()
    }
}

/// The append buffer and the file length as last seen.
#[derive(Debug, Default)]
struct Appender {
    scratch: Vec<u8>,
    /// Length of the WAL file as last seen (its preallocated size).
    file_len: u64,
    /// The layout of a generation's log, as its header says (read at the first append of the
    /// generation, or set by the header reset that starts it).
    layout: Option<(u64, LogLayout)>,
}

/// Group-commit bookkeeping.
#[derive(Debug, Default)]
struct SyncState {
    /// Sequence number of the last WAL write.
    written_seq: u64,
    /// Where the last WAL write ended.
    written_end: LogPosition,
    /// Every write with a sequence number up to this is durable.
    durable_seq: u64,
    /// Where the log is known durable.
    durable_end: LogPosition,
    /// A leader's `fdatasync` is in flight.
    syncing: bool,
}

/// The poison latch: set once, by the first failed write or sync, never cleared.
#[derive(Debug, Default)]
struct Poison {
    set: AtomicBool,
    cause: Mutex<Option<String>>,
}

/// What an append returns: its sequence number (for [`Wal::wait_durable`]) and where it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seq: u64,
    pub(crate) end: u64,
}

/// One transaction to append.
#[derive(Debug)]
pub(crate) struct TxnToAppend<'a> {
    pub(crate) generation: u64,
    pub(crate) salt: u64,
    pub(crate) txn_id: u64,
    /// Where the log ends now (where the transaction starts).
    pub(crate) at: u64,
    /// The durable offset the commit record vouches for.
    pub(crate) watermark: u64,
    /// The transaction's range deletions, applied before its writes.
    pub(crate) deletes: &'a [crate::snapshot::RangeDelete],
    /// The transaction's writes (a key and its new value, or `None` for a delete).
    pub(crate) writes: &'a BTreeMap<Arc<[u8]>, Option<Arc<[u8]>>>,
}

impl Wal {
    /// Takes ownership of an open log file whose length is `file_len`.
    pub(crate) fn new(
        file: Box<dyn StorageFile>,
        path: PathBuf,
        opts: &crate::options::Options,
        file_len: u64,
    ) -> Wal {
        Wal {
            file,
            path,
            faults: opts.faults,
            preallocate_bytes: opts.wal_preallocate_bytes,
            sector_size: opts.sector_size,
            appender: Mutex::new(Appender {
                scratch: Vec::new(),
                file_len,
                layout: None,
            }),
            sync: Mutex::new(SyncState::default()),
            sync_done: Condvar::new(),
            poison: Poison::default(),
            on_poison: std::sync::OnceLock::new(),
            syncs: AtomicU64::new(0),
        }
    }

    /// Writes the header of a new log into `file` (replacing whatever it held when `header` is
    /// given) and zero-fills and syncs it up to `preallocate_to`. For a file no [`Wal`] owns
    /// yet: store creation and backups.
    pub(crate) fn initialize(
        file: &dyn StorageFile,
        path: &Path,
        header: Option<&WalHeader>,
        preallocate_to: u64,
    ) -> Result<()> {
        if let Some(header) = header {
            file.set_len(0)
                .map_err(|e| Error::io("truncate", path, e))?;
            file.write_all_at(&header.encode(), 0)
                .map_err(|e| Error::io("write", path, e))?;
        }
        let len = file.len().map_err(|e| Error::io("stat", path, e))?;
        super::preallocate(file, len, preallocate_to).map_err(|e| Error::io("preallocate", path, e))
    }

    /// The log file, for reading.
    pub(crate) fn file(&self) -> &dyn StorageFile {
        self.file.as_ref()
    }

    /// The log file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current length.
    pub(crate) fn len(&self) -> Result<u64> {
        self.file
            .len()
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    /// `fdatasync`s made by group commit so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    // ---- The poison latch ----

    /// Whether a failed write or sync latched the poison flag.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.set.load(Ordering::Acquire)
    }

    /// The error every write returns once poisoned.
    pub(crate) fn poisoned_error(&self) -> Error {
        Error::Poisoned {
            cause: self
                .poison
                .cause
                .lock()
                .clone()
                .unwrap_or_else(|| "I/O error".into()),
        }
    }

    /// `Err(Poisoned)` once the latch is set.
    pub(crate) fn check_not_poisoned(&self) -> Result<()> {
        if self.is_poisoned() {
            return Err(self.poisoned_error());
        }
        Ok(())
    }

    /// Sets what latching the poison flag also does (once; later calls are ignored).
    pub(crate) fn on_poison(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_poison.set(hook);
    }

    /// Latches the poison flag (the first cause is kept) and wakes group-commit waiters.
    pub(crate) fn poison(&self, cause: &str) {
        let mut kept = self.poison.cause.lock();
        if kept.is_none() {
            *kept = Some(format!("{cause} of {} failed", self.path.display()));
        }
        self.poison.set.store(true, Ordering::Release);
        drop(kept);
        if let Some(hook) = self.on_poison.get() {
            hook();
        }
        let _s = self.sync.lock();
        self.sync_done.notify_all();
    }

    /// Runs one write or sync (`op`, as the error names it): refused once poisoned; a failure
    /// latches the poison flag with `cause` and is returned tagged with the path.
    fn io<T>(
        &self,
        cause: &'static str,
        op: &'static str,
        f: impl FnOnce() -> std::io::Result<T>,
    ) -> Result<T> {
        self.check_not_poisoned()?;
        f().map_err(|e| {
            self.poison(cause);
            Error::io(op, &self.path, e)
        })
    }

    fn fdatasync(&self, cause: &'static str) -> Result<()> {
        self.io(cause, "fdatasync", || self.file.sync_data())
    }

    // ---- Appending ----

    /// The watermark a commit written now may carry: the durable end of `generation`, or what
    /// the log itself already proved (`synced_through`), whichever is later.
    pub(crate) fn watermark(&self, generation: u64, synced_through: u64) -> u64 {
        let s = self.sync.lock();
        if s.durable_end.generation == generation {
            s.durable_end.offset.max(synced_through)
        } else {
            synced_through
        }
    }

    /// Encodes a transaction (its records and commit record) and writes it at `txn.at`,
    /// growing the preallocated space first if needed. Caller holds the writer lock.
    pub(crate) fn append_txn(&self, txn: TxnToAppend<'_>) -> Result<Appended> {
        let mut appender = self.appender.lock();
        let layout = self.layout_of(&mut appender, txn.generation)?;
        appender.scratch.clear();
        record::encode_txn_as(
            layout,
            &mut appender.scratch,
            txn.salt,
            txn.txn_id,
            txn.deletes.iter().map(|d| (&d.start[..], d.end.as_deref())),
            txn.writes.iter().map(|(k, v)| (&k[..], v.as_deref())),
            txn.watermark,
        );
        self.pad_to_sector(&mut appender.scratch, txn.at);
        #[cfg(debug_assertions)]
        check_encoded(
            &appender.scratch,
            txn.salt,
            txn.txn_id,
            txn.writes.len() + txn.deletes.len(),
        );
        let end = self.write_scratch(&mut appender, txn.at, "WAL write")?;
        // Invariant: the bytes written are exactly the encoded transaction.
        debug_assert_eq!(end, txn.at + appender.scratch.len() as u64);
        let mut s = self.sync.lock();
        s.written_seq += 1;
        s.written_end = LogPosition::new(txn.generation, end);
        Ok(Appended {
            seq: s.written_seq,
            end,
        })
    }

    /// How `generation`'s log lays out a transaction: batch records if its header says version
    /// 3, a record per write if it says 2 (a log started by an older build, which may still
    /// read it: FORMAT.md §3). A header that does not name the generation (never the case under
    /// the writer lock, where the catch-up checked it) gets records, which every build reads.
    fn layout_of(&self, appender: &mut Appender, generation: u64) -> Result<LogLayout> {
        match appender.layout {
            Some((g, layout)) if g == generation => return Ok(layout),
            _ => {}
        }
        let header =
            WalHeader::read(self.file.as_ref()).map_err(|e| Error::io("read", &self.path, e))?;
        Ok(match header {
            Ok(h) if h.generation == generation => {
                appender.layout = Some((generation, h.layout()));
                h.layout()
            }
            _ => LogLayout::Records,
        })
    }

    /// Records what the header of the current generation says, as read by an open: the next
    /// append needs no read of its own to learn the layout.
    pub(crate) fn note_header(&self, header: &WalHeader) {
        self.appender.lock().layout = Some((header.generation, header.layout()));
    }

    /// With sector padding on, pads the commit record that ends `encoded` so that the append
    /// starting at `at` ends on a sector boundary: the next append then starts a fresh sector
    /// and never rewrites one that holds synced bytes.
    fn pad_to_sector(&self, encoded: &mut Vec<u8>, at: u64) {
        if self.sector_size == 0 {
            return;
        }
        let end = at + encoded.len() as u64;
        let padding = end.next_multiple_of(self.sector_size) - end;
        record::pad_commit(encoded, padding as usize);
        // Invariant: every padded append ends on a sector boundary.
        debug_assert_eq!((at + encoded.len() as u64) % self.sector_size, 0);
    }

    /// Writes `appender.scratch` at `start`, growing the file first if needed.
    fn write_scratch(
        &self,
        appender: &mut Appender,
        start: u64,
        cause: &'static str,
    ) -> Result<u64> {
        let end = start + appender.scratch.len() as u64;
        if end > appender.file_len {
            self.grow(appender, start, end)?;
        }
        self.io(cause, "write", || {
            self.file.write_all_at(&appender.scratch, start)
        })?;
        Ok(end)
    }

    /// Makes room for a write of `start..needed_end`: zero-fills space past it, so the small
    /// commits that follow overwrite allocated, initialized blocks and their `fdatasync` has
    /// no size change to journal. The space grows with use (an eighth of the log, at least
    /// [`super::PREALLOCATE_MIN_BYTES`], at most `preallocate_bytes`), so a small store
    /// stays small. An append of more than [`super::LARGE_APPEND_BYTES`] is not zero-filled
    /// at all: it extends the file itself, and nothing follows it. Zeros cost a second write
    /// of every byte of log; a size change costs its `fdatasync` a journal commit, which is
    /// cheaper than writing that many zeros only for large appends (commits of 1,000 keys of
    /// 116 bytes wrote 0.56× of their bytes again as zeros; commits of 85 KiB lose a quarter
    /// of their speed when each extends the file, docs/BENCHMARKS.md stop 27; in batch
    /// records those 1,000 keys take 119 KB, under the 128 KiB the bound was until stop 30,
    /// and the overwrite's write amplification rose from 2.53 to 3.33: the log written twice).
    /// The zeros are
    /// not synced here: the commit's own `fdatasync` (or a later one) covers them with the
    /// records. Nothing relies on the zeros being durable; recovery treats whatever follows
    /// the log as a torn tail.
    fn grow(&self, appender: &mut Appender, start: u64, needed_end: u64) -> Result<()> {
        // The real length, under the writer lock: another process may have grown the file.
        let len = self.len()?;
        appender.file_len = len;
        if len >= needed_end {
            return Ok(());
        }
        if needed_end - start > super::LARGE_APPEND_BYTES {
            // The write itself extends the file to `needed_end`.
            appender.file_len = needed_end;
            return Ok(());
        }
        let min = super::PREALLOCATE_MIN_BYTES;
        let window = ((needed_end - super::WAL_HEADER_BYTES) / 8)
            .clamp(min, self.preallocate_bytes.max(min));
        let target = (needed_end + window).next_multiple_of(4096);
        // Part of the zero fill may reach the file on failure: the next writer treats it as a
        // torn tail; this handle cannot tell what reached the disk, so it poisons.
        self.io("WAL preallocation", "preallocate", || {
            write_zeros(self.file.as_ref(), len, target)
        })?;
        appender.file_len = target;
        Ok(())
    }

    // ---- Durability ----

    /// The last write's sequence number (0 before any).
    pub(crate) fn written_seq(&self) -> u64 {
        self.sync.lock().written_seq
    }

    /// Where the log is known durable.
    pub(crate) fn durable_end(&self) -> LogPosition {
        self.sync.lock().durable_end
    }

    /// Makes the log durable through `end` unless this handle already knows it is: called
    /// after a catch-up under the writer lock found another handle's transactions, so that
    /// the next commit record's watermark vouches for them (RECOVERY.md S1b).
    pub(crate) fn sync_caught_up(&self, end: LogPosition) -> Result<()> {
        if self.durable_end() >= end {
            return Ok(());
        }
        self.fdatasync("WAL fdatasync at catch-up")?;
        let mut s = self.sync.lock();
        if s.durable_end < end {
            s.durable_end = end;
        }
        Ok(())
    }

    /// Records that the log is durable through `end` (after a sync made outside group
    /// commit, at open).
    pub(crate) fn set_durable_end(&self, end: LogPosition) {
        self.sync.lock().durable_end = end;
    }

    /// Records that every write up to `seq` is durable by other means (a checkpoint folded
    /// them into durable snapshot files) and that the new generation's log is durable
    /// through `end`.
    pub(crate) fn covered_by_checkpoint(&self, seq: u64, end: LogPosition) {
        let mut s = self.sync.lock();
        s.durable_seq = s.durable_seq.max(seq);
        s.durable_end = end;
        self.sync_done.notify_all();
    }

    /// Waits until write `seq` is durable, syncing as the group's leader if no sync is in
    /// flight: the leader's `fdatasync` begins after every write numbered up to the
    /// `written_seq` it read, so it covers them all.
    pub(crate) fn wait_durable(&self, seq: u64) -> Result<()> {
        if self.faults.skip_wal_fsync() {
            return Ok(());
        }
        let mut s = self.sync.lock();
        loop {
            if s.durable_seq >= seq {
                return Ok(());
            }
            self.check_not_poisoned()?;
            if s.syncing {
                self.sync_done.wait(&mut s);
                continue;
            }
            s.syncing = true;
            let (target, end) = (s.written_seq, s.written_end);
            drop(s);
            let result = self.leader_sync();
            s = self.sync.lock();
            s.syncing = false;
            result?;
            let faulty = self.faults.ack_writes_issued_during_sync();
            let target = if faulty { s.written_seq } else { target };
            s.durable_seq = s.durable_seq.max(target);
            if end >= s.durable_end {
                s.durable_end = end;
            }
            self.sync_done.notify_all();
        }
    }

    /// The group leader's `fdatasync`.
    fn leader_sync(&self) -> Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if self.faults.retry_failed_fsync() && self.file.sync_data().is_err() {
            // The broken variant: trust a retry after a failed sync.
            return self.fdatasync("WAL fdatasync");
        }
        self.fdatasync("WAL fdatasync")
    }

    /// Makes every write made so far durable.
    pub(crate) fn sync_written(&self) -> Result<()> {
        match self.written_seq() {
            0 => Ok(()),
            seq => self.wait_durable(seq),
        }
    }

    /// A plain `fdatasync` of the whole file, outside group commit (at open).
    pub(crate) fn sync_now(&self, op: &'static str) -> Result<()> {
        self.fdatasync(op)
    }

    // ---- Markers, repairs and resets (all under the writer lock) ----

    /// Appends the *clean marker* (FORMAT.md §4.3) at `end`, the end of the log of
    /// `generation`: an empty commit record with the id of the last transaction and `end` as
    /// its watermark, written only after a sync of the whole log succeeded. The marker
    /// itself is not synced: it carries no data, proves only what lies before it, and the
    /// next open alone zeroes it and writes its first commit over it; an open beside other
    /// handles writes it back and syncs it (RECOVERY.md S1, S1a). Lost or torn at a power cut, it is a
    /// torn tail, and the log before it an unproven tail that the next open folds. The
    /// durable end stays at `end`. Returns the new end of the log.
    pub(crate) fn append_clean_marker(
        &self,
        generation: u64,
        salt: u64,
        last_txn: u64,
        end: u64,
    ) -> Result<u64> {
        let skip = self.faults.clean_marker_without_sync();
        if self.durable_end() != LogPosition::new(generation, end) && !skip {
            self.fdatasync("WAL fdatasync at close")?;
            self.set_durable_end(LogPosition::new(generation, end));
        }
        let mut appender = self.appender.lock();
        appender.scratch.clear();
        record::encode_txn(
            &mut appender.scratch,
            salt,
            last_txn,
            std::iter::empty(),
            std::iter::empty(),
            end,
        );
        self.pad_to_sector(&mut appender.scratch, end);
        self.write_scratch(&mut appender, end, "WAL write at close")
    }

    /// Zeroes the clean markers `[from, to)` that ended the log when this handle opened the
    /// store alone, without a sync (RECOVERY.md S1): the log ends at `from` now, and the
    /// first commit is written there. The markers carry no data and only proved the log
    /// before `from` durable, which it stays: whether the zeros reach the disk or not, torn
    /// or whole, what lies at `from` after a crash is the markers (the same proof), zeros or
    /// garbage (a torn tail whose data before it the next open folds), or a commit written
    /// over them (whose `fdatasync` also made the zeros after it durable).
    pub(crate) fn zero_markers(&self, from: u64, to: u64) -> Result<()> {
        self.io("zero clean markers at open", "write", || {
            write_zeros(self.file.as_ref(), from, to)
        })
    }

    /// Zeroes records of this generation past the end of the log (`[from, to)`), synced
    /// before anything else is written (RECOVERY.md L6).
    pub(crate) fn zero_stale_tail(&self, from: u64, to: u64) -> Result<()> {
        self.io("zero stale tail", "zero stale tail", || {
            write_zeros(self.file.as_ref(), from, to)
        })?;
        self.fdatasync("zero stale tail")
    }

    /// Zeroes a torn tail `[from, to)` that starts at the end of the log. The first record
    /// header goes first, synced on its own: a torn tail is often a transaction whose only
    /// damage is a garbage sector where the record bytes are zeros (a watermark's high bytes,
    /// say), and zeroing that sector before the rest would make the transaction whole again
    /// if a crash stopped the zeroing half-way: a discarded transaction would come back
    /// (crash harness, finding F). With its first header zero, it can never count again.
    pub(crate) fn zero_torn_tail(&self, from: u64, to: u64) -> Result<()> {
        let head_end = if self.faults.unordered_torn_tail_repair() {
            from
        } else {
            (from + record::RECORD_HEADER_BYTES as u64).min(to)
        };
        let zero = |from, to| {
            self.io("torn tail repair", "zero torn tail", || {
                write_zeros(self.file.as_ref(), from, to)?;
                self.file.sync_data()
            })
        };
        if self.faults.torn_tail_repair_one_sync() {
            return self.io("torn tail repair", "zero torn tail", || {
                write_zeros(self.file.as_ref(), from, head_end)?;
                write_zeros(self.file.as_ref(), head_end, to)?;
                self.file.sync_data()
            });
        }
        zero(from, head_end)?;
        zero(head_end, to)
    }

    /// Writes the clean markers `[from, to)` back over themselves: makes bytes the page cache
    /// may hold in pages marked clean (after another process's failed `fdatasync`) dirty
    /// again, so that the caller's `fdatasync` writes them. Markers carry no data: torn by a
    /// power cut during the rewrite, they are a torn tail (RECOVERY.md S1).
    pub(crate) fn rewrite_markers(&self, from: u64, to: u64) -> Result<()> {
        // Clean markers are 48 bytes each (a sector with sector padding), written one per
        // close: a small range.
        let mut buf = vec![0u8; to.saturating_sub(from).min(1 << 20) as usize];
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(buf.len());
            let read = self
                .file
                .read_full_at(&mut buf[..n], at)
                .map_err(|e| Error::io("read", &self.path, e))?;
            self.io("rewrite at open", "write", || {
                self.file.write_all_at(&buf[..read], at)
            })?;
            if read < n {
                break;
            }
            at += n as u64;
        }
        Ok(())
    }

    /// Writes the header of a new generation and syncs it: the last step of a checkpoint, or
    /// the repair of a header that names another generation (RECOVERY.md H2, H3). With
    /// `cut` (a checkpoint: every record is in the runs), a log that grew past the starting
    /// size is cut back to it first, in the same `fdatasync`: after a checkpoint the log's
    /// footprint is small again, and an open reads no dead log.
    pub(crate) fn reset_header(&self, header: &WalHeader, cut: bool) -> Result<()> {
        let small = super::WAL_HEADER_BYTES + super::PREALLOCATE_MIN_BYTES;
        if cut && self.len()? > small {
            let mut appender = self.appender.lock();
            self.io("WAL reset", "truncate", || self.file.set_len(small))?;
            appender.file_len = small;
        }
        self.io("WAL reset", "write", || {
            self.file.write_all_at(&header.encode(), 0)
        })?;
        self.note_header(header);
        self.fdatasync("WAL reset")
    }
}

/// Debug builds decode what the encoder just produced: a drifted layout fails at the first
/// commit instead of at the next recovery.
#[cfg(debug_assertions)]
fn check_encoded(bytes: &[u8], salt: u64, txn_id: u64, writes: usize) {
    let mut at = 0;
    let (mut records, mut ops) = (0, 0);
    loop {
        let rec = match record::decode(&bytes[at..]) {
            Ok(rec) => rec,
            Err(e) => panic!("an encoded record does not decode at {at}: {e}"),
        };
        assert_eq!((rec.salt, rec.txn_id), (salt, txn_id), "record at {at}");
        at += rec.len_total;
        match rec.body {
            record::RecordBody::Commit(marker) => {
                assert_eq!(marker.record_count as usize, records, "commit record count");
                assert_eq!(ops, writes, "writes before the commit record");
                assert_eq!(at, bytes.len(), "bytes after the commit record");
                return;
            }
            record::RecordBody::Batch(batch) => {
                records += 1;
                ops += batch.count() as usize;
            }
            _ => {
                records += 1;
                ops += 1;
            }
        }
    }
}
