//! Real processes on the real file system: a child commits in a loop and prints each
//! acknowledged transaction number; the parent kills it with SIGKILL at a random moment,
//! reopens the store and checks it (fault F15: everything written to the OS survives, so even
//! Buffered commits must be there), then starts the next child on the same store.
//!
//! Every transaction `n` sets `a`, `b` and `c` to `n` (atomicity: they always agree) and
//! `k<n % 16>` to `n`; every 40 transactions the child checkpoints, so kills also land inside
//! checkpoints.
//!
//! Both sides know the engine only as an [`Engine`] opened on the real file system
//! ([`FsStorage`]) with the engine's own defaults ([`child_writer_on`], [`run_kill_test_on`]);
//! the `child-writer` command runs walstore.

use crate::engine::{Engine, EngineError, Handle};
use crate::oracle::{Invariant, Violation};
use crate::workload::Dur;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use walstore::storage::FsStorage;

/// Knobs of a kill test.
#[derive(Debug, Clone)]
pub struct KillConfig {
    /// Store directory (created if missing).
    pub dir: PathBuf,
    /// Number of kill / reopen rounds.
    pub rounds: u32,
    /// Seed of the kill delays.
    pub seed: u64,
    /// Longest delay before a kill, in milliseconds.
    pub delay_ms_max: u64,
    /// Commit with `Durability::Buffered` (survives a process kill all the same).
    pub buffered: bool,
}

/// What a kill test saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillReport {
    /// Rounds run.
    pub rounds: u32,
    /// Last transaction acknowledged to the parent.
    pub last_acknowledged: u64,
    /// Last transaction found after the last reopen.
    pub last_recovered: u64,
}

/// Opens `engine`'s store in `dir` on the real file system, with the engine's defaults.
pub fn open_real(engine: &dyn Engine, dir: &Path) -> Result<Box<dyn Handle>, EngineError> {
    engine.open(Arc::new(FsStorage::new()), dir, None)
}

/// The child running walstore (the `child-writer` command).
#[cfg(feature = "walstore-engine")]
pub fn child_writer(dir: &Path, buffered: bool) -> Result<(), EngineError> {
    child_writer_on(&crate::engine::Walstore::default(), dir, buffered)
}

/// The child: commits forever on `engine`, printing each acknowledged transaction number.
pub fn child_writer_on(engine: &dyn Engine, dir: &Path, buffered: bool) -> Result<(), EngineError> {
    let durability = if buffered {
        Dur::Buffered
    } else {
        Dur::Immediate
    };
    let store = open_real(engine, dir)?;
    let mut n = read_counter(&*store, "a")?;
    let stdout = std::io::stdout();
    loop {
        n += 1;
        let mut tx = store.begin_write(durability)?;
        let v = n.to_string();
        for key in ["a", "b", "c"] {
            tx.put(key.as_bytes(), v.as_bytes())?;
        }
        tx.put(format!("k{}", n % 16).as_bytes(), v.as_bytes())?;
        tx.commit()?;
        let mut out = stdout.lock();
        if writeln!(out, "{n}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
        if n % 40 == 0 {
            store.checkpoint()?;
        }
    }
}

fn read_counter(store: &dyn Handle, key: &str) -> Result<u64, EngineError> {
    let read = store.begin_read()?;
    Ok(read
        .get(key.as_bytes())?
        .and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()))
        .unwrap_or(0))
}

/// Runs the kill test on walstore, with `exe child-writer` as the child.
#[cfg(feature = "walstore-engine")]
pub fn run_kill_test(exe: &Path, config: &KillConfig) -> Result<KillReport, Violation> {
    run_kill_test_on(&crate::engine::Walstore::default(), exe, config)
}

/// Runs the kill test, with `exe child-writer` as the child; `engine` (the one the child
/// runs) reopens the store after each kill.
pub fn run_kill_test_on(
    engine: &dyn Engine,
    exe: &Path,
    config: &KillConfig,
) -> Result<KillReport, Violation> {
    std::fs::create_dir_all(&config.dir).map_err(|e| setup(&e.to_string()))?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut report = KillReport::default();
    for _ in 0..config.rounds {
        let mut command = Command::new(exe);
        command.arg("child-writer").arg("--dir").arg(&config.dir);
        if config.buffered {
            command.arg("--buffered");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| setup(&format!("spawning the child: {e}")))?;
        // What the last check recovered counts as acknowledged: that open made it durable, and
        // a child killed before it prints its first line may already have committed on top
        // of it (found as a false "phantom" when a kill came that early).
        let floor = report.last_acknowledged.max(report.last_recovered);
        let acked = Arc::new(AtomicU64::new(floor));
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| setup("no child stdout"))?;
        let seen = Arc::clone(&acked);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(n) = line.trim().parse::<u64>() {
                    seen.fetch_max(n, Ordering::SeqCst);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(
            rng.gen_range(1..=config.delay_ms_max.max(1)),
        ));
        // `Child::kill` sends SIGKILL on Unix.
        child
            .kill()
            .map_err(|e| setup(&format!("killing the child: {e}")))?;
        child
            .wait()
            .map_err(|e| setup(&format!("waiting for the child: {e}")))?;
        reader
            .join()
            .map_err(|_| setup("the reader thread panicked"))?;
        report.last_acknowledged = acked.load(Ordering::SeqCst);
        report.last_recovered = check_store(engine, &config.dir, report.last_acknowledged)?;
        report.rounds += 1;
    }
    Ok(report)
}

fn setup(what: &str) -> Violation {
    Violation::new(
        Invariant::WritableAfterRecovery,
        what,
        "a runnable test",
        "",
    )
}

/// Reopens the store after a kill and checks it; returns the last transaction found.
fn check_store(engine: &dyn Engine, dir: &Path, acknowledged: u64) -> Result<u64, Violation> {
    let store = open_real(engine, dir).map_err(|e| {
        Violation::new(
            Invariant::WritableAfterRecovery,
            "the store did not open after a kill",
            "the store opens",
            e.to_string(),
        )
    })?;
    let get = |key: &str| {
        read_counter(&*store, key).map_err(|e| {
            Violation::new(
                Invariant::StructuralIntegrity,
                "reading after a kill failed",
                "a readable store",
                e.to_string(),
            )
        })
    };
    let (a, b, c) = (get("a")?, get("b")?, get("c")?);
    if a != b || b != c {
        return Err(Violation::new(
            Invariant::Atomicity,
            "a, b and c are written by every transaction together",
            "a == b == c",
            format!("a={a} b={b} c={c}"),
        ));
    }
    if a < acknowledged {
        return Err(Violation::new(
            Invariant::Durability,
            "a transaction acknowledged before the kill is missing (a process kill loses nothing written to the OS)",
            format!("at least {acknowledged}"),
            a.to_string(),
        ));
    }
    if a > acknowledged + 1 {
        return Err(Violation::new(
            Invariant::NoPhantoms,
            "more transactions than the child ever started",
            format!("at most {}", acknowledged + 1),
            a.to_string(),
        ));
    }
    for m in (a.saturating_sub(15)..=a).filter(|m| *m > 0) {
        let found = get(&format!("k{}", m % 16))?;
        if found != m {
            return Err(Violation::new(
                Invariant::PrefixConsistency,
                format!("k{} was last written by transaction {m}", m % 16),
                m.to_string(),
                found.to_string(),
            ));
        }
    }
    Ok(a)
}
