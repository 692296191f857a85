//! Bad input gets a clear, typed error and loses nothing.
mod common;

use common::{dump, kv, places};
use walstore::{Error, Options, MAX_KEY_BYTES, MAX_VALUE_BYTES};

#[test]
fn empty_and_oversized_keys_and_oversized_values_are_refused() {
    for p in places() {
        let store = p.open();
        store.update(|tx| tx.put(b"keep", b"me")).expect("update");
        let mut tx = store.begin_write().expect("begin");
        assert!(matches!(tx.put(b"", b"v"), Err(Error::InvalidKey { .. })));
        assert!(matches!(tx.delete(b""), Err(Error::InvalidKey { .. })));
        assert!(matches!(
            tx.put(&vec![b'k'; MAX_KEY_BYTES + 1], b"v"),
            Err(Error::InvalidKey { .. })
        ));
        tx.put(&vec![b'k'; MAX_KEY_BYTES], b"longest key")
            .expect("the longest key is fine");
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(matches!(
            tx.put(b"big", &big),
            Err(Error::ValueTooLarge { .. })
        ));
        tx.commit().expect("commit");
        drop(store);
        let store = p.open();
        let mut expected = kv(&[("keep", "me")]);
        expected.push((vec![b'k'; MAX_KEY_BYTES], b"longest key".to_vec()));
        assert!(
            dump(&store) == expected,
            "[{}] store content differs",
            p.name
        );
    }
}

#[test]
fn a_directory_of_foreign_files_is_not_a_store_and_is_left_alone() {
    for p in places() {
        p.storage.create_dir_all(&p.dir).expect("mkdir");
        let notes = p.file("notes.txt");
        p.write("notes.txt", b"my notes");
        let err = p.options().open(&p.dir).expect_err("foreign directory");
        assert!(matches!(err, Error::NotAStore { .. }), "[{}] {err}", p.name);
        assert_eq!(p.read("notes.txt"), b"my notes");
        let names = p.storage.list_dir(&p.dir).expect("list");
        assert_eq!(
            names,
            vec!["notes.txt".to_string()],
            "[{}] nothing created",
            p.name
        );
        let _ = notes;
    }
}

#[test]
fn a_truncated_manifest_is_corruption_and_nothing_is_lost() {
    for p in places() {
        let store = p.open();
        store.update(|tx| tx.put(b"a", b"1")).expect("update");
        store.checkpoint().expect("checkpoint");
        drop(store);
        let manifest = p.read("MANIFEST");
        for len in [0, 10, manifest.len() - 1] {
            p.write("MANIFEST", &manifest[..len]);
            let err = p.options().open(&p.dir).expect_err("truncated manifest");
            assert!(err.is_corruption(), "[{}] len {len}: {err}", p.name);
            assert!(
                err.to_string().contains("MANIFEST"),
                "[{}] names the file: {err}",
                p.name
            );
        }
        p.write("MANIFEST", &manifest);
        assert_eq!(
            dump(&p.open()),
            kv(&[("a", "1")]),
            "[{}] intact after restoring",
            p.name
        );
    }
}

#[test]
fn a_future_format_version_is_refused_by_name() {
    for p in places() {
        let store = p.open();
        store.update(|tx| tx.put(b"a", b"1")).expect("update");
        drop(store);
        let good = p.read("MANIFEST");
        let mut future = good.clone();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        p.write("MANIFEST", &future);
        // A store of the previous version is refused the same way, naming the migration.
        let mut older = good.clone();
        older[8..12].copy_from_slice(&1u32.to_le_bytes());
        p.write("MANIFEST", &older);
        let message = p.options().open(&p.dir).expect_err("version 1").to_string();
        assert!(
            message.contains("version 1")
                && message.contains("walstore export")
                && message.contains("walstore import"),
            "{message}"
        );
        p.write("MANIFEST", &future);
        match p.options().open(&p.dir) {
            Err(Error::UnsupportedFormat {
                found: 3,
                supported: 2,
                file,
            }) => {
                assert!(file.ends_with("MANIFEST"), "{file:?}")
            }
            other => panic!("[{}] expected UnsupportedFormat, got {other:?}", p.name),
        }
        p.write("MANIFEST", &good);
        let wal = p.read("wal");
        let mut future_wal = wal.clone();
        future_wal[8..12].copy_from_slice(&7u32.to_le_bytes());
        p.write("wal", &future_wal);
        assert!(matches!(
            p.options().open(&p.dir),
            Err(Error::UnsupportedFormat { found: 7, .. })
        ));
        p.write("wal", &wal);
        assert_eq!(dump(&p.open()), kv(&[("a", "1")]));
    }
}

#[test]
fn a_read_only_open_of_a_missing_store_creates_nothing() {
    for p in places() {
        let err = p
            .options()
            .read_only(true)
            .open(&p.dir)
            .expect_err("missing");
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
        assert!(!p.storage.exists(&p.dir).expect("exists"));
        let _ = Options::new();
    }
}

#[test]
fn a_busy_store_reports_busy_at_once_with_no_wait() {
    for p in places() {
        let a = p.open();
        let b = p
            .options()
            .lock_wait(walstore::LockWait::NoWait)
            .open(&p.dir)
            .expect("second handle opens");
        let tx = a.begin_write().expect("first writer");
        let err = b.begin_write().expect_err("second writer");
        assert!(matches!(err, Error::Busy { .. }), "[{}] {err}", p.name);
        assert!(err.to_string().contains("busy"));
        drop(tx);
        b.update(|tx| tx.put(b"k", b"v")).expect("free again");
    }
}

#[test]
fn a_missing_wal_is_corruption_not_a_fresh_start() {
    for p in places() {
        let store = p.open();
        store.update(|tx| tx.put(b"a", b"1")).expect("update");
        drop(store);
        let wal = p.read("wal");
        match &p.memory {
            Some(m) => {
                m.crash();
                p.storage.remove_file(&p.file("wal")).expect("remove");
            }
            None => std::fs::remove_file(p.file("wal")).expect("remove"),
        }
        let err = p.options().open(&p.dir).expect_err("missing WAL");
        assert!(err.is_corruption(), "[{}] {err}", p.name);
        p.write("wal", &wal);
        assert_eq!(dump(&p.open()), kv(&[("a", "1")]), "[{}]", p.name);
    }
}

#[test]
fn a_regular_file_or_an_empty_directory_is_not_a_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"data").expect("write");
    let err = Options::new()
        .open(&file)
        .expect_err("a file is not a store");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), b"data");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err =
        walstore::inspect::dump_wal(&walstore::storage::FsStorage, &empty).expect_err("empty");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
}

/// RECOVERY.md H4: a WAL header newer than the manifest is corruption, for a read-only open
/// too (it used to give up with `ReadOnly`: it retried by taking the writer lock it cannot
/// have).
#[test]
fn a_wal_header_newer_than_the_manifest_is_corruption_read_only_too() {
    for p in places() {
        let store = p.open();
        store.update(|tx| tx.put(b"a", b"1")).expect("update");
        store.close().expect("close");
        let generation_0 = p.read("MANIFEST");
        let store = p.open();
        store.checkpoint().expect("checkpoint");
        store.close().expect("close");
        p.write("MANIFEST", &generation_0);
        for read_only in [false, true] {
            match p.options().read_only(read_only).open(&p.dir) {
                Err(Error::Corruption { file, detail, .. }) => {
                    assert!(file.ends_with("wal"), "[{}] {file:?}", p.name);
                    assert!(detail.contains("newer"), "[{}] {detail}", p.name);
                }
                other => panic!(
                    "[{}] read_only={read_only}: expected Corruption, got {other:?}",
                    p.name
                ),
            }
        }
    }
}
