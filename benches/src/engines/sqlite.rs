//! SQLite (bundled): WAL journal mode, `synchronous=FULL` (durable) or `NORMAL` (consistent
//! but not durable per commit in WAL mode), one `BEGIN IMMEDIATE` transaction per commit, a
//! connection per thread, a `WITHOUT ROWID` table of blobs.

use super::interface::{check_lengths, Engine, Handle, ReadTally};
use crate::data::KEY_LEN;
use crate::Result;
use std::path::{Path, PathBuf};

/// Opens (creating) SQLite in `dir`, `synchronous=FULL` if `full`, else `NORMAL`.
pub(super) fn open(dir: &Path, full: bool) -> Result<Box<dyn Engine>> {
    let engine = Sqlite {
        path: dir.join(SQLITE_FILE),
        full,
    };
    let conn = engine.connect()?;
    conn.execute_batch(SQLITE_SCHEMA)?;
    Ok(Box::new(engine))
}

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
        path: dir.join(SQLITE_FILE),
        full,
    };
    let conn = engine.connect()?;
    conn.execute_batch(SQLITE_SCHEMA)?;
    let mut handle = SqliteHandle { conn };
    handle.commit(writes)?;
    handle.conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// A connection to the SQLite store in `dir` set up as [`open`] sets up every connection (WAL
/// mode, `synchronous=FULL` or `NORMAL`), the table created if missing: for phases that need
/// SQLite's own settings beyond the adapter's (the log-size workload's fill sets
/// `wal_autocheckpoint`). Write to table `kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)`.
pub fn sqlite_connection(dir: &Path, full: bool) -> Result<rusqlite::Connection> {
    std::fs::create_dir_all(dir)?;
    let engine = Sqlite {
        path: dir.join(SQLITE_FILE),
        full,
    };
    let conn = engine.connect()?;
    conn.execute_batch(SQLITE_SCHEMA)?;
    Ok(conn)
}

/// The name of the SQLite database file in a store directory (its WAL is this name with
/// `-wal` appended).
pub const SQLITE_FILE: &str = "db.sqlite";

/// The handle a short-lived process has: one connection set up as [`open`] sets up every
/// connection, without the adapter's set-up connection (as the last connection, SQLite
/// checkpoints and removes its WAL file when it is dropped).
pub fn sqlite_one_connection(dir: &Path, full: bool) -> Result<Box<dyn Handle>> {
    Ok(Box::new(SqliteHandle {
        conn: sqlite_connection(dir, full)?,
    }))
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

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut st = self.conn.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
        let mut rows = st.query([key])?;
        match rows.next()? {
            Some(row) => Ok(Some(row.get_ref(0)?.as_blob()?.to_vec())),
            None => Ok(None),
        }
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
