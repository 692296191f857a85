//! The one interface every store is driven through: which store ([`Kind`]), an open store
//! ([`Engine`]), a handle of one thread ([`Handle`]), and what its reads found
//! ([`ReadTally`]).

use crate::data::KEY_LEN;
use crate::Result;

/// Which store a phase runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// walstore, Immediate durability.
    Walstore,
    /// SQLite, WAL mode, synchronous=FULL.
    SqliteFull,
    /// SQLite, WAL mode, synchronous=NORMAL (not durable per commit).
    SqliteNormal,
    /// redb, Durability::Immediate.
    Redb,
    /// fjall, PersistMode::SyncAll on each commit.
    Fjall,
    /// Files written with temp file + fsync + rename + directory fsync.
    PlainFiles,
    /// A bare loop of write + fdatasync on a pre-written file (workload a only).
    BareLog,
}

impl Kind {
    /// Every kind, in table column order.
    pub const ALL: [Kind; 7] = [
        Kind::Walstore,
        Kind::SqliteFull,
        Kind::SqliteNormal,
        Kind::Redb,
        Kind::Fjall,
        Kind::PlainFiles,
        Kind::BareLog,
    ];

    /// The stores that run the key-value workloads (all but the two recipes).
    pub const STORES: [Kind; 5] = [
        Kind::Walstore,
        Kind::SqliteFull,
        Kind::SqliteNormal,
        Kind::Redb,
        Kind::Fjall,
    ];

    /// Machine name (command line, JSON).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Walstore => "walstore",
            Kind::SqliteFull => "sqlite-full",
            Kind::SqliteNormal => "sqlite-normal",
            Kind::Redb => "redb",
            Kind::Fjall => "fjall",
            Kind::PlainFiles => "plain-files",
            Kind::BareLog => "bare-log",
        }
    }

    /// Human name (tables, chart).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Walstore => "walstore",
            Kind::SqliteFull => "SQLite FULL",
            Kind::SqliteNormal => "SQLite NORMAL*",
            Kind::Redb => "redb",
            Kind::Fjall => "fjall",
            Kind::PlainFiles => "plain files",
            Kind::BareLog => "bare log",
        }
    }

    /// Parses [`Kind::id`].
    pub fn from_id(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Whether a commit that returned is on stable storage.
    pub fn durable(self) -> bool {
        self != Kind::SqliteNormal
    }
}

/// Outcome of a run of point reads (checked by the runner, so that a broken adapter cannot
/// report a fast figure for reading nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadTally {
    /// Keys found.
    pub found: u64,
    /// Value bytes seen.
    pub bytes: u64,
}

/// One open store.
pub trait Engine: Send + Sync {
    /// A handle for one thread (SQLite: a connection of its own).
    fn handle(&self) -> Result<Box<dyn Handle>>;
    /// Brings the store to the state where everything committed is in its main data files
    /// (walstore: checkpoint; SQLite: `wal_checkpoint(TRUNCATE)`; fjall: memtable flushed to
    /// tables; redb and plain files: nothing to do).
    fn checkpoint(&self) -> Result<()>;
}

/// A thread's handle on a store.
pub trait Handle: Send {
    /// Commits `writes` as one transaction, durably (except SQLite NORMAL).
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()>;
    /// Reads `n` keys produced by `next_key` from one consistent view where the store has
    /// one, and tallies what it found.
    fn point_reads(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally>;
    /// Reads `n` keys produced by `next_key`, each from a read snapshot of its own (the way a
    /// program reads one value at a time), and tallies what it found.
    fn gets_per_snapshot(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally>;
    /// Reads one key from a snapshot of its own; its value, if the key is there.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Commits `writes` as one transaction without waiting for stable storage where the store
    /// offers that (walstore `Durability::Buffered`, redb `Durability::None`); a later
    /// [`Handle::commit`] makes it durable. The other stores commit durably. For filling a
    /// store before a measurement, never in a timed phase.
    fn commit_unsynced(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        self.commit(writes)
    }
}

/// `tally`, or an error unless every one of the `n` keys read was found.
pub(super) fn check_lengths(n: u64, tally: ReadTally) -> Result<ReadTally> {
    if tally.found != n {
        return Err(format!("read {n} keys but found {}", tally.found).into());
    }
    Ok(tally)
}
