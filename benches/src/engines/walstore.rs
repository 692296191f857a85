//! walstore: `Durability::Immediate` (commit returns after the WAL's `fdatasync`), sector
//! padding as the runner asks (`SECTOR_SIZE_ENV`).

use super::interface::{check_lengths, Engine, Handle, ReadTally};
use crate::data::KEY_LEN;
use crate::Result;
use std::path::Path;

/// Environment variable naming walstore's `Options::sector_size` for a run (unset: 0, off).
pub const SECTOR_SIZE_ENV: &str = "WALSTORE_PEERS_SECTOR_SIZE";

fn walstore_sector_size() -> u32 {
    std::env::var(SECTOR_SIZE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens (creating) walstore in `dir`.
pub(super) fn open(dir: &Path) -> Result<Box<dyn Engine>> {
    Ok(Box::new(Walstore {
        store: walstore::Options::new()
            .durability(walstore::Durability::Immediate)
            .sector_size(walstore_sector_size())
            .open(dir)?,
    }))
}

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

    fn commit_unsynced(&mut self, writes: &[(&[u8], &[u8])]) -> Result<()> {
        let mut tx = self.store.begin_write()?;
        tx.set_durability(walstore::Durability::Buffered);
        for (k, v) in writes {
            tx.put(k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.store.begin_read()?.get(key)?.map(|v| v.to_vec()))
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
