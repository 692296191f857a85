//! Exit codes 1, 2 and 3, each with its one-line message; a failing command changes nothing.
//! (4 is in `flipped_wal_byte.rs`, 5 in `full_disk.rs`, 6 in `change_feed.rs`.)

mod common;

use common::{code, fails, get, ok, stderr, stdout, store, walstore, walstore_stdin};

#[test]
fn exit_1_for_a_missing_key_a_failed_cas_and_a_failed_guard() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "n=5", "balance=10"]);
    let missing = fails(&["get", &s, "absent"], 1);
    assert!(stdout(&missing).is_empty());
    assert!(stderr(&missing).contains("not found"));
    fails(&["cas", &s, "n", "4", "6"], 1);
    fails(&["cas", &s, "absent", "", "6"], 1);
    assert_eq!(get(&s, "n"), "5");
    // A failing guard applies nothing, not even the operations before it.
    let guarded = br#"{"op":"put","key":"balance","value":"0"}
{"op":"expect","key":"n","value":"999"}
"#;
    let out = walstore_stdin(&["txn", &s], guarded);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let absent_guard = br#"{"op":"expect","key":"n","absent":true}
{"op":"put","key":"balance","value":"0"}
"#;
    assert_eq!(code(&walstore_stdin(&["txn", &s], absent_guard)), 1);
    assert_eq!(get(&s, "balance"), "10");
}

#[test]
fn exit_1_in_json_mode_says_what_was_found() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "n=5"]);
    let out = fails(&["--json", "cas", &s, "n", "4", "6"], 1);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(v["swapped"], false);
    assert_eq!(v["current"], "5");
    let out = fails(&["--json", "get", &s, "nope"], 1);
    assert!(stdout(&out).contains(r#""found":false"#));
}

#[test]
fn exit_2_for_bad_arguments_and_input_and_nothing_changes() {
    let (t, _d, s) = store();
    ok(&["set", &s, "k=original", "word=hello"]);
    let big_key = format!("{}=v", "k".repeat(5000));
    let file = t.path().join("not-a-store");
    std::fs::write(&file, b"plain file").expect("write");
    let file = file.to_str().expect("utf8").to_owned();
    for args in [
        vec!["set", &s, "no-equals-sign"],
        vec!["set", &s, "=value"],
        vec!["set", &s, "k=@/nonexistent/file"],
        vec!["set", &s, "k=changed", &big_key],
        vec!["incr", &s, "word"],
        vec!["--salvage", "set", &s, "k=changed"],
        vec!["--salvage", "checkpoint", &s],
        vec!["get", &file, "k"],
        vec!["set", &file, "k=v"],
        vec!["dump", &file],
        vec!["dump", &format!("{s}-missing")],
        vec!["verify", &format!("{s}-missing")],
    ] {
        fails(&args, 2);
    }
    assert_eq!(get(&s, "k"), "original");
    assert_eq!(get(&s, "word"), "hello");
    let out = fails(&["incr", &s, "word"], 2);
    assert!(stderr(&out).contains("neither a decimal integer nor a typed integer"));
    assert!(!std::path::Path::new(&format!("{s}-missing")).exists());
}

#[test]
fn exit_2_for_a_directory_that_holds_something_else_which_is_left_alone() {
    let (t, _d, _s) = store();
    let foreign = t.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), b"mine").expect("write");
    let f = foreign.to_str().expect("utf8");
    for args in [
        &["set", f, "k=v"][..],
        &["get", f, "k"],
        &["verify", f],
        &["dump", f],
    ] {
        let out = fails(args, 2);
        assert!(stderr(&out).contains("not a walstore store"), "{args:?}");
    }
    let names: Vec<_> = std::fs::read_dir(&foreign)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    assert_eq!(
        std::fs::read(foreign.join("notes.txt")).expect("read"),
        b"mine"
    );
}

#[test]
fn exit_2_for_clap_usage_errors() {
    let (_t, _d, s) = store();
    for args in [
        &[][..],
        &["frobnicate"],
        &["set", &s],
        &["get", &s],
        &["incr", &s, "n", "not-a-number"],
        &["--wait", "soon", "set", &s, "k=v"],
        &["--durability", "eventually", "set", &s, "k=v"],
        &["set", &s, "k=v", "--no-such-flag"],
    ] {
        let out = walstore(args);
        assert_eq!(code(&out), 2, "walstore {args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--help"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn exit_2_for_malformed_txn_and_import_input_applies_nothing() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "x=0"]);
    for input in [
        &b"{\"op\":\"put\",\"key\":\"x\",\"value\":\"1\"}\nnot json\n"[..],
        b"{\"op\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n{\"op\":\"put\",\"key\":\"\",\"value\":\"1\"}\n",
        b"{\"op\":\"put\",\"key\":\"x\",\"value\":{\"base64\":\"!!\"}}\n",
        b"\xff\xfe\n",
    ] {
        let out = walstore_stdin(&["txn", &s], input);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        let out = walstore_stdin(&["import", &s], input);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
    }
    let newer =
        b"{\"format\":\"walstore-export\",\"version\":9}\n{\"key\":\"x\",\"value\":\"1\"}\n";
    let out = walstore_stdin(&["import", &s], newer);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("version 9"), "{}", stderr(&out));
    assert_eq!(get(&s, "x"), "0");
}

#[test]
fn a_failure_in_json_mode_is_also_a_json_object_on_stdout() {
    let (_t, _d, s) = store();
    let out = fails(&["--json", "set", &s, "=v"], 2);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!((&v["ok"], &v["exit"]), (&false.into(), &2.into()));
    assert!(v["error"].as_str().is_some_and(|e| e.contains("empty key")));
}

#[test]
fn exit_3_when_the_writer_lock_is_held_past_the_wait() {
    let (_t, dir, s) = store();
    ok(&["set", &s, "k=before"]);
    let holder = walstore::Store::open(&dir).expect("open");
    let tx = holder.begin_write().expect("hold the writer lock");
    let out = fails(&["--wait", "0.2", "set", &s, "k=after"], 3);
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    fails(&["--wait", "0", "incr", &s, "n"], 3);
    fails(&["--wait", "0", "checkpoint", &s], 3);
    // Reading does not need the lock, and the value is untouched.
    assert_eq!(get(&s, "k"), "before");
    drop(tx);
    ok(&["--wait", "0", "set", &s, "k=after"]);
    assert_eq!(get(&s, "k"), "after");
}
