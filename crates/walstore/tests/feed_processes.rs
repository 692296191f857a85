//! The change feed across real processes: a replica fed through a pipe from a store that
//! four writer processes change (and that is then killed with SIGKILL mid-workload and
//! reopened) ends equal to its source; a consumer killed between receiving records and
//! acknowledging them resumes without skipping any and repeats at most the unacknowledged.
//!
//! This test binary re-executes itself as worker processes (`feed_processes worker MODE
//! ...`); run without arguments it runs every scenario and prints a libtest-style summary.
//! Waits are on conditions (a count reached, a line read), each with a generous deadline.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use walstore::{Error, FeedRecord, Options};

const WRITERS: u64 = 4;
const DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        worker(&args[2..]);
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let scenarios: &[(&str, fn())] = &[
        (
            "a_replica_fed_through_a_pipe_from_four_writers_equals_the_source_also_after_a_kill",
            replica_through_a_pipe,
        ),
        (
            "a_consumer_killed_before_its_ack_resumes_without_a_skip_or_a_repeat_past_an_ack",
            consumer_killed_before_ack,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    println!("\nrunning {} tests", scenarios.len());
    for (name, run) in scenarios {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let ok = std::panic::catch_unwind(run).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1
        } else {
            failed += 1
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

fn worker(args: &[String]) {
    let dir = Path::new(&args[1]);
    match args[0].as_str() {
        "write" => write(dir, args[2].parse().expect("id"), Path::new(&args[3])),
        "feed-out" => feed_out(dir, args[2].parse().expect("since")),
        "feed-in" => feed_in(dir),
        "consume" => consume(dir),
        other => panic!("unknown worker mode {other}"),
    }
}

fn own_exe() -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.arg("worker");
    cmd
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Commits random puts, deletes and range deletions over keys shared by every writer until
/// `stop` exists; a small checkpoint threshold makes checkpoints (and seals) happen.
fn write(dir: &Path, id: u64, stop: &Path) {
    let store = Options::new()
        .wal_size_bytes_checkpoint(32 << 10)
        .open(dir)
        .expect("open");
    let mut rng = Rng(0x9e37_79b9 + id);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        if stop.exists() {
            break;
        }
        store
            .update(|tx| {
                for _ in 0..1 + rng.below(4) {
                    let key = format!("k{:03}", rng.below(200));
                    match rng.below(10) {
                        0 => tx.delete(key.as_bytes())?,
                        1 => {
                            let end = format!("k{:03}", rng.below(200));
                            tx.delete_range(key.as_bytes()..end.as_bytes())?
                        }
                        _ => tx.put(key.as_bytes(), format!("{id}-{i}").as_bytes())?,
                    }
                }
                Ok::<_, Error>(())
            })
            .expect("commit");
        writeln!(out, "ack {i}").expect("stdout");
        out.flush().expect("flush");
    }
}

type Wire = (
    u64,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// Follows the feed from `since`, writing each record to stdout (length-prefixed
/// MessagePack) until the pipe closes.
fn feed_out(dir: &Path, since: u64) {
    let store = Options::new().open(dir).expect("open");
    let mut out = std::io::stdout().lock();
    for record in store.changes(b"", since).expect("changes") {
        let r = record.expect("record");
        let wire: Wire = (r.txn_id, r.range_deletes, r.writes);
        let bytes = rmp_serde::to_vec(&wire).expect("encode");
        let sent = out
            .write_all(&(bytes.len() as u32).to_le_bytes())
            .and_then(|()| out.write_all(&bytes))
            .and_then(|()| out.flush());
        if sent.is_err() {
            return;
        }
    }
}

/// Applies the records on stdin to the replica, one at a time, until end of input.
fn feed_in(dir: &Path) {
    let store = Options::new().open(dir).expect("open");
    let mut input = std::io::stdin().lock();
    loop {
        let mut len = [0u8; 4];
        if input.read_exact(&mut len).is_err() {
            return;
        }
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut bytes).expect("record");
        let (txn_id, range_deletes, writes): Wire = rmp_serde::from_slice(&bytes).expect("decode");
        let record = FeedRecord {
            txn_id,
            range_deletes,
            writes,
        };
        store.apply_changes([record]).expect("apply");
    }
}

/// Reads consumer `c`'s changes, printing `got N` on receipt and `acked N` after each ack.
fn consume(dir: &Path) {
    let store = Options::new().open(dir).expect("open");
    let mut out = std::io::stdout().lock();
    for record in store.consumer_changes("c", b"").expect("changes") {
        let txn = record.expect("record").txn_id;
        writeln!(out, "got {txn}").expect("stdout");
        out.flush().expect("flush");
        store.ack("c", txn).expect("ack");
        writeln!(out, "acked {txn}").expect("stdout");
        out.flush().expect("flush");
    }
}

fn state(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = Options::new().open(dir).expect("open");
    let read = store.begin_read().expect("read");
    read.range::<&[u8], _>(..)
        .expect("range")
        .map(|item| {
            let (k, v) = item.expect("item");
            (k, v.to_vec())
        })
        .collect()
}

fn last_txn(dir: &Path) -> u64 {
    let store = Options::new().open(dir).expect("open");
    store.sync().expect("sync");
    store.begin_read().expect("read").txn_id()
}

/// Waits until `done` holds, checking every 20 ms, at most [`DEADLINE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `feed-out source since | feed-in replica`.
fn pipe(source: &Path, replica: &Path, since: u64) -> (Child, Child) {
    let mut out = own_exe()
        .args(["feed-out", &source.to_string_lossy(), &since.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn feed-out");
    let stdin = Stdio::from(out.stdout.take().expect("stdout"));
    let input = own_exe()
        .args(["feed-in", &replica.to_string_lossy()])
        .stdin(stdin)
        .spawn()
        .expect("spawn feed-in");
    (out, input)
}

/// Starts the writers; each has printed its first acknowledgement when this returns.
fn writers(source: &Path, stop: &Path) -> Vec<(Child, BufReader<std::process::ChildStdout>)> {
    (0..WRITERS)
        .map(|id| {
            let mut child = own_exe()
                .args(["write", &source.to_string_lossy(), &id.to_string()])
                .arg(stop)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn writer");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
            let mut first = String::new();
            lines.read_line(&mut first).expect("first ack");
            assert!(first.starts_with("ack"), "writer {id}: {first:?}");
            (child, lines)
        })
        .collect()
}

/// Reads each writer's acknowledgements until every one has made `count` commits.
fn until_each_acked(writers: &mut [(Child, BufReader<std::process::ChildStdout>)], count: u64) {
    for (_, lines) in writers.iter_mut() {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                lines.read_line(&mut line).expect("read") > 0,
                "writer ended"
            );
            let n: u64 = line.trim().trim_start_matches("ack ").parse().expect("n");
            if n + 1 >= count {
                break;
            }
        }
    }
}

fn replica_converges(source: &Path, replica: &Path) {
    let target = last_txn(source);
    wait_for("the replica to apply the source's last commit", || {
        let store = Options::new().open(replica).expect("open replica");
        let position = store.applied_position().expect("position");
        position >= target
    });
    assert_eq!(state(replica), state(source), "replica differs from source");
}

fn replica_through_a_pipe() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (source, replica) = (tmp.path().join("a"), tmp.path().join("b"));
    // The source keeps its log for the feed: the follower may fall behind a checkpoint.
    Options::new()
        .open(&source)
        .expect("create source")
        .set_retention(walstore::Retention {
            keep_bytes: 1 << 30,
            ..Default::default()
        })
        .expect("retention");
    Options::new().open(&replica).expect("create replica");
    let (mut out, mut input) = pipe(&source, &replica, 0);
    // Writers that stop on their own: the replica catches up with a quiet source.
    let stop = tmp.path().join("stop");
    let mut ws = writers(&source, &stop);
    until_each_acked(&mut ws, 150);
    std::fs::write(&stop, b"").expect("stop file");
    for (mut child, _) in ws {
        assert!(child.wait().expect("wait").success());
    }
    replica_converges(&source, &replica);
    let sealed = Options::new()
        .open(&source)
        .expect("open")
        .feed_state()
        .expect("feed");
    assert!(
        !sealed.segments.is_empty(),
        "checkpoints sealed the log: {sealed:?}"
    );
    // Writers, the follower and the applier killed with SIGKILL mid-workload; the source
    // reopened (recovery), the pipe restarted from the replica's position.
    std::fs::remove_file(&stop).expect("rm stop");
    let mut ws = writers(&source, &stop);
    until_each_acked(&mut ws, 100);
    for (mut child, _) in ws {
        child.kill().expect("kill writer");
        child.wait().expect("reap");
    }
    for child in [&mut out, &mut input] {
        child.kill().expect("kill pipe");
        child.wait().expect("reap");
    }
    let position = Options::new()
        .open(&replica)
        .expect("open replica")
        .applied_position()
        .expect("position");
    let (mut out, mut input) = pipe(&source, &replica, position);
    replica_converges(&source, &replica);
    for child in [&mut out, &mut input] {
        child.kill().expect("kill pipe");
        child.wait().expect("reap");
    }
}

fn consumer_killed_before_ack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a");
    let store = Options::new()
        .wal_size_bytes_checkpoint(16 << 10)
        .open(&dir)
        .expect("open");
    store.register_consumer("c").expect("register");
    for i in 0..300u32 {
        store
            .update(|tx| tx.put(format!("k{}", i % 17).as_bytes(), &i.to_le_bytes()))
            .expect("commit");
    }
    store.checkpoint().expect("checkpoint");
    let spawn = || {
        let mut child = own_exe()
            .args(["consume", &dir.to_string_lossy()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn consumer");
        let lines = BufReader::new(child.stdout.take().expect("stdout"));
        (child, lines)
    };
    let (mut child, mut lines) = spawn();
    let (mut last_got, mut last_acked) = (0u64, 0u64);
    let mut line = String::new();
    while last_acked < 40 {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("read") > 0,
            "consumer ended"
        );
        let (word, n) = line.trim().split_once(' ').expect("line");
        let n: u64 = n.parse().expect("txn");
        match word {
            "got" => last_got = n,
            _ => last_acked = n,
        }
    }
    child.kill().expect("kill consumer");
    child.wait().expect("reap");
    let position = store.consumer("c").expect("consumer").expect("registered");
    assert!(position >= last_acked && position <= last_got, "{position}");
    let (mut child, mut lines) = spawn();
    line.clear();
    lines.read_line(&mut line).expect("read");
    let first: u64 = line.trim().trim_start_matches("got ").parse().expect("txn");
    assert_eq!(first, position + 1, "resumes right after the durable ack");
    assert!(first <= last_got + 1, "skipped nothing received");
    assert!(first > last_acked, "repeats nothing acknowledged");
    child.kill().expect("kill consumer");
    child.wait().expect("reap");
}
