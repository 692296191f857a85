//! `del --prefix`, `del --from/--to`, `scan --reverse`/`--limit`, `compact` and the runs in
//! `info`, through the built binary: what the store holds afterwards, not only the exit code.

mod common;

use common::{fails, get, ok, stderr, store, walstore};
use serde_json::Value as Json;

fn json(text: &str) -> Json {
    serde_json::from_str(text.trim()).expect("one JSON object")
}

/// The keys `scan` lists, in its order.
fn keys(args: &[&str]) -> Vec<String> {
    ok(args)
        .lines()
        .map(|line| line.split('\t').next().expect("key").to_owned())
        .collect()
}

/// Keys around the prefix `b/`: the prefix itself is not a key here, `b` and `b0` sort next
/// to it (`0` is the byte after `/`), `b/\xff...` at its end.
fn neighbours(s: &str) {
    ok(&[
        "set",
        s,
        "a=1",
        "b=2",
        "b/1=x",
        "b/2=y",
        "b/9/deep=z",
        "b0=3",
        "c=4",
    ]);
}

#[test]
fn del_prefix_removes_exactly_the_keys_with_the_prefix_in_memory_and_in_runs() {
    let (_t, _d, s) = store();
    neighbours(&s);
    // Some keys in a run, some in the log only, one overwritten after the checkpoint.
    ok(&["checkpoint", &s]);
    ok(&["set", &s, "b/5=w", "b/1=x2", "ba=5"]);
    let out = ok(&["del", &s, "--prefix", "b/"]);
    assert_eq!(out, "", "del prints nothing without --json");
    assert_eq!(keys(&["scan", &s]), ["a", "b", "b0", "ba", "c"]);
    assert_eq!(get(&s, "b0"), "3");
    fails(&["get", &s, "b/1"], 1);
    // Deleted keys stay deleted through a checkpoint and a compaction.
    ok(&["checkpoint", &s]);
    ok(&["compact", &s]);
    assert_eq!(keys(&["scan", &s]), ["a", "b", "b0", "ba", "c"]);
    // Writing under the prefix again works; the deletion does not hide new keys.
    ok(&["set", &s, "b/1=again"]);
    assert_eq!(get(&s, "b/1"), "again");
}

#[test]
fn del_prefix_counts_the_keys_it_removed_and_writes_one_range_deletion() {
    let (_t, _d, s) = store();
    neighbours(&s);
    let answer = json(&ok(&["--json", "del", &s, "--prefix", "b/"]));
    assert_eq!(
        answer,
        serde_json::json!({"ok": true, "exit": 0, "deleted": 3})
    );
    let none = json(&ok(&["--json", "del", &s, "--prefix", "nothing-here"]));
    assert_eq!(none["deleted"], 0);
    // The log holds one range deletion for each, not one write per key (each in a batch
    // record of its transaction: FORMAT.md §4.2).
    let dump = json(&ok(&["--json", "dump", &s]));
    let records: Vec<&Json> = dump["records"]
        .as_array()
        .expect("records")
        .iter()
        .flat_map(|r| std::iter::once(r).chain(r["ops"].as_array().into_iter().flatten()))
        .collect();
    let ranges: Vec<&Json> = records
        .iter()
        .copied()
        .filter(|r| r["kind"] == "delete-range")
        .collect();
    assert_eq!(ranges.len(), 2, "{dump}");
    assert_eq!(ranges[0]["key"], "b/");
    assert_eq!(ranges[0]["end"], "b0");
    assert!(records.iter().all(|r| r["kind"] != "delete"), "{dump}");
    let text = ok(&["dump", &s]);
    assert!(text.contains("from b/ to b0 (excluded)"), "{text}");
}

#[test]
fn del_from_to_excludes_the_end_and_either_side_may_be_open() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "k1=1", "k2=2", "k3=3", "k4=4", "k5=5", "z=26"]);
    let answer = json(&ok(&["--json", "del", &s, "--from", "k2", "--to", "k4"]));
    assert_eq!(answer["deleted"], 2);
    assert_eq!(keys(&["scan", &s]), ["k1", "k4", "k5", "z"]);
    ok(&["del", &s, "--from", "k5"]);
    assert_eq!(keys(&["scan", &s]), ["k1", "k4"]);
    ok(&["del", &s, "--to", "k4"]);
    assert_eq!(keys(&["scan", &s]), ["k4"]);
    // "" as the start is the first key: everything goes.
    ok(&["set", &s, "a=1", "\u{1}=2"]);
    let all = json(&ok(&["--json", "del", &s, "--from", ""]));
    assert_eq!(all["deleted"], 3);
    assert_eq!(ok(&["scan", &s]), "");
}

#[test]
fn bad_ranges_and_prefixes_are_usage_errors_and_change_nothing() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1", "b=2"]);
    let long = "k".repeat(walstore::MAX_KEY_BYTES + 1);
    let longest = "k".repeat(walstore::MAX_KEY_BYTES);
    let cases: [(&[&str], &str); 6] = [
        (&["del", &s, "--prefix", ""], "must not be empty"),
        (
            &["del", &s, "--prefix", &long],
            "longer than the longest key",
        ),
        (&["del", &s, "--from", &long], "longer than the longest key"),
        (&["del", &s, "--from", "b", "--to", "a"], "is empty"),
        (&["del", &s, "--from", "b", "--to", "b"], "is empty"),
        (&["del", &s, "--to", ""], "is empty"),
    ];
    for (args, message) in cases {
        let out = fails(args, 2);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let out = fails(&["--json", "del", &s, "--prefix", ""], 2);
    let answer = json(&common::stdout(&out));
    assert_eq!((&answer["ok"], &answer["exit"]), (&false.into(), &2.into()));
    // The longest key is a prefix like any other.
    ok(&["del", &s, "--prefix", &longest]);
    // Clap refuses keys together with a range, a prefix together with a range, and nothing.
    for args in [
        &["del", &s, "a", "--prefix", "b"][..],
        &["del", &s, "--prefix", "a", "--from", "b"],
        &["del", &s],
    ] {
        let out = walstore(args);
        assert_eq!(common::code(&out), 2, "{args:?}");
    }
    assert_eq!(keys(&["scan", &s]), ["a", "b"]);
}

#[test]
fn scan_reverse_lists_keys_in_descending_byte_order_across_runs_and_the_log() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "b=2", "d=4", "f=6", "p/1=x", "p/2=y"]);
    ok(&["checkpoint", &s]);
    ok(&["set", &s, "a=1", "c=3", "e=5", "p/3=z", "~=tilde"]);
    ok(&["del", &s, "d"]);
    ok(&["set", &s, "f=six"]);
    assert_eq!(
        ok(&["scan", &s, "--reverse"]),
        "~\ttilde\np/3\tz\np/2\ty\np/1\tx\nf\tsix\ne\t5\nc\t3\nb\t2\na\t1\n"
    );
    let mut forward = keys(&["scan", &s]);
    forward.reverse();
    assert_eq!(keys(&["scan", &s, "--reverse"]), forward);
    assert_eq!(
        keys(&["scan", &s, "p/", "--reverse"]),
        ["p/3", "p/2", "p/1"]
    );
    // --limit takes the first N in the order listed; --json keeps one line per key.
    assert_eq!(
        keys(&["scan", &s, "--reverse", "--limit", "2"]),
        ["~", "p/3"]
    );
    assert_eq!(keys(&["scan", &s, "--limit", "2"]), ["a", "b"]);
    assert_eq!(ok(&["scan", &s, "--limit", "0"]), "");
    let lines: Vec<Json> = ok(&["--json", "scan", &s, "p/", "--reverse", "--limit", "2"])
        .lines()
        .map(json)
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"key": "p/3", "value": "z"}),
            serde_json::json!({"key": "p/2", "value": "y"}),
        ]
    );
    // A prefix that matches nothing, and a store that does not exist yet.
    assert_eq!(ok(&["scan", &s, "q", "--reverse"]), "");
    fails(&["scan", &format!("{s}-missing"), "--reverse"], 1);
}

#[test]
fn compact_merges_every_run_into_one_and_info_counts_the_runs() {
    let (_t, _d, s) = store();
    for round in 0..3 {
        ok(&["set", &s, &format!("k{round}=v{round}"), "shared=x"]);
        ok(&["checkpoint", &s]);
    }
    ok(&["set", &s, "in-log-only=1"]);
    let before = json(&ok(&["--json", "info", &s]));
    let runs_before = before["runs"].as_u64().expect("runs");
    assert!(runs_before >= 2, "{before}");
    assert!(ok(&["info", &s]).contains(&format!("\nruns: {runs_before}\n")));

    let answer = json(&ok(&["--json", "compact", &s]));
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["runs"], 1, "{answer}");
    let merges = answer["merges"].as_array().expect("merges");
    assert_eq!(merges.len(), 1, "{answer}");
    // The checkpoint before the merge added the log's run.
    assert_eq!(merges[0]["runs_merged"].as_u64(), Some(runs_before + 1));
    assert_eq!(merges[0]["bottom"], true);
    assert!(merges[0]["bytes_written"].as_u64() <= merges[0]["bytes_read"].as_u64());

    let after = json(&ok(&["--json", "info", &s]));
    assert_eq!(after["runs"], 1);
    assert_eq!(after["txns_since_checkpoint"], 0);
    assert_eq!(
        keys(&["scan", &s]),
        ["in-log-only", "k0", "k1", "k2", "shared"]
    );
    let text = ok(&["compact", &s]);
    assert!(text.starts_with("merged 1 run (1 file, "), "{text}");
    assert!(text.ends_with("\nruns: 1\n"), "{text}");
}

#[test]
fn compact_drops_what_a_range_deletion_removed_from_the_files() {
    let (_t, _d, s) = store();
    let pairs: Vec<String> = (0..200)
        .map(|i| format!("doomed/{i:03}={}", "v".repeat(100)))
        .collect();
    let mut args = vec!["set", &s, "kept=1"];
    args.extend(pairs.iter().map(String::as_str));
    ok(&args);
    ok(&["checkpoint", &s]);
    let full = json(&ok(&["--json", "info", &s]))["snapshot_bytes"]
        .as_u64()
        .expect("bytes");
    ok(&["del", &s, "--prefix", "doomed/"]);
    ok(&["compact", &s]);
    let info = json(&ok(&["--json", "info", &s]));
    let entries: u64 = info["snapshot_files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["entries"].as_u64().expect("entries"))
        .sum();
    assert_eq!(entries, 1, "{info}");
    assert!(
        info["snapshot_bytes"].as_u64().expect("bytes") < full / 10,
        "{info}"
    );
    assert_eq!(keys(&["scan", &s]), ["kept"]);
}

#[test]
fn compact_of_an_empty_store_has_nothing_to_do_and_it_is_a_writing_command() {
    let (_t, dir, s) = store();
    let answer = json(&ok(&["--json", "compact", &s]));
    assert_eq!(
        answer,
        serde_json::json!({"ok": true, "exit": 0, "merges": [], "runs": 0})
    );
    assert_eq!(
        ok(&["compact", &s]),
        "nothing to compact: the store has no runs\n"
    );
    fails(&["--salvage", "compact", &s], 2);
    ok(&["set", &s, "k=v"]);
    let holder = walstore::Store::open(&dir).expect("open");
    let tx = holder.begin_write().expect("hold the writer lock");
    fails(&["--wait", "0", "compact", &s], 3);
    drop(tx);
    ok(&["--wait", "0", "compact", &s]);
    assert_eq!(get(&s, "k"), "v");
}
