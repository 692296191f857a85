//! `Store::close` does its work whether or not the background checkpointer is running: it
//! stops the checkpointer, waits for a checkpoint in progress, makes the handle's Buffered
//! commits durable and leaves nothing for the next open to recover (RECOVERY.md S1a). Before
//! the engine-structure change, the checkpoint thread held a `Store` clone, so a `close` during
//! a checkpoint saw another clone and returned at once: a crash right after it lost the
//! Buffered commits.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use walstore::storage::{MemoryStorage, OpenMode, Storage, StorageFile, StorageLock};
use walstore::{Durability, Options, Store};

const DIR: &str = "/db";
/// A value past the smallest checkpoint threshold (4 KiB of log).
const BIG: [u8; 5000] = [7u8; 5000];

/// A gate the checkpoint stops at: the rename of a new `MANIFEST` into place.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (entered, open)
    changed: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut s = self.state.lock().expect("gate");
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).expect("gate");
        }
    }
    fn wait_entered(&self) {
        let mut s = self.state.lock().expect("gate");
        while !s.0 {
            s = self.changed.wait(s).expect("gate");
        }
    }
    fn open(&self) {
        self.state.lock().expect("gate").1 = true;
        self.changed.notify_all();
    }
}

/// The in-memory file system with the gate in `rename(.., MANIFEST)`.
#[derive(Debug, Clone)]
struct Gated {
    mem: MemoryStorage,
    gate: Arc<Gate>,
}

impl Storage for Gated {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.mem.create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn StorageFile>> {
        self.mem.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if to.ends_with("MANIFEST") {
            self.gate.pass();
        }
        self.mem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.mem.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.mem.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.mem.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.mem.exists(path)
    }
    fn open_lock(&self, path: &Path) -> std::io::Result<Box<dyn StorageLock>> {
        self.mem.open_lock(path)
    }
}

/// Every key with its value's length and first byte (values here are runs of one byte).
fn state(store: &Store) -> Vec<(Vec<u8>, usize, u8)> {
    let read = store.begin_read().expect("begin_read");
    read.range::<&[u8], _>(..)
        .expect("range")
        .map(|item| {
            let (k, v) = item.expect("item");
            (k.to_vec(), v.len(), v.first().copied().unwrap_or(0))
        })
        .collect()
}

fn plain_open(mem: &MemoryStorage) -> Store {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
        .open(DIR)
        .expect("open")
}

#[test]
fn close_during_a_background_checkpoint_makes_buffered_commits_durable() {
    let mem = MemoryStorage::new();
    // Created without the gate (creation renames a MANIFEST too).
    plain_open(&mem).close().expect("close");
    let gate = Arc::new(Gate::default());
    let gated = Gated {
        mem: mem.clone(),
        gate: Arc::clone(&gate),
    };
    let store = Options::new()
        .storage(Arc::new(gated))
        .durability(Durability::Buffered)
        .wal_size_bytes_checkpoint(4096)
        .open(DIR)
        .expect("open");
    // A Buffered commit past the threshold wakes the background checkpointer, which stops at
    // the gate with the commit not yet durable anywhere.
    store.update(|tx| tx.put(b"a", &BIG)).expect("commit");
    gate.wait_entered();
    // A power cut the moment `close` returns: whatever close promised must be on disk by then.
    let closer = {
        let mem = mem.clone();
        std::thread::spawn(move || {
            let closed = store.close();
            mem.crash();
            closed
        })
    };
    // Let a `close` that does not wait return (and the power go) before the checkpoint moves.
    std::thread::sleep(Duration::from_millis(200));
    gate.open();
    closer.join().expect("closer thread").expect("close");
    let reopened = plain_open(&mem);
    assert_eq!(state(&reopened), vec![(b"a".to_vec(), BIG.len(), 7)]);
    assert_eq!(
        reopened.info().expect("info").checkpoints,
        0,
        "nothing was left for the open to recover"
    );
}

#[test]
fn close_with_an_open_transaction_does_not_wait_for_a_checkpoint_that_waits_for_it() {
    let mem = MemoryStorage::new();
    let store = Options::new()
        .storage(Arc::new(mem.clone()))
        .wal_size_bytes_checkpoint(4096)
        .open(DIR)
        .expect("open");
    store.update(|tx| tx.put(b"a", &BIG)).expect("commit");
    // The background checkpointer now wants the writer lock; this transaction holds it while
    // the last handle closes.
    let mut tx = store.begin_write().expect("begin_write");
    tx.set_durability(Durability::Buffered);
    tx.put(b"b", b"2").expect("put");
    store
        .close()
        .expect("close returns although the checkpointer waits for the lock");
    // The transaction outlived the handle; its Buffered commit is made durable when it ends.
    tx.commit().expect("commit after close");
    mem.crash();
    assert_eq!(
        state(&plain_open(&mem)),
        vec![(b"a".to_vec(), BIG.len(), 7), (b"b".to_vec(), 1, b'2')]
    );
}
