//! The oneshot workload: a whole process per operation (open an existing store, commit 3 keys,
//! exit), timed by the parent, its flush calls counted in a second pass under `strace -f -c`
//! when strace runs here.

use crate::measure::{as_writes, small_txn};
use crate::spawn::{phase_args, run_checked};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use walstore_benches::data::space;
use walstore_benches::engines::{self, Kind};
use walstore_benches::report::{Failure, OneshotRow, Report};
use walstore_benches::sysio;
use walstore_benches::{BoxError, Result};

// ---------------------------------------------------------------------------------------------
// The parent.

/// The oneshot workload: `runs` whole processes per store, the stores taking turns; then, if
/// strace runs here, as many again under `strace -f -c` to count their flush calls.
pub(crate) fn run_oneshot(
    exe: &Path,
    base: &Path,
    kinds: &[Kind],
    runs: u64,
    quick: bool,
    report: &mut Report,
) {
    let mut targets: Vec<&'static str> = vec!["process"];
    targets.extend(
        [
            Kind::Walstore,
            Kind::SqliteFull,
            Kind::Redb,
            Kind::Fjall,
            Kind::PlainFiles,
        ]
        .into_iter()
        .filter(|k| kinds.contains(k))
        .map(Kind::id),
    );
    let mut shots = Shots {
        exe,
        base,
        quick,
        failed: vec![false; targets.len()],
        targets,
    };
    let started = Instant::now();
    eprint!("  oneshot: {runs} processes per store");
    let _ = std::io::stderr().flush();
    // Process 0 creates each store, untimed: every timed process opens an existing store.
    for slot in 0..shots.targets.len() {
        if let Err(e) = shots.run(slot, 0, None) {
            shots.fail(report, slot, e);
        }
    }
    let times = shots.timed(runs, report);
    let traced = sysio::strace_available();
    let counts = if traced {
        eprint!(", timed; counting syncs under strace");
        let _ = std::io::stderr().flush();
        shots.traced(runs, report)
    } else {
        vec![Vec::new(); shots.targets.len()]
    };
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());
    for (slot, id) in shots.targets.iter().enumerate() {
        let _ = std::fs::remove_dir_all(shots.dir(id));
        if shots.failed[slot] || times[slot].is_empty() {
            continue;
        }
        report
            .oneshot
            .push(oneshot_row(id, &times[slot], &counts[slot], traced));
    }
}

/// The processes of the oneshot workload: which stores take turns, and which have failed.
struct Shots<'a> {
    exe: &'a Path,
    base: &'a Path,
    quick: bool,
    targets: Vec<&'static str>,
    failed: Vec<bool>,
}

impl Shots<'_> {
    /// The store directory of target `id`.
    fn dir(&self, id: &str) -> PathBuf {
        self.base.join(format!("oneshot-{id}"))
    }

    /// Runs process `i` of target `slot`, under `strace -f -c` writing to `strace_out` if
    /// given.
    fn run(&self, slot: usize, i: u64, strace_out: Option<&Path>) -> Result<()> {
        let id = self.targets[slot];
        let args = phase_args(id, "oneshot", &self.dir(id), self.quick, i);
        let mut cmd = match strace_out {
            None => Command::new(self.exe),
            Some(out) => {
                let mut cmd = Command::new("strace");
                cmd.args(["-f", "-c", "-o"])
                    .arg(out)
                    .args(["-e", &format!("trace={}", sysio::SYNC_CALLS.join(","))])
                    .arg(self.exe);
                cmd
            }
        };
        run_checked(cmd.args(args))?;
        Ok(())
    }

    /// Marks target `slot` failed; it runs no more processes.
    fn fail(&mut self, report: &mut Report, slot: usize, e: BoxError) {
        self.failed[slot] = true;
        report.failures.push(Failure {
            workload: "oneshot".into(),
            engine: self.targets[slot].into(),
            error: e.to_string(),
        });
    }

    /// Processes `1..=runs` of every target, taking turns; each one's wall time.
    fn timed(&mut self, runs: u64, report: &mut Report) -> Vec<Vec<Duration>> {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); self.targets.len()];
        for i in 1..=runs {
            for (slot, slot_times) in times.iter_mut().enumerate() {
                if self.failed[slot] {
                    continue;
                }
                let t = Instant::now();
                match self.run(slot, i, None) {
                    Ok(()) => slot_times.push(t.elapsed()),
                    Err(e) => self.fail(report, slot, e),
                }
            }
        }
        times
    }

    /// As many processes again under strace; each one's sync calls.
    fn traced(&mut self, runs: u64, report: &mut Report) -> Vec<Vec<sysio::SyncCounts>> {
        let mut counts: Vec<Vec<sysio::SyncCounts>> = vec![Vec::new(); self.targets.len()];
        for i in runs + 1..=2 * runs {
            for (slot, slot_counts) in counts.iter_mut().enumerate() {
                if self.failed[slot] {
                    continue;
                }
                let out = self.base.join(format!("strace-{}.txt", self.targets[slot]));
                let counted = self
                    .run(slot, i, Some(&out))
                    .and_then(|()| Ok(std::fs::read_to_string(&out)?));
                match counted {
                    Ok(text) => slot_counts.push(sysio::parse_strace_summary(&text)),
                    Err(e) => self.fail(report, slot, e),
                }
            }
        }
        counts
    }
}

/// The row of target `id`: its process times `t` (not empty) and, when `traced`, the sync
/// calls counted in `c`.
fn oneshot_row(id: &str, t: &[Duration], c: &[sysio::SyncCounts], traced: bool) -> OneshotRow {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut sorted = t.to_vec();
    sorted.sort();
    let at = |p: usize| ms(sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]);
    let per = |f: fn(&sysio::SyncCounts) -> u64| {
        (!c.is_empty()).then(|| c.iter().map(f).sum::<u64>() as f64 / c.len() as f64)
    };
    let mut notes: Vec<String> = vec![setup_note(id).into()];
    if !traced {
        notes.push("syncs n/a: strace not found or not permitted".into());
    } else {
        let totals: Vec<u64> = c.iter().map(|x| x.fsync + x.fdatasync + x.other).collect();
        let (lo, hi) = (totals.iter().min(), totals.iter().max());
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo != hi {
                notes.push(format!("syncs per process ranged {lo}–{hi}"));
            }
        }
    }
    OneshotRow {
        engine: id.into(),
        runs: t.len() as u64,
        mean_ms: t.iter().map(|d| ms(*d)).sum::<f64>() / t.len() as f64,
        p50_ms: at(50),
        p90_ms: at(90),
        max_ms: ms(sorted[sorted.len() - 1]),
        traced_runs: c.len() as u64,
        fdatasync_per_op: per(|x| x.fdatasync),
        fsync_per_op: per(|x| x.fsync),
        other_syncs_per_op: per(|x| x.other),
        note: notes.join("; "),
    }
}

/// How target `id` is set up for a durable commit, as the oneshot row's note says.
fn setup_note(id: &str) -> &'static str {
    match id {
        "process" => "this binary started with nothing to do: the floor of every row",
        "sqlite-full" => "journal_mode=WAL, synchronous=FULL, BEGIN IMMEDIATE",
        "plain-files" => "3 files, each temp + fsync + rename + dir fsync",
        "walstore" => "Durability::Immediate",
        "redb" => "Durability::Immediate",
        "fjall" => "PersistMode::SyncAll",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The child.

/// One process of the oneshot workload: open the store in `dir` (created by process 0),
/// commit the 3 keys of transaction `i` durably in one transaction, close, exit. Store
/// `process` opens nothing: the cost of starting this binary. Each store is opened as the
/// other workloads open it (see `engines`), SQLite with a single connection.
pub(crate) fn oneshot(engine: &str, dir: &Path, i: u64) -> Result<()> {
    if engine == "process" {
        return Ok(());
    }
    let kind = Kind::from_id(engine).ok_or_else(|| format!("unknown store {engine:?}"))?;
    let txn = small_txn(space::ONESHOT, i);
    if matches!(kind, Kind::SqliteFull | Kind::SqliteNormal) {
        // One connection, as a short-lived program would open (the adapter's `open` makes a
        // set-up connection before the handle's).
        return engines::sqlite_one_connection_commit(
            dir,
            kind == Kind::SqliteFull,
            &as_writes(&txn),
        );
    }
    let store = engines::open(kind, dir)?;
    let mut h = store.handle()?;
    h.commit(&as_writes(&txn))?;
    Ok(())
}
