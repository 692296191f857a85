//! redb: `Durability::Immediate`.

use super::interface::{check_lengths, Engine, Handle, ReadTally};
use crate::data::KEY_LEN;
use crate::Result;
use std::path::Path;
use std::sync::Arc;

/// Opens (creating) redb in `dir`, its table created.
pub(super) fn open(dir: &Path) -> Result<Box<dyn Engine>> {
    let db = redb::Database::create(dir.join("db.redb"))?;
    let tx = db.begin_write()?;
    tx.open_table(REDB_TABLE)?;
    tx.commit()?;
    Ok(Box::new(Redb { db: Arc::new(db) }))
}

/// Opens the existing redb store in `dir` without writing to it (no table creation, which is
/// a commit in redb): for processes that only open, read or commit once.
pub(super) fn open_existing(dir: &Path) -> Result<Box<dyn Engine>> {
    let db = redb::Database::open(dir.join("db.redb"))?;
    Ok(Box::new(Redb { db: Arc::new(db) }))
}

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

impl RedbHandle {
    fn commit_with(
        &mut self,
        writes: &[(&[u8], &[u8])],
        durability: redb::Durability,
    ) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(durability)?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for (k, v) in writes {
                table.insert(*k, *v)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Handle for RedbHandle {
    fn commit(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        self.commit_with(writes, redb::Durability::Immediate)
    }

    fn commit_unsynced(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        self.commit_with(writes, redb::Durability::None)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REDB_TABLE)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
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
