//! A symbolic link or another kind of file planted in a store directory: every command
//! refuses the store (exit 2, naming the file), and a link's target keeps its bytes.

mod common;

use common::{code, ok, stderr, store, walstore};
use std::os::unix::fs::symlink;

#[test]
fn a_link_in_place_of_each_store_file_is_refused_by_get_and_set() {
    for name in ["wal", "SHM", "LOCK", "MERGE", "MANIFEST", "LOGINDEX"] {
        let (tmp, dir, s) = store();
        ok(&["set", &s, "k=v"]);
        let target = tmp.path().join("precious");
        std::fs::write(&target, "precious data").expect("write");
        let _ = std::fs::remove_file(dir.join(name));
        symlink(&target, dir.join(name)).expect("symlink");
        for args in [
            vec!["get", &s, "k"],
            vec!["set", &s, "k=w"],
            vec!["compact", &s],
        ] {
            if matches!(name, "LOCK" | "MERGE") && args[0] == "get" {
                continue; // a read-only command never opens LOCK or MERGE
            }
            let out = walstore(&args);
            assert_eq!(code(&out), 2, "{name} {args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(name) && err.contains("symbolic link"), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious data"
        );
    }
}

#[test]
fn a_fifo_in_place_of_the_log_is_refused_without_blocking() {
    let (_tmp, dir, s) = store();
    ok(&["set", &s, "k=v"]);
    std::fs::remove_file(dir.join("wal")).expect("remove");
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join("wal"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let out = walstore(&["get", &s, "k"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("a FIFO"), "{}", stderr(&out));
}

/// `MERGE` is the merge lock's file: a directory or a FIFO in its place was taken for a lock
/// another process holds, so `compact` waited for it forever and the background merger never
/// merged. Now every command that would take it refuses the store at once, naming it.
#[test]
fn a_directory_or_a_fifo_in_place_of_the_merge_lock_is_refused_without_waiting() {
    for kind in ["a directory", "a FIFO"] {
        let (_tmp, dir, s) = store();
        ok(&["set", &s, "k=v"]);
        let merge = dir.join("MERGE");
        let _ = std::fs::remove_file(&merge);
        if kind == "a directory" {
            std::fs::create_dir(&merge).expect("mkdir");
        } else {
            let status = std::process::Command::new("mkfifo")
                .arg(&merge)
                .status()
                .expect("mkfifo");
            assert!(status.success());
        }
        for args in [
            vec!["compact", &s],
            vec!["checkpoint", &s],
            vec!["set", &s, "k=w"],
        ] {
            let out = walstore(&args);
            assert_eq!(code(&out), 2, "{kind} {args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains("MERGE") && err.contains(kind), "{err}");
        }
        // A read-only command never takes the merge lock.
        assert_eq!(code(&walstore(&["get", &s, "k"])), 0);
    }
}
