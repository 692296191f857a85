//! The change feed's costs (docs/BENCHMARKS.md "The change feed"):
//! - commit throughput of workloads a (one thread) and b (four threads), durable 3-key
//!   transactions, with no consumer and with a registered consumer following in another
//!   process (reading every record and acknowledging every 100 ms);
//! - the feed's read rate over a backlog (sealed segments and the live log) and its lag (a
//!   durable commit's return to the follower process receiving it: median and 99th
//!   percentile);
//! - retained bytes after an overwrite phase with a consumer that never acknowledges, against
//!   the retention bound.
//!
//! `walstore-feed [--txns N] [--keys N]`; prints a markdown table.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use walstore::{Error, Options, Store};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("follow") {
        return follow(Path::new(&args[2]));
    }
    let flag = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let txns = flag("--txns", 2000);
    let keys = flag("--keys", 200_000);
    println!("| measure | no consumer | consumer following |");
    println!("|---|---:|---:|");
    for threads in [1u64, 4] {
        let name = if threads == 1 { "a" } else { "b" };
        let alone = commits(threads, txns, false)?;
        let followed = commits(threads, txns, true)?;
        println!(
            "| {name}: txn/s ({threads} thread(s) × {txns}) | {alone:.0} | {followed:.0} ({:.2}x) |",
            followed / alone
        );
    }
    let (rate, records) = backlog_rate(txns * 10)?;
    println!("| feed read rate over a backlog of {records} records | | {rate:.0} records/s |");
    let (median, p99) = lag(txns)?;
    println!(
        "| lag, commit return to follower receipt | | median {median:.0} µs, p99 {p99:.0} µs |"
    );
    let (retained, segments, written) = stalled_retention(keys)?;
    println!(
        "| retained after writing {keys} keys twice with a consumer that never acknowledges | | {:.1} MiB in {segments} sealed segments ({:.1} MiB of keys and values written; bound {} MiB) |",
        retained as f64 / (1 << 20) as f64,
        written as f64 / (1 << 20) as f64,
        walstore::Retention::default().max_bytes >> 20
    );
    Ok(())
}

fn value(i: u64) -> [u8; 100] {
    let mut v = [0u8; 100];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

/// Durable 3-key commits per second from `threads` threads, with or without a follower.
fn commits(threads: u64, per: u64, followed: bool) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Options::new().open(dir.path())?);
    let mut follower = None;
    if followed {
        store.register_consumer("bench")?;
        follower = Some(spawn_follower(dir.path())?);
    }
    let started = Instant::now();
    let joins: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || -> walstore::Result<()> {
                for i in 0..per {
                    store.update(|tx| {
                        for j in 0..3u64 {
                            let key = format!("t{t}-k{:08}", (i * 3 + j) % 30_000);
                            tx.put(key.as_bytes(), &value(i))?;
                        }
                        Ok::<_, Error>(())
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for j in joins {
        j.join().map_err(|_| "a committing thread panicked")??;
    }
    let rate = (threads * per) as f64 / started.elapsed().as_secs_f64();
    if let Some((mut child, _)) = follower {
        child.kill()?;
        child.wait()?;
    }
    Ok(rate)
}

/// Starts `walstore-feed follow DIR`; returns once it is reading (its first line).
fn spawn_follower(
    dir: &Path,
) -> Result<(std::process::Child, BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("follow")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut ready = String::new();
    lines.read_line(&mut ready)?;
    Ok((child, lines))
}

/// The follower: reads consumer `bench`'s feed, acknowledging every 100 ms; for records of
/// key `lag` prints the microseconds since the time the value holds.
fn follow(dir: &Path) -> Result<()> {
    let store = Options::new().open(dir)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut feed = store.consumer_changes("bench", b"")?;
    let mut last_ack = Instant::now();
    loop {
        let Some(record) = feed.next_timeout(Duration::from_millis(100))? else {
            continue;
        };
        for (key, value) in &record.writes {
            if key == b"lag" {
                let sent =
                    u128::from_le_bytes(value.as_deref().unwrap_or(&[0; 16])[..16].try_into()?);
                let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
                writeln!(out, "{}", now.saturating_sub(sent) / 1000)?;
                out.flush()?;
            }
        }
        if last_ack.elapsed() > Duration::from_millis(100) {
            store.ack("bench", record.txn_id)?;
            last_ack = Instant::now();
        }
    }
}

/// Records per second read from the start of a store holding `n` transactions, most of them
/// in sealed segments (a consumer registered at 0 kept them).
fn backlog_rate(n: u64) -> Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let store = Options::new()
        .durability(walstore::Durability::Buffered)
        .wal_size_bytes_checkpoint(4 << 20)
        .open(dir.path())?;
    store.register_consumer("bench")?;
    for i in 0..n {
        store.update(|tx| tx.put(format!("k{:08}", i % 50_000).as_bytes(), &value(i)))?;
    }
    store.sync()?;
    let started = Instant::now();
    let mut feed = store.changes(b"", 0)?;
    let mut records = 0u64;
    while feed.try_next()?.is_some() {
        records += 1;
    }
    Ok((records as f64 / started.elapsed().as_secs_f64(), records))
}

/// Median and 99th percentile of the lag in microseconds over `n` spaced durable commits.
fn lag(n: u64) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let store = Options::new().open(dir.path())?;
    store.register_consumer("bench")?;
    let (mut child, mut lines) = spawn_follower(dir.path())?;
    let mut lags = Vec::new();
    for _ in 0..n.min(1000) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        store.update(|tx| tx.put(b"lag", &now.to_le_bytes()))?;
        let mut line = String::new();
        lines.read_line(&mut line)?;
        lags.push(line.trim().parse::<f64>()?);
    }
    child.kill()?;
    child.wait()?;
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    Ok((at(0.5), at(0.99)))
}

/// Retained bytes and sealed segments after writing `keys` keys twice (a load and an
/// overwrite, background checkpoints on, a checkpoint after each pass) with a consumer
/// registered at the start that never acknowledges; and the bytes of keys and values written.
fn stalled_retention(keys: u64) -> Result<(u64, usize, u64)> {
    let dir = tempfile::tempdir()?;
    let store: Store = Options::new()
        .durability(walstore::Durability::Buffered)
        .open(dir.path())?;
    store.register_consumer("stalled")?;
    let mut written = 0u64;
    for round in 0..2u64 {
        for chunk in 0..keys.div_ceil(1000) {
            store.update(|tx| {
                for i in chunk * 1000..((chunk + 1) * 1000).min(keys) {
                    let key = format!("key{i:010}");
                    tx.put(key.as_bytes(), &value(i + round))?;
                    written += (key.len() + 100) as u64;
                }
                Ok::<_, Error>(())
            })?;
        }
        store.checkpoint()?;
    }
    let state = store.feed_state()?;
    Ok((state.retained_bytes(), state.segments.len(), written))
}
