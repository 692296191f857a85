//! The commit index: the few words in shared memory (FORMAT.md §8) through which the handles
//! of one store, in every process, learn what the others did without reading the log, see
//! commits only once they are durable, and share the poison flag.
//!
//! - The *section* (generation, salt, LSN base, written end, last transaction, barrier) is
//!   changed only by the holder of the writer lock, under a sequence lock: the sequence word is
//!   odd while it changes; a checksum covers it. Readers copy it between two reads of the
//!   sequence word and [`decode`] what they copied.
//! - The durable and visible LSNs grow by `fetch_max`, without the lock (a commit's sync
//!   finishes after the lock is released). An LSN is a byte position in the log of all
//!   generations: the section's base is the LSN of offset 0 of the current generation's log.
//! - The change counter grows whenever what readers may see changes (the visible LSN, the
//!   generation, the poison flag); the wake-up word wakes watchers.
//!
//! Invariant: nothing here is trusted without [`decode`]'s checks; a handle that finds the
//! section invalid reads the files instead (and a writer rewrites it).

use crate::storage::{SharedRegion, REGION_WORDS};
use crate::wal::WAL_HEADER_BYTES;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

/// `WSTINDEX` read as a little-endian `u64`.
pub const INDEX_MAGIC: u64 = u64::from_le_bytes(*b"WSTINDEX");
/// The index layout's version (FORMAT.md §8).
pub const INDEX_VERSION: u64 = 1;

/// Word numbers (FORMAT.md §8).
mod w {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const SEQ: usize = 2;
    pub const GENERATION: usize = 3;
    pub const SALT: usize = 4;
    pub const BASE_LSN: usize = 5;
    pub const WRITTEN_END: usize = 6;
    pub const LAST_TXN: usize = 7;
    pub const BARRIER_END: usize = 8;
    pub const CHECKSUM: usize = 9;
    pub const DURABLE_LSN: usize = 10;
    pub const VISIBLE_LSN: usize = 11;
    pub const COUNTER: usize = 12;
    pub const POISONED_BY: usize = 13;
    pub const WATCHERS: usize = 14;
    pub const DIRTY: usize = 15;
    pub const LOG_INDEX_ID: usize = 16;
    pub const HANDLES: usize = 17;
}

/// How many words [`decode`] reads: magic through the visible LSN.
pub const INDEX_WORDS: usize = w::VISIBLE_LSN + 1;

const _: () = assert!(w::HANDLES < REGION_WORDS);

/// What a consistent read of the index says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexState {
    /// The current generation (of the manifest and the WAL header).
    pub generation: u64,
    /// The salt of its log.
    pub salt: u64,
    /// The LSN of offset 0 of its log.
    pub base_lsn: u64,
    /// Where the last transaction written ends (a log offset).
    pub written_end: u64,
    /// The id of the last transaction written.
    pub last_txn: u64,
    /// Where the last `Immediate` commit of this generation ends (a log offset):
    /// commits after it may be shown once the log is durable through it.
    pub barrier_end: u64,
    /// Readers see the log up to this LSN.
    pub visible_lsn: u64,
}

impl IndexState {
    /// Whether the section describes `head` (same generation, end and last transaction).
    pub(crate) fn describes(&self, head: &Head) -> bool {
        self.generation == head.generation
            && self.salt == head.salt
            && self.written_end == head.wal_end
            && self.last_txn == head.last_txn
    }

    /// The log offset readers see up to.
    pub fn visible_end(&self) -> u64 {
        self.visible_lsn - self.base_lsn
    }
}

/// Why the words of the index cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexError {
    /// Not an index of this layout (magic or version).
    Foreign,
    /// A writer is changing the section (or died doing so).
    Changing,
    /// The checksum does not match.
    Checksum,
    /// The fields contradict each other.
    Inconsistent,
}

/// The checksum of the section: XXH3-64 of the magic, version, sequence and section words.
fn checksum(words: &[u64; INDEX_WORDS]) -> u64 {
    let mut bytes = [0u8; 8 * (w::BARRIER_END + 1)];
    for (i, word) in words[..=w::BARRIER_END].iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Checks and decodes a copy of the index's first [`INDEX_WORDS`] words.
pub fn decode(words: &[u64; INDEX_WORDS]) -> Result<IndexState, IndexError> {
    if words[w::MAGIC] != INDEX_MAGIC || words[w::VERSION] != INDEX_VERSION {
        return Err(IndexError::Foreign);
    }
    if words[w::SEQ] % 2 == 1 {
        return Err(IndexError::Changing);
    }
    if checksum(words) != words[w::CHECKSUM] {
        return Err(IndexError::Checksum);
    }
    let state = IndexState {
        generation: words[w::GENERATION],
        salt: words[w::SALT],
        base_lsn: words[w::BASE_LSN],
        written_end: words[w::WRITTEN_END],
        last_txn: words[w::LAST_TXN],
        barrier_end: words[w::BARRIER_END],
        visible_lsn: words[w::VISIBLE_LSN],
    };
    let consistent = state.written_end >= WAL_HEADER_BYTES
        && state.barrier_end >= WAL_HEADER_BYTES
        && state.barrier_end <= state.written_end
        && state.base_lsn.checked_add(state.written_end).is_some()
        && state.visible_lsn >= state.base_lsn + WAL_HEADER_BYTES
        && state.visible_lsn <= state.base_lsn + state.written_end;
    if !consistent {
        return Err(IndexError::Inconsistent);
    }
    Ok(state)
}

/// Encodes `state` as the words a writer stores (sequence number `seq`, even).
pub fn encode(state: &IndexState, seq: u64) -> [u64; INDEX_WORDS] {
    let mut words = [0u64; INDEX_WORDS];
    words[w::MAGIC] = INDEX_MAGIC;
    words[w::VERSION] = INDEX_VERSION;
    words[w::SEQ] = seq;
    words[w::GENERATION] = state.generation;
    words[w::SALT] = state.salt;
    words[w::BASE_LSN] = state.base_lsn;
    words[w::WRITTEN_END] = state.written_end;
    words[w::LAST_TXN] = state.last_txn;
    words[w::BARRIER_END] = state.barrier_end;
    words[w::CHECKSUM] = checksum(&words);
    words[w::VISIBLE_LSN] = state.visible_lsn;
    words
}

/// What a writer publishes: the head of the log after its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) generation: u64,
    pub(crate) salt: u64,
    pub(crate) wal_end: u64,
    pub(crate) last_txn: u64,
}

/// How many times a reader copies the section before it gives up on a writer in progress.
const READ_ATTEMPTS: usize = 200;

/// A handle's view of the commit index.
#[derive(Debug)]
pub(crate) struct CommitIndex {
    region: Box<dyn SharedRegion>,
}

impl CommitIndex {
    pub(crate) fn new(region: Box<dyn SharedRegion>) -> CommitIndex {
        CommitIndex { region }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        &self.region.words()[i]
    }

    /// Lets other openers in (after [`CommitIndex::rebuild`] by the first).
    pub(crate) fn share(&self) -> std::io::Result<()> {
        self.region.share()
    }

    /// The change counter (acquire: what changed before it was bumped is seen after).
    pub(crate) fn counter(&self) -> u64 {
        self.word(w::COUNTER).load(Ordering::Acquire)
    }

    /// A consistent, checked copy of the index. A writer in progress is waited for briefly
    /// (it holds the section for a few stores); a section that stays odd is a writer killed
    /// in the middle, reported as [`IndexError::Changing`].
    pub(crate) fn read(&self) -> Result<IndexState, IndexError> {
        let mut last = IndexError::Changing;
        for attempt in 0..READ_ATTEMPTS {
            let s1 = self.word(w::SEQ).load(Ordering::Acquire);
            let mut words = [0u64; INDEX_WORDS];
            for (i, out) in words.iter_mut().enumerate() {
                *out = self.word(i).load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            let s2 = self.word(w::SEQ).load(Ordering::Relaxed);
            if s1 == s2 && words[w::SEQ] == s1 {
                match decode(&words) {
                    Err(IndexError::Changing) => last = IndexError::Changing,
                    other => return other,
                }
            }
            if attempt > 16 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        Err(last)
    }

    /// Writes the section (the caller holds the writer lock), then raises the visible LSN to
    /// `visible` if given, inside the sequence lock so that no reader sees a generation with a
    /// visible LSN below its base.
    fn write_section(&self, state: &IndexState, visible: Option<u64>) {
        let seq = self.word(w::SEQ);
        let old = seq.load(Ordering::Relaxed);
        // Odd stays odd while we write (a writer killed mid-update left it odd).
        let odd = old | 1;
        let odd = if odd == old { old + 2 } else { odd };
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        let words = encode(state, odd + 1);
        for (i, word) in words.iter().enumerate() {
            // The LSN words move by `fetch_max` outside the sequence lock.
            if i != w::SEQ && i != w::VISIBLE_LSN && i != w::DURABLE_LSN {
                self.word(i).store(*word, Ordering::Relaxed);
            }
        }
        if let Some(v) = visible {
            self.word(w::VISIBLE_LSN).fetch_max(v, Ordering::Relaxed);
        }
        seq.store(odd + 1, Ordering::Release);
    }

    /// Marks the log as possibly changed past the section (the caller just took the writer
    /// lock) and says whether the previous holder left it matching the section: if it did
    /// not (it died holding the lock, or did not publish), this holder must read the log.
    pub(crate) fn lock_taken(&self) -> bool {
        self.word(w::DIRTY).swap(1, Ordering::AcqRel) == 0
    }

    /// Says that the log ends where the section says (the caller, holding the writer lock,
    /// checked it and is about to release the lock).
    pub(crate) fn lock_left_clean(&self) {
        self.word(w::DIRTY).store(0, Ordering::Release);
    }

    /// Bumps the change counter and wakes watchers (if any wait).
    fn changed(&self) {
        self.word(w::COUNTER).fetch_add(1, Ordering::AcqRel);
        if self.word(w::WATCHERS).load(Ordering::Acquire) > 0 {
            self.region.wake_all();
        }
    }

    /// Raises the visible LSN; bumps the counter if it moved.
    fn show(&self, lsn: u64) {
        let before = self.word(w::VISIBLE_LSN).fetch_max(lsn, Ordering::AcqRel);
        if before < lsn {
            self.changed();
        }
    }

    /// Sets up a fresh index (the first handle to open the store, under the writer lock):
    /// `head` is the recovered log, all of it durable through `durable_end` (short of the
    /// head by the clean markers the open rewrote without a sync: a handle that appends
    /// after them syncs first).
    pub(crate) fn rebuild(&self, head: Head, durable_end: u64) {
        // The log index named so far was made by this region's handles (this open's load, in a
        // fresh region): it stays named.
        let log_index = self.log_index_id();
        for i in 0..REGION_WORDS {
            self.word(i).store(0, Ordering::Relaxed);
        }
        self.set_log_index_id(log_index);
        let state = IndexState {
            generation: head.generation,
            salt: head.salt,
            base_lsn: 0,
            written_end: head.wal_end,
            last_txn: head.last_txn,
            barrier_end: WAL_HEADER_BYTES,
            visible_lsn: head.wal_end,
        };
        self.word(w::DURABLE_LSN)
            .store(durable_end.min(head.wal_end), Ordering::Relaxed);
        self.write_section(&state, Some(head.wal_end));
        self.changed();
    }

    /// Publishes the head of the log after a change by the holder of the writer lock other
    /// than a commit (a catch-up that found another handle's transactions, a new
    /// generation, the clean marker, a repair of a damaged section). `durable`: the log is
    /// durable through `head` (everything in it may be shown).
    pub(crate) fn set_head(&self, head: Head, durable: bool) {
        let old = self.read();
        let same_generation = matches!(old, Ok(s) if s.generation == head.generation && s.salt == head.salt && s.written_end <= head.wal_end);
        let (base_lsn, barrier_end) = match old {
            Ok(s) if same_generation => (s.base_lsn, s.barrier_end),
            // A new generation starts past everything the old one showed or wrote.
            Ok(s) => (s.base_lsn + s.written_end, WAL_HEADER_BYTES),
            Err(_) => {
                let floor = self
                    .word(w::VISIBLE_LSN)
                    .load(Ordering::Acquire)
                    .max(self.word(w::DURABLE_LSN).load(Ordering::Acquire));
                (floor, WAL_HEADER_BYTES)
            }
        };
        let visible_now = self.word(w::VISIBLE_LSN).load(Ordering::Acquire);
        let head_lsn = base_lsn + head.wal_end;
        let visible = if durable || !same_generation {
            // A new generation's log starts after a checkpoint made everything durable.
            head_lsn
        } else {
            visible_now.clamp(base_lsn + WAL_HEADER_BYTES, head_lsn)
        };
        let state = IndexState {
            generation: head.generation,
            salt: head.salt,
            base_lsn,
            written_end: head.wal_end,
            last_txn: head.last_txn,
            barrier_end: barrier_end.min(head.wal_end),
            visible_lsn: visible,
        };
        if durable || !same_generation {
            self.word(w::DURABLE_LSN)
                .fetch_max(head_lsn, Ordering::AcqRel);
        }
        let before = visible_now;
        self.write_section(&state, Some(visible));
        if visible > before || !same_generation {
            self.changed();
        }
    }

    /// Publishes a commit (the caller holds the writer lock and has just written it).
    /// A `Buffered` commit is shown at once unless an earlier `Immediate` commit still waits
    /// for its sync; an `Immediate` one when [`CommitIndex::durable`] says so.
    ///
    /// Invariant: a commit and a sync notice never both miss each other. This writes the
    /// section, then reads the durable LSN; [`CommitIndex::durable`] raises the durable LSN,
    /// then reads the section; a `SeqCst` fence sits between the two steps of each, so at
    /// least one of them sees the other's step and shows the commit. (Reading the durable LSN
    /// before writing the section, as this did, let a sync notice that read the section
    /// just before and a commit that read the durable LSN just before both decide the
    /// other would show it: the commit stayed hidden until some later sync. RECOVERY.md I8.)
    pub(crate) fn committed(&self, head: Head, immediate: bool) {
        let Ok(old) = self.read() else {
            // A damaged section: rewrite it (the log is not known durable through this commit).
            return self.set_head(head, false);
        };
        if old.generation != head.generation || old.salt != head.salt {
            return self.set_head(head, false);
        }
        let state = IndexState {
            written_end: head.wal_end,
            last_txn: head.last_txn,
            barrier_end: if immediate {
                head.wal_end
            } else {
                old.barrier_end
            },
            ..old
        };
        self.write_section(&state, None);
        if immediate {
            return;
        }
        fence(Ordering::SeqCst);
        let durable = self.word(w::DURABLE_LSN).load(Ordering::Acquire);
        if durable >= old.base_lsn + old.barrier_end {
            self.show(old.base_lsn + head.wal_end);
        }
    }

    /// The log offset of `state`'s generation up to which some handle's sync made the log
    /// durable (the durable LSN, as an offset).
    pub(crate) fn durable_end(&self, state: &IndexState) -> u64 {
        self.word(w::DURABLE_LSN)
            .load(Ordering::Acquire)
            .saturating_sub(state.base_lsn)
            .min(state.written_end)
    }

    /// Records that the log of `generation` is durable through `end` (a sync returned):
    /// shows everything up to there, and the `Buffered` commits after it when no
    /// `Immediate` commit after it waits for a sync.
    ///
    /// `end` may lie past the index's written end: the sync covered bytes the next writer
    /// appended after the lock passed to it, before its [`CommitIndex::committed`]. The
    /// notice then counts up to the written end (all of it durable); dropping it instead
    /// left an `Immediate` commit's barrier standing, so the `Buffered` commit after it
    /// stayed hidden from every other handle, and from a new open, until some later sync
    /// (RECOVERY.md I8).
    pub(crate) fn durable(&self, generation: u64, end: u64) {
        self.note_durable(generation, end, true);
    }

    /// [`CommitIndex::durable`]; with `raise` false, the broken variant
    /// `durable_lsn_stored`: the durable LSN is stored, not raised, so a late notice of an
    /// older sync moves it back.
    pub(crate) fn note_durable(&self, generation: u64, end: u64, raise: bool) {
        let Ok(s) = self.read() else {
            return;
        };
        if s.generation != generation {
            return; // a checkpoint since showed everything of that generation
        }
        let end = end.min(s.written_end);
        let word = self.word(w::DURABLE_LSN);
        let before = if raise {
            word.fetch_max(s.base_lsn + end, Ordering::AcqRel)
        } else {
            word.swap(s.base_lsn + end, Ordering::AcqRel)
        };
        fence(Ordering::SeqCst);
        // Look at the section again: a commit published since `s` was read may have missed
        // this notice (see `committed`).
        let now = match self.read() {
            Ok(now) if now.generation == s.generation && now.base_lsn == s.base_lsn => now,
            _ => s,
        };
        let upto = if now.barrier_end <= end {
            now.written_end
        } else {
            end
        };
        self.show(s.base_lsn + upto);
        if before < s.base_lsn + end {
            // The change feed follows the durable end, which may move after the visible one.
            self.changed();
        }
    }

    /// The process that poisoned the store (a failed write or sync), if one did.
    /// Counts a handle that opened the store (its open set the index up, or joined it).
    pub(crate) fn handle_opened(&self) {
        self.word(w::HANDLES).fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a handle that closes the store; whether no other handle has it open (as far as
    /// the count knows: a process killed with the store open is never uncounted, so the count
    /// errs towards "others are open" until every process has closed it).
    pub(crate) fn handle_closed(&self) -> bool {
        let before = self.word(w::HANDLES).fetch_sub(1, Ordering::AcqRel);
        if before == 0 {
            // Not counted (a damaged word): put it back, and say others may be open.
            self.word(w::HANDLES).fetch_add(1, Ordering::AcqRel);
            return false;
        }
        before == 1
    }

    /// The id of the log index file the handles of this index use (FORMAT.md §9); 0: none
    /// yet. Zero in a fresh index, so no file left over from before is ever taken for it.
    pub(crate) fn log_index_id(&self) -> u64 {
        self.word(w::LOG_INDEX_ID).load(Ordering::Acquire)
    }

    /// Names the log index file the handles use from now on (its creator: the writer lock's
    /// holder, or the first handle to open the store).
    pub(crate) fn set_log_index_id(&self, id: u64) {
        self.word(w::LOG_INDEX_ID).store(id, Ordering::Release);
    }

    pub(crate) fn poisoned_by(&self) -> Option<u64> {
        match self.word(w::POISONED_BY).load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Poisons the store for every handle in every process (until all have closed it).
    pub(crate) fn poison(&self) {
        let pid = u64::from(std::process::id()).max(1);
        if self
            .word(w::POISONED_BY)
            .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.changed();
        }
    }

    /// Waits (without polling) until the change counter moves past `seen`, or `timeout`.
    pub(crate) fn wait_change(&self, seen: u64, timeout: Duration) {
        let watchers = self.word(w::WATCHERS);
        watchers.fetch_add(1, Ordering::AcqRel);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let wake = self.region.wake_word().load(Ordering::Acquire);
            if self.counter() != seen {
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            self.region.wait(wake, left);
        }
        watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> IndexState {
        let h = WAL_HEADER_BYTES;
        IndexState {
            generation: 3,
            salt: 0x5eed,
            base_lsn: 1000,
            written_end: h + 500,
            last_txn: 42,
            barrier_end: h + 400,
            visible_lsn: 1000 + h + 400,
        }
    }

    #[test]
    fn encode_then_decode_gives_the_state_back() {
        assert_eq!(decode(&encode(&state(), 8)), Ok(state()));
    }

    #[test]
    fn decode_refuses_each_kind_of_damage() {
        let good = encode(&state(), 8);
        let mut foreign = good;
        foreign[w::MAGIC] ^= 1;
        assert_eq!(decode(&foreign), Err(IndexError::Foreign));
        let mut changing = good;
        changing[w::SEQ] = 9;
        assert_eq!(decode(&changing), Err(IndexError::Changing));
        let mut flipped = good;
        flipped[w::WRITTEN_END] ^= 4;
        assert_eq!(decode(&flipped), Err(IndexError::Checksum));
        let beyond = IndexState {
            visible_lsn: 1000 + WAL_HEADER_BYTES + 501,
            ..state()
        };
        assert_eq!(decode(&encode(&beyond, 8)), Err(IndexError::Inconsistent));
        let before_base = IndexState {
            visible_lsn: 1000 + WAL_HEADER_BYTES - 1,
            ..state()
        };
        assert_eq!(
            decode(&encode(&before_base, 8)),
            Err(IndexError::Inconsistent)
        );
        assert_eq!(decode(&[0; INDEX_WORDS]), Err(IndexError::Foreign));
    }

    /// Thread A commits `Immediate` and releases the lock; thread B appends a `Buffered`
    /// commit; A's sync, which began after B's write, covers it and tells the index before
    /// B's `committed` does. A's notice must still lift A's barrier, so that B's commit shows
    /// (found by the crash harness's `handles3-19` under countdown, with handles sharing the
    /// log index; it hid B's commit from a handle opened next).
    #[test]
    fn a_sync_that_covers_the_next_writers_bytes_still_shows_the_commits_after_it() {
        let h = WAL_HEADER_BYTES;
        let regions = crate::storage::MemRegions::default();
        let opened = regions
            .open(std::path::Path::new("/s/SHM"), None)
            .expect("region");
        let index = CommitIndex::new(opened.region);
        let head = |wal_end, last_txn| Head {
            generation: 1,
            salt: 7,
            wal_end,
            last_txn,
        };
        index.rebuild(head(h, 0), h);
        index.committed(head(h + 284, 1), true);
        // A's sync covered B's bytes, written but not yet in the index.
        index.durable(1, h + 455);
        index.committed(head(h + 455, 2), false);
        let state = index.read().expect("state");
        assert_eq!(
            state.visible_end(),
            h + 455,
            "B's Buffered commit is hidden"
        );
        assert_eq!(index.durable_end(&state), h + 284);
        // The next sync notice moves the durable end on.
        index.durable(1, h + 455);
        let state = index.read().expect("state");
        assert_eq!(index.durable_end(&state), h + 455);
    }
}
