//! fjall: a write batch with `PersistMode::SyncAll`.

use super::interface::{check_lengths, Engine, Handle, ReadTally};
use crate::data::KEY_LEN;
use crate::Result;
use std::path::Path;

/// Opens (creating) fjall in `dir`, with one keyspace.
pub(super) fn open(dir: &Path) -> Result<Box<dyn Engine>> {
    let db = fjall::Database::builder(dir).open()?;
    let ks = db.keyspace("kv", fjall::KeyspaceCreateOptions::default)?;
    Ok(Box::new(Fjall { db, ks }))
}

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

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.ks.get(key)?.map(|v| v.to_vec()))
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
