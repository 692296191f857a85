//! The commit index (FORMAT.md §8, RECOVERY.md "The commit index"): readers see a commit only
//! once its sync returned, nothing changed means no reads, a failed sync poisons every handle,
//! a deleted or damaged index is rebuilt, and watches report changes under a prefix.
//! Tests with several real processes are in `processes.rs`.

mod common;

use common::{Failing, Observed, Observer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use walstore::storage::{MemoryStorage, Storage};
use walstore::{Change, Durability, Error, Options, Store};

fn on(storage: Arc<dyn Storage>) -> Store {
    Options::new()
        .storage(storage)
        .open(std::path::Path::new("/store"))
        .expect("open")
}

fn get(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    store
        .begin_read()
        .expect("read")
        .get(key)
        .expect("get")
        .map(|v| v.to_vec())
}

/// Holds every `fdatasync` until opened, and says when one is waiting.
#[derive(Debug, Default)]
struct SyncGate {
    closed: AtomicBool,
    state: Mutex<u64>,
    changed: Condvar,
}

impl SyncGate {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }
    /// Waits until a sync is held at the gate.
    fn wait_for_a_held_sync(&self) {
        let mut held = self.state.lock().expect("gate");
        while *held == 0 {
            held = self.changed.wait(held).expect("gate");
        }
    }
}

impl Observer for SyncGate {
    fn sync_data(&self) {
        let mut held = self.state.lock().expect("gate");
        if self.closed.load(Ordering::SeqCst) {
            *held += 1;
            self.changed.notify_all();
            while self.closed.load(Ordering::SeqCst) {
                held = self.changed.wait(held).expect("gate");
            }
            *held -= 1;
        }
    }
}

#[test]
fn a_reader_never_sees_an_immediate_commit_before_its_sync_returns() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let gate = Arc::new(SyncGate::default());
    let writer = on(Arc::new(Observed {
        inner: Arc::clone(&mem),
        observer: Arc::clone(&gate) as Arc<dyn Observer>,
    }));
    let reader = on(Arc::clone(&mem));
    writer.update(|tx| tx.put(b"before", b"1")).expect("seed");
    assert_eq!(get(&reader, b"before").as_deref(), Some(&b"1"[..]));

    gate.close();
    let committer = {
        let writer = writer.clone();
        std::thread::spawn(move || writer.update(|tx| tx.put(b"k", b"v")))
    };
    gate.wait_for_a_held_sync();
    // The commit record is written; its sync has not returned.
    for _ in 0..100 {
        assert_eq!(
            get(&reader, b"k"),
            None,
            "another handle saw it before its sync"
        );
        assert_eq!(
            get(&writer, b"k"),
            None,
            "its own handle's readers saw it too early"
        );
    }
    // A write transaction builds on it (it can only be durable after it).
    gate.open();
    committer.join().expect("thread").expect("commit");
    assert_eq!(get(&reader, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&writer, b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_buffered_commit_is_visible_once_written_unless_an_immediate_one_before_it_waits() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let gate = Arc::new(SyncGate::default());
    let writer = on(Arc::new(Observed {
        inner: Arc::clone(&mem),
        observer: Arc::clone(&gate) as Arc<dyn Observer>,
    }));
    let reader = on(Arc::clone(&mem));
    let mut tx = writer.begin_write().expect("begin");
    tx.put(b"buffered", b"1").expect("put");
    tx.set_durability(Durability::Buffered);
    tx.commit().expect("commit");
    assert_eq!(get(&reader, b"buffered").as_deref(), Some(&b"1"[..]));

    gate.close();
    let committer = {
        let writer = writer.clone();
        std::thread::spawn(move || writer.update(|tx| tx.put(b"immediate", b"2")))
    };
    gate.wait_for_a_held_sync();
    let mut tx = writer.begin_write().expect("begin");
    tx.put(b"after", b"3").expect("put");
    tx.set_durability(Durability::Buffered);
    tx.commit()
        .expect("a Buffered commit does not wait for the sync");
    assert_eq!(
        get(&reader, b"after"),
        None,
        "shown before the Immediate one it follows"
    );
    gate.open();
    committer.join().expect("thread").expect("commit");
    writer.sync().expect("sync");
    assert_eq!(get(&reader, b"immediate").as_deref(), Some(&b"2"[..]));
    assert_eq!(get(&reader, b"after").as_deref(), Some(&b"3"[..]));
}

/// Counts bytes read from files.
#[derive(Debug, Default)]
struct Reads(AtomicU64);

impl Observer for Reads {
    fn read(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64 + 1, Ordering::SeqCst);
    }
}

#[test]
fn begin_read_and_begin_write_read_no_file_when_nothing_changed() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let reads = Arc::new(Reads::default());
    let watched = on(Arc::new(Observed {
        inner: Arc::clone(&mem),
        observer: Arc::clone(&reads) as Arc<dyn Observer>,
    }));
    let other = on(Arc::clone(&mem));
    watched.update(|tx| tx.put(b"a", b"1")).expect("commit");
    other.update(|tx| tx.put(b"b", b"2")).expect("commit");
    assert_eq!(get(&watched, b"b").as_deref(), Some(&b"2"[..]));
    // Its own commit, then reads and a write transaction with nothing new.
    watched.update(|tx| tx.put(b"c", b"3")).expect("commit");
    let before = reads.0.load(Ordering::SeqCst);
    for _ in 0..1000 {
        assert_eq!(get(&watched, b"a").as_deref(), Some(&b"1"[..]));
    }
    let tx = watched.begin_write().expect("begin");
    drop(tx);
    assert_eq!(
        reads.0.load(Ordering::SeqCst),
        before,
        "read the files though nothing changed"
    );
    // Another handle's commit: read through the shared log index, not from the log
    // (FORMAT.md §9).
    other.update(|tx| tx.put(b"d", b"4")).expect("commit");
    assert_eq!(get(&watched, b"d").as_deref(), Some(&b"4"[..]));
    assert_eq!(
        reads.0.load(Ordering::SeqCst),
        before,
        "read the log for a commit the log index holds"
    );
}

#[test]
fn a_failed_sync_in_one_handle_poisons_every_handle_until_all_close() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let failing = Failing::new(Arc::clone(&mem));
    let arm = failing.handle();
    let a = on(Arc::new(failing));
    let b = on(Arc::clone(&mem));
    a.update(|tx| tx.put(b"k", b"1")).expect("seed");
    arm.fail_after(1, false); // the commit's write goes through, its sync fails
    let failed = a.update(|tx| tx.put(b"k", b"2"));
    assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
    assert!(a.is_poisoned());
    assert!(b.is_poisoned(), "the other handle does not know");
    let refused = b.update(|tx| tx.put(b"k", b"3"));
    assert!(
        matches!(refused, Err(Error::Poisoned { .. })),
        "the other handle's commit went through: {refused:?}"
    );
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"1"[..]), "reads go on");
    // A handle opened while the others still have the store open is poisoned too.
    let c = on(Arc::clone(&mem));
    assert!(matches!(
        c.update(|tx| tx.put(b"k", b"4")),
        Err(Error::Poisoned { .. })
    ));
    drop((a, b, c));
    let reopened = on(Arc::clone(&mem));
    assert!(!reopened.is_poisoned());
    reopened
        .update(|tx| tx.put(b"k", b"5"))
        .expect("writes after every handle closed");
    assert_eq!(get(&reopened, b"k").as_deref(), Some(&b"5"[..]));
}

#[test]
fn a_deleted_truncated_or_garbage_index_is_rebuilt_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let shm = dir.join("SHM");
    let open = || Options::new().open(&dir).expect("open");
    {
        let s = open();
        s.update(|tx| tx.put(b"k0", b"v")).expect("commit");
    }
    assert!(shm.exists(), "the index file is where FORMAT.md says");
    type Damage<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let damages: [Damage; 5] = [
        (
            "deleted",
            Box::new(|| std::fs::remove_file(&shm).expect("rm")),
        ),
        (
            "truncated",
            Box::new(|| std::fs::write(&shm, b"").expect("write")),
        ),
        (
            "garbage",
            Box::new(|| {
                let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
                std::fs::write(&shm, garbage).expect("write")
            }),
        ),
        (
            "longer than a page, of garbage",
            Box::new(|| {
                let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 253) as u8).collect();
                std::fs::write(&shm, garbage).expect("write")
            }),
        ),
        (
            "a plausible index of another state",
            Box::new(|| {
                let mut bytes = std::fs::read(&shm).expect("read");
                bytes[48] ^= 0x10; // written end, checksum now wrong
                std::fs::write(&shm, bytes).expect("write")
            }),
        ),
    ];
    for (i, (what, damage)) in damages.iter().enumerate() {
        damage();
        let s = open();
        for j in 0..=i {
            assert_eq!(
                get(&s, format!("k{j}").as_bytes()).as_deref(),
                Some(&b"v"[..]),
                "after the index was {what}"
            );
        }
        s.update(|tx| tx.put(format!("k{}", i + 1).as_bytes(), b"v"))
            .expect("commit");
        let other = open();
        assert_eq!(
            get(&other, format!("k{}", i + 1).as_bytes()).as_deref(),
            Some(&b"v"[..]),
            "a second handle sees the first one's commit after the index was {what}"
        );
        let len = std::fs::metadata(&shm).expect("stat").len();
        assert_eq!(len, 4096, "the index file after it was {what}");
    }
}

#[test]
fn watch_reports_committed_changes_under_its_prefix_from_another_handle() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let a = on(Arc::clone(&mem));
    let b = on(Arc::clone(&mem));
    a.update(|tx| tx.put(b"cfg.old", b"0")).expect("seed");
    let mut watch = a.watch(b"cfg.").expect("watch");
    assert_eq!(
        watch.try_next().expect("look"),
        None,
        "nothing before the watch"
    );
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        b.update(|tx| {
            tx.put(b"cfg.url", b"https://x")?;
            tx.put(b"cfg.tls", b"1")?;
            tx.put(b"other", b"not watched")
        })
        .expect("commit");
        b.update(|tx| tx.delete(b"cfg.old")).expect("delete");
    });
    let mut seen: Vec<Change> = Vec::new();
    while seen.len() < 3 {
        match watch.next_timeout(Duration::from_secs(10)).expect("watch") {
            Some(change) => seen.push(change),
            None => panic!("no change within 10 s; saw {seen:?}"),
        }
    }
    writer.join().expect("writer");
    seen.sort_by(|x, y| x.key.cmp(&y.key));
    let keys: Vec<(&[u8], Option<&[u8]>)> = seen
        .iter()
        .map(|c| (&c.key[..], c.value.as_deref()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (&b"cfg.old"[..], None),
            (&b"cfg.tls"[..], Some(&b"1"[..])),
            (&b"cfg.url"[..], Some(&b"https://x"[..])),
        ]
    );
    assert_eq!(watch.try_next().expect("look"), None, "nothing else");
}
