//! Plain files: one file per key, written with the atomic-rename recipe (temp file, fsync,
//! rename, fsync of the directory) for each value; not atomic across files.

use super::interface::{check_lengths, Engine, Handle, ReadTally};
use crate::data::KEY_LEN;
use crate::Result;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Opens the plain-files store in `dir`.
pub(super) fn open(dir: &Path) -> Result<Box<dyn Engine>> {
    Ok(Box::new(PlainFiles {
        dir: dir.to_path_buf(),
    }))
}

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

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(file_name(key))) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
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
