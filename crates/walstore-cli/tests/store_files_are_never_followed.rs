//! A symbolic link or another kind of file planted in a store directory: every command
//! refuses the store (exit 2, naming the file), and a link's target keeps its bytes.

mod common;

use common::{code, ok, stderr, store, walstore};
use std::os::unix::fs::symlink;

#[test]
fn a_link_in_place_of_each_store_file_is_refused_by_get_and_set() {
    for name in ["wal", "SHM", "LOCK", "MANIFEST"] {
        let (tmp, dir, s) = store();
        ok(&["set", &s, "k=v"]);
        let target = tmp.path().join("precious");
        std::fs::write(&target, "precious data").expect("write");
        std::fs::remove_file(dir.join(name)).expect("remove");
        symlink(&target, dir.join(name)).expect("symlink");
        for args in [vec!["get", &s, "k"], vec!["set", &s, "k=w"]] {
            if name == "LOCK" && args[0] == "get" {
                continue; // a read-only command never opens LOCK
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
