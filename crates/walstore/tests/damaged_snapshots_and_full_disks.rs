//! A damaged snapshot file is reported by name (salvage reads the rest), and a full disk
//! fails the commit with a typed error without losing anything acknowledged before.
mod common;

use common::{dump, places};
use std::path::Path;
use std::sync::Arc;
use walstore::storage::{MemoryStorage, StorageOp};
use walstore::{Error, Options, RecoveryMode};

#[test]
fn a_flipped_byte_in_a_snapshot_file_is_corruption_naming_it_and_salvage_reads_the_rest() {
    // A byte in the middle of the body, or the last byte of the page table (FORMAT.md §5.4:
    // the CRC of the body's last page, checked when that page is first read).
    for (p, spot) in ["body", "page table"]
        .into_iter()
        .flat_map(|spot| places().into_iter().map(move |p| (p, spot)))
    {
        let store = p
            .options()
            .segment_size_bytes_target(4096)
            .open(&p.dir)
            .expect("open");
        store
            .update(|tx| {
                for i in 0..300u32 {
                    tx.put(format!("key{i:04}").as_bytes(), &[b'v'; 50])?;
                }
                Ok::<_, Error>(())
            })
            .expect("load");
        store.checkpoint().expect("checkpoint");
        store
            .update(|tx| tx.put(b"after", b"checkpoint"))
            .expect("update");
        let files = store.info().expect("info").snapshot_files;
        assert!(files.len() >= 3, "[{}] {files:?}", p.name);
        drop(store);
        let (victim, _, victim_entries) = files[1].clone();
        let mut bytes = p.read(&victim);
        let at = match spot {
            "body" => bytes.len() / 2,
            _ => bytes.len() - 1,
        };
        bytes[at] ^= 0x20;
        p.write(&victim, &bytes);
        // An open checks each file's header; the body's pages are checked at their first
        // read, against their CRCs in the page table (FORMAT.md §5.4): the open (which reads
        // the first entry and the range deletions) or the scan that reaches the damaged page fails,
        // naming the file, and returns none of its bytes as data.
        let damage = match p.options().open(&p.dir) {
            Err(e) => e,
            Ok(store) => {
                let r = store.begin_read().expect("begin_read");
                let scan: walstore::Result<Vec<_>> = r
                    .range::<&[u8], _>(..)
                    .expect("range")
                    .map(|item| item.map(|(k, _)| k))
                    .collect();
                scan.expect_err("a scan over the damaged page fails")
            }
        };
        match damage {
            Error::Corruption { file, .. } => {
                assert!(file.ends_with(&victim), "[{} {spot}] {file:?}", p.name)
            }
            other => panic!(
                "[{}] expected corruption of {victim}, got {other:?}",
                p.name
            ),
        }
        let report = walstore::inspect::verify(&*p.storage, &p.dir, |_, _| {}).expect("verify");
        let (file, _) = report.first_damage().expect("verify finds the damage");
        assert_eq!(file.name, victim, "[{}]", p.name);
        let salvaged = p
            .options()
            .recovery(RecoveryMode::Salvage)
            .open(&p.dir)
            .expect("salvage");
        let pairs = dump(&salvaged);
        assert_eq!(
            pairs.len() as u64,
            300 - victim_entries + 1,
            "[{}] everything but the damaged file",
            p.name
        );
        assert!(
            pairs.iter().any(|(k, _)| k == b"after"),
            "[{}] the log is replayed",
            p.name
        );
    }
}

/// RECOVERY.md O7a: a merge that meets a damaged page of a version 3 run fails with
/// corruption naming the file and leaves its input runs as they were; with the damage
/// repaired, the same merge succeeds and every key reads back.
#[test]
fn a_merge_meeting_a_damaged_page_fails_and_keeps_its_input_runs() {
    for p in places() {
        let store = p.open();
        for round in 0..2u32 {
            store
                .update(|tx| {
                    for i in 0..500u32 {
                        tx.put(format!("key{i:04}").as_bytes(), &[b'a' + round as u8; 60])?;
                    }
                    Ok::<_, Error>(())
                })
                .expect("load");
            store.checkpoint().expect("checkpoint");
        }
        let before = store.info().expect("info").snapshot_files;
        assert_eq!(before.len(), 2, "[{}] {before:?}", p.name);
        drop(store);
        let victim = before[1].0.clone();
        let good = p.read(&victim);
        let mut bad = good.clone();
        bad[96 + 4096 + 100] ^= 0x08;
        p.write(&victim, &bad);
        let store = p.open();
        match store.compact() {
            Err(Error::Corruption { file, .. }) => {
                assert!(file.ends_with(&victim), "[{}] {file:?}", p.name)
            }
            other => panic!("[{}] expected corruption, got {other:?}", p.name),
        }
        assert_eq!(
            store.info().expect("info").snapshot_files,
            before,
            "[{}] the input runs stay",
            p.name
        );
        drop(store);
        p.write(&victim, &good);
        let store = p.open();
        store
            .compact()
            .expect("the same merge, the damage repaired");
        let pairs = dump(&store);
        assert_eq!(pairs.len(), 500, "[{}]", p.name);
        assert!(
            pairs.iter().all(|(_, v)| v == &vec![b'b'; 60]),
            "[{}]",
            p.name
        );
    }
}

#[test]
fn a_full_disk_fails_the_commit_with_a_typed_error_and_loses_nothing_acknowledged() {
    let memory = MemoryStorage::new();
    let options = || {
        Options::new()
            .storage(Arc::new(memory.clone()))
            .auto_checkpoint(false)
            .wal_preallocate_bytes(4096)
    };
    let store = options().open("/db").expect("open");
    let mut acknowledged = Vec::new();
    for i in 0..20u32 {
        let key = format!("k{i:02}");
        store
            .update(|tx| tx.put(key.as_bytes(), &[b'x'; 1000]))
            .expect("commit");
        acknowledged.push(key);
    }
    // The disk fills up: every write from now on fails with ENOSPC.
    memory.fail_after(0, Some(StorageOp::Write), 28, true);
    let mut failed = None;
    for i in 20..40u32 {
        if let Err(e) = store.update(|tx| tx.put(format!("k{i:02}").as_bytes(), &[b'x'; 1000])) {
            failed = Some(e);
            break;
        }
    }
    let err = failed.expect("some commit must hit the full disk");
    assert!(err.is_out_of_space(), "{err}");
    assert!(
        err.to_string().contains("disk is full"),
        "says what to do: {err}"
    );
    assert!(matches!(
        store.update(|tx| tx.put(b"more", b"1")),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(store.checkpoint(), Err(Error::Poisoned { .. })));
    drop(store);
    // Space returns.
    assert!(memory.clear_fault());
    let store = options().open("/db").expect("reopen");
    let read = store.begin_read().expect("read");
    for key in &acknowledged {
        assert!(
            read.get(key.as_bytes()).expect("get").is_some(),
            "{key} lost"
        );
    }
    store
        .update(|tx| tx.put(b"after", b"space returned"))
        .expect("writable again");
    assert!(memory.read_file(Path::new("/db/MANIFEST")).is_some());
}
