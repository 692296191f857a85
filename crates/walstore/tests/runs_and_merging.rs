//! Sorted runs: a checkpoint writes only the change, deletions across runs hold, merging
//! keeps what every key reads and returns the space of deleted keys, readers see every
//! committed key while a merge runs; a run is written in pieces of at most 64 KiB.

mod common;

use common::{Observed, Observer};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use walstore::storage::{MemoryStorage, Storage};
use walstore::{Options, Store};

const DIR: &str = "/db";

fn open(mem: &MemoryStorage) -> Store {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
        .segment_size_bytes_target(16 << 10)
        .open(DIR)
        .expect("open")
}

fn key(i: u32) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

fn fill(store: &Store, keys: impl Iterator<Item = u32>, value: &[u8]) {
    let mut tx = store.begin_write().expect("begin");
    for i in keys {
        tx.put(&key(i), value).expect("put");
    }
    tx.commit().expect("commit");
}

fn snapshot_bytes(mem: &MemoryStorage) -> u64 {
    mem.list_dir(Path::new(DIR))
        .expect("list")
        .iter()
        .filter(|n| n.starts_with("snap-"))
        .map(|n| mem.read_file(&Path::new(DIR).join(n)).expect("read").len() as u64)
        .sum()
}

#[test]
fn a_checkpoint_writes_only_the_change_and_keeps_every_older_file() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    fill(&store, 0..20_000, &[7u8; 100]);
    let first = store.checkpoint().expect("checkpoint");
    let before = store.info().expect("info").snapshot_files;
    fill(&store, (0..20_000).step_by(100), &[8u8; 100]);
    let second = store.checkpoint().expect("checkpoint");
    let after = store.info().expect("info").snapshot_files;
    assert!(
        second.bytes_written * 50 < first.bytes_written,
        "a checkpoint of 200 changed keys wrote {} bytes, the first of 20,000 wrote {}",
        second.bytes_written,
        first.bytes_written
    );
    for file in &before {
        assert!(after.contains(file), "{file:?} was rewritten or removed");
    }
    assert_eq!(store.info().expect("info").runs, 2);
    let read = store.begin_read().expect("read");
    assert_eq!(
        read.get(&key(100)).expect("get").as_deref(),
        Some(&[8u8; 100][..])
    );
    assert_eq!(
        read.get(&key(101)).expect("get").as_deref(),
        Some(&[7u8; 100][..])
    );
}

#[test]
fn a_delete_in_a_newer_run_hides_the_value_in_an_older_one() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    fill(&store, 0..100, b"v");
    store.checkpoint().expect("checkpoint");
    store
        .update(|tx| (0..100).step_by(2).try_for_each(|i| tx.delete(&key(i))))
        .expect("delete");
    store.checkpoint().expect("checkpoint");
    drop(store);
    let store = open(&mem);
    let read = store.begin_read().expect("read");
    assert_eq!(read.first().expect("first").map(|p| p.0), Some(key(1)));
    assert_eq!(read.last().expect("last").map(|p| p.0), Some(key(99)));
    assert_eq!(read.get(&key(2)).expect("get"), None);
    assert!(read.get(&key(3)).expect("get").is_some());
    let keys: Vec<Vec<u8>> = read
        .range::<&[u8], _>(..)
        .expect("range")
        .map(|r| r.expect("item").0)
        .collect();
    let want: Vec<Vec<u8>> = (0..100).filter(|i| i % 2 == 1).map(key).collect();
    assert_eq!(keys, want);
    let back: Vec<Vec<u8>> = read
        .range::<&[u8], _>(..)
        .expect("range")
        .rev()
        .map(|r| r.expect("item").0)
        .collect();
    assert_eq!(back, want.into_iter().rev().collect::<Vec<_>>());
}

#[test]
fn deleting_every_key_and_compacting_leaves_no_snapshot_bytes() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    for round in 0..4u32 {
        fill(&store, round * 5_000..(round + 1) * 5_000, &[1u8; 64]);
        store.checkpoint().expect("checkpoint");
    }
    assert!(snapshot_bytes(&mem) > 20_000 * 64);
    store
        .update(|tx| (0..20_000).try_for_each(|i| tx.delete(&key(i))))
        .expect("delete all");
    let merged = store.compact().expect("compact");
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(snapshot_bytes(&mem), 0);
    assert_eq!(store.info().expect("info").runs, 0);
    drop(store);
    let store = open(&mem);
    let read = store.begin_read().expect("read");
    assert_eq!(read.range::<&[u8], _>(..).expect("range").count(), 0);
}

#[test]
fn compacting_keeps_what_every_key_reads_and_leaves_one_run() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    let mut model = BTreeMap::new();
    for round in 0..6u32 {
        store
            .update(|tx| {
                for i in 0..3_000u32 {
                    let k = (i * 7 + round * 13) % 4_000;
                    if (i + round) % 5 == 0 {
                        tx.delete(&key(k))?;
                        model.remove(&key(k));
                    } else {
                        let v = format!("{round}-{i}").into_bytes();
                        tx.put(&key(k), &v)?;
                        model.insert(key(k), v);
                    }
                }
                Ok::<(), walstore::Error>(())
            })
            .expect("round");
        store.checkpoint().expect("checkpoint");
    }
    assert_eq!(store.info().expect("info").runs, 6);
    store.compact().expect("compact");
    assert_eq!(store.info().expect("info").runs, 1);
    for store in [store.clone(), {
        drop(store);
        open(&mem)
    }] {
        let read = store.begin_read().expect("read");
        let got: BTreeMap<Vec<u8>, Vec<u8>> = read
            .range::<&[u8], _>(..)
            .expect("range")
            .map(|r| r.map(|(k, v)| (k, v.to_vec())).expect("item"))
            .collect();
        assert!(
            got == model,
            "the store differs from the model after compacting"
        );
    }
}

#[test]
fn readers_see_every_committed_key_while_a_merge_runs() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    for round in 0..8u32 {
        fill(&store, (0..4_000).map(|i| i * 8 + round), b"value");
        store.checkpoint().expect("checkpoint");
    }
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) || rounds < 3 {
                let read = store.begin_read().expect("read");
                let n = read.range::<&[u8], _>(..).expect("range").count();
                assert_eq!(n, 32_000, "a reader saw {n} keys during a merge");
                assert!(read.get(&key(31_999)).expect("get").is_some());
                rounds += 1;
            }
            rounds
        })
    };
    let merged = store.compact().expect("compact");
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader") >= 3);
    assert_eq!(merged[0].runs_merged, 8);
}

#[test]
fn writers_commit_while_a_merge_runs() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    for round in 0..8u32 {
        fill(&store, (0..4_000).map(|i| i * 8 + round), b"value");
        store.checkpoint().expect("checkpoint");
    }
    let merging = {
        let store = store.clone();
        std::thread::spawn(move || store.compact().expect("compact"))
    };
    let mut commits = 0u32;
    while !merging.is_finished() {
        fill(&store, std::iter::once(100_000 + commits), b"new");
        commits += 1;
    }
    merging.join().expect("merge");
    let read = store.begin_read().expect("read");
    for i in 0..commits {
        assert!(read.get(&key(100_000 + i)).expect("get").is_some());
    }
    assert!(commits > 0, "no commit got through while the merge ran");
}

#[test]
fn a_range_deletion_from_the_empty_key_deletes_from_the_first_key() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    store
        .update(|tx| {
            tx.put(b"a", b"1")?;
            tx.put(b"b", b"2")?;
            tx.put(b"c", b"3")
        })
        .expect("put");
    store.checkpoint().expect("checkpoint");
    store
        .update(|tx| tx.delete_range(b"".to_vec()..b"b".to_vec()))
        .expect("delete");
    let read = store.begin_read().expect("read");
    let keys: Vec<Vec<u8>> = read
        .range::<&[u8], _>(..)
        .expect("range")
        .map(|r| r.expect("item").0)
        .collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    drop(read);
    store
        .update(|tx| tx.delete_range(b"".to_vec()..))
        .expect("delete all");
    let read = store.begin_read().expect("read");
    assert_eq!(read.range::<&[u8], _>(..).expect("range").count(), 0);
}

/// Slows down every write to a snapshot file.
#[derive(Debug)]
struct SlowSnapshots(std::time::Duration);

impl Observer for SlowSnapshots {
    fn write(&self, path: &Path) {
        let snapshot = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snap-"));
        if snapshot {
            std::thread::sleep(self.0);
        }
    }
}

#[test]
fn commits_complete_while_a_slow_checkpoint_writes_its_run() {
    let fs = Observed {
        inner: Arc::new(MemoryStorage::new()),
        observer: Arc::new(SlowSnapshots(std::time::Duration::from_millis(40))),
    };
    let store = Options::new()
        .storage(Arc::new(fs))
        .auto_checkpoint(false)
        .segment_size_bytes_target(16 << 10)
        .open(DIR)
        .expect("open");
    // About 40 snapshot files of 16 KiB, each write of them 40 ms: the run takes seconds.
    fill(&store, 0..5_000, &[3u8; 100]);
    let started = std::time::Instant::now();
    let checkpoint = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.checkpoint().expect("checkpoint");
            started.elapsed()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    for i in 0..20u32 {
        fill(&store, std::iter::once(50_000 + i), b"during");
    }
    let commits_done = started.elapsed();
    let checkpoint_done = checkpoint.join().expect("checkpoint thread");
    assert!(
        commits_done < checkpoint_done,
        "20 commits took until {commits_done:?}, the checkpoint ended at {checkpoint_done:?}"
    );
    // Both the frozen memtable and the commits made meanwhile are in the runs now.
    let info = store.info().expect("info");
    assert_eq!(info.memtable_keys, 0);
    let read = store.begin_read().expect("read");
    assert!(read.get(&key(4_999)).expect("get").is_some());
    assert_eq!(
        read.get(&key(50_019)).expect("get").as_deref(),
        Some(&b"during"[..])
    );
}

/// The writes to snapshot files: their bytes in all, and the largest.
#[derive(Debug, Default)]
struct SnapshotWrites {
    bytes: AtomicU64,
    largest: AtomicU64,
}

impl Observer for SnapshotWrites {
    fn write_bytes(&self, path: &Path, bytes: usize) {
        let snapshot = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snap-"));
        if snapshot {
            self.bytes.fetch_add(bytes as u64, Ordering::SeqCst);
            self.largest.fetch_max(bytes as u64, Ordering::SeqCst);
        }
    }
}

/// The page cache keeps a file in folios as large as the writes that filled it, and a fault
/// on a mapping maps the whole folio: a reader that probes a run written in 1 MiB writes
/// counted a megabyte of resident memory per probe (docs/BENCHMARKS.md, stop 26).
#[test]
fn a_run_is_written_in_pieces_of_at_most_64_kib() {
    let mem = MemoryStorage::new();
    let writes = Arc::new(SnapshotWrites::default());
    let store = Options::new()
        .storage(Arc::new(Observed {
            inner: Arc::new(mem.clone()),
            observer: Arc::clone(&writes) as Arc<dyn Observer>,
        }))
        .auto_checkpoint(false)
        .open(DIR)
        .expect("open");
    // About 5 MiB in one file: its body and its index are each larger than one piece.
    fill(&store, 0..400_000, &[5u8; 2]);
    store.checkpoint().expect("checkpoint");
    let on_disk = snapshot_bytes(&mem);
    assert!(on_disk > 4 << 20, "the run takes {on_disk} bytes");
    assert!(writes.bytes.load(Ordering::SeqCst) >= on_disk);
    let largest = writes.largest.load(Ordering::SeqCst);
    assert!(largest <= 64 << 10, "a write of {largest} bytes");
}
