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
//!
//! Rooms: `interface` (the kinds and traits), then one adapter per store.

mod fjall;
mod interface;
mod plain_files;
mod redb;
mod sqlite;
mod walstore;

pub use self::walstore::SECTOR_SIZE_ENV;
pub use interface::{Engine, Handle, Kind, ReadTally};
pub use plain_files::atomic_replace;
pub use sqlite::{
    sqlite_connection, sqlite_one_connection, sqlite_one_connection_commit, SQLITE_FILE,
};

use crate::Result;
use std::path::Path;

/// Opens (creating) the store of `kind` in directory `dir`.
pub fn open(kind: Kind, dir: &Path) -> Result<Box<dyn Engine>> {
    if kind == Kind::BareLog {
        return Err("the bare log is a loop of its own, not a store".into());
    }
    std::fs::create_dir_all(dir)?;
    match kind {
        Kind::Walstore => self::walstore::open(dir),
        Kind::SqliteFull | Kind::SqliteNormal => sqlite::open(dir, kind == Kind::SqliteFull),
        Kind::Redb => self::redb::open(dir),
        Kind::Fjall => self::fjall::open(dir),
        Kind::PlainFiles => plain_files::open(dir),
        Kind::BareLog => unreachable!("handled above"),
    }
}

/// Opens the existing store of `kind` in `dir` the way a short-lived process does: as [`open`],
/// except that redb is opened without creating its table (a commit of its own).
pub fn open_existing(kind: Kind, dir: &Path) -> Result<Box<dyn Engine>> {
    match kind {
        Kind::Redb => self::redb::open_existing(dir),
        _ => open(kind, dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::KEY_LEN;

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
            assert_eq!(
                other.get(&keys[1])?.as_deref(),
                Some(&b"value"[..]),
                "{kind:?}"
            );
            assert_eq!(other.get(&crate::data::key(10, 0))?, None, "{kind:?}");
            h.commit_unsynced(&[(&keys[1][..], &b"later"[..])])?;
            h.commit(&[(&keys[2][..], &b"synced"[..])])?;
            assert_eq!(
                other.get(&keys[1])?.as_deref(),
                Some(&b"later"[..]),
                "{kind:?}"
            );
            engine.checkpoint()?;
            let mut missing = || crate::data::key(10, 0);
            assert!(h.point_reads(1, &mut missing).is_err(), "{kind:?}");
            assert!(h.gets_per_snapshot(1, &mut missing).is_err(), "{kind:?}");
            // Reopened as a short-lived process opens it (redb: one process at a time, so
            // after this one is closed), the store has the last commit.
            drop((h, other, engine));
            let again = open_existing(kind, dir.path())?;
            let mut h = again.handle()?;
            assert_eq!(
                h.get(&keys[2])?.as_deref(),
                Some(&b"synced"[..]),
                "{kind:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn sqlite_one_connection_reads_what_a_commit_wrote() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let key = crate::data::key(9, 1);
        sqlite_one_connection_commit(dir.path(), true, &[(&key[..], &b"v"[..])])?;
        let mut h = sqlite_one_connection(dir.path(), true)?;
        assert_eq!(h.get(&key)?.as_deref(), Some(&b"v"[..]));
        assert_eq!(h.get(&crate::data::key(9, 2))?, None);
        let other = crate::data::key(9, 3);
        h.commit(&[(&other[..], &b"w"[..])])?;
        drop(h);
        let mut again = sqlite_one_connection(dir.path(), true)?;
        assert_eq!(again.get(&other)?.as_deref(), Some(&b"w"[..]));
        Ok(())
    }
}
