//! Checkpoints fold the log into snapshot files without changing what is stored, scale with
//! the changed key ranges, and a crash between any two of their steps leaves the old or the
//! new generation.
mod common;

use common::{dump, places, Failing};
use std::sync::Arc;
use walstore::storage::MemoryStorage;
use walstore::Options;

fn load(store: &walstore::Store, range: std::ops::Range<u32>, tag: &str) {
    store
        .update(|tx| {
            for i in range {
                tx.put(
                    format!("key{i:05}").as_bytes(),
                    format!("{tag}-{i}-{}", "x".repeat(60)).as_bytes(),
                )?;
            }
            Ok::<_, walstore::Error>(())
        })
        .expect("load");
}

#[test]
fn checkpoint_then_reopen_gives_the_same_state() {
    for p in places() {
        let store = p
            .options()
            .segment_size_bytes_target(8192)
            .open(&p.dir)
            .expect("open");
        load(&store, 0..1000, "a");
        store.update(|tx| tx.delete(b"key00010")).expect("delete");
        let before = dump(&store);
        let stats = store.checkpoint().expect("checkpoint");
        assert_eq!(stats.generation, 1);
        assert!(stats.files_written >= 5, "[{}] {stats:?}", p.name);
        assert_eq!(
            dump(&store),
            before,
            "[{}] same state after checkpoint",
            p.name
        );
        drop(store);
        let store = p.open();
        assert_eq!(dump(&store), before, "[{}] same state after reopen", p.name);
        let info = store.info().expect("info");
        assert_eq!(
            (info.generation, info.wal_bytes, info.txns_since_checkpoint),
            (1, 0, 0)
        );
    }
}

#[test]
fn checkpoint_rewrites_only_the_files_whose_range_changed() {
    for p in places() {
        let store = p
            .options()
            .segment_size_bytes_target(8192)
            .open(&p.dir)
            .expect("open");
        load(&store, 0..2000, "a");
        let first = store.checkpoint().expect("checkpoint");
        assert!(first.files_written > 10, "[{}] {first:?}", p.name);
        // Change two keys close together: one or two files are rewritten, the rest kept.
        store
            .update(|tx| {
                tx.put(b"key01000", b"changed")?;
                tx.put(b"key01001", b"changed")
            })
            .expect("update");
        let second = store.checkpoint().expect("checkpoint");
        assert!(second.files_written <= 2, "[{}] {second:?}", p.name);
        assert_eq!(
            second.files_kept, first.files_written,
            "[{}] {second:?}",
            p.name
        );
        assert!(
            second.bytes_written * 5 < first.bytes_written,
            "[{}] {first:?} {second:?}",
            p.name
        );
        let r = store.begin_read().expect("read");
        assert_eq!(
            r.get(b"key01000").expect("get").as_deref(),
            Some(&b"changed"[..])
        );
        assert_eq!(r.range::<&[u8], _>(..).expect("range").count(), 2000);
        // Replaced files are gone from the directory.
        let names = p.storage.list_dir(&p.dir).expect("list");
        let snaps = names.iter().filter(|n| n.starts_with("snap-")).count();
        assert_eq!(
            snaps,
            store.info().expect("info").snapshot_files.len(),
            "[{}] {names:?}",
            p.name
        );
    }
}

#[test]
fn a_crash_between_any_two_checkpoint_steps_leaves_the_old_or_the_new_generation() {
    let mut step = 0u64;
    loop {
        let memory = MemoryStorage::new();
        let failing = Arc::new(Failing::new(Arc::new(memory.clone())));
        let faults = failing.handle();
        let options = || {
            Options::new()
                .storage(failing.clone())
                .auto_checkpoint(false)
                .segment_size_bytes_target(4096)
        };
        let store = options().open("/db").expect("open");
        load(&store, 0..300, "a");
        store.checkpoint().expect("first checkpoint");
        load(&store, 100..400, "b");
        store.update(|tx| tx.delete(b"key00005")).expect("delete");
        let expected = dump(&store);
        // Everything after `step` mutating calls fails: the machine stops there.
        faults.fail_after(step, true);
        let result = store.checkpoint();
        let fired = faults.disarm();
        drop(store);
        memory.crash();
        let store = options()
            .open("/db")
            .unwrap_or_else(|e| panic!("step {step}: reopen failed: {e}"));
        assert_eq!(
            dump(&store),
            expected,
            "step {step}: state changed by an interrupted checkpoint"
        );
        let generation = store.info().expect("info").generation;
        assert!(
            (1..=2).contains(&generation),
            "step {step}: generation {generation}"
        );
        // Writable afterwards; a later checkpoint cleans up and succeeds.
        store
            .update(|tx| tx.put(b"after", b"crash"))
            .expect("write after crash");
        store.checkpoint().expect("checkpoint after crash");
        drop(store);
        memory.crash();
        let store = options().open("/db").expect("reopen");
        assert_eq!(
            store
                .begin_read()
                .expect("read")
                .get(b"after")
                .expect("get")
                .as_deref(),
            Some(&b"crash"[..])
        );
        let names = memory.list_dir(std::path::Path::new("/db")).expect("list");
        let snaps = names.iter().filter(|n| n.starts_with("snap-")).count();
        assert_eq!(
            snaps,
            store.info().expect("info").snapshot_files.len(),
            "step {step}: garbage files {names:?}"
        );
        if result.is_ok() {
            // Only the removal of replaced files may fail after the switch (it is retried by
            // the next checkpoint); an acknowledged checkpoint is the durable generation.
            assert_eq!(generation, 2, "step {step}: acknowledged checkpoint lost");
            if !fired {
                assert!(step > 5, "the checkpoint has several steps");
                return;
            }
        }
        step += 1;
    }
}

use walstore::storage::Storage;
