//! Opens read the manifest and the live log, never preallocated space or a dead log; the log
//! shrinks back after a checkpoint; an open checks no page of a run's body (each is checked
//! at its first read); a new store is small; a one-shot process that commits once costs one
//! `fdatasync` (its commit's, written over the clean marker that ended the log) and no
//! directory fsync, and one that only reads syncs nothing and leaves the log as it was.

mod common;

use common::{Observed, Observer};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use walstore::storage::{MemoryStorage, Storage};
use walstore::{Durability, Options, Store};

const DIR: &str = "/db";

/// What went through the storage seam.
#[derive(Debug, Default)]
struct Counts {
    bytes_read: AtomicU64,
    data_syncs: AtomicU64,
    full_syncs: AtomicU64,
    dir_syncs: AtomicU64,
    wal_bytes_written: AtomicU64,
}

impl Counts {
    fn take(&self) -> [u64; 4] {
        [
            self.bytes_read.swap(0, Ordering::SeqCst),
            self.data_syncs.swap(0, Ordering::SeqCst),
            self.full_syncs.swap(0, Ordering::SeqCst),
            self.dir_syncs.swap(0, Ordering::SeqCst),
        ]
    }
}

impl Observer for Counts {
    fn read(&self, bytes: usize) {
        self.bytes_read.fetch_add(bytes as u64, Ordering::SeqCst);
    }
    fn sync_data(&self) {
        self.data_syncs.fetch_add(1, Ordering::SeqCst);
    }
    fn sync_all(&self) {
        self.full_syncs.fetch_add(1, Ordering::SeqCst);
    }
    fn sync_dir(&self) {
        self.dir_syncs.fetch_add(1, Ordering::SeqCst);
    }
    fn write_bytes(&self, path: &Path, bytes: usize) {
        if path.file_name().is_some_and(|n| n == "wal") {
            self.wal_bytes_written
                .fetch_add(bytes as u64, Ordering::SeqCst);
        }
    }
}

/// The in-memory file system, counting reads (also through maps) and syncs.
#[derive(Debug, Clone)]
struct Counting {
    inner: MemoryStorage,
    counts: Arc<Counts>,
}

fn counting() -> Counting {
    Counting {
        inner: MemoryStorage::new(),
        counts: Arc::default(),
    }
}

fn options(fs: &Counting) -> Options {
    Options::new()
        .storage(Arc::new(Observed {
            inner: Arc::new(fs.inner.clone()),
            observer: Arc::clone(&fs.counts) as Arc<dyn Observer>,
        }))
        .durability(Durability::Immediate)
}

fn file_bytes(fs: &Counting) -> u64 {
    fs.inner
        .list_dir(Path::new(DIR))
        .expect("list")
        .iter()
        .map(|n| {
            fs.inner
                .read_file(&Path::new(DIR).join(n))
                .map_or(0, |b| b.len() as u64)
        })
        .sum()
}

fn commit_three(store: &Store, round: u32) {
    store
        .update(|tx| {
            for k in ["server.url", "server.namespace", "server.tls-verify"] {
                tx.put(k.as_bytes(), format!("{k}-{round}").as_bytes())?;
            }
            Ok::<(), walstore::Error>(())
        })
        .expect("commit");
}

/// Three one-shot processes in turn (rounds 1 to 3) open the store with `durability` (and
/// what `tune` sets), commit three keys and close: each makes one `fdatasync` (or `fsync`) and
/// no directory fsync.
fn one_sync_per_one_shot_commit(
    fs: &Counting,
    durability: Durability,
    tune: impl Fn(Options) -> Options,
) {
    for round in 1..4 {
        fs.counts.take();
        let store = tune(options(fs).durability(durability))
            .open(DIR)
            .expect("open");
        commit_three(&store, round);
        store.close().expect("close");
        let [_, data, full, dir] = fs.counts.take();
        assert!(
            data + full == 1 && dir == 0,
            "{durability:?}, round {round}: {data} fdatasyncs, {full} fsyncs, {dir} directory \
             fsyncs"
        );
    }
}

#[test]
fn a_store_holding_a_few_kilobytes_takes_under_256_kib() {
    let fs = counting();
    let store = options(&fs).open(DIR).expect("open");
    store
        .update(|tx| {
            for i in 0..45 {
                tx.put(format!("key/{i:03}").as_bytes(), &[b'v'; 100])?;
            }
            Ok::<(), walstore::Error>(())
        })
        .expect("commit");
    store.close().expect("close");
    let bytes = file_bytes(&fs);
    assert!(bytes < 256 << 10, "4.5 KB of state take {bytes} bytes");
}

#[test]
fn a_one_shot_commit_costs_one_fdatasync_and_no_directory_fsync() {
    for durability in [Durability::Immediate, Durability::Buffered] {
        let fs = counting();
        let store = options(&fs).open(DIR).expect("create");
        commit_three(&store, 0);
        store.close().expect("close");
        one_sync_per_one_shot_commit(&fs, durability, |o| o.auto_checkpoint(false));
        let store = options(&fs).open(DIR).expect("open");
        let read = store.begin_read().expect("read");
        assert_eq!(
            read.get(b"server.url").expect("get").as_deref(),
            Some(&b"server.url-3"[..])
        );
        // Nothing was folded: every open found the log proven, in the first generation.
        assert_eq!(store.info().expect("info").generation, 0, "{durability:?}");
    }
}

/// Beside a long-lived handle, a one-shot commit costs one `fdatasync` too: a handle that
/// closes while others have the store open leaves the log to the last of them, so the next
/// one finds nothing past the durable end to sync before its commit. The last handle's close
/// marks the log clean, and the next open alone folds nothing.
#[test]
fn a_one_shot_commit_beside_a_live_handle_costs_one_fdatasync() {
    for durability in [Durability::Immediate, Durability::Buffered] {
        let fs = counting();
        let holder = options(&fs).open(DIR).expect("create");
        commit_three(&holder, 0);
        one_sync_per_one_shot_commit(&fs, durability, |o| o);
        let read = holder.begin_read().expect("read");
        assert_eq!(
            read.get(b"server.url").expect("get").as_deref(),
            Some(&b"server.url-3"[..])
        );
        drop(read);
        holder.close().expect("close the holder");
        let store = options(&fs).auto_checkpoint(false).open(DIR).expect("open");
        let read = store.begin_read().expect("read");
        assert_eq!(
            read.get(b"server.namespace").expect("get").as_deref(),
            Some(&b"server.namespace-3"[..])
        );
        // The holder's close marked the log clean: the open alone found it all proven.
        assert_eq!(store.info().expect("info").generation, 0, "{durability:?}");
    }
}

/// Three one-shot processes in turn open the store `opts` opens, read `server.url` (it reads
/// `expect`, in generation `generation`), and close: each syncs nothing and leaves the log as
/// it found it.
fn one_shot_reads_sync_nothing(
    fs: &Counting,
    opts: impl Fn() -> Options,
    expect: &[u8],
    generation: u64,
    label: &str,
) {
    let wal = || {
        fs.inner
            .read_file(&Path::new(DIR).join("wal"))
            .expect("wal")
    };
    let before = wal();
    for round in 0..3 {
        fs.counts.take();
        let store = opts().open(DIR).expect("open");
        let read = store.begin_read().expect("read");
        assert_eq!(
            read.get(b"server.url").expect("get").as_deref(),
            Some(expect)
        );
        drop(read);
        let info = store.info().expect("info");
        assert_eq!(info.generation, generation, "{label}, round {round}");
        store.close().expect("close");
        let [_, data, full, dir] = fs.counts.take();
        assert_eq!(
            [data, full, dir],
            [0, 0, 0],
            "{label}, round {round}: syncs"
        );
        assert!(wal() == before, "{label}, round {round}: the log changed");
    }
}

/// A process that opens a cleanly closed store, reads and closes syncs nothing, and leaves
/// the store as it found it: the next one syncs nothing either, and folds nothing.
#[test]
fn a_one_shot_read_syncs_nothing_and_leaves_the_store_as_it_found_it() {
    let fs = counting();
    let store = options(&fs).open(DIR).expect("create");
    commit_three(&store, 0);
    store.close().expect("close");
    one_shot_reads_sync_nothing(&fs, || options(&fs), b"server.url-0", 0, "clean close");
}

/// A store whose log a checkpoint emptied (the last handle's close folding it, or a
/// checkpoint before the close) is ended by a clean marker too: a one-shot read of it makes no
/// directory fsync (nothing would tell the open that the fold's was made) and no other sync,
/// and leaves the log as it found it.
#[test]
fn a_one_shot_read_after_a_checkpoint_emptied_the_log_syncs_nothing() {
    for fold_at_close in [true, false] {
        let fs = counting();
        let opts = || options(&fs).close_checkpoint_bytes(4096);
        let store = opts().open(DIR).expect("create");
        for i in 0..100 {
            commit_three(&store, i);
        }
        if !fold_at_close {
            store.checkpoint().expect("checkpoint");
        }
        store.close().expect("close");
        let label = format!("fold at close {fold_at_close}");
        one_shot_reads_sync_nothing(&fs, opts, b"server.url-99", 1, &label);
        // A read-only handle keeps the marker in its view, and counts no log bytes either.
        let reader = opts().read_only(true).open(DIR).expect("read-only open");
        assert_eq!(reader.info().expect("info").wal_bytes, 0);
    }
}

#[test]
fn an_open_reads_neither_preallocated_space_nor_a_dead_log() {
    let fs = counting();
    // Up to 64 MiB of zeros ahead of use, a log that grows past 64 MiB, then a checkpoint.
    let opts = || {
        options(&fs)
            .wal_preallocate_bytes(64 << 20)
            .wal_size_bytes_checkpoint(1 << 40)
            .auto_checkpoint(false)
    };
    let store = opts().open(DIR).expect("open");
    for round in 0..70u32 {
        store
            .update(|tx| tx.put(format!("big/{round}").as_bytes(), &vec![7u8; 1 << 20]))
            .expect("commit");
    }
    let wal_before = store.info().expect("info").wal_file_bytes;
    assert!(wal_before > 64 << 20, "the log is {wal_before} bytes");
    store.checkpoint().expect("checkpoint");
    let wal_after = store.info().expect("info").wal_file_bytes;
    assert!(
        wal_after <= 128 << 10,
        "after a checkpoint the log still takes {wal_after} bytes"
    );
    commit_three(&store, 1);
    drop(store); // no clean close: the open has a tail to check
    fs.counts.take();
    let store = opts().open(DIR).expect("reopen");
    let [read, ..] = fs.counts.take();
    // The runs (70 MiB) are mapped, which the seam counts as a read of the whole file (an open
    // checks none of their pages: `an_open_checks_no_page_of_a_run_body`): count only what is
    // not a run.
    let runs: u64 = store
        .info()
        .expect("info")
        .snapshot_files
        .iter()
        .map(|f| f.1)
        .sum();
    assert!(
        read - runs.min(read) < 1 << 20,
        "the open read {read} bytes, {runs} of them snapshot files"
    );
    let r = store.begin_read().expect("read");
    assert!(r.get(b"server.url").expect("get").is_some());
    assert_eq!(
        r.get(b"big/69").expect("get").map(|v| v.len()),
        Some(1 << 20)
    );
}

/// FORMAT.md §5.4: an open checks a run file's header and range deletions, and no page of
/// its entries, index or page table; a read checks the pages it touches. With a byte flipped in every page of entries but the first, the open
/// succeeds (a version 2 open, which checked the whole body, failed), and a read that touches
/// a damaged page is corruption naming the file.
#[test]
fn an_open_checks_no_page_of_a_run_body() {
    let fs = counting();
    let opts = || options(&fs).auto_checkpoint(false);
    let store = opts().open(DIR).expect("open");
    store
        .update(|tx| {
            for i in 0..2000u32 {
                tx.put(format!("key/{i:05}").as_bytes(), &[b'v'; 200])?;
            }
            Ok::<(), walstore::Error>(())
        })
        .expect("commit");
    store.checkpoint().expect("checkpoint");
    let files = store.info().expect("info").snapshot_files;
    store.close().expect("close");
    assert_eq!(files.len(), 1, "{files:?}");
    let path = Path::new(DIR).join(&files[0].0);
    let mut bytes = fs.inner.read_file(&path).expect("run");
    let table = u64::from_le_bytes(bytes[80..88].try_into().expect("8 bytes")) as usize;
    let index = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    assert!(index < table);
    // Pages 1 .. the one the index starts in hold only entries.
    let pages = (index - 96) / 4096;
    assert!(pages > 100, "{pages} pages of entries");
    for page in 1..pages {
        bytes[96 + page * 4096 + 7] ^= 0x40;
    }
    fs.inner.write_file_durable(&path, &bytes);
    let store = opts().open(DIR).expect("the open checks no damaged page");
    let read = store.begin_read().expect("read");
    match read.get(b"key/01000") {
        Err(walstore::Error::Corruption { file, .. }) => assert!(file.ends_with(&files[0].0)),
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// FORMAT.md §3: a commit of more than 96 KiB that does not fit the zeroed space ahead
/// extends the file itself, and no zeros follow it: commits of about 119 KB (an overwrite of
/// 1,000 keys of 116 bytes, in batch records) write the log once. Zeros written after each of them would be written twice, once as zeros and
/// again as the next commit (0.56× of the log's bytes, docs/BENCHMARKS.md stop 27).
#[test]
fn large_commits_write_the_log_once() {
    let fs = counting();
    let store = options(&fs).auto_checkpoint(false).open(DIR).expect("open");
    let before = fs.counts.wal_bytes_written.swap(0, Ordering::SeqCst);
    assert!(
        before > 0,
        "creating the log wrote nothing through the seam"
    );
    for round in 0..20u32 {
        store
            .update(|tx| {
                for i in 0..1000u32 {
                    tx.put(format!("key/{round:02}/{i:09}").as_bytes(), &[7u8; 100])?;
                }
                Ok::<(), walstore::Error>(())
            })
            .expect("commit");
    }
    let info = store.info().expect("info");
    let written = fs.counts.wal_bytes_written.load(Ordering::SeqCst);
    assert!(
        info.wal_bytes > 20 * 116_000,
        "{} bytes of log",
        info.wal_bytes
    );
    assert!(
        written <= info.wal_bytes + (4 << 10),
        "{written} bytes written for {} bytes of log",
        info.wal_bytes
    );
    assert!(
        info.wal_file_bytes <= 4096 + info.wal_bytes + (4 << 10),
        "the log file takes {} bytes for {} bytes of log",
        info.wal_file_bytes,
        info.wal_bytes
    );
    // A small commit after them grows zeroed space again, and all of it reads back.
    commit_three(&store, 1);
    assert!(store.info().expect("info").wal_file_bytes > 4096 + info.wal_bytes + (60 << 10));
    // Commits of 85 KiB land in zeroed space: the file grows a few times, not at each. Each
    // growth zeroes an eighth of the log (over 2 MB here: at least three such commits).
    let mut sizes = std::collections::BTreeSet::new();
    for round in 0..20u32 {
        store
            .update(|tx| tx.put(format!("blob/{round}").as_bytes(), &[9u8; 85 << 10]))
            .expect("commit");
        sizes.insert(store.info().expect("info").wal_file_bytes);
    }
    assert!(
        sizes.len() <= 20 / 3 + 1,
        "the file grew {} times",
        sizes.len()
    );
    drop(store);
    let store = options(&fs).open(DIR).expect("reopen");
    let r = store.begin_read().expect("read");
    assert_eq!(
        r.get(b"key/19/000000999").expect("get").map(|v| v.len()),
        Some(100)
    );
    assert!(r.get(b"server.url").expect("get").is_some());
}

#[test]
fn a_new_log_with_a_large_preallocation_setting_starts_small() {
    let fs = counting();
    let opts = || {
        options(&fs)
            .wal_preallocate_bytes(64 << 20)
            .auto_checkpoint(false)
    };
    let store = opts().open(DIR).expect("open");
    commit_three(&store, 0);
    drop(store);
    fs.counts.take();
    let store = opts().open(DIR).expect("reopen");
    let [read, ..] = fs.counts.take();
    assert!(read < 1 << 20, "the open read {read} bytes");
    assert!(store.info().expect("info").wal_file_bytes <= 128 << 10);
}
