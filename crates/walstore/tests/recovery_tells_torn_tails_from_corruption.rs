//! Recovery keeps every committed transaction, drops a torn tail silently, and reports damage
//! to bytes that were already durable as corruption naming the file and offset.
mod common;

use common::{dump, kv, places, Place};
use walstore::{Error, RecoveryMode};

/// Commits `n` single-key transactions; returns the WAL offset where each one starts and the
/// offset where the last one ends.
fn commit_n(p: &Place, n: usize) -> (Vec<usize>, usize) {
    let store = p.open();
    for i in 0..n {
        store
            .update(|tx| {
                tx.put(format!("k{i}").as_bytes(), format!("value-{i}").as_bytes())?;
                tx.put(b"last", format!("{i}").as_bytes())
            })
            .expect("commit");
    }
    drop(store);
    // The log as a writer killed before closing leaves it: without the clean marker, whose
    // watermark would prove every transaction durable (damage then is corruption).
    let dump = walstore::inspect::dump_wal(p.storage.as_ref(), &p.dir).expect("dump");
    let mut wal = p.read("wal");
    for r in dump.records.iter().filter(|r| r.kind == "clean") {
        wal[r.offset as usize..(r.offset + r.len) as usize].fill(0);
    }
    p.write("wal", &wal);
    let dump = walstore::inspect::dump_wal(p.storage.as_ref(), &p.dir).expect("dump");
    let mut starts: Vec<usize> = Vec::new();
    let mut prev_txn = 0;
    for r in &dump.records {
        if r.txn_id != prev_txn {
            starts.push(r.offset as usize);
            prev_txn = r.txn_id;
        }
    }
    (starts, dump.end as usize)
}

fn expected_after(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("k{i}"), format!("value-{i}")))
        .collect();
    if n > 0 {
        pairs.push(("last".into(), format!("{}", n - 1)));
    }
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect()
}

#[test]
fn cutting_the_wal_at_every_offset_of_the_last_transaction_recovers_the_state_before_it() {
    for p in places() {
        let (starts, end) = commit_n(&p, 3);
        let original = p.read("wal");
        let last_start = starts[2];
        for cut in last_start..end {
            // Truncated file, and the same bytes zeroed in a preallocated file.
            let mut truncated = original[..cut].to_vec();
            p.write("wal", &truncated);
            let store = p.open();
            assert_eq!(dump(&store), expected_after(2), "[{}] cut at {cut}", p.name);
            drop(store);
            // Zeroing bytes that are zero already is no cut at all (the commit record's
            // watermark ends in zero bytes): only zero when it changes something.
            if original[cut..end].iter().all(|b| *b == 0) {
                p.write("wal", &original);
                continue;
            }
            truncated.resize(original.len(), 0);
            p.write("wal", &truncated);
            let store = p.open();
            assert_eq!(
                dump(&store),
                expected_after(2),
                "[{}] zeroed from {cut}",
                p.name
            );
            // Writable afterwards, and the new commit survives reopen.
            store
                .update(|tx| tx.put(b"after", b"cut"))
                .expect("write after recovery");
            drop(store);
            let mut expected = expected_after(2);
            expected.push((b"after".to_vec(), b"cut".to_vec()));
            expected.sort();
            assert_eq!(
                dump(&p.open()),
                expected,
                "[{}] write after cut at {cut}",
                p.name
            );
            p.write("wal", &original);
        }
    }
}

#[test]
fn a_flipped_byte_in_an_earlier_transaction_is_corruption_and_salvage_reads_the_prefix() {
    for p in places() {
        let (starts, _) = commit_n(&p, 4);
        let original = p.read("wal");
        // Inside the second transaction's first record (its key bytes).
        let offset = starts[1] + 40;
        let mut damaged = original.clone();
        damaged[offset] ^= 0x01;
        p.write("wal", &damaged);
        match p.options().open(&p.dir) {
            Err(Error::Corruption {
                file, offset: at, ..
            }) => {
                assert!(
                    file.ends_with("wal"),
                    "[{}] names the WAL: {file:?}",
                    p.name
                );
                assert_eq!(
                    at as usize, starts[1],
                    "[{}] names the damaged record",
                    p.name
                );
            }
            other => panic!("[{}] expected corruption, got {other:?}", p.name),
        }
        // Strict open changed nothing on disk.
        assert_eq!(
            p.read("wal"),
            damaged,
            "[{}] strict open must not modify the WAL",
            p.name
        );
        let salvaged = p
            .options()
            .recovery(RecoveryMode::Salvage)
            .open(&p.dir)
            .expect("salvage");
        assert!(salvaged.is_read_only());
        assert_eq!(
            dump(&salvaged),
            expected_after(1),
            "[{}] salvage keeps the intact prefix",
            p.name
        );
        assert!(matches!(salvaged.begin_write(), Err(Error::ReadOnly)));
        drop(salvaged);
        assert_eq!(
            p.read("wal"),
            damaged,
            "[{}] salvage must not modify the WAL",
            p.name
        );
    }
}

#[test]
fn a_transaction_without_its_commit_record_is_invisible() {
    for p in places() {
        let (starts, end) = commit_n(&p, 2);
        let original = p.read("wal");
        let dump_before = walstore::inspect::dump_wal(p.storage.as_ref(), &p.dir).expect("dump");
        let commit = dump_before
            .records
            .iter()
            .rev()
            .find(|r| r.kind == "commit")
            .expect("commit record");
        assert!(
            commit.offset as usize >= starts[1] && (commit.offset + commit.len) as usize == end
        );
        let mut cut = original.clone();
        for b in &mut cut[commit.offset as usize..end] {
            *b = 0;
        }
        p.write("wal", &cut);
        let store = p.open();
        assert_eq!(dump(&store), expected_after(1), "[{}]", p.name);
        // The first transaction had no later commit to prove it durable: the open folded it
        // into a snapshot file by a checkpoint (RECOVERY.md S1) instead of rewriting the log.
        assert_eq!(store.info().expect("info").generation, 1, "[{}]", p.name);
        drop(store);
        assert_eq!(dump(&p.open()), expected_after(1), "[{}] reopened", p.name);
    }
}

#[test]
fn garbage_after_the_log_with_a_plausible_header_is_a_torn_tail() {
    for p in places() {
        let (_, end) = commit_n(&p, 2);
        let mut wal = p.read("wal");
        // A record header claiming a huge length, then noise.
        wal[end..end + 8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0x0f]);
        for (i, b) in wal[end + 8..end + 200].iter_mut().enumerate() {
            *b = (i * 37 % 251) as u8;
        }
        p.write("wal", &wal);
        let store = p.open();
        assert_eq!(dump(&store), expected_after(2), "[{}]", p.name);
        store
            .update(|tx| tx.put(b"zz", b"1"))
            .expect("write after a torn tail");
        drop(store);
        let mut expected = expected_after(2);
        expected.push((b"zz".to_vec(), b"1".to_vec()));
        assert_eq!(
            dump(&p.open()),
            expected,
            "[{}] after repair and reopen",
            p.name
        );
    }
}

#[test]
fn reopening_an_empty_store_twice_is_stable() {
    for p in places() {
        drop(p.open());
        assert_eq!(dump(&p.open()), kv(&[]));
        assert_eq!(dump(&p.open()), kv(&[]));
    }
}
