//! Typed values from JSON, several keys from one snapshot, values from stdin, reading before
//! the first write, one JSON shape for every answer, and a failed close that is reported.

mod common;

use clap::Parser;
use common::{code, fails, ok, stderr, stdout, store, walstore, walstore_stdin};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use walstore::storage::{MemoryStorage, StorageOp};
use walstore_cli::{Backend, Cli, Exit};

fn answer(text: &str) -> Json {
    serde_json::from_str(text.trim()).expect("one JSON object")
}

#[test]
fn json_values_are_stored_typed_and_printed_back_as_json() {
    let (_t, _d, s) = store();
    let doc = json!({"messages": [{"role": "user", "text": "hi"}], "n": 3, "ok": true});
    ok(&["--json", "set", &s, &format!("ctx={doc}"), "hits=0"]);
    let got = answer(&ok(&["--json", "get", &s, "ctx", "hits"]));
    assert_eq!(got["entries"][0]["json"], doc);
    assert_eq!(got["entries"][1]["json"], 0);
    // The stored bytes are the typed encoding that Rust's get_as reads.
    let raw = walstore(&["get", "--raw", &s, "hits"]).stdout;
    assert_eq!(walstore::typed::decode::<u64>(&raw).ok(), Some(0));
    // incr keeps a typed counter typed, and a text counter text.
    assert_eq!(ok(&["incr", &s, "hits", "53"]), "53\n");
    assert_eq!(
        answer(&ok(&["--json", "get", &s, "hits"]))["entries"][0]["json"],
        53
    );
    assert_eq!(ok(&["incr", &s, "text"]), "1\n");
    assert_eq!(ok(&["get", &s, "text"]), "1");
    // A value that is not JSON is refused and nothing is written.
    fails(&["--json", "set", &s, "ctx=not json"], 2);
    assert_eq!(
        answer(&ok(&["--json", "get", &s, "ctx"]))["entries"][0]["json"],
        doc
    );
}

#[test]
fn txn_lines_take_json_values_and_json_guards() {
    let (_t, _d, s) = store();
    let input = br#"{"op":"put","key":"cfg","json":{"b":2,"a":[1,null]}}
{"op":"put","key":"raw","value":"text"}
"#;
    assert_eq!(code(&walstore_stdin(&["txn", &s], input)), 0);
    let guarded = br#"{"op":"expect","key":"cfg","json":{"a":[1,null],"b":2}}
{"op":"put","key":"cfg","json":{"a":[],"b":3}}
"#;
    let out = walstore_stdin(&["txn", &s], guarded);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stale = walstore_stdin(&["--json", "txn", &s], guarded);
    assert_eq!(code(&stale), 1);
    let refused = answer(&stdout(&stale));
    assert_eq!(
        (refused["ok"].clone(), refused["exit"].clone()),
        (json!(false), json!(1))
    );
    assert_eq!(refused["failed_guard"], "cfg");
    let got = answer(&ok(&["--json", "get", &s, "cfg", "raw"]));
    assert_eq!(got["entries"][0]["json"], json!({"a": [], "b": 3}));
    assert_eq!(
        got["entries"][1],
        json!({"key": "raw", "found": true, "value": "text"})
    );
}

#[test]
fn a_value_from_stdin_may_be_larger_than_any_argument_list() {
    let (_t, _d, s) = store();
    let big: Vec<u8> = (0..414_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let out = walstore_stdin(&["set", &s, "ctx=@-", "small=1"], &big);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(walstore(&["get", &s, "ctx"]).stdout, big);
    let doc = json!({"text": String::from_utf8(big).expect("ascii")});
    let out = walstore_stdin(&["--json", "set", &s, "doc=@-"], doc.to_string().as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        answer(&ok(&["--json", "get", &s, "doc"]))["entries"][0]["json"],
        doc
    );
    let twice = walstore_stdin(&["set", &s, "a=@-", "b=@-"], b"x");
    assert_eq!(code(&twice), 2);
    assert!(
        stderr(&twice).contains("stdin was already read"),
        "{}",
        stderr(&twice)
    );
}

#[test]
fn get_of_several_keys_prints_one_line_each_and_exits_1_if_any_is_missing() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1", "b=two"]);
    assert_eq!(ok(&["get", &s, "a", "b"]), "a\t1\nb\ttwo\n");
    let partial = fails(&["--json", "get", &s, "a", "nope"], 1);
    let got = answer(&stdout(&partial));
    assert_eq!(got["entries"][1], json!({"key": "nope", "found": false}));
    assert!(
        got["error"].as_str().is_some_and(|e| e.contains("nope")),
        "{got}"
    );
}

#[test]
fn reading_before_the_first_write_is_missing_not_an_error() {
    let (t, dir, s) = store();
    let missing = fails(&["get", &s, "k"], 1);
    assert!(stdout(&missing).is_empty());
    fails(&["scan", &s], 1);
    std::fs::create_dir_all(&dir).expect("mkdir");
    fails(&["get", &s, "k"], 1);
    let got = answer(&stdout(&fails(&["--json", "get", &s, "k"], 1)));
    assert_eq!(
        (got["ok"].clone(), got["exit"].clone()),
        (json!(false), json!(1))
    );
    assert!(!dir.join("MANIFEST").exists(), "reading created nothing");
    std::fs::write(dir.join("notes.txt"), b"mine").expect("write");
    fails(&["get", &s, "k"], 2);
    drop(t);
}

#[test]
fn every_json_answer_has_ok_and_exit_and_an_error_when_not_ok() {
    let (_t, _d, s) = store();
    let answers = [
        (vec!["--json", "set", &s, "n=5"], 0),
        (vec!["--json", "incr", &s, "n"], 0),
        (vec!["--json", "del", &s, "x"], 0),
        (vec!["--json", "info", &s], 0),
        (vec!["--json", "dump", &s], 0),
        (vec!["--json", "verify", &s], 0),
        (vec!["--json", "cas", &s, "n", "0", "1"], 1),
        (vec!["--json", "get", &s, "nope"], 1),
        (vec!["--json", "set", &s, "=v"], 2),
        (vec!["--json", "--salvage", "incr", &s, "n"], 2),
    ];
    for (args, exit) in answers {
        let out = walstore(&args);
        assert_eq!(code(&out), exit, "{args:?}: {}", stderr(&out));
        let got = answer(&stdout(&out));
        assert_eq!(got["exit"], exit, "{args:?}: {got}");
        assert_eq!(got["ok"], exit == 0, "{args:?}: {got}");
        assert_eq!(got.get("error").is_some(), exit != 0, "{args:?}: {got}");
    }
}

fn run(backend: &Backend, args: &[&str]) -> Result<Exit, walstore_cli::Failure> {
    let cli = Cli::try_parse_from(std::iter::once("walstore").chain(args.iter().copied()))
        .expect("valid arguments");
    walstore_cli::execute(&cli, backend)
}

#[test]
fn a_buffered_incr_whose_final_sync_fails_exits_5_and_the_power_cut_proves_why() {
    let memory = MemoryStorage::new();
    let backend = Backend::with_storage(Arc::new(memory.clone()), walstore::Options::new());
    assert_eq!(run(&backend, &["set", "/db", "n=1"]).ok(), Some(Exit::Ok));
    memory.fail_after(0, Some(StorageOp::Sync), 5, true);
    let failure = run(&backend, &["--durability", "buffered", "incr", "/db", "n"])
        .expect_err("the close syncs, and the sync fails");
    assert_eq!(failure.exit, Exit::Io, "{}", failure.message);
    assert!(failure.message.contains("fdatasync"), "{}", failure.message);
    assert!(memory.clear_fault(), "the fault fired");
    memory.crash();
    let store = walstore::Options::new()
        .storage(Arc::new(memory.clone()))
        .open("/db")
        .expect("reopen after the power cut");
    let value = store.begin_read().and_then(|r| r.get(b"n")).expect("read");
    assert_eq!(
        value.as_deref(),
        Some(&b"1"[..]),
        "the unacknowledged increment is gone"
    );
}

#[test]
fn plain_get_and_scan_show_typed_values_as_text_or_json_and_raw_shows_the_bytes() {
    let (_t, _d, s) = store();
    ok(&[
        "--json",
        "set",
        &s,
        r#"doc={"a":[1,null]}"#,
        r#"name="walstore""#,
        "n=200",
    ]);
    ok(&["set", &s, "text=plain"]);
    assert_eq!(ok(&["get", &s, "name"]), "walstore");
    assert_eq!(ok(&["get", &s, "doc"]), r#"{"a":[1,null]}"#);
    assert_eq!(ok(&["get", &s, "n"]), "200");
    assert_eq!(ok(&["get", &s, "text"]), "plain");
    let raw = walstore(&["get", "--raw", &s, "name"]).stdout;
    assert_eq!(raw, walstore::typed::encode("walstore").expect("encode"));
    assert_eq!(
        ok(&["scan", &s]),
        "doc\t{\"a\":[1,null]}\nn\t200\nname\twalstore\ntext\tplain\n"
    );
    let scanned_raw = ok(&["scan", "--raw", &s, "name"]);
    assert!(
        scanned_raw.starts_with("name\t\\xa8walstore"),
        "{scanned_raw}"
    );
}

#[test]
fn incr_creates_a_missing_counter_as_a_typed_integer_and_keeps_text_counters_text() {
    let (_t, _d, s) = store();
    assert_eq!(ok(&["incr", &s, "hits"]), "1\n");
    let raw = walstore(&["get", "--raw", &s, "hits"]).stdout;
    assert_eq!(walstore::typed::decode::<i64>(&raw).ok(), Some(1));
    assert_eq!(ok(&["incr", &s, "hits", "41"]), "42\n");
    assert_eq!(ok(&["get", &s, "hits"]), "42");
    ok(&["set", &s, "text=7"]);
    assert_eq!(ok(&["incr", &s, "text"]), "8\n");
    assert_eq!(walstore(&["get", "--raw", &s, "text"]).stdout, b"8");
}
