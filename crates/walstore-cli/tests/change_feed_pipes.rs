//! The change feed between real processes: `changes --follow | apply` keeps a replica equal
//! to its source; a consumer killed mid-stream resumes after its last acknowledged record;
//! a backup plus `changes --since T --until X | apply` restores the state at any X.

mod common;

use common::{code, ok, stderr, store, walstore_stdin, BIN};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: only a failing test waits this long.
const DEADLINE: Duration = Duration::from_secs(120);

fn json(text: &str) -> Json {
    serde_json::from_str(text.trim()).expect("one JSON object")
}

/// The store's last transaction id.
fn last_txn(s: &str) -> u64 {
    json(&ok(&["--json", "info", s]))["last_txn"]
        .as_u64()
        .expect("last_txn")
}

/// A `walstore` process, killed if the test fails while it runs: none outlives its test.
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// Waits for it to exit by itself (failing after [`DEADLINE`]): exit code, stdout, stderr.
    fn finish(mut self) -> (i32, String, String) {
        let deadline = Instant::now() + DEADLINE;
        let child = self.child();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "walstore did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = child.stdout.take().map(read_all).unwrap_or_default();
        let err = child.stderr.take().map(read_all).unwrap_or_default();
        (status.code().expect("exited, not killed"), out, err)
    }

    fn kill(mut self) {
        let child = self.child();
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn spawn(args: &[&str], stdin: Stdio) -> Running {
    let child = Command::new(BIN)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn walstore");
    Running(Some(child))
}

/// Waits until `done` holds, looking every few milliseconds, failing after [`DEADLINE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The feed state of the store at `dir`, opened read-only (`None` before it exists).
fn feed_state(dir: &Path) -> Option<walstore::FeedState> {
    let store = walstore::Options::new().read_only(true).open(dir).ok()?;
    store.feed_state().ok()
}

fn read_all(mut from: impl Read) -> String {
    let mut text = String::new();
    from.read_to_string(&mut text).expect("read");
    text
}

#[test]
fn changes_follow_piped_into_apply_keeps_a_replica_equal_to_its_source() {
    let (_t, _a_dir, a) = store();
    let (_t2, b_dir, b) = store();
    ok(&["retention", &a, "--keep-bytes", "1000000000"]);
    ok(&["set", &a, "k1=1", "k2=2", "k3=3"]);
    let mut changes = spawn(&["changes", &a, "--follow"], Stdio::null());
    let pipe = changes.child().stdout.take().expect("stdout");
    let apply = spawn(&["apply", &b], Stdio::from(pipe));

    ok(&["del", &a, "k1"]);
    ok(&["checkpoint", &a]);
    ok(&["set", &a, "r.1=a", "r.2=b", "r.3=c", "s=d"]);
    ok(&["del", &a, "--prefix", "r."]);
    ok(&["set", &a, "r.2=again", "k2=two"]);
    ok(&["del", &a, "--from", "k", "--to", "k3"]);
    let last = last_txn(&a);
    wait_for("the replica to apply the last transaction", || {
        feed_state(&b_dir).and_then(|f| f.applied) == Some(last)
    });
    assert_eq!(ok(&["export", &b]), ok(&["export", &a]));

    // The source's follower ends (killed); apply reads the end of its input and exits 0.
    changes.kill();
    let (exit, _, summary) = apply.finish();
    assert_eq!(exit, 0, "{summary}");
    assert!(
        summary.starts_with("walstore: applied ")
            && summary.ends_with(&format!("position {last}\n")),
        "{summary}"
    );
    assert_eq!(ok(&["export", &b]), ok(&["export", &a]));
}

/// The `"txn"` of a `changes` line.
fn txn_of(line: &str) -> u64 {
    json(line)["txn"].as_u64().expect("txn")
}

#[test]
fn a_killed_acknowledging_consumer_resumes_after_its_last_acknowledged_record() {
    let (_t, dir, s) = store();
    ok(&["consumer", &s, "register", "c"]);
    for i in 0..3 {
        ok(&["set", &s, &format!("k{i}={i}")]);
    }
    let mut child = spawn(
        &["changes", &s, "--consumer", "c", "--ack", "--follow"],
        Stdio::null(),
    );
    let mut lines = BufReader::new(child.child().stdout.take().expect("stdout")).lines();
    let first: Vec<String> = (0..3)
        .map(|_| lines.next().expect("a line").expect("read"))
        .collect();
    let third = txn_of(&first[2]);
    wait_for("the third record's acknowledgement", || {
        feed_state(&dir).and_then(|f| f.consumers.get("c").copied()) == Some(third)
    });
    child.kill();

    // Committed while it is down: the restarted consumer prints these and nothing before.
    ok(&["set", &s, "k3=3"]);
    ok(&["del", &s, "k0"]);
    let resumed = ok(&["changes", &s, "--consumer", "c", "--ack"]);
    let txns: Vec<u64> = resumed.lines().map(txn_of).collect();
    assert_eq!(txns, vec![third + 1, third + 2], "{resumed}");
    assert!(resumed
        .lines()
        .nth(1)
        .is_some_and(|l| l.contains("[\"k0\",null]")));
    assert_eq!(
        feed_state(&dir).and_then(|f| f.consumers.get("c").copied()),
        Some(third + 2)
    );
    assert_eq!(ok(&["changes", &s, "--consumer", "c"]), "");
}

/// Copies the store directory `from` (flat, closed) to `to`.
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        assert!(entry.file_type().expect("type").is_file(), "{entry:?}");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// Commits step `i` of the restore test (puts, deletes, range deletions in turn).
fn commit_step(s: &str, i: usize) {
    match i % 3 {
        0 => ok(&["set", s, &format!("p.{i}=v{i}"), &format!("q.{i}=w{i}")]),
        1 => ok(&["del", s, &format!("p.{}", i - 1)]),
        _ => ok(&["del", s, "--prefix", "q."]),
    };
}

#[test]
fn a_backup_and_the_feed_restore_the_state_at_any_later_transaction() {
    let (t, _dir, a) = store();
    ok(&["retention", &a, "--keep-bytes", "1000000000"]);
    ok(&["set", &a, "base=1", "q.x=1"]);
    let bk = t.path().join("bk");
    let bk_s = bk.to_str().expect("utf8");
    let backed = json(&ok(&["--json", "backup", &a, bk_s]));
    let since = backed["txn_id"].as_u64().expect("txn_id");
    let mut states = Vec::new();
    for i in 0..9 {
        commit_step(&a, i);
        if i % 2 == 1 {
            ok(&["checkpoint", &a]);
        }
        if [1, 4, 8].contains(&i) {
            states.push((last_txn(&a), ok(&["export", &a])));
        }
    }
    for (x, expected) in &states {
        assert!(*x > since);
        let copy = t.path().join(format!("copy-{x}"));
        copy_store(&bk, &copy);
        let copy_s = copy.to_str().expect("utf8");
        let (since, until) = (since.to_string(), x.to_string());
        let stream = ok(&["changes", &a, "--since", &since, "--until", &until]);
        assert_eq!(stream.lines().last().map(txn_of), Some(*x));
        let out = walstore_stdin(&["apply", copy_s], stream.as_bytes());
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(&ok(&["export", copy_s]), expected, "the state at {x}");
    }
}

#[test]
fn follow_with_until_exits_once_the_position_reaches_it() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1"]);
    let child = spawn(
        &["changes", &s, "--follow", "--prefix", "a", "--until", "3"],
        Stdio::null(),
    );
    // Transaction 2 is outside the prefix, 3 inside, 4 after --until.
    ok(&["set", &s, "b=2"]);
    ok(&["set", &s, "a=3"]);
    ok(&["set", &s, "a=4"]);
    let (exit, out, err) = child.finish();
    assert_eq!(exit, 0, "{err}");
    let txns: Vec<u64> = out.lines().map(txn_of).collect();
    assert_eq!(txns, vec![1, 3]);
}

#[test]
fn a_closed_stdout_ends_a_following_changes_at_the_next_record_with_exit_0() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1"]);
    let mut child = spawn(&["changes", &s, "--follow"], Stdio::null());
    let mut lines = BufReader::new(child.child().stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("read");
    assert_eq!(txn_of(&first), 1);
    drop(lines);
    ok(&["set", &s, "b=2"]);
    assert_eq!(child.finish(), (0, String::new(), String::new()));
}

#[test]
fn a_following_changes_whose_reader_went_away_exits_0_without_a_new_record() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1"]);
    let mut child = spawn(&["changes", &s, "--follow"], Stdio::null());
    let mut lines = BufReader::new(child.child().stdout.take().expect("stdout")).lines();
    assert_eq!(txn_of(&lines.next().expect("a line").expect("read")), 1);
    drop(lines);
    // Nothing is committed: it notices the closed pipe by itself.
    assert_eq!(child.finish(), (0, String::new(), String::new()));
}
