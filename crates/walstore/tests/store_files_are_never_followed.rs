//! No file outside the store is ever touched: every file of a store directory is opened
//! without following a symbolic link and only if it is a regular file. A link, a FIFO or a
//! directory in a store file's place is refused with `Error::NotARegularFile` naming it, and
//! the file a link points to keeps its bytes.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;
use walstore::{Error, Options, Store};

const PRECIOUS: &[u8] = b"precious data that is not walstore's";

/// A store with a run (one checkpoint) and some log after it, closed.
fn store_with_a_run(dir: &Path) -> PathBuf {
    let store = Store::open(dir).expect("open");
    store.update(|tx| tx.put(b"a", b"1")).expect("update");
    store.checkpoint().expect("checkpoint");
    store.update(|tx| tx.put(b"b", b"2")).expect("update");
    store.close().expect("close");
    let snap = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "dat"))
        .expect("a snapshot file");
    snap
}

/// Opens (read-write or read-only) and reads `a`, as `walstore get` does.
fn open_and_read(dir: &Path, read_only: bool) -> Result<(), Error> {
    let opts = Options::default()
        .read_only(read_only)
        .lock_wait(walstore::LockWait::Timeout(Duration::from_secs(5)));
    let store = opts.open(dir)?;
    store.begin_read()?.get(b"a")?;
    Ok(())
}

fn assert_refused(result: Result<(), Error>, file: &Path, found: &str) {
    match result {
        Err(Error::NotARegularFile { path, found: what }) => {
            assert_eq!(path.file_name(), file.file_name(), "{path:?}");
            assert_eq!(what, found);
        }
        other => panic!(
            "{}: expected NotARegularFile, got {other:?}",
            file.display()
        ),
    }
}

#[test]
fn a_symbolic_link_in_place_of_any_store_file_is_refused_and_its_target_kept() {
    for name in [
        "wal", "SHM", "LOCK", "MERGE", "MANIFEST", "LOGINDEX", "snap",
    ] {
        for read_only in [false, true] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("store");
            let snap = store_with_a_run(&dir);
            let target = tmp.path().join("precious.txt");
            std::fs::write(&target, PRECIOUS).expect("write");
            let file = match name {
                "snap" => snap,
                other => dir.join(other),
            };
            if matches!(name, "LOCK" | "MERGE") && read_only {
                continue; // a read-only handle never opens LOCK or MERGE
            }
            let _ = std::fs::remove_file(&file);
            symlink(&target, &file).expect("symlink");
            let result = open_and_read(&dir, read_only);
            assert_refused(result, &file, "a symbolic link");
            assert_eq!(std::fs::read(&target).expect("read"), PRECIOUS, "{name}");
        }
    }
}

#[test]
fn a_link_planted_where_a_checkpoint_writes_its_manifest_is_refused_not_written_through() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    store_with_a_run(&dir);
    let target = tmp.path().join("precious.txt");
    std::fs::write(&target, PRECIOUS).expect("write");
    let store = Store::open(&dir).expect("open");
    store.update(|tx| tx.put(b"c", b"3")).expect("update");
    let tmp_manifest = dir.join("MANIFEST.tmp");
    symlink(&target, &tmp_manifest).expect("symlink");
    let result = store.checkpoint().map(|_| ());
    assert_refused(result, &tmp_manifest, "a symbolic link");
    assert_eq!(std::fs::read(&target).expect("read"), PRECIOUS);
    drop(store);
    // Once the link is gone, the store opens with everything committed.
    std::fs::remove_file(&tmp_manifest).expect("remove");
    let store = Store::open(&dir).expect("reopen");
    let read = store.begin_read().expect("read");
    for (k, v) in [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")] {
        assert_eq!(read.get(k).expect("get").as_deref(), Some(&v[..]));
    }
}

#[test]
fn a_fifo_or_a_directory_in_place_of_a_store_file_is_refused_without_blocking() {
    for name in ["wal", "SHM", "MERGE", "MANIFEST", "LOGINDEX"] {
        for kind in ["a FIFO", "a directory"] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("store");
            store_with_a_run(&dir);
            let file = dir.join(name);
            let _ = std::fs::remove_file(&file);
            if kind == "a FIFO" {
                let status = std::process::Command::new("mkfifo")
                    .arg(&file)
                    .status()
                    .expect("mkfifo");
                assert!(status.success());
            } else {
                std::fs::create_dir(&file).expect("mkdir");
            }
            if name != "MERGE" {
                // A read-only handle never opens MERGE.
                assert_refused(open_and_read(&dir, true), &file, kind);
            }
            assert_refused(open_and_read(&dir, false), &file, kind);
        }
    }
}

/// A handle that opened beside a live one has not opened `MERGE` yet: a link planted there
/// afterwards is refused when a checkpoint or a compaction would take the merge lock, not
/// taken for a lock another process holds (which made `compact` wait forever).
#[test]
fn a_link_planted_in_place_of_the_merge_lock_later_is_refused_by_checkpoint_and_compact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    store_with_a_run(&dir);
    let first = Store::open(&dir).expect("open");
    let second = Store::open(&dir).expect("open beside the first");
    let merge = dir.join("MERGE");
    let target = tmp.path().join("precious.txt");
    std::fs::write(&target, PRECIOUS).expect("write");
    std::fs::remove_file(&merge).expect("remove");
    symlink(&target, &merge).expect("symlink");
    second.update(|tx| tx.put(b"c", b"3")).expect("update");
    assert_refused(second.checkpoint().map(drop), &merge, "a symbolic link");
    assert_refused(second.compact().map(drop), &merge, "a symbolic link");
    assert_eq!(std::fs::read(&target).expect("read"), PRECIOUS);
    // The committed write stays readable, and the store opens once the link is gone.
    assert_eq!(value_of(&second, b"c").as_deref(), Some(&b"3"[..]));
    drop(second);
    drop(first);
    std::fs::remove_file(&merge).expect("remove");
    let store = Store::open(&dir).expect("reopen");
    assert_eq!(value_of(&store, b"c").as_deref(), Some(&b"3"[..]));
}

/// `key`'s value in a new snapshot of `store`.
fn value_of(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    let read = store.begin_read().expect("read");
    read.get(key).expect("get").map(|v| v.to_vec())
}
