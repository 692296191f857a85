//! Online backup: a consistent copy of the store, taken from one read snapshot while other
//! threads and processes keep writing.
//!
//! The copy is written as snapshot files plus an empty WAL, and becomes a store only when its
//! MANIFEST is renamed into place (after every file and the directory are synced): a crash
//! during a backup leaves a directory without a MANIFEST, never a partial store.

use crate::error::{Error, Result};
use crate::format::{random_u64, WAL_NAME};
use crate::manifest::Manifest;
use crate::output::Output;
use crate::storage::OpenMode;
use crate::store::Store;
use crate::wal::writer::Wal;
use crate::wal::WAL_HEADER_BYTES;
use std::path::Path;

/// What a backup copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStats {
    /// Last transaction included.
    pub txn_id: u64,
    /// Keys copied.
    pub keys: u64,
    /// Bytes of keys and values copied.
    pub bytes: u64,
    /// Snapshot files written.
    pub files: usize,
}

impl Store {
    /// Writes a consistent copy of the store to `dest`, which must not exist or be an empty
    /// directory; `dest` then opens as a store. `progress` is called with keys copied so far.
    pub fn backup(&self, dest: &Path, mut progress: impl FnMut(u64)) -> Result<BackupStats> {
        let storage = self.core().storage();
        if storage
            .exists(dest)
            .map_err(|e| Error::io("stat", dest, e))?
        {
            let names = storage
                .list_dir(dest)
                .map_err(|e| Error::io("list directory", dest, e))?;
            if !names.is_empty() {
                return Err(Error::NotAStore {
                    path: dest.to_path_buf(),
                    detail: "the backup destination must be empty or not exist".into(),
                });
            }
        } else {
            storage
                .create_dir_all(dest)
                .map_err(|e| Error::io("create directory", dest, e))?;
        }
        let read = self.begin_read()?;
        let mut stats = BackupStats {
            txn_id: read.txn_id(),
            ..Default::default()
        };
        let mut out = Output::in_dir(storage, dest, self.core().opts(), 1);
        for item in read.range::<&[u8], _>(..)? {
            let (key, value) = item?;
            out.add(&key, Some(&value))?;
            stats.keys += 1;
            stats.bytes += (key.len() + value.len()) as u64;
            if stats.keys.is_multiple_of(4096) {
                progress(stats.keys);
            }
        }
        let run = out.publish_files()?;
        stats.files = run.len();
        let manifest = Manifest {
            generation: 1,
            salt: random_u64(),
            base_txn: read.txn_id(),
            next_file_id: out.next_id,
            runs: if run.is_empty() { vec![] } else { vec![run] },
        };
        let wal_path = dest.join(WAL_NAME);
        let wal = storage
            .open(&wal_path, OpenMode::CreateTruncate)
            .map_err(|e| Error::io("create", &wal_path, e))?;
        Wal::initialize(
            wal.as_ref(),
            &wal_path,
            Some(&manifest.wal_header()),
            WAL_HEADER_BYTES + crate::wal::PREALLOCATE_MIN_BYTES,
        )?;
        crate::runs::create(storage, dest, &manifest)?;
        progress(stats.keys);
        Ok(stats)
    }
}
