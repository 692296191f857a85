//! `walstore changes`, `apply`, `consumer` and `retention` run one at a time: the records'
//! lines, a replica made from them, replaying a stream, and the errors (exit 2 and 6).

mod common;

use common::{code, fails, json_bytes, ok, stderr, stdout, store, walstore, walstore_stdin};
use serde_json::Value as Json;

/// Runs `walstore ARGS` with `input` on stdin; it must succeed. Returns (stdout, stderr).
fn ok_stdin(args: &[&str], input: &[u8]) -> (String, String) {
    let out = walstore_stdin(args, input);
    assert_eq!(code(&out), 0, "walstore {args:?}: {}", stderr(&out));
    (stdout(&out), stderr(&out))
}

/// Five transactions: puts (one with binary bytes), a delete, a range deletion.
fn five_transactions(s: &str) {
    ok(&["set", s, "a=1", "b=2"]);
    let binary = format!(
        "{{\"op\":\"put\",\"key\":{},\"value\":{}}}\n",
        json_bytes(b"c\xff"),
        json_bytes(b"\x00\x01")
    );
    ok_stdin(&["txn", s], binary.as_bytes());
    ok(&["del", s, "a"]);
    ok(&["set", s, "d1=x", "d2=y", "e=z"]);
    ok(&["del", s, "--from", "d", "--to", "e"]);
}

#[test]
fn changes_lists_every_record_in_commit_order_as_export_encodes_bytes() {
    let (_t, _d, s) = store();
    five_transactions(&s);
    let expected = [
        r#"{"txn":1,"range_deletes":[],"writes":[["a","1"],["b","2"]]}"#.to_owned(),
        format!(
            r#"{{"txn":2,"range_deletes":[],"writes":[[{},{}]]}}"#,
            json_bytes(b"c\xff"),
            json_bytes(b"\x00\x01")
        ),
        r#"{"txn":3,"range_deletes":[],"writes":[["a",null]]}"#.to_owned(),
        r#"{"txn":4,"range_deletes":[],"writes":[["d1","x"],["d2","y"],["e","z"]]}"#.to_owned(),
        r#"{"txn":5,"range_deletes":[["d","e"]],"writes":[]}"#.to_owned(),
    ];
    let all: String = expected.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(ok(&["changes", &s]), all);
    // --since and --until select a window; --prefix clips writes and range deletions.
    let window = format!("{}\n{}\n", expected[2], expected[3]);
    assert_eq!(ok(&["changes", &s, "--since", "2", "--until", "4"]), window);
    assert_eq!(
        ok(&["changes", &s, "--prefix", "d"]),
        "{\"txn\":4,\"range_deletes\":[],\"writes\":[[\"d1\",\"x\"],[\"d2\",\"y\"]]}\n\
         {\"txn\":5,\"range_deletes\":[[\"d\",\"e\"]],\"writes\":[]}\n"
    );
    assert_eq!(ok(&["changes", &s, "--since", "5"]), "");
}

#[test]
fn apply_makes_a_replica_and_applying_the_stream_again_changes_nothing() {
    let (_t, _d, a) = store();
    let (_t2, _d2, b) = store();
    five_transactions(&a);
    let stream = ok(&["changes", &a]);
    let (out, err) = ok_stdin(&["apply", &b], stream.as_bytes());
    assert_eq!(out, "");
    assert_eq!(err, "walstore: applied 5 records, skipped 0; position 5\n");
    let exported = ok(&["export", &a]);
    assert_eq!(ok(&["export", &b]), exported);

    // The same stream again: every record is at or below the position, nothing changes.
    let last_before = ok(&["--json", "info", &b]);
    let again = walstore_stdin(&["--json", "apply", &b], stream.as_bytes());
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let answer: Json = serde_json::from_str(stdout(&again).trim()).expect("json");
    assert_eq!(
        (&answer["applied"], &answer["skipped"], &answer["position"]),
        (&Json::from(0), &Json::from(5), &Json::from(5))
    );
    let info_of = |text: &str| -> Json { serde_json::from_str(text.trim()).expect("json") };
    assert_eq!(
        info_of(&ok(&["--json", "info", &b]))["last_txn"],
        info_of(&last_before)["last_txn"],
        "no transaction was committed"
    );
    assert_eq!(ok(&["export", &b]), exported);
    assert_eq!(info_of(&last_before)["feed"]["applied"], 5);

    // A later part of the stream applies on top; an earlier one is skipped.
    ok(&["set", &a, "f=6"]);
    let tail = ok(&["changes", &a, "--since", "3"]);
    let (_, err) = ok_stdin(&["apply", &b], tail.as_bytes());
    assert_eq!(err, "walstore: applied 1 records, skipped 2; position 6\n");
    assert_eq!(ok(&["export", &b]), ok(&["export", &a]));
}

#[test]
fn malformed_input_names_its_line_and_applies_nothing_of_its_batch() {
    let (_t, _d, b) = store();
    // Small enough to reach `apply` in one read: both lines are one batch.
    let input = b"{\"txn\":1,\"range_deletes\":[],\"writes\":[[\"k\",\"v\"]]}\n\
                  {\"txn\":2,\"range_deletes\":[],\"writes\":[[\"k\"]]}\n";
    let out = walstore_stdin(&["apply", &b], input);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("stdin line 2"), "{}", stderr(&out));
    assert_eq!(ok(&["scan", &b]), "");
    for bad in [
        "not json",
        "[1]",
        r#"{"range_deletes":[],"writes":[]}"#,
        r#"{"txn":0,"range_deletes":[],"writes":[]}"#,
        r#"{"txn":-1,"range_deletes":[],"writes":[]}"#,
        r#"{"txn":1,"writes":[]}"#,
        r#"{"txn":1,"range_deletes":[],"writes":[["k",5]]}"#,
        r#"{"txn":1,"range_deletes":[["a","b","c"]],"writes":[]}"#,
        r#"{"txn":1,"range_deletes":[],"writes":[[{"base64":"!!"},"v"]]}"#,
    ] {
        let out = walstore_stdin(&["apply", &b], format!("\n{bad}\n").as_bytes());
        assert_eq!(code(&out), 2, "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("stdin line 2: "),
            "{bad}: {}",
            stderr(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1);
    }
    // An empty key is the engine's refusal, also exit 2, also nothing applied.
    let out = walstore_stdin(
        &["apply", &b],
        b"{\"txn\":1,\"range_deletes\":[],\"writes\":[[\"\",\"v\"]]}\n",
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(ok(&["scan", &b]), "");
}

#[test]
fn a_checkpointed_transaction_not_kept_is_exit_6_and_retention_keeps_it() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1"]);
    ok(&["checkpoint", &s]);
    ok(&["set", &s, "b=2"]);
    let out = fails(&["changes", &s], 6);
    assert!(
        stderr(&out).contains("no longer holds transaction 1"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(
        ok(&["changes", &s, "--since", "1"]),
        "{\"txn\":2,\"range_deletes\":[],\"writes\":[[\"b\",\"2\"]]}\n"
    );
    fails(&["consumer", &s, "register", "late", "--after", "0"], 6);

    // With --keep-bytes, a checkpoint seals the log it resets.
    ok(&["retention", &s, "--keep-bytes", "1000000"]);
    ok(&["checkpoint", &s]);
    ok(&["set", &s, "c=3"]);
    let lines = ok(&["changes", &s, "--since", "1"]);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let shown: Json = serde_json::from_str(&ok(&["--json", "retention", &s])).expect("json");
    assert_eq!(shown["keep_bytes"], 1_000_000);
    assert_eq!(shown["max_bytes"], 1u64 << 30, "fields not given are kept");
    assert_eq!(shown["segments"].as_array().map(Vec::len), Some(1));
    assert!(shown["retained_bytes"].as_u64() > Some(0), "{shown}");
    let text = ok(&["retention", &s, "--max-age-secs", "60"]);
    assert!(
        text.starts_with("retention: keep 1000000 bytes, at most 1073741824 bytes and 60 s\n"),
        "{text}"
    );
    assert!(ok(&["info", &s]).contains("retained: "));
}

#[test]
fn consumers_are_registered_acknowledged_listed_and_removed() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1"]);
    assert_eq!(
        ok(&["consumer", &s, "register", "c"]),
        "registered \"c\" after transaction 1\n"
    );
    ok(&["consumer", &s, "register", "early", "--after", "0"]);
    assert_eq!(ok(&["consumer", &s, "list"]), "c\t1\nearly\t0\n");
    // A consumer's changes start after its position; without --ack it stays there.
    ok(&["set", &s, "b=2"]);
    let line = "{\"txn\":2,\"range_deletes\":[],\"writes\":[[\"b\",\"2\"]]}\n";
    assert_eq!(ok(&["changes", &s, "--consumer", "c"]), line);
    assert_eq!(ok(&["changes", &s, "--consumer", "c"]), line);
    assert_eq!(ok(&["changes", &s, "--consumer", "c", "--ack"]), line);
    assert_eq!(ok(&["changes", &s, "--consumer", "c"]), "");
    ok(&["consumer", &s, "ack", "early", "2"]);
    let listed: Json =
        serde_json::from_str(&ok(&["--json", "consumer", &s, "list"])).expect("json");
    assert_eq!(
        listed["consumers"],
        serde_json::json!([{"name": "c", "position": 2}, {"name": "early", "position": 2}])
    );
    ok(&["consumer", &s, "unregister", "early"]);
    assert_eq!(ok(&["consumer", &s, "list"]), "c\t2\n");

    // Refusals: exit 2 with one line naming the consumer.
    for args in [
        vec!["consumer", &s, "register", "c"],
        vec!["consumer", &s, "register", ""],
        vec!["consumer", &s, "ack", "c", "1"],
        vec!["consumer", &s, "ack", "c", "99"],
        vec!["consumer", &s, "ack", "nobody", "1"],
        vec!["consumer", &s, "unregister", "nobody"],
        vec!["changes", &s, "--consumer", "nobody"],
    ] {
        let out = fails(&args, 2);
        assert!(
            stderr(&out).contains("consumer \""),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // --ack needs --consumer; --since and --consumer exclude each other (clap, exit 2).
    assert_eq!(code(&walstore(&["changes", &s, "--ack"])), 2);
    assert_eq!(
        code(&walstore(&[
            "changes",
            &s,
            "--since",
            "1",
            "--consumer",
            "c"
        ])),
        2
    );
    let (_t2, _d2, missing) = store();
    assert_eq!(code(&walstore(&["changes", &missing])), 1);
}
