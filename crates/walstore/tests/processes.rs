//! Several real processes on one store, and writers killed with SIGKILL at random moments.
//!
//! This test binary re-executes itself as worker processes (`processes worker MODE ...`); run
//! without arguments it runs every scenario and prints a libtest-style summary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use walstore::{Error, LockWait, Options, Store};

const ACCOUNTS: u64 = 10;
const INITIAL_BALANCE: u64 = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        worker(&args[2..]);
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let scenarios: &[(&str, fn())] = &[
        (
            "killed_committer_leaves_a_committed_prefix_with_every_acknowledged_commit",
            killed_committer,
        ),
        (
            "eight_processes_incrementing_one_counter_end_at_1600",
            eight_processes_increment,
        ),
        (
            "bank_transfers_across_processes_keep_the_total",
            bank_transfers,
        ),
        (
            "writers_killed_at_random_while_others_write_lose_nothing_acknowledged",
            writers_killed_while_others_write,
        ),
        (
            "checkpoints_from_one_process_while_others_read_and_write",
            checkpoints_while_others_work,
        ),
        (
            "a_second_process_waiting_for_the_lock_gets_busy_and_its_data_is_untouched",
            busy_with_short_timeout,
        ),
        (
            "one_process_merges_runs_while_others_read_and_write",
            merges_while_others_work,
        ),
        (
            "a_forked_child_dropping_inherited_handles_keeps_the_parents_lock",
            forked_child_drops_inherited_handles,
        ),
        (
            "a_reader_process_never_sees_a_commit_before_its_writers_sync_returned",
            reader_never_sees_a_commit_before_its_sync,
        ),
        (
            "a_writer_killed_inside_the_index_update_leaves_the_others_reading_and_writing",
            writer_killed_inside_the_index_update,
        ),
        (
            "a_failed_sync_in_one_process_makes_the_others_next_commit_fail_with_poisoned",
            failed_sync_poisons_other_processes,
        ),
        (
            "a_watch_sees_another_processs_commits_under_its_prefix",
            watch_sees_another_process,
        ),
        (
            "writes_closed_beside_a_process_later_killed_are_all_found_and_the_log_proven_again",
            closes_beside_a_killed_holder,
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

/// A small deterministic generator (xorshift64*), so a failing run can be repeated.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("own path"))
        .arg("worker")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker")
}

fn wait_ok(mut child: Child, what: &str) -> String {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut out).expect("read worker output");
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{what} failed with {status}: {out}");
    out
}

/// Reads the first line `child` prints and checks it is `want` (it says it is ready).
fn expect_line(child: &mut Child, want: &str) {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), want, "the first line of the child's output");
}

fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    (tmp, dir)
}

fn open(dir: &Path) -> Store {
    Options::new().open(dir).expect("open")
}

fn get_u64(store: &Store, key: &str) -> u64 {
    store
        .begin_read()
        .expect("read")
        .get(key.as_bytes())
        .expect("get")
        .map(|v| {
            std::str::from_utf8(&v)
                .expect("utf8")
                .parse()
                .expect("number")
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Workers

fn worker(args: &[String]) {
    let dir = Path::new(&args[1]);
    let n = |i: usize| -> u64 { args[i].parse().expect("number argument") };
    match args[0].as_str() {
        "commit-loop" => commit_loop(dir),
        "incr" => incr(dir, n(2), &args[3]),
        "bank-writer" => bank_writer(dir, n(2), n(3)),
        "bank-reader" => bank_reader(dir, n(2)),
        "checkpointer" => checkpointer(dir, Path::new(&args[2])),
        "merger" => merger(dir, Path::new(&args[2])),
        "hold-lock" => hold_lock(dir, n(2)),
        "hold-open" => hold_open(dir, n(2)),
        "try-write" => try_write(dir, n(2)),
        "slow-sync-writer" => slow_sync_writer(dir, Path::new(&args[2])),
        "visibility-reader" => visibility_reader(dir, Path::new(&args[2])),
        "failing-sync-writer" => failing_sync_writer(dir),
        "commit-one" => commit_one(dir, &args[2], &args[3]),
        other => panic!("unknown worker mode {other}"),
    }
}

/// Commits `a = b = c = i` for i = 1, 2, ... and reports each acknowledged commit.
fn commit_loop(dir: &Path) {
    let store = Options::new()
        .wal_size_bytes_checkpoint(64 << 10)
        .open(dir)
        .expect("open");
    let start = get_u64(&store, "a");
    let mut out = std::io::stdout().lock();
    for i in start + 1.. {
        let v = i.to_string();
        store
            .update(|tx| {
                tx.put(b"a", v.as_bytes())?;
                tx.put(b"b", v.as_bytes())?;
                tx.put(b"c", v.as_bytes())
            })
            .expect("commit");
        writeln!(out, "ack {i}").expect("stdout");
        out.flush().expect("flush");
    }
}

fn incr(dir: &Path, times: u64, id: &str) {
    let store = open(dir);
    let own = format!("counter.{id}");
    for _ in 0..times {
        store
            .update(|tx| {
                for key in ["counter", own.as_str()] {
                    let n: u64 = tx
                        .get(key.as_bytes())?
                        .map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0))
                        .unwrap_or(0);
                    tx.put(key.as_bytes(), (n + 1).to_string().as_bytes())?;
                }
                Ok::<_, Error>(())
            })
            .expect("increment");
    }
}

fn account(i: u64) -> String {
    format!("account.{i:02}")
}

fn bank_writer(dir: &Path, transfers: u64, seed: u64) {
    let store = open(dir);
    let mut rng = Rng(seed | 1);
    let mut out = std::io::stdout().lock();
    for t in 0..transfers {
        let from = account(rng.below(ACCOUNTS));
        let to = account(rng.below(ACCOUNTS));
        let amount = rng.below(50);
        store
            .update(|tx| {
                let a = read_balance(tx.get(from.as_bytes())?);
                let b = read_balance(tx.get(to.as_bytes())?);
                if from != to && a >= amount {
                    tx.put(from.as_bytes(), (a - amount).to_string().as_bytes())?;
                    tx.put(to.as_bytes(), (b + amount).to_string().as_bytes())?;
                }
                // How many transfers of this writer are committed, in the same transaction.
                tx.put(
                    format!("writer.{seed}").as_bytes(),
                    (t + 1).to_string().as_bytes(),
                )
            })
            .expect("transfer");
        writeln!(out, "ack {t}").expect("stdout");
    }
}

fn read_balance(v: Option<walstore::Value>) -> u64 {
    v.map(|v| String::from_utf8_lossy(&v).parse().expect("balance"))
        .expect("account exists")
}

fn bank_reader(dir: &Path, reads: u64) {
    let store = open(dir);
    for _ in 0..reads {
        let r = store.begin_read().expect("read");
        let total: u64 = r
            .scan_prefix(b"account.")
            .expect("scan")
            .map(|item| read_balance(Some(item.expect("item").1)))
            .sum();
        assert_eq!(
            total,
            ACCOUNTS * INITIAL_BALANCE,
            "a reader saw a torn total"
        );
        let by_get: u64 = (0..ACCOUNTS)
            .map(|i| read_balance(r.get(account(i).as_bytes()).expect("get")))
            .sum();
        assert_eq!(
            by_get,
            ACCOUNTS * INITIAL_BALANCE,
            "point reads saw a torn total"
        );
    }
    println!("reads {reads}");
}

/// Checkpoints until `stop` exists, and reports how many checkpoints folded commits in.
/// It runs as long as the other workers do (rather than a fixed number of rounds) so that a
/// slow machine, where the others start late, still interleaves checkpoints with their work.
fn checkpointer(dir: &Path, stop: &Path) {
    let store = Options::new()
        .auto_checkpoint(false)
        .open(dir)
        .expect("open");
    let mut folded = 0;
    // A bound, so that a worker orphaned by a failed test ends by itself.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !stop.exists() && Instant::now() < deadline {
        if store.checkpoint().expect("checkpoint").keys_changed > 0 {
            folded += 1;
            report_progress(stop, folded);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("checkpoints {folded}");
}

fn hold_lock(dir: &Path, millis: u64) {
    let store = open(dir);
    let mut tx = store.begin_write().expect("begin");
    tx.put(b"held", b"by the first process").expect("put");
    println!("locked");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_millis(millis));
    tx.commit().expect("commit");
}

/// Keeps the store open for `millis` (or until killed).
fn hold_open(dir: &Path, millis: u64) {
    let store = open(dir);
    println!("open");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_millis(millis));
    drop(store);
}

fn try_write(dir: &Path, timeout_ms: u64) {
    let store = Options::new()
        .lock_wait(LockWait::Timeout(Duration::from_millis(timeout_ms)))
        .open(dir)
        .expect("open never fails because another process has the store open");
    match store.begin_write() {
        Err(Error::Busy { waited }) => println!("busy after {waited:?}"),
        Ok(_) => panic!("the lock should have been busy"),
        Err(e) => panic!("expected Busy, got {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Reads "ack N" lines until the child is killed; returns the largest N.
fn acks_until_killed(mut child: Child, after: Duration) -> u64 {
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut last = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack ") {
                last = n.parse().expect("ack number");
            }
        }
        last
    });
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader")
}

fn killed_committer() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng(0x5eed_0001);
    let mut acknowledged = 0;
    for round in 0..12 {
        let child = spawn(&["commit-loop", dir.to_str().expect("utf8")]);
        let acked = acks_until_killed(child, Duration::from_millis(20 + rng.below(120)));
        acknowledged = acknowledged.max(acked);
        let store = open(&dir);
        let (a, b, c) = (
            get_u64(&store, "a"),
            get_u64(&store, "b"),
            get_u64(&store, "c"),
        );
        assert!(
            a == b && b == c,
            "round {round}: torn transaction a={a} b={b} c={c}"
        );
        assert!(
            a >= acknowledged,
            "round {round}: acknowledged {acknowledged}, recovered {a}"
        );
        acknowledged = a;
    }
    assert!(acknowledged > 0, "the child never committed");
}

fn eight_processes_increment() {
    let (_tmp, dir) = tempdir();
    drop(open(&dir));
    let started = Instant::now();
    let children: Vec<Child> = (0..8)
        .map(|i| spawn(&["incr", dir.to_str().expect("utf8"), "200", &i.to_string()]))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        wait_ok(c, &format!("incrementer {i}"));
    }
    let elapsed = started.elapsed();
    let store = open(&dir);
    assert_eq!(get_u64(&store, "counter"), 1600);
    for i in 0..8 {
        assert_eq!(
            get_u64(&store, &format!("counter.{i}")),
            200,
            "process {i}'s own key"
        );
    }
    eprintln!(
        "    8 processes x 200 increments: {:.2} s, {:.0} transactions/s",
        elapsed.as_secs_f64(),
        1600.0 / elapsed.as_secs_f64()
    );
}

fn seed_accounts(dir: &Path) {
    let store = open(dir);
    store
        .update(|tx| {
            for i in 0..ACCOUNTS {
                tx.put(
                    account(i).as_bytes(),
                    INITIAL_BALANCE.to_string().as_bytes(),
                )?;
            }
            Ok::<_, Error>(())
        })
        .expect("seed");
}

fn total(store: &Store) -> u64 {
    (0..ACCOUNTS).map(|i| get_u64(store, &account(i))).sum()
}

fn bank_transfers() {
    let (_tmp, dir) = tempdir();
    seed_accounts(&dir);
    let d = dir.to_str().expect("utf8");
    let writers: Vec<Child> = (0..4)
        .map(|i| spawn(&["bank-writer", d, "150", &(i + 7).to_string()]))
        .collect();
    let readers: Vec<Child> = (0..2).map(|_| spawn(&["bank-reader", d, "400"])).collect();
    for c in writers {
        wait_ok(c, "bank writer");
    }
    for c in readers {
        wait_ok(c, "bank reader");
    }
    assert_eq!(total(&open(&dir)), ACCOUNTS * INITIAL_BALANCE);
}

fn writers_killed_while_others_write() {
    let (_tmp, dir) = tempdir();
    seed_accounts(&dir);
    let d = dir.to_str().expect("utf8");
    let mut rng = Rng(0x5eed_0002);
    let survivors: Vec<Child> = (0..2)
        .map(|i| spawn(&["bank-writer", d, "200", &(i + 100).to_string()]))
        .collect();
    let reader = spawn(&["bank-reader", d, "300"]);
    for round in 0..6 {
        let victim = spawn(&["bank-writer", d, "100000", &(round + 200).to_string()]);
        let acked = acks_until_killed(victim, Duration::from_millis(10 + rng.below(80)));
        let committed = get_u64(&open(&dir), &format!("writer.{}", round + 200));
        assert!(
            committed >= acked,
            "round {round}: {acked} transfers acknowledged, {committed} committed"
        );
        // The store stays usable for everyone else: a fresh handle can write at once.
        open(&dir)
            .update(|tx| tx.put(b"probe", round.to_string().as_bytes()))
            .expect("write after a kill");
    }
    for c in survivors {
        let out = wait_ok(c, "surviving writer");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("ack ")).count(),
            200,
            "a survivor lost transfers"
        );
    }
    wait_ok(reader, "reader");
    let store = open(&dir);
    assert_eq!(
        total(&store),
        ACCOUNTS * INITIAL_BALANCE,
        "money appeared or vanished"
    );
    assert_eq!(get_u64(&store, "probe"), 5);
}

/// Checkpoints (a new run each) and, every other round, merges every run into one, until
/// `stop` exists; reports how many merges ran.
fn merger(dir: &Path, stop: &Path) {
    let store = Options::new()
        .auto_checkpoint(false)
        .segment_size_bytes_target(8 << 10)
        .open(dir)
        .expect("open");
    let mut merged = 0;
    let mut round = 0u64;
    // A bound, so that a worker orphaned by a failed test ends by itself.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !stop.exists() && Instant::now() < deadline {
        if round % 2 == 1 {
            merged += store.compact().expect("compact").len();
            report_progress(stop, merged);
        } else {
            store.checkpoint().expect("checkpoint");
        }
        round += 1;
    }
    println!("merges {merged}");
}

/// Where a worker given the stop file `stop` reports how much it has done so far.
fn progress_file(stop: &Path) -> PathBuf {
    stop.with_extension("progress")
}

/// Writes a worker's count so far (under a temporary name, renamed: never read half-written).
fn report_progress(stop: &Path, count: usize) {
    let tmp = stop.with_extension("progress.tmp");
    std::fs::write(&tmp, count.to_string()).expect("progress");
    std::fs::rename(&tmp, progress_file(stop)).expect("progress");
}

/// A worker's count so far (0 before its first report).
fn progress(stop: &Path) -> usize {
    std::fs::read_to_string(progress_file(stop))
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The number after `prefix` on a line of a worker's output.
fn reported(out: &str, prefix: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the worker reports `{prefix}`: {out}"))
}

/// Seeds the accounts in `dir`, then runs worker `mode` (given a stop file) while batches of
/// other processes work (two bank writers with seeds from `seed`, an incrementer of 200 and
/// two bank readers each), batch after batch until the worker has reported `wanted` units of
/// its own work (a condition, not a number of rounds: on a slow machine the others may
/// finish a batch before the worker got far). Stops the worker once the last batch has
/// finished; returns its output and the number of batches.
fn beside_bank_work(dir: &Path, mode: &str, seed: u64, wanted: usize) -> (String, u64) {
    seed_accounts(dir);
    let d = dir.to_str().expect("utf8");
    let stop = dir.with_extension("stop");
    let worker = spawn(&[mode, d, stop.to_str().expect("utf8")]);
    let mut batches = 0u64;
    // A bound, so that a worker that never gets anything done fails the test, not hangs it.
    while batches < 50 && (batches == 0 || progress(&stop) < wanted) {
        let writers: Vec<Child> = (0..2)
            .map(|i| {
                spawn(&[
                    "bank-writer",
                    d,
                    "200",
                    &(i + seed + 2 * batches).to_string(),
                ])
            })
            .collect();
        let incrementer = spawn(&["incr", d, "200", "x"]);
        let readers: Vec<Child> = (0..2).map(|_| spawn(&["bank-reader", d, "300"])).collect();
        for c in writers {
            wait_ok(c, "writer");
        }
        wait_ok(incrementer, "incrementer");
        for c in readers {
            wait_ok(c, "reader");
        }
        batches += 1;
    }
    std::fs::write(&stop, b"").expect("stop file");
    (wait_ok(worker, mode), batches)
}

fn merges_while_others_work() {
    let (_tmp, dir) = tempdir();
    let (out, batches) = beside_bank_work(&dir, "merger", 500, 2);
    let merges = reported(&out, "merges ");
    assert!(
        merges >= 2,
        "only {merges} merges ran while {batches} batches of others worked"
    );
    let store = open(&dir);
    assert_eq!(total(&store), ACCOUNTS * INITIAL_BALANCE);
    assert_eq!(
        get_u64(&store, "counter"),
        200 * batches,
        "no lost commit across merges"
    );
    store.compact().expect("compact");
    assert!(store.info().expect("info").runs <= 1);
    assert_eq!(total(&store), ACCOUNTS * INITIAL_BALANCE);
}

fn checkpoints_while_others_work() {
    let (_tmp, dir) = tempdir();
    let (out, batches) = beside_bank_work(&dir, "checkpointer", 300, 3);
    let folded = reported(&out, "checkpoints ");
    assert!(
        folded >= 3,
        "only {folded} checkpoints folded commits in while {batches} batches of others worked"
    );
    let store = open(&dir);
    assert_eq!(total(&store), ACCOUNTS * INITIAL_BALANCE);
    assert_eq!(
        get_u64(&store, "counter"),
        200 * batches,
        "no lost commit across checkpoints"
    );
    assert!(
        store.info().expect("info").generation >= folded as u64,
        "each checkpoint that folded commits in moved the generation"
    );
}

fn busy_with_short_timeout() {
    let (_tmp, dir) = tempdir();
    open(&dir)
        .update(|tx| tx.put(b"mine", b"untouched"))
        .expect("seed");
    let d = dir.to_str().expect("utf8");
    let mut holder = spawn(&["hold-lock", d, "1500"]);
    expect_line(&mut holder, "locked");
    let out = wait_ok(spawn(&["try-write", d, "200"]), "waiting writer");
    assert!(out.starts_with("busy after"), "{out}");
    wait_ok(holder, "lock holder");
    let store = open(&dir);
    let r = store.begin_read().expect("read");
    assert_eq!(
        r.get(b"mine").expect("get").as_deref(),
        Some(&b"untouched"[..])
    );
    assert_eq!(
        r.get(b"held").expect("get").as_deref(),
        Some(&b"by the first process"[..])
    );
}

/// A forked child inherits a store handle and an open write transaction (which holds the
/// `flock` on a file description the two processes share). Dropping them in the child must
/// neither hang (joining a thread that does not exist there) nor release the parent's lock;
/// the inherited handle refuses use with `Forked`, and a store opened in the child works.
/// This binary runs its scenarios one after another in its main thread, so nothing else
/// holds a lock at the fork.
#[allow(unsafe_code)] // fork, _exit and waitpid
fn forked_child_drops_inherited_handles() {
    let (_tmp, dir) = tempdir();
    let store = Options::new()
        .wal_size_bytes_checkpoint(4 << 10)
        .open(&dir)
        .expect("open");
    // Enough commits to start the background checkpointer before the fork.
    for i in 0..200u32 {
        store
            .update(|tx| tx.put(format!("k{i}").as_bytes(), &[7u8; 64]))
            .expect("commit");
    }
    let mut tx = store.begin_write().expect("begin");
    tx.put(b"held", b"by the parent").expect("put");
    // SAFETY: the child calls only what it needs and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = forked_child(&dir, store, tx);
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit: status {status}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child check failed (see the code)"
    );
    tx.commit()
        .expect("the parent's transaction commits after the child left");
    let read = store.begin_read().expect("read");
    assert_eq!(
        read.get(b"held").expect("get").as_deref(),
        Some(&b"by the parent"[..])
    );
    assert_eq!(read.get(b"child").expect("get"), None);
}

/// The child's half: returns the exit code (0 when every check held).
fn forked_child(dir: &Path, store: Store, tx: walstore::WriteTxn) -> i32 {
    if !matches!(store.begin_read(), Err(Error::Forked { .. })) {
        return 1;
    }
    drop(tx);
    drop(store);
    let mine = match Options::new()
        .lock_wait(LockWait::Timeout(Duration::from_millis(100)))
        .open(dir)
    {
        Ok(store) => store,
        Err(Error::Busy { .. }) => return 0, // the parent's lock held
        Err(_) => return 2,
    };
    match mine.update(|t| t.put(b"child", b"wrote")) {
        Err(Error::Busy { .. }) => 0,
        Ok(()) => 3, // the lock was released by the drops above
        Err(_) => 4,
    }
}

// ---------------------------------------------------------------------------------------------
// The commit index across processes (FORMAT.md §8)

/// What [`Hooked`] does to the WAL's `fdatasync`.
#[derive(Debug, Clone)]
enum SyncHook {
    /// Creates `<marks>.syncing`, sleeps, syncs, then creates `<marks>.synced`.
    Slow { marks: PathBuf },
    /// Fails with EIO once armed.
    Fail {
        armed: Arc<std::sync::atomic::AtomicBool>,
    },
}

/// The real file system, with a hook on the WAL's `fdatasync`.
#[derive(Debug, Clone)]
struct Hooked {
    hook: SyncHook,
}

#[derive(Debug)]
struct HookedFile {
    inner: Box<dyn walstore::storage::StorageFile>,
    wal: bool,
    hook: SyncHook,
}

impl walstore::storage::Storage for Hooked {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        walstore::storage::FsStorage.create_dir_all(path)
    }
    fn open(
        &self,
        path: &Path,
        mode: walstore::storage::OpenMode,
    ) -> std::io::Result<Box<dyn walstore::storage::StorageFile>> {
        Ok(Box::new(HookedFile {
            inner: walstore::storage::FsStorage.open(path, mode)?,
            wal: path.file_name().is_some_and(|n| n == "wal"),
            hook: self.hook.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        walstore::storage::FsStorage.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        walstore::storage::FsStorage.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        walstore::storage::FsStorage.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        walstore::storage::FsStorage.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        walstore::storage::FsStorage.exists(path)
    }
    fn open_lock(&self, path: &Path) -> std::io::Result<Box<dyn walstore::storage::StorageLock>> {
        walstore::storage::FsStorage.open_lock(path)
    }
    fn open_region(
        &self,
        path: &Path,
        deadline: Option<Instant>,
    ) -> std::io::Result<walstore::storage::OpenedRegion> {
        walstore::storage::FsStorage.open_region(path, deadline)
    }
    fn create_shared(
        &self,
        path: &Path,
        capacity: usize,
    ) -> std::io::Result<std::sync::Arc<dyn walstore::storage::SharedFile>> {
        walstore::storage::FsStorage.create_shared(path, capacity)
    }
    fn open_shared(
        &self,
        path: &Path,
        capacity: usize,
    ) -> std::io::Result<std::sync::Arc<dyn walstore::storage::SharedFile>> {
        walstore::storage::FsStorage.open_shared(path, capacity)
    }
}

impl walstore::storage::StorageFile for HookedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if !self.wal {
            return self.inner.sync_data();
        }
        match &self.hook {
            SyncHook::Slow { marks } => {
                std::fs::write(marks.with_extension("syncing"), b"")?;
                std::thread::sleep(Duration::from_millis(400));
                self.inner.sync_data()?;
                std::fs::write(marks.with_extension("synced"), b"")
            }
            SyncHook::Fail { armed } if armed.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(std::io::Error::from_raw_os_error(5))
            }
            SyncHook::Fail { .. } => self.inner.sync_data(),
        }
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn map(&self) -> std::io::Result<Arc<dyn walstore::storage::Mapping>> {
        self.inner.map()
    }
}

fn hooked(dir: &Path, hook: SyncHook) -> Store {
    Options::new()
        .storage(Arc::new(Hooked { hook }))
        .open(dir)
        .expect("open")
}

/// Commits `key` with a WAL sync that takes 400 ms, marking its start and end in files.
fn slow_sync_writer(dir: &Path, marks: &Path) {
    let store = hooked(
        dir,
        SyncHook::Slow {
            marks: marks.to_path_buf(),
        },
    );
    // The open itself syncs nothing here (the store was closed cleanly); start afresh.
    let _ = std::fs::remove_file(marks.with_extension("syncing"));
    let _ = std::fs::remove_file(marks.with_extension("synced"));
    println!("ready");
    std::io::stdout().flush().expect("flush");
    store.update(|tx| tx.put(b"k", b"v")).expect("commit");
    println!("committed");
}

/// Polls for `k` until it appears; fails if it was visible while the writer's sync had not
/// returned. Reports how many looks fell inside the sync.
fn visibility_reader(dir: &Path, marks: &Path) {
    let store = open(dir);
    // Open before the writer commits: an open that finds another process's commit still
    // unproven makes it durable itself (a recovery checkpoint, RECOVERY.md S1), and may then
    // show it before that process's own sync returns.
    println!("open");
    std::io::stdout().flush().expect("flush");
    let synced = marks.with_extension("synced");
    let syncing = marks.with_extension("syncing");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut inside = 0u64;
    loop {
        let in_sync = syncing.exists() && !synced.exists();
        let seen = store
            .begin_read()
            .expect("read")
            .get(b"k")
            .expect("get")
            .is_some();
        let synced_after = synced.exists();
        assert!(
            !seen || synced_after,
            "saw the commit before its writer's sync returned"
        );
        if in_sync && !seen {
            inside += 1;
        }
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "the commit never became visible");
    }
    println!("inside {inside}");
}

fn reader_never_sees_a_commit_before_its_sync() {
    let (_tmp, dir) = tempdir();
    open(&dir).update(|tx| tx.put(b"seed", b"1")).expect("seed");
    let d = dir.to_str().expect("utf8");
    let marks = dir.with_extension("marks");
    let m = marks.to_str().expect("utf8");
    let mut reader = spawn(&["visibility-reader", d, m]);
    let mut reader_out = BufReader::new(reader.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader_out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "open");
    let mut writer = spawn(&["slow-sync-writer", d, m]);
    expect_line(&mut writer, "ready");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut reader_out, &mut out).expect("reader output");
    wait_ok(reader, "reader");
    wait_ok(writer, "writer");
    let inside = reported(&out, "inside ");
    assert!(
        inside > 10,
        "the reader looked only {inside} times during the 400 ms sync"
    );
}

/// Maps the index file's words (FORMAT.md §8) as the test's own view of it.
fn index_words(dir: &Path) -> memmap2::MmapMut {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("SHM"))
        .expect("open SHM");
    // SAFETY: a test-only shared mapping of a file other processes change concurrently; the
    // test reads and writes it only with single aligned 8-byte volatile accesses.
    #[allow(unsafe_code)]
    unsafe {
        memmap2::MmapMut::map_mut(&file).expect("map SHM")
    }
}

#[allow(unsafe_code)]
fn word(map: &memmap2::MmapMut, i: usize) -> u64 {
    // SAFETY: in bounds and 8-byte aligned (the map is page aligned).
    unsafe { std::ptr::read_volatile(map.as_ptr().add(i * 8).cast::<u64>()) }
}

#[allow(unsafe_code)]
fn set_word(map: &mut memmap2::MmapMut, i: usize, v: u64) {
    // SAFETY: as in `word`.
    unsafe { std::ptr::write_volatile(map.as_mut_ptr().add(i * 8).cast::<u64>(), v) }
}

fn writer_killed_inside_the_index_update() {
    let (_tmp, dir) = tempdir();
    seed_accounts(&dir);
    let d = dir.to_str().expect("utf8");
    // Another process keeps the store (and its index) open throughout.
    let mut keeper = spawn(&["hold-open", d, "20000"]);
    expect_line(&mut keeper, "open");
    // A writer takes the lock, and is killed while (as far as the index says) it is in the
    // middle of updating the section: sequence word odd, dirty set.
    let mut holder = spawn(&["hold-lock", d, "60000"]);
    expect_line(&mut holder, "locked");
    let mut map = index_words(&dir);
    let seq = word(&map, 2);
    set_word(&mut map, 2, seq | 1);
    let written = word(&map, 6);
    set_word(&mut map, 6, written + 17); // a half-written field
    holder.kill().expect("kill");
    holder.wait().expect("wait");
    // The others read and write.
    let writers: Vec<Child> = (0..2)
        .map(|i| spawn(&["bank-writer", d, "50", &(i + 900).to_string()]))
        .collect();
    let readers: Vec<Child> = (0..2).map(|_| spawn(&["bank-reader", d, "100"])).collect();
    let incr = spawn(&["incr", d, "50", "after"]);
    for c in writers {
        wait_ok(c, "writer");
    }
    for c in readers {
        wait_ok(c, "reader");
    }
    wait_ok(incr, "incrementer");
    let mut copy = [0u64; walstore::index::INDEX_WORDS];
    for (i, w) in copy.iter_mut().enumerate() {
        *w = word(&map, i);
    }
    assert!(
        walstore::index::decode(&copy).is_ok(),
        "the next writer did not repair the index: {:?}",
        walstore::index::decode(&copy)
    );
    let store = open(&dir);
    assert_eq!(total(&store), ACCOUNTS * INITIAL_BALANCE);
    assert_eq!(get_u64(&store, "counter"), 50);
    keeper.kill().expect("kill");
    keeper.wait().expect("wait");
}

/// Opens the store with a WAL whose `fdatasync` fails, commits (which fails and poisons),
/// reports, then keeps the store open until its stdin closes.
fn failing_sync_writer(dir: &Path) {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = hooked(
        dir,
        SyncHook::Fail {
            armed: Arc::clone(&armed),
        },
    );
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = store.update(|tx| tx.put(b"k", b"lost?"));
    println!(
        "{}",
        match result {
            Err(Error::Io { .. }) => "failed",
            Ok(()) => "committed",
            Err(_) => "other",
        }
    );
    std::io::stdout().flush().expect("flush");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
    drop(store);
}

fn failed_sync_poisons_other_processes() {
    let (_tmp, dir) = tempdir();
    let store = open(&dir);
    store.update(|tx| tx.put(b"k", b"1")).expect("seed");
    let d = dir.to_str().expect("utf8");
    let mut failing = Command::new(std::env::current_exe().expect("own path"))
        .args(["worker", "failing-sync-writer", d])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(failing.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "failed", "the failing process's commit");
    let refused = store.update(|tx| tx.put(b"k", b"2"));
    assert!(
        matches!(refused, Err(Error::Poisoned { .. })),
        "this process's commit after another's failed sync: {refused:?}"
    );
    assert!(store.is_poisoned());
    // A process that opens the store now is refused writes too.
    let out = wait_ok(spawn(&["commit-one", d, "k", "3"]), "late opener");
    assert_eq!(out.trim(), "poisoned");
    // Reads go on. The failed commit may or may not be there (GUARANTEES.md: an I/O error
    // leaves it indeterminate; the late opener's recovery may have made it durable).
    let k = store.begin_read().expect("read").get(b"k").expect("get");
    assert!(
        matches!(k.as_deref(), Some(b"1") | Some(b"lost?")),
        "k = {k:?}"
    );
    drop(failing.stdin.take());
    failing.wait().expect("wait");
    drop(store);
    // Every process closed it: the next open recovers and writes again.
    let out = wait_ok(
        spawn(&["commit-one", d, "k", "4"]),
        "opener after all closed",
    );
    assert_eq!(out.trim(), "committed");
    let reopened = open(&dir);
    let k = reopened.begin_read().expect("read").get(b"k").expect("get");
    assert_eq!(k.as_deref(), Some(&b"4"[..]));
}

/// Opens the store, commits `key = value`, reports `committed` or `poisoned`.
fn commit_one(dir: &Path, key: &str, value: &str) {
    let store = open(dir);
    match store.update(|tx| tx.put(key.as_bytes(), value.as_bytes())) {
        Ok(()) => println!("committed"),
        Err(Error::Poisoned { .. }) => println!("poisoned"),
        Err(e) => panic!("commit: {e}"),
    }
}

fn watch_sees_another_process() {
    let (_tmp, dir) = tempdir();
    let store = open(&dir);
    let mut watch = store.watch(b"cfg.").expect("watch");
    let d = dir.to_str().expect("utf8");
    wait_ok(spawn(&["commit-one", d, "other", "x"]), "writer");
    wait_ok(spawn(&["commit-one", d, "cfg.url", "https://y"]), "writer");
    let change = watch
        .next_timeout(Duration::from_secs(20))
        .expect("watch")
        .expect("a change within 20 s");
    assert_eq!(change.key, b"cfg.url");
    assert_eq!(change.value.as_deref(), Some(&b"https://y"[..]));
    assert_eq!(watch.try_next().expect("watch"), None);
}

/// Handles that close while another process has the store open leave the log to it (no clean
/// marker, RECOVERY.md S1a). When that process is killed instead of closing, the next open
/// alone finds their commits unproven by any watermark: it must keep every one of them (it
/// folds them with a checkpoint), and its own close then leaves a log the open after it finds
/// proven (no second fold).
fn closes_beside_a_killed_holder() {
    let (_tmp, dir) = tempdir();
    open(&dir).update(|tx| tx.put(b"seed", b"0")).expect("seed");
    let d = dir.to_str().expect("utf8");
    let mut keeper = spawn(&["hold-open", d, "60000"]);
    expect_line(&mut keeper, "open");
    for round in 0..5u32 {
        let durability = if round % 2 == 0 {
            walstore::Durability::Immediate
        } else {
            walstore::Durability::Buffered
        };
        let store = Options::new()
            .durability(durability)
            .open(&dir)
            .expect("open beside the keeper");
        store
            .update(|tx| {
                for k in ["server.url", "server.namespace", "server.tls-verify"] {
                    tx.put(k.as_bytes(), format!("{k}-{round}").as_bytes())?;
                }
                Ok::<(), Error>(())
            })
            .expect("commit");
        store.close().expect("close beside the keeper");
    }
    keeper.kill().expect("kill the keeper");
    keeper.wait().expect("reap the keeper");
    let check = |store: &Store| {
        let r = store.begin_read().expect("read");
        for k in ["server.url", "server.namespace", "server.tls-verify"] {
            assert_eq!(
                r.get(k.as_bytes()).expect("get").as_deref(),
                Some(format!("{k}-4").as_bytes()),
                "{k}"
            );
        }
        assert_eq!(r.get(b"seed").expect("get").as_deref(), Some(&b"0"[..]));
    };
    let store = open(&dir);
    check(&store);
    let after_recovery = store.info().expect("info").generation;
    store.close().expect("close alone");
    let store = open(&dir);
    check(&store);
    assert_eq!(
        store.info().expect("info").generation,
        after_recovery,
        "the open after a clean close folded the log again"
    );
}
