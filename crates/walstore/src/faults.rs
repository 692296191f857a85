//! Deliberately broken engine variants, compiled in only with the `fault-injection` feature.
//!
//! The crash harness (`walstore-crashtest`) enables them in its own tests to prove that it
//! notices each class of bug. Without the feature every flag is a constant `false` and the
//! checks compile away.

/// Which safety steps to skip. All `false` by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineFaults {
    /// Never `fdatasync` the WAL on commit (acknowledges commits that are not durable).
    pub skip_wal_fsync: bool,
    /// Rename a new snapshot file into place before syncing it.
    pub rename_snapshot_before_fsync: bool,
    /// Seal a generation's log for the change feed (`log-<gen>.seg`) without syncing the
    /// segment before it is listed: a power cut can leave a listed segment without its
    /// records, and a consumer's transactions gone. Caught by the `feed` workload.
    pub seal_segment_without_sync: bool,
    /// Acknowledge a change feed position without first making the log durable through it:
    /// a power cut can lose a Buffered commit the consumer's position names, and the next
    /// commit (reusing its id) is skipped. Caught by the `feed` workload.
    pub ack_without_log_sync: bool,
    /// Skip the directory fsync after renaming snapshot files and the manifest.
    pub skip_dir_fsync: bool,
    /// Treat a damaged record in the middle of the WAL as a torn tail (silently dropping
    /// every later commit).
    pub mid_log_damage_is_torn_tail: bool,
    /// Retry a failed WAL fsync and trust the retry instead of poisoning the store.
    pub retry_failed_fsync: bool,
    /// At open, make the unproven tail durable by writing it back over itself instead of
    /// folding it with a checkpoint (the engine before finding A was fixed).
    pub rewrite_unproven_tail_in_place: bool,
    /// At open, trust the page cache: leave the unproven tail to a plain `fdatasync` (the
    /// engine before the `ops` fuzz target found the fsyncgate case).
    pub trust_page_cache_at_open: bool,
    /// Accept a WAL record whose checksum matches with any valid kind byte in place of the
    /// stored one: a record CRC that leaves the kind unprotected (a flipped kind turns a
    /// commit record into a valid delete). Caught by aimed corruption of record headers.
    pub record_crc_skips_kind: bool,
    /// Zero a torn tail with one write and one sync, without zeroing and syncing its first
    /// record header on its own first (the engine before finding F was fixed). Caught by the
    /// constructed torn tails and the crash points of their repair.
    pub unordered_torn_tail_repair: bool,
    /// A range read that starts inside a snapshot file starts one entry before its lower
    /// bound. Caught by the oracle's bounded reads.
    pub range_seek_one_entry_early: bool,
    /// Look for commit records past the end of the log only one read chunk far (code that
    /// assumes the log ends within a chunk). Caught with the engine's read chunk shrunk.
    pub tail_search_one_chunk: bool,
    /// Append the clean marker at close without first syncing log bytes this handle caught
    /// up on (another handle's Buffered commits), and leave them unsynced at the catch-up
    /// too (S1b: since the reload path syncs them as well, the marker's own sync alone is no
    /// longer the last line): the marker vouches for bytes that may not be durable. Caught
    /// only with a second handle.
    pub clean_marker_without_sync: bool,
    /// An open alone that zeroed the clean markers ending the log takes the log durable
    /// through their end instead of their start: its first commit, written over them, then
    /// carries a watermark past its own start, and a crash that tears it reads as damage to
    /// durable bytes (corruption) where it is a torn tail. Caught by crashes during the
    /// first commit after a reopen.
    pub durable_through_zeroed_markers: bool,
    /// A sync's notice stores the commit index's durable LSN instead of raising it: a late
    /// notice of an older sync (another thread's, another handle's) moves it back, and a
    /// `Buffered` commit after a synced `Immediate` one stays hidden. Caught by reads of
    /// the other handle.
    pub durable_lsn_stored: bool,
    /// Group commit: a finished `fdatasync` acknowledges every commit written by then,
    /// including those written while it was in progress (which it may not cover). Caught
    /// only with two committer threads and a sync held in progress.
    pub ack_writes_issued_during_sync: bool,
    /// A range deletion also deletes its end key (an inclusive end where the API promises an
    /// exclusive one). Caught by the crash harness's `ranges` workload, whose deletions end
    /// at keys that exist.
    pub range_delete_end_inclusive: bool,
    /// A merge that leaves the oldest run out drops tombstones and range deletions as if it
    /// merged the oldest: an older run's value of a deleted key comes back. Caught only by
    /// a routine merge of the newer runs (a compaction merges every run).
    pub merge_drops_deletes_above_oldest: bool,
    /// At open, skip the check for stale records past the end of the log (L6) when the log
    /// ends with a clean marker, as if a clean close left nothing past it: two unsynced
    /// commits after a clean close and reopen, the second kept by a crash without the
    /// first, leave a stale transaction past the marker that a later commit of the first
    /// one's length lines up. Caught by the crash harness's `clean-reopen` workload.
    pub skip_stale_check_after_clean_marker: bool,
    /// Show an `Immediate` commit to readers (in every process) as soon as it is written, as
    /// a `Buffered` one, before the sync that covers it returns. Caught by the crash
    /// harness's reads while a sync is held in progress.
    pub show_immediate_before_sync: bool,
    /// A failed WAL write or sync poisons only the handle that saw it, not the other handles
    /// of the store (its poison goes to a private index). Caught by the crash harness with two
    /// handles and injected I/O errors.
    pub poison_not_shared: bool,
    /// Show a `Buffered` commit to readers only once a sync covers it, as an `Immediate`
    /// one (where the engine promises it visible once written). Caught by the crash
    /// harness's reads from the other handle right after a commit.
    pub hide_buffered_until_sync: bool,
    /// Vouch (sync) for other handles' transactions only when a catch-up under the writer
    /// lock read them from the log, not when a reader's catch-up had taken them in before
    /// (the crash harness's finding I). Caught by `read-then-commit` with aimed damage.
    pub vouch_only_after_scan: bool,
    /// A reverse range read that starts inside a snapshot file starts one entry past its
    /// upper bound (an off-by-one in the backwards seek). Caught by the oracle's reverse
    /// reads.
    pub reverse_seek_one_past_end: bool,
    /// A point get ignores the range deletions of the memtable and of the log index (scans
    /// honour them): a run's value of a key deleted by a range comes back to `get`. Caught
    /// by point gets of the keys a range deletion removed.
    pub get_ignores_range_deletes: bool,
    /// A checkpoint lists the run of the commits made while it wrote its first run (phase 2's
    /// tail) below that first run instead of above it: an older value of a key the tail
    /// rewrote wins. Caught only with a commit made while a checkpoint writes its run.
    pub checkpoint_tail_run_below: bool,
    /// The holder of the writer lock trusts the commit index's section even when the lock
    /// is dirty (the previous holder died holding it, RECOVERY.md I4): a transaction a killed
    /// writer appended but never published is written over. Caught only by a kill of the
    /// lock's holder between its log write and its commit-index update.
    pub trust_dirty_lock: bool,
    /// Zero a torn tail's first record header and the rest in two writes but one sync, after
    /// both (the header's own sync skipped): a crash may keep the second write without the
    /// first, and a transaction whose only damage lay in zero bytes is whole again. Caught by
    /// the crash points of the repair with its writes kept or dropped independently.
    pub torn_tail_repair_one_sync: bool,
}

impl EngineFaults {
    #[inline]
    pub(crate) fn torn_tail_repair_one_sync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.torn_tail_repair_one_sync
    }
    #[inline]
    pub(crate) fn trust_dirty_lock(&self) -> bool {
        cfg!(feature = "fault-injection") && self.trust_dirty_lock
    }
    #[inline]
    pub(crate) fn reverse_seek_one_past_end(&self) -> bool {
        cfg!(feature = "fault-injection") && self.reverse_seek_one_past_end
    }
    #[inline]
    pub(crate) fn get_ignores_range_deletes(&self) -> bool {
        cfg!(feature = "fault-injection") && self.get_ignores_range_deletes
    }
    #[inline]
    pub(crate) fn checkpoint_tail_run_below(&self) -> bool {
        cfg!(feature = "fault-injection") && self.checkpoint_tail_run_below
    }
    #[inline]
    pub(crate) fn vouch_only_after_scan(&self) -> bool {
        cfg!(feature = "fault-injection") && self.vouch_only_after_scan
    }
    #[inline]
    pub(crate) fn skip_wal_fsync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.skip_wal_fsync
    }
    #[inline]
    pub(crate) fn rename_snapshot_before_fsync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.rename_snapshot_before_fsync
    }
    #[inline]
    pub(crate) fn seal_segment_without_sync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.seal_segment_without_sync
    }
    #[inline]
    pub(crate) fn ack_without_log_sync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.ack_without_log_sync
    }
    #[inline]
    pub(crate) fn skip_dir_fsync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.skip_dir_fsync
    }
    #[inline]
    pub(crate) fn mid_log_damage_is_torn_tail(&self) -> bool {
        cfg!(feature = "fault-injection") && self.mid_log_damage_is_torn_tail
    }
    #[inline]
    pub(crate) fn retry_failed_fsync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.retry_failed_fsync
    }
    #[inline]
    pub(crate) fn rewrite_unproven_tail_in_place(&self) -> bool {
        cfg!(feature = "fault-injection") && self.rewrite_unproven_tail_in_place
    }
    #[inline]
    pub(crate) fn trust_page_cache_at_open(&self) -> bool {
        cfg!(feature = "fault-injection") && self.trust_page_cache_at_open
    }
    #[inline]
    pub(crate) fn record_crc_skips_kind(&self) -> bool {
        cfg!(feature = "fault-injection") && self.record_crc_skips_kind
    }
    #[inline]
    pub(crate) fn unordered_torn_tail_repair(&self) -> bool {
        cfg!(feature = "fault-injection") && self.unordered_torn_tail_repair
    }
    #[inline]
    pub(crate) fn range_seek_one_entry_early(&self) -> bool {
        cfg!(feature = "fault-injection") && self.range_seek_one_entry_early
    }
    #[inline]
    pub(crate) fn tail_search_one_chunk(&self) -> bool {
        cfg!(feature = "fault-injection") && self.tail_search_one_chunk
    }
    #[inline]
    pub(crate) fn durable_lsn_stored(&self) -> bool {
        cfg!(feature = "fault-injection") && self.durable_lsn_stored
    }
    #[inline]
    pub(crate) fn durable_through_zeroed_markers(&self) -> bool {
        cfg!(feature = "fault-injection") && self.durable_through_zeroed_markers
    }
    #[inline]
    pub(crate) fn clean_marker_without_sync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.clean_marker_without_sync
    }
    #[inline]
    pub(crate) fn ack_writes_issued_during_sync(&self) -> bool {
        cfg!(feature = "fault-injection") && self.ack_writes_issued_during_sync
    }
    /// How far the open looks for stale records (`limit`, the log's length): with
    /// `skip_stale_check_after_clean_marker` and a log that closed cleanly, not past its end
    /// (`wal_end`).
    #[inline]
    pub(crate) fn stale_limit(&self, limit: u64, closed_cleanly: bool, wal_end: u64) -> u64 {
        let skip = cfg!(feature = "fault-injection") && self.skip_stale_check_after_clean_marker;
        if skip && closed_cleanly {
            wal_end.min(limit)
        } else {
            limit
        }
    }
    /// Whether a commit written `immediate` waits for its sync to be shown to readers.
    #[inline]
    pub(crate) fn wait_for_sync_to_show(&self, immediate: bool) -> bool {
        if !cfg!(feature = "fault-injection") {
            return immediate;
        }
        (immediate || self.hide_buffered_until_sync) && !self.show_immediate_before_sync
    }
    /// The commit index a failed WAL write or sync of this handle poisons: `index`, or with
    /// `poison_not_shared` a private one no other handle sees.
    pub(crate) fn poison_target(
        &self,
        index: std::sync::Arc<crate::index::CommitIndex>,
    ) -> std::sync::Arc<crate::index::CommitIndex> {
        if !(cfg!(feature = "fault-injection") && self.poison_not_shared) {
            return index;
        }
        let private = crate::storage::MemRegions::default()
            .open(std::path::Path::new("private"), None)
            .expect("a new in-memory region opens");
        std::sync::Arc::new(crate::index::CommitIndex::new(private.region))
    }
    /// Whether a merge of `chosen_bottom` (whether it includes the oldest run) drops deletes.
    #[inline]
    pub(crate) fn merge_bottom(&self, chosen_bottom: bool) -> bool {
        chosen_bottom
            || (cfg!(feature = "fault-injection") && self.merge_drops_deletes_above_oldest)
    }
    /// `d` as the engine records it: with `range_delete_end_inclusive`, its end key is
    /// deleted too (the end moves to the next key).
    #[inline]
    pub(crate) fn range_delete(
        &self,
        d: crate::snapshot::RangeDelete,
    ) -> crate::snapshot::RangeDelete {
        if !(cfg!(feature = "fault-injection") && self.range_delete_end_inclusive) {
            return d;
        }
        let end = d.end.map(|e| {
            let mut next = e.to_vec();
            next.push(0);
            std::sync::Arc::from(next)
        });
        crate::snapshot::RangeDelete {
            start: d.start,
            end,
        }
    }
}
