//! Shared test scaffolding: every behaviour test runs on the real file system and on the
//! in-memory backend.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use walstore::storage::{FsStorage, MemoryStorage, Storage};
use walstore::{Options, Store};

/// A place to open a store: a backend and a directory on it.
pub struct Place {
    pub name: &'static str,
    pub storage: Arc<dyn Storage>,
    pub memory: Option<MemoryStorage>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Place {
    pub fn options(&self) -> Options {
        Options::new()
            .storage(Arc::clone(&self.storage))
            .auto_checkpoint(false)
    }

    pub fn open(&self) -> Store {
        self.options()
            .open(&self.dir)
            .unwrap_or_else(|e| panic!("[{}] open failed: {e}", self.name))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        match &self.memory {
            Some(m) => m.read_file(&self.file(name)).expect("file exists"),
            None => std::fs::read(self.file(name)).expect("file exists"),
        }
    }

    /// Overwrites a file's bytes as media damage would (durably, without the engine).
    pub fn write(&self, name: &str, bytes: &[u8]) {
        match &self.memory {
            Some(m) => m.write_file_durable(&self.file(name), bytes),
            None => std::fs::write(self.file(name), bytes).expect("write"),
        }
    }
}

/// The real file system (in a temporary directory) and the in-memory backend.
pub fn places() -> Vec<Place> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let memory = MemoryStorage::new();
    vec![
        Place {
            name: "fs",
            storage: Arc::new(FsStorage),
            memory: None,
            dir,
            _tmp: Some(tmp),
        },
        Place {
            name: "memory",
            storage: Arc::new(memory.clone()),
            memory: Some(memory),
            dir: PathBuf::from("/store"),
            _tmp: None,
        },
    ]
}

/// Every key/value pair of the store, in order.
pub fn dump(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = store.begin_read().expect("begin_read");
    r.range::<&[u8], _>(..)
        .expect("range")
        .map(|item| {
            let (k, v) = item.expect("item");
            (k, v.to_vec())
        })
        .collect()
}

pub fn kv(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}
