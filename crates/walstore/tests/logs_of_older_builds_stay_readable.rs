//! A log started by a build from before batch records (WAL header version 2, a record per
//! write: FORMAT.md §3, RECOVERY.md O6a) opens and reads as any other; this build appends to it
//! in its own layout, so the older build can still read it, until a checkpoint starts a
//! version-3 log of batch records.
mod common;

use common::{dump, kv, places, Place};
use walstore::inspect;

/// The kinds of the records of the store's log, in order, and its header's version.
fn log_kinds(p: &Place) -> (u32, Vec<&'static str>) {
    let version = inspect::wal_header_version(&p.read("wal")).expect("a header");
    let d = inspect::dump_wal(p.storage.as_ref(), &p.dir).expect("dump");
    (version, d.records.iter().map(|r| r.kind).collect())
}

#[test]
fn a_version_2_log_is_read_and_appended_to_in_its_own_layout_until_a_checkpoint() {
    for p in places() {
        drop(p.open());
        // The log as an older build leaves it at a clean close: its header at version 2 (same
        // generation and salt), two transactions of a record per write, and a clean marker
        // (an empty commit record whose watermark is its own offset, FORMAT.md §4.3).
        let wal = p.read("wal");
        let (generation, salt, base) = inspect::decode_wal_header(&wal).expect("header");
        let mut old = inspect::encode_wal_header_version(2, generation, salt, base);
        old.extend(inspect::encode_transaction_records(
            salt,
            base + 1,
            &[(b"a", Some(b"1")), (b"b", Some(b"2"))],
            4096,
        ));
        old.extend(inspect::encode_transaction_records(
            salt,
            base + 2,
            &[(b"a", None), (b"c", Some(b"3"))],
            4096,
        ));
        let marker_at = old.len() as u64;
        old.extend(inspect::encode_transaction_records(
            salt,
            base + 2,
            &[],
            marker_at,
        ));
        old.resize(wal.len().max(old.len() + 4096), 0);
        p.write("wal", &old);
        assert_eq!(
            log_kinds(&p),
            (
                2,
                vec!["put", "put", "commit", "delete", "put", "commit", "clean"]
            ),
            "[{}] the older build's log",
            p.name
        );

        let store = p.open();
        assert_eq!(dump(&store), kv(&[("b", "2"), ("c", "3")]), "[{}]", p.name);
        store
            .update(|tx| tx.put(b"d", b"4"))
            .unwrap_or_else(|e| panic!("[{}] commit: {e}", p.name));
        let (version, kinds) = log_kinds(&p);
        assert_eq!(version, 2, "[{}] the header stays as it was", p.name);
        assert_eq!(
            kinds[5..],
            ["commit", "put", "commit"],
            "[{}] the new commit is a record per write, written over the marker",
            p.name
        );

        store.checkpoint().expect("checkpoint");
        store
            .update(|tx| {
                tx.put(b"e", b"5")?;
                tx.delete(b"b")
            })
            .expect("commit");
        assert_eq!(
            log_kinds(&p),
            (3, vec!["batch", "commit"]),
            "[{}] a checkpoint starts a version-3 log of batches",
            p.name
        );
        let expected = kv(&[("c", "3"), ("d", "4"), ("e", "5")]);
        assert_eq!(dump(&store), expected, "[{}]", p.name);
        drop(store);
        assert_eq!(dump(&p.open()), expected, "[{}] after a reopen", p.name);
    }
}

#[test]
fn a_log_of_a_newer_version_is_refused_as_unsupported_and_left_alone() {
    for p in places() {
        drop(p.open());
        let wal = p.read("wal");
        let (generation, salt, base) = inspect::decode_wal_header(&wal).expect("header");
        let mut newer = wal.clone();
        newer[..4096].copy_from_slice(&inspect::encode_wal_header_version(
            4, generation, salt, base,
        ));
        p.write("wal", &newer);
        match p.options().open(&p.dir) {
            Err(walstore::Error::UnsupportedFormat {
                found: 4,
                supported: 3,
                ..
            }) => {}
            other => panic!("[{}] a version-4 log opened: {:?}", p.name, other.err()),
        }
        assert_eq!(p.read("wal"), newer, "[{}] nothing written", p.name);
    }
}
