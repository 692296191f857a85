//! The change feed (GUARANTEES.md "The change feed"): every durable commit, in order, from a
//! transaction id on; a registered consumer keeps the log a checkpoint would reset and
//! resumes after its last acknowledgement across reopens; a reader behind what is kept is
//! told so (`FeedGap`), never handed a gap; a replica kept by the feed equals its source, and
//! a backup plus the feed restores any retained point.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use walstore::{Durability, Error, FeedRecord, Options, Retention, Store};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn open(dir: &Path) -> Store {
    Options::new()
        .auto_checkpoint(false)
        .open(dir)
        .expect("open")
}

fn put(store: &Store, pairs: &[(&str, &str)]) -> u64 {
    store
        .update(|tx| {
            for (k, v) in pairs {
                tx.put(k.as_bytes(), v.as_bytes())?;
            }
            Ok::<_, Error>(())
        })
        .expect("commit");
    store.begin_read().expect("read").txn_id()
}

fn state(store: &Store) -> State {
    let read = store.begin_read().expect("read");
    read.range::<&[u8], _>(..)
        .expect("range")
        .map(|item| {
            let (k, v) = item.expect("item");
            (k, v.to_vec())
        })
        .collect()
}

/// Every record durable now.
fn drain(store: &Store, prefix: &[u8], since: u64) -> Vec<FeedRecord> {
    let mut feed = store.changes(prefix, since).expect("changes");
    let mut out = Vec::new();
    while let Some(record) = feed.try_next().expect("next") {
        out.push(record);
    }
    out
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn every_commit_under_the_prefix_is_read_in_order_with_its_deletions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let t1 = put(&store, &[("cfg/a", "1"), ("other", "x")]);
    let t2 = put(&store, &[("other", "y")]);
    store
        .update(|tx| {
            tx.delete_range(&b"cfg/"[..]..)?;
            tx.put(b"cfg/b", b"2")?;
            tx.delete(b"cfg/c")
        })
        .expect("commit");
    let t3 = store.begin_read().expect("read").txn_id();
    let records = drain(&store, b"cfg/", 0);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].txn_id, t1);
    assert_eq!(records[0].writes, vec![(b("cfg/a"), Some(b("1")))]);
    assert_eq!(records[1].txn_id, t3);
    assert_eq!(
        records[1].range_deletes,
        vec![(b("cfg/"), Some(b("cfg0")))],
        "an unbounded range deletion is clipped to the prefix"
    );
    assert_eq!(
        records[1].writes,
        vec![(b("cfg/b"), Some(b("2"))), (b("cfg/c"), None)]
    );
    let all = drain(&store, b"", 0);
    assert_eq!(
        all.iter().map(|r| r.txn_id).collect::<Vec<_>>(),
        vec![t1, t2, t3]
    );
    assert_eq!(
        drain(&store, b"", t2).len(),
        1,
        "reads after since_txn only"
    );
}

#[test]
fn a_buffered_commit_is_read_only_once_it_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Options::new()
        .auto_checkpoint(false)
        .durability(Durability::Buffered)
        .open(dir.path())
        .expect("open");
    put(&store, &[("k", "v")]);
    assert!(drain(&store, b"", 0).is_empty(), "not durable yet");
    store.sync().expect("sync");
    assert_eq!(drain(&store, b"", 0).len(), 1);
}

#[test]
fn a_waiting_reader_wakes_on_a_commit_from_another_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut feed = store.changes(b"", 0).expect("changes");
    assert_eq!(feed.try_next().expect("next"), None);
    let other = open(dir.path());
    let writer = std::thread::spawn(move || put(&other, &[("late", "1")]));
    let record = feed
        .next_timeout(Duration::from_secs(60))
        .expect("next")
        .expect("a record within a minute");
    assert_eq!(record.writes, vec![(b("late"), Some(b("1")))]);
    writer.join().expect("writer");
}

#[test]
fn a_checkpoint_nobody_registered_for_leaves_a_gap_the_reader_is_told_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&store, &[("a", "1")]);
    put(&store, &[("a", "2")]);
    store.checkpoint().expect("checkpoint");
    let t3 = put(&store, &[("a", "3")]);
    let mut feed = store.changes(b"", 0).expect("changes");
    match feed.try_next() {
        Err(Error::FeedGap { wanted, oldest }) => {
            assert_eq!((wanted, oldest), (1, t3));
        }
        other => panic!("expected a feed gap, got {other:?}"),
    }
    assert_eq!(drain(&store, b"", t3 - 1).len(), 1, "the live log is read");
    assert!(store.feed_state().expect("state").segments.is_empty());
}

#[test]
fn a_consumer_keeps_the_log_across_checkpoints_and_resumes_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::new();
    {
        let store = open(dir.path());
        put(&store, &[("before", "registration")]);
        let at = store.register_consumer("indexer").expect("register");
        for round in 0..4 {
            for i in 0..3 {
                let value = format!("{round}-{i}");
                expected.push(put(&store, &[("k", &value)]));
            }
            store.checkpoint().expect("checkpoint");
        }
        let state = store.feed_state().expect("state");
        assert_eq!(state.segments.len(), 4, "{state:?}");
        assert!(state.retained_bytes() > 0);
        let mut feed = store.consumer_changes("indexer", b"").expect("feed");
        let first = feed.try_next().expect("next").expect("a record");
        assert_eq!(first.txn_id, at + 1);
        let second = feed.try_next().expect("next").expect("a record");
        store.ack("indexer", second.txn_id).expect("ack");
        store.close().expect("close");
    }
    let store = open(dir.path());
    assert_eq!(
        store.consumer("indexer").expect("consumer"),
        Some(expected[1])
    );
    let resumed: Vec<u64> = {
        let mut feed = store.consumer_changes("indexer", b"").expect("feed");
        std::iter::from_fn(|| feed.try_next().expect("next"))
            .map(|r| r.txn_id)
            .collect()
    };
    assert_eq!(resumed, expected[2..].to_vec());
    // Acknowledging everything lets the next checkpoint drop what was kept for it.
    store
        .ack("indexer", *expected.last().expect("some"))
        .expect("ack");
    assert!(store.feed_state().expect("state").segments.is_empty());
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(matches!(
        store.ack("indexer", 1),
        Err(Error::InvalidConsumer { .. })
    ));
}

#[test]
fn the_retention_bound_drops_what_a_stalled_consumer_needs_and_it_is_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.register_consumer("stalled").expect("register");
    store
        .set_retention(Retention {
            max_bytes: 64 << 10,
            ..Retention::default()
        })
        .expect("retention");
    let big = "v".repeat(20_000);
    for _ in 0..6 {
        put(&store, &[("k", &big)]);
        store.checkpoint().expect("checkpoint");
    }
    let state = store.feed_state().expect("state");
    assert!(state.retained_bytes() <= 64 << 10, "{state:?}");
    assert!(!state.segments.is_empty());
    match store
        .consumer_changes("stalled", b"")
        .expect("feed")
        .try_next()
    {
        Err(e @ Error::FeedGap { .. }) => {
            assert!(e.to_string().contains("snapshot"), "{e}");
        }
        other => panic!("expected a feed gap, got {other:?}"),
    }
}

#[test]
fn a_replica_fed_by_the_feed_equals_its_source_and_a_replay_changes_nothing() {
    let src_dir = tempfile::tempdir().expect("tempdir");
    let dst_dir = tempfile::tempdir().expect("tempdir");
    let source = open(src_dir.path());
    let replica = open(dst_dir.path());
    for i in 0..40u32 {
        source
            .update(|tx| {
                tx.put(format!("k{:02}", i % 13).as_bytes(), &i.to_le_bytes())?;
                if i % 7 == 0 {
                    tx.delete_range(&b"k03"[..]..&b"k06"[..])?;
                }
                if i % 5 == 0 {
                    tx.delete(format!("k{:02}", (i + 3) % 13).as_bytes())?;
                }
                Ok::<_, Error>(())
            })
            .expect("commit");
        if i == 20 {
            replica
                .apply_changes(drain(
                    &source,
                    b"",
                    replica.applied_position().expect("pos"),
                ))
                .expect("apply");
        }
    }
    let records = drain(&source, b"", 0);
    let stats = replica.apply_changes(records.clone()).expect("apply");
    assert_eq!(stats.skipped, 21, "{stats:?}");
    assert_eq!(state(&replica), state(&source));
    let again = replica.apply_changes(records).expect("apply again");
    assert_eq!((again.applied, again.skipped), (0, 40));
    assert_eq!(state(&replica), state(&source));
    assert_eq!(
        replica.applied_position().expect("pos"),
        source.begin_read().expect("read").txn_id()
    );
}

#[test]
fn a_backup_and_the_kept_feed_restore_three_points_in_time() {
    let src_dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let source = open(src_dir.path());
    source
        .set_retention(Retention {
            keep_bytes: 1 << 30,
            ..Retention::default()
        })
        .expect("retention");
    put(&source, &[("a", "0"), ("b", "0")]);
    let backup = work.path().join("backup");
    let base = source.backup(&backup, |_| {}).expect("backup").txn_id;
    let mut points: Vec<(u64, State)> = Vec::new();
    for round in 0..9u32 {
        let txn = put(
            &source,
            &[("a", &round.to_string()), (&format!("r{round}"), "x")],
        );
        if round % 2 == 0 {
            source.update(|tx| tx.delete(b"b")).expect("delete");
            source.checkpoint().expect("checkpoint");
        }
        if round % 3 == 1 {
            points.push((txn, state(&source)));
        }
    }
    assert_eq!(points.len(), 3);
    for (i, (txn, expected)) in points.iter().enumerate() {
        let copy = work.path().join(format!("copy{i}"));
        copy_dir(&backup, &copy);
        let restored = open(&copy);
        assert_eq!(restored.applied_position().expect("pos"), base);
        let records: Vec<FeedRecord> = drain(&source, b"", base)
            .into_iter()
            .filter(|r| r.txn_id <= *txn)
            .collect();
        restored.apply_changes(records).expect("apply");
        assert_eq!(&state(&restored), expected, "restored to txn {txn}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn verify_checks_the_feed_file_and_every_sealed_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.register_consumer("c").expect("register");
    for i in 0..3 {
        put(&store, &[("k", &i.to_string())]);
        store.checkpoint().expect("checkpoint");
    }
    store.close().expect("close");
    let fs = walstore::storage::FsStorage;
    let report = walstore::inspect::verify(&fs, dir.path(), |_, _| {}).expect("verify");
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"FEED"), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("log-")).count(), 3);
    assert!(report.first_damage().is_none(), "{report:?}");
    let seg = names
        .iter()
        .find(|n| n.starts_with("log-"))
        .expect("a segment")
        .to_string();
    let path = dir.path().join(&seg);
    let len = std::fs::metadata(&path).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(len - 10)
        .expect("truncate");
    let report = walstore::inspect::verify(&fs, dir.path(), |_, _| {}).expect("verify");
    let (file, _) = report.first_damage().expect("damage found");
    assert_eq!(file.name, seg);
    // The feed that needs the damaged segment reports it, never a silent gap.
    let store = open(dir.path());
    let mut feed = store.changes(b"", 0).expect("changes");
    let err = std::iter::from_fn(|| match feed.try_next() {
        Ok(Some(_)) => Some(None),
        Ok(None) => None,
        Err(e) => Some(Some(e)),
    })
    .flatten()
    .next()
    .expect("an error");
    assert!(err.is_corruption(), "{err}");
}

/// A process that opens a cleanly closed store alone, read-write or read-only, reads every
/// commit in the feed: the clean marker the last close left is not synced, but the commits
/// before it are (the read-only open once counted nothing durable in generation 0).
#[test]
fn a_process_opening_a_cleanly_closed_store_reads_every_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&store, &[("a", "1")]);
    let last = put(&store, &[("b", "2")]);
    store.close().expect("close");
    for read_only in [true, false] {
        let store = Options::new()
            .auto_checkpoint(false)
            .read_only(read_only)
            .open(dir.path())
            .expect("open");
        let txns: Vec<u64> = drain(&store, b"", 0).iter().map(|r| r.txn_id).collect();
        assert_eq!(txns, vec![last - 1, last], "read_only {read_only}");
        store.close().expect("close");
    }
}
