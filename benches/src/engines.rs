//! walstore and its peers behind one interface, each set up the way its documentation
//! recommends for durable commits:
//!
//! - walstore: `Durability::Immediate` (commit returns after the WAL's `fdatasync`).
//! - SQLite (bundled): WAL journal mode, `synchronous=FULL` (durable) or `NORMAL` (consistent
//!   but not durable per commit in WAL mode: shown for reference), one `BEGIN IMMEDIATE`
//!   transaction per commit, a connection per thread, a `WITHOUT ROWID` table of blobs.
//!
//! Reads come two ways: [`Handle::point_reads`] reads many keys from one consistent view, and
//! [`Handle::gets_per_snapshot`] takes a fresh view for every key (each store's ordinary
//! single get: walstore `begin_read` + `get`, SQLite one autocommit statement, redb
//! `begin_read` + `open_table` + `get`, fjall `Keyspace::get`).
//! - redb: `Durability::Immediate`.
//! - fjall: a write batch with `PersistMode::SyncAll`.
//! - plain files: one file per key, written with the atomic-rename recipe (temp file, fsync,
//!   rename, fsync of the directory) for each value; not atomic across files.

use crate::data::KEY_LEN;
use crate::Result;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// Environment variable naming walstore's `Options::sector_size` for a run (unset: 0, off).
pub const SECTOR_SIZE_ENV: &str = "WALSTORE_PEERS_SECTOR_SIZE";

fn walstore_sector_size() -> u32 {
    std::env::var(SECTOR_SIZE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens (creating) the store of `kind` in directory `dir`.
pub fn open(kind: Kind, dir: &Path) -> Result<Box<dyn Engine>> {
    if kind == Kind::BareLog {
        return Err("the bare log is a loop of its own, not a store".into());
    }
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        Kind::Walstore => Box::new(Walstore {
            store: walstore::Options::new()
                .durability(walstore::Durability::Immediate)
                .sector_size(walstore_sector_size())
                .open(dir)?,
        }),
        Kind::SqliteFull | Kind::SqliteNormal => {
            let engine = Sqlite {
                path: dir.join("db.sqlite"),
                full: kind == Kind::SqliteFull,
            };
            let conn = engine.connect()?;
            conn.execute_batch(SQLITE_SCHEMA)?;
            Box::new(engine)
        }
        Kind::Redb => {
            let db = redb::Database::create(dir.join("db.redb"))?;
            let tx = db.begin_write()?;
            tx.open_table(REDB_TABLE)?;
            tx.commit()?;
            Box::new(Redb { db: Arc::new(db) })
        }
        Kind::Fjall => {
            let db = fjall::Database::builder(dir).open()?;
            let ks = db.keyspace("kv", fjall::KeyspaceCreateOptions::default)?;
            Box::new(Fjall { db, ks })
        }
        Kind::PlainFiles => Box::new(PlainFiles {
            dir: dir.to_path_buf(),
        }),
        Kind::BareLog => unreachable!("handled above"),
    })
}

fn check_lengths(n: u64, tally: ReadTally) -> Result<ReadTally> {
    if tally.found != n {
        return Err(format!("read {n} keys but found {}", tally.found).into());
    }
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------
// walstore

struct Walstore {
    store: walstore::Store,
}

impl Engine for Walstore {
    fn handle(&self) -> Result<Box<dyn Handle>> {
        Ok(Box::new(WalstoreHandle {
            store: self.store.clone(),
        }))
    }

    fn checkpoint(&self) -> Result<()> {
        self.store.checkpoint()?;
        Ok(())
    }
}

struct WalstoreHandle {
    store: walstore::Store,
}

impl Handle for WalstoreHandle {
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        self.store.update(|tx| {
            for (k, v) in writes {
                tx.put(k, v)?;
            }
            Ok::<_, walstore::Error>(())
        })?;
        Ok(())
    }

    fn point_reads(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        let read = self.store.begin_read()?;
        let mut tally = ReadTally::default();
        for _ in 0..n {
            if let Some(v) = read.get(&next_key())? {
                tally.found += 1;
                tally.bytes += v.len() as u64;
            }
        }
        check_lengths(n, tally)
    }

    fn gets_per_snapshot(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        let mut tally = ReadTally::default();
        for _ in 0..n {
            let key = next_key();
            if let Some(v) = self.store.begin_read()?.get(&key)? {
                tally.found += 1;
                tally.bytes += v.len() as u64;
            }
        }
        check_lengths(n, tally)
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

const SQLITE_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID";

/// What a short-lived process does with SQLite: one connection (set up as [`open`] sets up
/// every connection: WAL mode, `synchronous=FULL` or `NORMAL`), the table created if missing,
/// one `BEGIN IMMEDIATE` transaction of `writes`, then the connection closed (as the last
/// connection, SQLite checkpoints and removes its WAL file on close).
pub fn sqlite_one_connection_commit(
    dir: &Path,
    full: bool,
    writes: &[(&[u8], &[u8])],
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let engine = Sqlite {
        path: dir.join("db.sqlite"),
        full,
    };
    let conn = engine.connect()?;
    conn.execute_batch(SQLITE_SCHEMA)?;
    let mut handle = SqliteHandle { conn };
    handle.commit(writes)?;
    handle.conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

struct Sqlite {
    path: PathBuf,
    full: bool,
}

impl Sqlite {
    fn connect(&self) -> Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("SQLite refused WAL mode (got {mode})").into());
        }
        conn.pragma_update(
            None,
            "synchronous",
            if self.full { "FULL" } else { "NORMAL" },
        )?;
        Ok(conn)
    }
}

impl Engine for Sqlite {
    fn handle(&self) -> Result<Box<dyn Handle>> {
        Ok(Box::new(SqliteHandle {
            conn: self.connect()?,
        }))
    }

    fn checkpoint(&self) -> Result<()> {
        let conn = self.connect()?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err("SQLite checkpoint was blocked".into());
        }
        Ok(())
    }
}

struct SqliteHandle {
    conn: rusqlite::Connection,
}

impl Handle for SqliteHandle {
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
            for (k, v) in writes {
                st.execute((k, v))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn point_reads(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        // One read transaction: a consistent view, as the other stores' read snapshots.
        let tx = self.conn.transaction()?;
        let mut tally = ReadTally::default();
        {
            let mut st = tx.prepare("SELECT v FROM kv WHERE k = ?1")?;
            for _ in 0..n {
                let key = next_key();
                let mut rows = st.query([&key[..]])?;
                if let Some(row) = rows.next()? {
                    tally.found += 1;
                    tally.bytes += row.get_ref(0)?.as_blob()?.len() as u64;
                }
            }
        }
        tx.commit()?;
        check_lengths(n, tally)
    }

    fn gets_per_snapshot(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        // Autocommit, no explicit transaction: SQLite opens a read transaction (its snapshot)
        // when the statement starts and ends it when the statement is reset, here when `rows`
        // is dropped at the end of each get. The statement is prepared once (cached).
        let mut tally = ReadTally::default();
        let mut st = self.conn.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
        for _ in 0..n {
            let key = next_key();
            let mut rows = st.query([&key[..]])?;
            if let Some(row) = rows.next()? {
                tally.found += 1;
                tally.bytes += row.get_ref(0)?.as_blob()?.len() as u64;
            }
        }
        drop(st);
        if !self.conn.is_autocommit() {
            return Err("SQLite left a transaction open between gets".into());
        }
        check_lengths(n, tally)
    }
}

// ---------------------------------------------------------------------------------------------
// redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

struct Redb {
    db: Arc<redb::Database>,
}

impl Engine for Redb {
    fn handle(&self) -> Result<Box<dyn Handle>> {
        Ok(Box::new(RedbHandle {
            db: Arc::clone(&self.db),
        }))
    }

    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
}

struct RedbHandle {
    db: Arc<redb::Database>,
}

impl Handle for RedbHandle {
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for (k, v) in writes {
                table.insert(*k, *v)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn point_reads(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REDB_TABLE)?;
        let mut tally = ReadTally::default();
        for _ in 0..n {
            let key = next_key();
            if let Some(v) = table.get(&key[..])? {
                tally.found += 1;
                tally.bytes += v.value().len() as u64;
            }
        }
        check_lengths(n, tally)
    }

    fn gets_per_snapshot(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        use redb::ReadableDatabase;
        let mut tally = ReadTally::default();
        for _ in 0..n {
            let key = next_key();
            let tx = self.db.begin_read()?;
            let table = tx.open_table(REDB_TABLE)?;
            if let Some(v) = table.get(&key[..])? {
                tally.found += 1;
                tally.bytes += v.value().len() as u64;
            }
        }
        check_lengths(n, tally)
    }
}

// ---------------------------------------------------------------------------------------------
// fjall

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Engine for Fjall {
    fn handle(&self) -> Result<Box<dyn Handle>> {
        Ok(Box::new(FjallHandle {
            db: self.db.clone(),
            ks: self.ks.clone(),
        }))
    }

    fn checkpoint(&self) -> Result<()> {
        // Flush the memtable to tables (fjall's counterpart of a checkpoint); the journal then
        // holds nothing that is not in a table.
        self.ks.rotate_memtable_and_wait()?;
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

struct FjallHandle {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Handle for FjallHandle {
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        for (k, v) in writes {
            batch.insert(&self.ks, *k, *v);
        }
        batch.commit()?;
        Ok(())
    }

    fn point_reads(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        let mut tally = ReadTally::default();
        for _ in 0..n {
            if let Some(v) = self.ks.get(next_key())? {
                tally.found += 1;
                tally.bytes += v.len() as u64;
            }
        }
        check_lengths(n, tally)
    }

    fn gets_per_snapshot(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        // `Keyspace::get` reads the newest value (`SeqNo::MAX`) from the tree's current version
        // on every call, a view of its own; `point_reads` above makes the same calls, so for
        // fjall d and g measure the same thing.
        self.point_reads(n, next_key)
    }
}

// ---------------------------------------------------------------------------------------------
// Plain files

struct PlainFiles {
    dir: PathBuf,
}

impl Engine for PlainFiles {
    fn handle(&self) -> Result<Box<dyn Handle>> {
        Ok(Box::new(PlainFilesHandle {
            dir: self.dir.clone(),
        }))
    }

    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
}

struct PlainFilesHandle {
    dir: PathBuf,
}

fn file_name(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The usual recipe for replacing one file atomically and durably.
pub fn atomic_replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Handle for PlainFilesHandle {
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        for (k, v) in writes {
            atomic_replace(&self.dir, &file_name(k), v)?;
        }
        Ok(())
    }

    fn point_reads(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        let mut tally = ReadTally::default();
        for _ in 0..n {
            match std::fs::read(self.dir.join(file_name(&next_key()))) {
                Ok(v) => {
                    tally.found += 1;
                    tally.bytes += v.len() as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        check_lengths(n, tally)
    }

    fn gets_per_snapshot(
        &mut self,
        n: u64,
        next_key: &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<ReadTally> {
        // Every file read is on its own already.
        self.point_reads(n, next_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_round_trips_and_checkpoints() -> Result<()> {
        for kind in Kind::ALL {
            if kind == Kind::BareLog {
                assert!(open(kind, Path::new("/nonexistent-walstore-bench")).is_err());
                continue;
            }
            let dir = tempfile::tempdir()?;
            let engine = open(kind, dir.path())?;
            let mut h = engine.handle()?;
            let keys: Vec<[u8; KEY_LEN]> = (0..3).map(|i| crate::data::key(9, i)).collect();
            let writes: Vec<(&[u8], &[u8])> =
                keys.iter().map(|k| (&k[..], &b"value"[..])).collect();
            h.commit(&writes)?;
            // A second handle (another thread's connection) sees the commit.
            let mut other = engine.handle()?;
            let mut i = 0;
            let tally = other.point_reads(3, &mut || {
                i += 1;
                keys[i - 1]
            })?;
            assert_eq!(
                tally,
                ReadTally {
                    found: 3,
                    bytes: 15
                },
                "{kind:?}"
            );
            let mut j = 0;
            let tally = other.gets_per_snapshot(3, &mut || {
                j += 1;
                keys[j - 1]
            })?;
            assert_eq!(tally.found, 3, "{kind:?}");
            engine.checkpoint()?;
            let mut missing = || crate::data::key(10, 0);
            assert!(h.point_reads(1, &mut missing).is_err(), "{kind:?}");
            assert!(h.gets_per_snapshot(1, &mut missing).is_err(), "{kind:?}");
        }
        Ok(())
    }
}
