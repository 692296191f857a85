//! The log index (FORMAT.md §9): a handle that opens a store another handle has open, or
//! catches up with its commits, reads them through the shared index instead of reading the
//! log; a closing writer folds a long log into a run, so the next process to open the store
//! alone reads little of it; an index left over from before is never trusted; and two
//! handles taking turns at random operations always read what a model says.

mod common;

use common::{Observed, Observer};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use walstore::storage::{FsStorage, MemoryStorage, Storage};
use walstore::{Durability, Options, Store};

/// Counts the bytes read from the WAL (`wal` in the store directory).
#[derive(Debug, Default)]
struct WalReads(AtomicU64);

impl Observer for WalReads {
    fn read_file(&self, path: &Path, bytes: usize) {
        if path.file_name().is_some_and(|n| n == "wal") {
            self.0.fetch_add(bytes as u64, Ordering::SeqCst);
        }
    }
}

impl WalReads {
    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::SeqCst)
    }
}

fn counted(inner: Arc<dyn Storage>, reads: &Arc<WalReads>) -> Options {
    Options::new()
        .storage(Arc::new(Observed {
            inner,
            observer: Arc::clone(reads) as Arc<dyn Observer>,
        }))
        .durability(Durability::Buffered)
}

fn value(i: u64, round: u64) -> Vec<u8> {
    let mut v = format!("value {i} of round {round} ").into_bytes();
    v.resize(10_000, b'.');
    v
}

/// Writes about `mib` MiB of log in transactions of ten 10 kB values.
fn write_log(store: &Store, mib: u64, round: u64) {
    for t in 0..mib * 10 {
        store
            .update(|tx| {
                for i in t * 10..t * 10 + 10 {
                    tx.put(format!("key{i:06}").as_bytes(), &value(i, round))?;
                }
                Ok::<(), walstore::Error>(())
            })
            .expect("commit");
    }
}

fn put(store: &Store, key: &[u8], value: &[u8]) {
    store.update(|tx| tx.put(key, value)).expect("put");
}

fn read(store: &Store, key: &str) -> Option<Vec<u8>> {
    let r = store.begin_read().expect("read");
    r.get(key.as_bytes()).expect("get").map(|v| v.to_vec())
}

#[test]
fn an_open_beside_a_live_handle_reads_almost_none_of_a_40_mb_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let writer = Options::new()
        .durability(Durability::Buffered)
        .open(&dir)
        .expect("open");
    write_log(&writer, 40, 1);
    let info = writer.info().expect("info");
    assert!(
        info.wal_bytes > 40_000_000,
        "log of {} bytes",
        info.wal_bytes
    );
    assert_eq!(info.memtable_keys, 0, "the writer's log is in the index");
    assert!(info.log_index_entries >= 4000);

    let reads = Arc::new(WalReads::default());
    let other = counted(Arc::new(FsStorage), &reads)
        .open(&dir)
        .expect("open");
    assert_eq!(read(&other, "key003999"), Some(value(3999, 1)));
    let scanned = other
        .begin_read()
        .expect("read")
        .range::<&[u8], _>(..)
        .expect("range")
        .count();
    assert_eq!(scanned, 4000);
    let read_bytes = reads.take();
    assert!(
        read_bytes < 1 << 20,
        "an open and a scan beside a live handle read {read_bytes} bytes of the log"
    );
    assert_eq!(other.info().expect("info").memtable_keys, 0);
}

#[test]
fn a_reader_catches_up_through_the_index_without_reading_the_values() {
    let mem = MemoryStorage::new();
    let reads = Arc::new(WalReads::default());
    let writer = Options::new()
        .storage(Arc::new(mem.clone()))
        .durability(Durability::Buffered)
        .open("/db")
        .expect("open");
    let reader = counted(Arc::new(mem.clone()), &reads)
        .open("/db")
        .expect("open");
    reads.take();
    write_log(&writer, 2, 7);
    assert_eq!(read(&reader, "key000199"), Some(value(199, 7)));
    let read_bytes = reads.take();
    assert!(
        read_bytes < 64 << 10,
        "catching up with 2 MiB of another handle's commits read {read_bytes} bytes of the log"
    );
}

#[test]
fn a_closing_writer_folds_a_long_log_so_the_next_lone_open_reads_little() {
    let mem = MemoryStorage::new();
    let store = Options::new()
        .storage(Arc::new(mem.clone()))
        .durability(Durability::Buffered)
        .open("/db")
        .expect("open");
    write_log(&store, 3, 2);
    store.close().expect("close");

    let reads = Arc::new(WalReads::default());
    let next = counted(Arc::new(mem.clone()), &reads)
        .open("/db")
        .expect("open");
    assert_eq!(read(&next, "key000005"), Some(value(5, 2)));
    let info = next.info().expect("info");
    assert_eq!(info.wal_bytes, 0, "the close left the log folded");
    let read_bytes = reads.take();
    assert!(
        read_bytes < 256 << 10,
        "a lone open read {read_bytes} bytes of the log"
    );

    // Below the bound a close leaves the log as it is (a clean marker).
    put(&next, b"small", b"1");
    next.close().expect("close");
    let again = Options::new()
        .storage(Arc::new(mem))
        .open("/db")
        .expect("open");
    assert!(again.info().expect("info").wal_bytes > 0);
    assert_eq!(read(&again, "small"), Some(b"1".to_vec()));
}

#[test]
fn only_the_last_handle_to_close_folds_the_log() {
    let mem = MemoryStorage::new();
    let open = || {
        Options::new()
            .storage(Arc::new(mem.clone()))
            .durability(Durability::Buffered)
            .open("/db")
            .expect("open")
    };
    let writer = open();
    let reader = open();
    write_log(&writer, 3, 4);
    writer.close().expect("close");
    assert_eq!(read(&reader, "key000029"), Some(value(29, 4)));
    let info = reader.info().expect("info");
    assert!(
        info.wal_bytes > 3_000_000 && info.generation == 0,
        "a handle closing beside another folded the log: {info:?}"
    );
    // The reader wrote nothing, but it is the last: it folds.
    reader.close().expect("close");
    let next = open();
    assert_eq!(next.info().expect("info").wal_bytes, 0);
    assert_eq!(read(&next, "key000029"), Some(value(29, 4)));
}

#[test]
fn an_index_left_over_from_before_is_never_trusted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let opts = || {
        Options::new()
            .durability(Durability::Buffered)
            .auto_checkpoint(false)
    };
    let store = opts().open(&dir).expect("open");
    put(&store, b"k", b"old");
    // The index as it was: it describes this generation, and says `k` is "old".
    let stale = std::fs::read(dir.join("LOGINDEX")).expect("read the index");
    put(&store, b"k", b"new");
    put(&store, b"gone", b"x");
    store.update(|tx| tx.delete(b"gone")).expect("delete");
    store.close().expect("close");

    std::fs::write(dir.join("LOGINDEX"), &stale).expect("put the old index back");
    let reopened = opts().open(&dir).expect("open");
    assert_eq!(read(&reopened, "k"), Some(b"new".to_vec()));
    assert_eq!(read(&reopened, "gone"), None);
    reopened.close().expect("close");

    // Garbage in its place: rebuilt too.
    std::fs::write(dir.join("LOGINDEX"), vec![0xA5u8; 10_000]).expect("garbage");
    let reopened = opts().open(&dir).expect("open");
    assert_eq!(read(&reopened, "k"), Some(b"new".to_vec()));
}

/// A `LOGINDEX` of another layout (another build of walstore made it, beside this one:
/// RECOVERY.md X12) is never read or written: handles beside it read the log, and their
/// commits go to their own memtables until the next generation gets a new index.
#[test]
fn an_index_of_another_layout_is_neither_read_nor_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let opts = || Options::new().durability(Durability::Buffered);
    let first = opts().open(&dir).expect("open");
    write_log(&first, 1, 1);
    put(&first, b"k", b"old");
    // The layout word (FORMAT.md §9, offset 8) as a build of another layout would set it,
    // written through the file while `first` maps it.
    let path = dir.join("LOGINDEX");
    let mut bytes = std::fs::read(&path).expect("read the index");
    let layout = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    assert_eq!(layout, 3, "this build's layout");
    bytes[8..16].copy_from_slice(&2u64.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write the index");

    let second = opts().open(&dir).expect("open");
    assert_eq!(read(&second, "key000099"), Some(value(99, 1)));
    assert_eq!(read(&second, "k"), Some(b"old".to_vec()));
    put(&second, b"k", b"new");
    assert_eq!(read(&first, "k"), Some(b"new".to_vec()));
    assert_eq!(read(&first, "key000042"), Some(value(42, 1)));
    put(&first, b"k", b"newer");
    assert_eq!(read(&second, "k"), Some(b"newer".to_vec()));
    let after = std::fs::read(&path).expect("read the index");
    assert!(after == bytes, "the other layout's index was written");
    // The next generation gets an index of this build's layout.
    first.checkpoint().expect("checkpoint");
    put(&second, b"k", b"newest");
    assert_eq!(read(&first, "k"), Some(b"newest".to_vec()));
    let fresh = std::fs::read(&path).expect("read the index");
    assert_eq!(&fresh[8..16], &3u64.to_le_bytes());
    assert_eq!(first.info().expect("info").memtable_keys, 0);
}

/// A handle of the store at `/db` in `mem`, its commits `Buffered`, no automatic checkpoint.
fn open_in_memory(mem: &MemoryStorage) -> Store {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .durability(Durability::Buffered)
        .auto_checkpoint(false)
        .open("/db")
        .expect("open")
}

/// Every key and value a snapshot reads, forwards, then backwards (put back in key order).
#[allow(clippy::type_complexity)]
fn both_ways(r: &walstore::ReadTxn) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<(Vec<u8>, Vec<u8>)>) {
    let read = |reverse: bool| {
        let iter = r.range::<&[u8], _>(..).expect("range");
        let items = |x: walstore::Result<(Vec<u8>, walstore::Value)>| {
            x.map(|(k, v)| (k, v.to_vec())).expect("item")
        };
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = if reverse {
            iter.rev().map(items).collect()
        } else {
            iter.map(items).collect()
        };
        if reverse {
            out.reverse();
        }
        out
    };
    (read(false), read(true))
}

/// Two handles of one store take turns at random transactions (puts, deletes, range
/// deletions), checkpoints, scans both ways and reopens of either handle; after each step
/// both read what a model says.
#[test]
fn two_handles_taking_turns_read_what_a_model_says() {
    for seed in 1..=12u64 {
        let mem = MemoryStorage::new();
        let open = || open_in_memory(&mem);
        let mut handles = [open(), open()];
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for step in 0..250u32 {
            let h = next(2) as usize;
            match next(20) {
                0 => {
                    handles[h].checkpoint().expect("checkpoint");
                }
                1 => {
                    handles[h] = open();
                }
                2 => {
                    let lo = format!("k{:02}", next(40)).into_bytes();
                    let hi = format!("k{:02}", next(40)).into_bytes();
                    handles[h]
                        .update(|tx| tx.delete_range(&lo[..]..&hi[..]))
                        .expect("delete_range");
                    model.retain(|k, _| !(k >= &lo && k < &hi));
                }
                _ => {
                    let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..1 + next(4))
                        .map(|_| {
                            let k = format!("k{:02}", next(40)).into_bytes();
                            let v = (next(5) != 0).then(|| format!("{seed}-{step}").into_bytes());
                            (k, v)
                        })
                        .collect();
                    handles[h]
                        .update(|tx| {
                            for (k, v) in &writes {
                                match v {
                                    Some(v) => tx.put(k, v)?,
                                    None => tx.delete(k)?,
                                }
                            }
                            Ok::<(), walstore::Error>(())
                        })
                        .expect("update");
                    for (k, v) in writes {
                        match v {
                            Some(v) => model.insert(k, v),
                            None => model.remove(&k),
                        };
                    }
                }
            }
            for (i, handle) in handles.iter().enumerate() {
                let r = handle.begin_read().expect("read");
                let (forward, backward) = both_ways(&r);
                let want: Vec<(Vec<u8>, Vec<u8>)> =
                    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(forward, want, "seed {seed} step {step} handle {i}");
                assert_eq!(
                    backward, want,
                    "seed {seed} step {step} handle {i} backwards"
                );
                let probe = format!("k{:02}", next(40)).into_bytes();
                let got = r.get(&probe).expect("get").map(|v| v.to_vec());
                assert_eq!(got.as_ref(), model.get(&probe), "seed {seed} step {step}");
            }
        }
    }
}

/// A store whose log holds no data (here: just checkpointed) opens without making a log
/// index, which would cost a one-shot read a file's removal, creation and allocation for
/// nothing; the first commit with data makes one, and a handle opened beside it reads that
/// commit through it.
#[test]
fn an_open_that_finds_no_data_in_the_log_makes_no_index_until_a_commit_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let opts = || Options::new().durability(Durability::Buffered);
    let store = opts().open(&dir).expect("open");
    put(&store, b"k", b"in a run");
    store.checkpoint().expect("checkpoint");
    store.close().expect("close");
    let index = dir.join("LOGINDEX");
    let _ = std::fs::remove_file(&index);

    let first = opts().open(&dir).expect("open");
    assert_eq!(read(&first, "k"), Some(b"in a run".to_vec()));
    assert!(
        !index.exists(),
        "an open of a log without data made a log index"
    );

    let reads = Arc::new(WalReads::default());
    let beside = counted(Arc::new(FsStorage), &reads)
        .open(&dir)
        .expect("open");
    reads.take();
    put(&first, b"new", &value(1, 1));
    assert!(index.exists(), "the first commit with data made no index");
    let info = first.info().expect("info");
    assert_eq!(info.memtable_keys, 0, "the commit is not in the index");
    assert_eq!(info.log_index_entries, 1);
    assert_eq!(read(&beside, "new"), Some(value(1, 1)));
    let read_bytes = reads.take();
    assert!(
        read_bytes < 4096,
        "a handle beside the writer read {read_bytes} bytes of the log to catch up"
    );
    assert_eq!(beside.info().expect("info").memtable_keys, 0);
}

/// The in-memory file system with a log index of `SMALL_INDEX` bytes at most: it fills, and
/// is sealed, after a few hundred small transactions.
#[derive(Debug, Clone)]
struct SmallIndex(MemoryStorage);

const SMALL_INDEX: usize = 128 << 10;

impl Storage for SmallIndex {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(path)
    }
    fn open(
        &self,
        path: &Path,
        mode: walstore::storage::OpenMode,
    ) -> std::io::Result<Box<dyn walstore::storage::StorageFile>> {
        self.0.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.0.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.0.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.0.exists(path)
    }
    fn open_lock(&self, path: &Path) -> std::io::Result<Box<dyn walstore::storage::StorageLock>> {
        self.0.open_lock(path)
    }
    fn open_region(
        &self,
        path: &Path,
        deadline: Option<std::time::Instant>,
    ) -> std::io::Result<walstore::storage::OpenedRegion> {
        self.0.open_region(path, deadline)
    }
    fn create_shared(
        &self,
        path: &Path,
        _capacity: usize,
    ) -> std::io::Result<Arc<dyn walstore::storage::SharedFile>> {
        self.0.create_shared(path, SMALL_INDEX)
    }
    fn open_shared(
        &self,
        path: &Path,
        _capacity: usize,
    ) -> std::io::Result<Arc<dyn walstore::storage::SharedFile>> {
        self.0.open_shared(path, SMALL_INDEX)
    }
}

/// Once the log index is full (sealed, RECOVERY.md X6), later commits are read from the log:
/// a handle that opens beside the writer reads them all, from where the index stops.
#[test]
fn a_handle_opened_after_the_index_filled_reads_every_later_commit() {
    let storage = Arc::new(SmallIndex(MemoryStorage::new()));
    let opts = || {
        Options::new()
            .storage(Arc::clone(&storage) as Arc<dyn Storage>)
            .auto_checkpoint(false)
    };
    let writer = opts().open("/db").expect("open");
    let mut n = 0u64;
    // Until the index takes no more (its entries stop growing), and some commits after.
    let mut sealed_for = 0;
    while sealed_for < 20 {
        let before = writer.info().expect("info").log_index_entries;
        put(&writer, format!("key{n:06}").as_bytes(), &[b'v'; 200]);
        n += 1;
        if writer.info().expect("info").log_index_entries == before {
            sealed_for += 1;
        }
        assert!(n < 100_000, "the index never filled");
    }
    let entries = writer.info().expect("info").log_index_entries;
    assert!(
        entries > 10 && entries + 20 <= n,
        "{entries} entries in the index of {n} commits"
    );
    let other = opts().open("/db").expect("open beside the writer");
    for i in [0, n / 2, n - 1] {
        assert_eq!(
            read(&other, &format!("key{i:06}")),
            Some(vec![b'v'; 200]),
            "key {i} of {n}"
        );
    }
}

/// Readers on other handles read whole transactions while a writer's small ones go on the log
/// index's recent chain and are merged into its list every 128 entries (FORMAT.md §9): in
/// every snapshot, each group's three keys (always written together) carry the same round,
/// forwards, backwards and key by key. The writer goes on until the readers have taken 40
/// snapshots between them; the readers run until the writer is done.
#[test]
fn readers_see_whole_transactions_while_the_recent_chain_is_merged() {
    use std::sync::atomic::AtomicBool;
    const GROUPS: u64 = 8;
    const ROUNDS: u64 = 1500;
    let mem = MemoryStorage::new();
    let open = || open_in_memory(&mem);
    let writer = open();
    let done = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let handle = open();
            let (done, last, seen) = (Arc::clone(&done), Arc::clone(&last), Arc::clone(&seen));
            std::thread::spawn(move || {
                let mut snapshots = 0u64;
                let mut last_round = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let r = handle.begin_read().expect("read");
                    let (forward, backward) = both_ways(&r);
                    assert_eq!(backward, forward, "snapshot {snapshots}");
                    for (k, v) in &forward {
                        assert_eq!(r.get(k).expect("get").map(|v| v.to_vec()).as_ref(), Some(v));
                    }
                    let mut newest = 0u64;
                    for group in forward.chunks(3) {
                        assert_eq!(group.len(), 3, "a transaction seen in part: {group:?}");
                        let prefix = |k: &[u8]| k[..k.len() - 1].to_vec();
                        assert!(
                            group
                                .iter()
                                .all(|(k, v)| prefix(k) == prefix(&group[0].0) && *v == group[0].1),
                            "a transaction seen in part: {group:?}"
                        );
                        let round: u64 =
                            String::from_utf8_lossy(&group[0].1).parse().expect("round");
                        newest = newest.max(round);
                    }
                    assert!(newest >= last_round, "a later snapshot went back in time");
                    last_round = newest;
                    snapshots += 1;
                    seen.fetch_add(1, Ordering::AcqRel);
                    if finished {
                        let last = last.load(Ordering::Acquire);
                        assert_eq!(newest, last, "the last snapshot sees the last commit");
                        return snapshots;
                    }
                }
            })
        })
        .collect();
    let mut round = 0;
    while round < ROUNDS || seen.load(Ordering::Acquire) < 40 {
        round += 1;
        let group = round % GROUPS;
        writer
            .update(|tx| {
                for k in ["a", "b", "c"] {
                    tx.put(
                        format!("g{group}/{k}").as_bytes(),
                        round.to_string().as_bytes(),
                    )?;
                }
                Ok::<(), walstore::Error>(())
            })
            .expect("commit");
    }
    last.store(round, Ordering::Release);
    done.store(true, Ordering::Release);
    for reader in readers {
        let snapshots = reader.join().expect("reader");
        assert!(snapshots >= 1);
    }
    let info = writer.info().expect("info");
    assert!(
        info.log_index_entries >= 3 * ROUNDS,
        "the commits went through the log index: {info:?}"
    );
}

/// `Store::holds_unfolded_log`, what the `walstore` command's reading commands ask before they
/// fold a log a process left without closing: true for a read-only handle that read more of
/// the log into memory of its own than a close leaves, false below that bound and for a
/// handle that reads the log through the shared index.
#[test]
fn a_handle_says_whether_it_holds_more_log_of_its_own_than_a_close_leaves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    // About 100 KiB of log, below the close's bound: the close leaves it unfolded.
    let store = Store::open(&dir).expect("open");
    for i in 0..100u32 {
        store
            .update(|tx| tx.put(format!("k{i}").as_bytes(), &[7u8; 1000]))
            .expect("update");
    }
    store.close().expect("close");
    let read_only = |bound: u64| {
        Options::default()
            .read_only(true)
            .close_checkpoint_bytes(bound)
            .open(&dir)
            .expect("open read-only")
    };
    assert!(!read_only(1 << 20).holds_unfolded_log(), "below the bound");
    assert!(read_only(16 << 10).holds_unfolded_log(), "above the bound");
    // A read-write handle alone makes the log index; a read-only handle beside it reads
    // through that, holding none of the log itself.
    let writer = Options::default()
        .close_checkpoint_bytes(16 << 10)
        .open(&dir)
        .expect("open");
    assert!(!writer.holds_unfolded_log());
    let beside = read_only(16 << 10);
    assert!(
        !beside.holds_unfolded_log(),
        "beside a handle that shares the index"
    );
    assert_eq!(
        beside
            .begin_read()
            .expect("read")
            .get(b"k99")
            .expect("get")
            .as_deref(),
        Some(&[7u8; 1000][..])
    );
    drop(beside);
    // The writer's close, the last, folds the log above its bound: nothing is left to hold.
    writer.close().expect("close");
    assert!(!read_only(16 << 10).holds_unfolded_log(), "after the fold");
}
