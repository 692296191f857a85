//! `walstore watch`: the changes other processes commit under a prefix, one JSON line each,
//! ending by itself with `--count` or `--timeout`, and quietly when its reader goes away.

mod common;

use common::{code, ok, stderr, stdout, store, walstore, BIN};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `walstore watch ARGS` with stdout and stderr piped.
fn spawn_watch(args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("watch")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn walstore watch")
}

/// Waits until a watch sleeps on the store's commit index: the `watchers` word (FORMAT.md §8,
/// offset 112 of `SHM`) is not 0. From then on, every commit is one the watch reports.
fn wait_until_watching(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let bytes = std::fs::read(dir.join("SHM")).expect("read SHM");
        let word: [u8; 8] = bytes[112..120].try_into().expect("8 bytes");
        if u64::from_le_bytes(word) > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the watch never started waiting");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn next_line(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Json {
    let line = lines.next().expect("a line").expect("read stdout");
    serde_json::from_str(&line).expect("one JSON object per line")
}

fn lines(stdout: ChildStdout) -> impl Iterator<Item = std::io::Result<String>> {
    BufReader::new(stdout).lines()
}

#[test]
fn a_watch_prints_the_prefix_changes_of_other_processes_in_order() {
    let (_t, dir, s) = store();
    // A handle held open here: the store's commit index stays set up, as in a program that
    // uses the store while a shell watches it.
    let held = walstore::Store::open(&dir).expect("open");
    let mut child = spawn_watch(&[&s, "cfg.", "--count", "3"]);
    let mut out = lines(child.stdout.take().expect("stdout"));
    wait_until_watching(&dir);

    ok(&["set", &s, "cfg.a=1"]);
    let first = next_line(&mut out);
    let txn = first["txn"].as_u64().expect("txn");
    assert_eq!(first, json!({"key": "cfg.a", "value": "1", "txn": txn}));

    // A key outside the prefix is not reported; a typed value also comes as "json".
    ok(&["set", &s, "other=2"]);
    ok(&["--json", "set", &s, "cfg.n=3"]);
    let second = next_line(&mut out);
    assert_eq!(second["key"], "cfg.n");
    assert_eq!(second["json"], 3);
    assert!(second["txn"].as_u64() > Some(txn), "{second}");

    ok(&["del", &s, "cfg.a"]);
    let third = next_line(&mut out);
    let deleted = third["txn"].as_u64().expect("txn");
    assert!(deleted > txn);
    assert_eq!(
        third,
        json!({"key": "cfg.a", "value": null, "txn": deleted})
    );

    // --count 3: it ends by itself, with nothing more printed.
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(out.next().is_none(), "nothing after the third change");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(err, "");
    drop(held);
}

#[test]
fn a_timeout_without_changes_exits_0_and_prints_nothing() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "cfg.a=1"]);
    let started = Instant::now();
    let out = walstore(&["watch", &s, "cfg.", "--timeout", "0.5"]);
    let took = started.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    assert!(took >= Duration::from_millis(500), "{took:?}");
    // Changes outside the prefix do not count either, and --count 0 ends at once.
    assert_eq!(ok(&["watch", &s, "cfg.", "--count", "0"]), "");
    // No store yet: exit 1, as scan does.
    let (_t2, _d2, missing) = store();
    assert_eq!(code(&walstore(&["watch", &missing, "cfg."])), 1);
}

#[test]
fn a_closed_stdout_ends_the_watch_at_the_next_change_with_exit_0() {
    let (_t, dir, s) = store();
    let held = walstore::Store::open(&dir).expect("open");
    // The timeout only bounds a failing test; the watch must end long before it.
    let mut child = spawn_watch(&[&s, "--timeout", "120"]);
    wait_until_watching(&dir);
    drop(child.stdout.take());
    let started = Instant::now();
    ok(&["set", &s, "k=v"]);
    let out = child.wait_with_output().expect("wait");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    drop(held);
}
