//! Basic transaction behaviour on both backends.
mod common;

use common::{dump, kv, places};
use walstore::Durability;

#[test]
fn committed_writes_are_visible_and_survive_reopen() {
    for p in places() {
        let store = p.open();
        let mut tx = store.begin_write().expect("begin");
        tx.put(b"b", b"2").expect("put");
        tx.put(b"a", b"1").expect("put");
        assert_eq!(
            tx.get(b"a").expect("get").as_deref(),
            Some(&b"1"[..]),
            "[{}] own write",
            p.name
        );
        tx.commit().expect("commit");
        store
            .update(|tx| {
                tx.delete(b"b")?;
                tx.put(b"c", b"3")
            })
            .expect("update");
        assert_eq!(dump(&store), kv(&[("a", "1"), ("c", "3")]), "[{}]", p.name);
        drop(store);
        let store = p.open();
        assert_eq!(
            dump(&store),
            kv(&[("a", "1"), ("c", "3")]),
            "[{}] after reopen",
            p.name
        );
    }
}

#[test]
fn dropped_or_aborted_transactions_leave_nothing() {
    for p in places() {
        let store = p.open();
        {
            let mut tx = store.begin_write().expect("begin");
            tx.put(b"x", b"1").expect("put");
        }
        let mut tx = store.begin_write().expect("begin");
        tx.put(b"y", b"1").expect("put");
        tx.abort();
        let failed: Result<(), walstore::Error> = store.update(|tx| {
            tx.put(b"z", b"1")?;
            Err(walstore::Error::ReadOnly)
        });
        assert!(failed.is_err());
        assert_eq!(dump(&store), kv(&[]), "[{}]", p.name);
        drop(store);
        assert_eq!(dump(&p.open()), kv(&[]), "[{}] after reopen", p.name);
    }
}

#[test]
fn reads_see_a_snapshot_taken_when_they_began() {
    for p in places() {
        let store = p.open();
        store.update(|tx| tx.put(b"k", b"old")).expect("update");
        let before = store.begin_read().expect("read");
        store.update(|tx| tx.put(b"k", b"new")).expect("update");
        store.checkpoint().expect("checkpoint");
        store.update(|tx| tx.put(b"k", b"newer")).expect("update");
        assert_eq!(
            before.get(b"k").expect("get").as_deref(),
            Some(&b"old"[..]),
            "[{}]",
            p.name
        );
        let after = store.begin_read().expect("read");
        assert_eq!(
            after.get(b"k").expect("get").as_deref(),
            Some(&b"newer"[..]),
            "[{}]",
            p.name
        );
    }
}

#[test]
fn range_and_prefix_scans_merge_log_and_snapshot() {
    for p in places() {
        let store = p
            .options()
            .segment_size_bytes_target(4096)
            .open(&p.dir)
            .expect("open");
        store
            .update(|tx| {
                for i in 0..500u32 {
                    tx.put(format!("key{i:04}").as_bytes(), &[b'v'; 40])?;
                }
                Ok::<_, walstore::Error>(())
            })
            .expect("load");
        let stats = store.checkpoint().expect("checkpoint");
        assert!(
            stats.files_written > 1,
            "[{}] expected several snapshot files: {stats:?}",
            p.name
        );
        store
            .update(|tx| {
                tx.delete(b"key0100")?;
                tx.put(b"key0100a", b"x")?;
                tx.put(b"key0499", b"last")
            })
            .expect("update");
        let r = store.begin_read().expect("read");
        let keys: Vec<Vec<u8>> = r
            .scan_prefix(b"key010")
            .expect("scan")
            .map(|i| i.expect("item").0)
            .collect();
        let expected: Vec<Vec<u8>> = [
            "key0100a", "key0101", "key0102", "key0103", "key0104", "key0105", "key0106",
            "key0107", "key0108", "key0109",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        assert_eq!(keys, expected, "[{}]", p.name);
        let tail: Vec<(Vec<u8>, Vec<u8>)> = r
            .range(&b"key0498"[..]..)
            .expect("range")
            .map(|i| {
                let (k, v) = i.expect("item");
                (k, v.to_vec())
            })
            .collect();
        assert_eq!(
            tail,
            vec![
                (b"key0498".to_vec(), vec![b'v'; 40]),
                (b"key0499".to_vec(), b"last".to_vec())
            ]
        );
        assert_eq!(
            r.range::<&[u8], _>(..).expect("range").count(),
            500,
            "[{}]",
            p.name
        );
    }
}

#[test]
fn typed_values_round_trip_through_messagepack() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Context {
        messages: Vec<String>,
        turn: u32,
    }
    for p in places() {
        let store = p.open();
        let ctx = Context {
            messages: vec!["hi".into()],
            turn: 2,
        };
        store.update(|tx| tx.put_as(b"ctx", &ctx)).expect("update");
        let got: Option<Context> = store
            .begin_read()
            .expect("read")
            .get_as(b"ctx")
            .expect("get_as");
        assert_eq!(got, Some(ctx));
        store.update(|tx| tx.put(b"raw", &[0xc1])).expect("update");
        let bad = store.begin_read().expect("read").get_as::<Context>(b"raw");
        assert!(
            matches!(bad, Err(walstore::Error::TypeMismatch { .. })),
            "{bad:?}"
        );
        // Decimal text is never read as a number (the MessagePack integer 50, then "00").
        store.update(|tx| tx.put(b"text", b"200")).expect("update");
        let text = store.begin_read().expect("read").get_as::<u64>(b"text");
        assert!(
            matches!(text, Err(walstore::Error::TypeMismatch { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn buffered_commits_survive_reopen_and_sync_makes_them_durable() {
    for p in places() {
        let store = p
            .options()
            .durability(Durability::Buffered)
            .open(&p.dir)
            .expect("open");
        store.update(|tx| tx.put(b"a", b"1")).expect("update");
        store.sync().expect("sync");
        let mut tx = store.begin_write().expect("begin");
        tx.set_durability(Durability::Immediate);
        tx.put(b"b", b"2").expect("put");
        tx.commit().expect("commit");
        if let Some(m) = &p.memory {
            drop(store);
            m.crash();
        } else {
            drop(store);
        }
        assert_eq!(
            dump(&p.open()),
            kv(&[("a", "1"), ("b", "2")]),
            "[{}]",
            p.name
        );
    }
}

/// GUARANTEES.md: a later Immediate commit makes every earlier Buffered commit durable, also
/// when it writes nothing (an empty Immediate commit used to return without a sync; found by
/// the `ops` fuzz target).
#[test]
fn an_empty_immediate_commit_makes_earlier_buffered_commits_durable() {
    let mem = walstore::storage::MemoryStorage::new();
    let open = || {
        walstore::Options::new()
            .storage(std::sync::Arc::new(mem.clone()))
            .auto_checkpoint(false)
            .open("/db")
            .expect("open")
    };
    let store = open();
    let mut tx = store.begin_write().expect("begin_write");
    tx.set_durability(walstore::Durability::Buffered);
    tx.put(b"a", b"1").expect("put");
    tx.commit().expect("buffered commit");
    store
        .begin_write()
        .expect("begin_write")
        .commit()
        .expect("empty immediate commit");
    mem.crash();
    drop(store); // its files died with the power: nothing it does at drop reaches the disk
    let read = open().begin_read().expect("begin_read");
    assert_eq!(
        read.get(b"a").expect("get").map(|v| v.to_vec()),
        Some(b"1".to_vec())
    );
}
