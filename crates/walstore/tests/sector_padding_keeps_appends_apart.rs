//! `Options::sector_size`: every append (transaction or clean marker) ends on a sector
//! boundary, so no later write shares a sector with bytes an earlier sync made durable
//! (FORMAT.md §4.2). A padded log reads back with or without the option. What a torn append
//! then does to the sectors around it is checked by the crash harness's strict model.

mod common;

use common::dump as state;
use std::path::Path;
use std::sync::Arc;
use walstore::inspect::dump_wal;
use walstore::storage::MemoryStorage;
use walstore::{Durability, Options, Store};

const DIR: &str = "/db";

fn open(mem: &MemoryStorage, sector_size: u32) -> Store {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
        .sector_size(sector_size)
        .open(DIR)
        .expect("open")
}

/// End offsets of every commit record and clean marker in the log.
fn append_ends(mem: &MemoryStorage) -> Vec<u64> {
    let dump = dump_wal(mem, Path::new(DIR)).expect("dump");
    dump.records
        .iter()
        .filter(|r| r.kind == "commit" || r.kind == "clean")
        .map(|r| r.offset + r.len)
        .collect()
}

fn commit_some(store: &Store) {
    for (i, size) in [1usize, 100, 4000, 5000, 9000].into_iter().enumerate() {
        let mut tx = store.begin_write().expect("begin_write");
        if i % 2 == 1 {
            tx.set_durability(Durability::Buffered);
        }
        tx.put(format!("k{i}").as_bytes(), &vec![i as u8; size])
            .expect("put");
        tx.commit().expect("commit");
    }
}

#[test]
fn every_append_ends_on_a_sector_boundary() {
    for sector in [512u32, 4096] {
        let mem = MemoryStorage::new();
        let store = open(&mem, sector);
        commit_some(&store);
        let expected = state(&store);
        store.close().expect("close");
        let ends = append_ends(&mem);
        assert_eq!(ends.len(), 6, "five transactions and a clean marker");
        for end in ends {
            assert_eq!(
                end % u64::from(sector),
                0,
                "sector {sector}: append ends at {end}"
            );
        }
        // Read back with and without the option.
        assert_eq!(state(&open(&mem, 0)), expected);
        assert_eq!(state(&open(&mem, sector)), expected);
    }
}

#[test]
fn without_the_option_appends_are_not_padded() {
    let mem = MemoryStorage::new();
    let store = open(&mem, 0);
    commit_some(&store);
    store.close().expect("close");
    assert!(
        append_ends(&mem).iter().any(|end| end % 512 != 0),
        "unpadded appends end anywhere"
    );
}

#[test]
fn odd_sizes_round_up_to_a_power_of_two_between_512_and_4096() {
    for (asked, sector) in [(1u32, 512u64), (600, 1024), (4096, 4096), (70000, 4096)] {
        let mem = MemoryStorage::new();
        let store = open(&mem, asked);
        commit_some(&store);
        store.close().expect("close");
        for end in append_ends(&mem) {
            assert_eq!(end % sector, 0, "asked {asked}: append ends at {end}");
        }
    }
}

#[test]
fn an_unpadded_log_is_continued_padded_after_reopening_with_the_option() {
    let mem = MemoryStorage::new();
    let store = open(&mem, 0);
    store.update(|tx| tx.put(b"a", b"1")).expect("commit");
    store.close().expect("close");
    let store = open(&mem, 4096);
    store.update(|tx| tx.put(b"b", b"2")).expect("commit");
    let expected = state(&store);
    drop(store);
    mem.crash();
    // Read before reopening: the close's marker is not synced, so the power cut took it, and
    // the reopen folds the log it no longer proves into a run.
    let last = *append_ends(&mem).last().expect("an append");
    assert_eq!(last % 4096, 0, "the first padded append ends aligned");
    assert_eq!(state(&open(&mem, 4096)), expected);
}
