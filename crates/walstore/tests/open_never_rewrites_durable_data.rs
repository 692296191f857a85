//! A read-write open makes what it found durable without writing over log bytes that may be
//! durable and hold data (crash harness finding A): a power cut during such a rewrite could
//! tear them into garbage. RECOVERY.md H2/H3 (the WAL header rebuilt from the manifest) and
//! S1 (the unproven tail folded by a checkpoint; the clean marker of a clean close).

mod common;

use common::places;
use std::path::Path;
use std::sync::Arc;
use walstore::storage::{MemoryStorage, StorageOp};
use walstore::{Options, Store};

const DIR: &str = "/db";

fn mem_options(mem: &MemoryStorage) -> Options {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
}

fn mem_open(mem: &MemoryStorage) -> Store {
    mem_options(mem).open(DIR).expect("open")
}

fn put(store: &Store, key: &str, value: &str) {
    store
        .update(|tx| tx.put(key.as_bytes(), value.as_bytes()))
        .expect("commit");
}

fn state(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let read = store.begin_read().expect("begin_read");
    read.range::<&[u8], _>(..)
        .expect("range")
        .map(|item| {
            let (k, v) = item.expect("item");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Commits `b=2` through `store` (which holds `a=1`), cuts the power, and checks both survived:
/// the store is writable after recovery and what it wrote is durable.
fn a_write_survives_a_power_cut(mem: &MemoryStorage, store: Store) {
    put(&store, "b", "2");
    drop(store);
    mem.crash();
    assert_eq!(state(&mem_open(mem)), pairs(&[("a", "1"), ("b", "2")]));
}

fn wal(mem: &MemoryStorage) -> Vec<u8> {
    mem.read_file(&Path::new(DIR).join("wal")).expect("wal")
}

#[test]
fn a_clean_close_marks_the_log_and_the_next_open_folds_nothing() {
    for p in places() {
        let store = p.open();
        put(&store, "a", "1");
        put(&store, "b", "2");
        store.close().expect("close");

        let dump = walstore::inspect::dump_wal(p.storage.as_ref(), &p.dir).expect("dump");
        let last = dump.records.last().expect("records");
        assert_eq!(
            last.kind, "clean",
            "[{}] the log ends with the marker",
            p.name
        );
        assert_eq!(
            last.txn_id, 2,
            "[{}] the marker takes no transaction id",
            p.name
        );
        assert_eq!(
            last.synced_through,
            Some(last.offset),
            "[{}] the marker proves the log durable up to itself",
            p.name
        );
        assert_eq!(dump.end, last.offset + last.len, "[{}]", p.name);

        let store = p.open();
        let info = store.info().expect("info");
        assert_eq!(
            info.generation, 0,
            "[{}] a clean log needs no checkpoint",
            p.name
        );
        assert_eq!(info.last_txn, 2, "[{}]", p.name);
        assert_eq!(
            state(&store),
            pairs(&[("a", "1"), ("b", "2")]),
            "[{}]",
            p.name
        );
        put(&store, "c", "3");
        assert_eq!(store.info().expect("info").last_txn, 3, "[{}]", p.name);
        drop(store);

        let store = p.open();
        assert_eq!(store.info().expect("info").generation, 0, "[{}]", p.name);
        assert_eq!(
            state(&store),
            pairs(&[("a", "1"), ("b", "2"), ("c", "3")]),
            "[{}]",
            p.name
        );
    }
}

#[test]
fn a_handle_that_committed_nothing_leaves_no_marker() {
    for p in places() {
        let store = p.open();
        put(&store, "a", "1");
        drop(store);
        let records = || {
            walstore::inspect::dump_wal(p.storage.as_ref(), &p.dir)
                .expect("dump")
                .records
                .len()
        };
        let before = records();
        let store = p.open();
        assert_eq!(state(&store), pairs(&[("a", "1")]), "[{}]", p.name);
        drop(store);
        assert_eq!(records(), before, "[{}] a reader-only handle wrote", p.name);
    }
}

#[test]
fn an_unclean_end_is_folded_by_a_checkpoint_and_the_log_is_not_rewritten() {
    let mem = MemoryStorage::new();
    let store = mem_open(&mem);
    put(&store, "a", "1");
    put(&store, "b", "2");
    // A power cut with the handle still open: no clean marker.
    mem.crash();
    drop(store);
    let before = wal(&mem);

    let store = mem_open(&mem);
    assert_eq!(state(&store), pairs(&[("a", "1"), ("b", "2")]));
    let info = store.info().expect("info");
    assert_eq!(
        info.generation, 1,
        "the unproven last commits were folded into a snapshot file"
    );
    let after = wal(&mem);
    assert_eq!(
        after[4096..],
        before[4096..],
        "the open wrote over log records (only the header may change)"
    );
    drop(store);
    mem.crash();
    assert_eq!(
        state(&mem_open(&mem)),
        pairs(&[("a", "1"), ("b", "2")]),
        "after a further power cut"
    );
}

#[test]
fn a_wal_header_torn_into_garbage_is_rebuilt_from_the_manifest() {
    for p in places() {
        let store = p.open();
        put(&store, "a", "1");
        put(&store, "b", "2");
        drop(store);
        let mut wal = p.read("wal");
        for (i, b) in wal[..512].iter_mut().enumerate() {
            *b = (i * 131 % 251) as u8 ^ 0x5a;
        }
        p.write("wal", &wal);
        assert!(walstore::inspect::decode_wal_header(&p.read("wal")[..4096]).is_err());

        // Read-only: nothing may be written, everything is read.
        let ro = p
            .options()
            .read_only(true)
            .open(&p.dir)
            .expect("read-only open");
        assert_eq!(state(&ro), pairs(&[("a", "1"), ("b", "2")]), "[{}]", p.name);
        drop(ro);
        assert_eq!(p.read("wal"), wal, "[{}] a read-only open wrote", p.name);

        let store = p.open();
        assert_eq!(
            state(&store),
            pairs(&[("a", "1"), ("b", "2")]),
            "[{}]",
            p.name
        );
        assert_eq!(
            walstore::inspect::decode_wal_header(&p.read("wal")[..4096])
                .map(|h| h.0)
                .ok(),
            Some(0),
            "[{}] the header was rewritten for the manifest's generation",
            p.name
        );
        put(&store, "c", "3");
        drop(store);
        let report =
            walstore::inspect::verify(p.storage.as_ref(), &p.dir, |_, _| {}).expect("verify");
        assert!(report.first_damage().is_none(), "[{}] {report:?}", p.name);
        assert_eq!(
            state(&p.open()),
            pairs(&[("a", "1"), ("b", "2"), ("c", "3")]),
            "[{}]",
            p.name
        );
    }
}

#[test]
fn a_full_disk_at_open_after_a_crash_fails_the_open_typed_and_loses_nothing() {
    let mem = MemoryStorage::new();
    let store = mem_open(&mem);
    put(&store, "a", "1");
    mem.crash();
    drop(store);
    let before = wal(&mem);

    // No file can be created: the checkpoint that would copy the unproven tail cannot run.
    mem.fail_after(0, Some(StorageOp::Create), 28, true);
    let opened = mem_options(&mem).open(DIR);
    match &opened {
        Err(e) => assert!(e.is_out_of_space(), "not a full-disk error: {e}"),
        Ok(_) => panic!("a read-write open succeeded without making the unproven tail durable"),
    }
    drop(opened);
    assert_eq!(wal(&mem), before, "the failed open wrote to the log");
    // Reading needs no space.
    let ro = mem_options(&mem)
        .read_only(true)
        .open(DIR)
        .expect("read-only open on a full disk");
    assert_eq!(state(&ro), pairs(&[("a", "1")]));
    drop(ro);

    assert!(mem.clear_fault());
    let store = mem_open(&mem);
    assert_eq!(store.info().expect("info").generation, 1);
    assert_eq!(state(&store), pairs(&[("a", "1")]));
    a_write_survives_a_power_cut(&mem, store);
}

/// The clean marker is not synced at close (it carries no data); the next open alone zeroes
/// it, unsynced, and takes the log's end to be its start; the first commit is written there,
/// over it, and its one sync covers both. A failure of that sync is the commit's error and
/// loses nothing: after a power cut the store holds what it held, whatever of the commit,
/// the zeros or the marker reached the disk.
#[test]
fn the_first_commit_is_written_over_the_clean_marker_and_a_failed_sync_loses_nothing() {
    let mem = MemoryStorage::new();
    let store = mem_open(&mem);
    put(&store, "a", "1");
    // Its commits were durable: the close writes the marker and syncs nothing.
    mem.fail_after(0, Some(StorageOp::Sync), 5, false);
    store.close().expect("close");
    assert!(!mem.clear_fault(), "the close made a sync");
    let closed = wal(&mem);

    mem.fail_after(0, Some(StorageOp::Sync), 5, false);
    let store = mem_open(&mem);
    assert_eq!(wal(&mem).len(), closed.len(), "the open grew the log");
    let failed = store.update(|tx| tx.put(b"b", b"2"));
    assert!(mem.clear_fault(), "the commit made no sync");
    assert!(failed.is_err(), "a failed sync was hidden: {failed:?}");
    drop(store);
    mem.crash();
    let store = mem_open(&mem);
    assert_eq!(state(&store), pairs(&[("a", "1")]));
    a_write_survives_a_power_cut(&mem, store);
}

/// A process that opens a cleanly closed store, commits and closes makes 1 sync: the
/// commit's own (`Immediate`) or the close's (`Buffered`), its record written where the
/// clean marker was; what they committed survives a power cut right after. Twice in a row,
/// so the second finds the marker the first one's close wrote.
#[test]
fn a_one_shot_write_makes_one_sync() {
    for durability in [
        walstore::Durability::Immediate,
        walstore::Durability::Buffered,
    ] {
        let mem = MemoryStorage::new();
        let store = mem_open(&mem);
        put(&store, "a", "1");
        store.close().expect("close");
        for (round, key) in ["b", "c"].into_iter().enumerate() {
            // Any sync past the one allowed fails, and with it the write or the close.
            mem.fail_after(1, Some(StorageOp::Sync), 5, true);
            let store = mem_open(&mem);
            let mut tx = store.begin_write().expect("begin_write");
            tx.set_durability(durability);
            tx.put(key.as_bytes(), b"2").expect("put");
            tx.commit().expect("commit");
            store.close().expect("close");
            assert!(
                !mem.clear_fault(),
                "{durability:?}, round {round}: more than 1 sync"
            );
        }
        mem.crash();
        assert_eq!(
            state(&mem_open(&mem)),
            pairs(&[("a", "1"), ("b", "2"), ("c", "2")]),
            "{durability:?}"
        );
    }
}

#[test]
fn closing_makes_buffered_commits_durable() {
    let mem = MemoryStorage::new();
    let store = mem_open(&mem);
    let other = mem_open(&mem);
    let mut tx = store.begin_write().expect("begin_write");
    tx.set_durability(walstore::Durability::Buffered);
    tx.put(b"a", b"1").expect("put");
    tx.commit().expect("commit");
    // Another handle keeps the writer lock: no marker, but the commit is still made durable.
    let busy = other.begin_write().expect("begin_write");
    store.close().expect("close");
    drop(busy);
    drop(other);
    mem.crash();
    assert_eq!(state(&mem_open(&mem)), pairs(&[("a", "1")]));
}
