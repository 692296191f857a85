//! walstore next to SQLite, redb, fjall, the plain-files recipe and a bare log, on the same
//! workloads with the same data, in one run.
//!
//!     cargo run --release -p walstore-benches --bin walstore-peers -- [--quick]
//!         [--json-out PATH] [--svg-out PATH] [--md-out PATH] [--dir DIR]
//!         [--engines walstore,redb,...] [--workloads a,b,...]
//!         [--scale-sizes 1000000,4000000,10000000] [--scale-svg-out PATH] [--oneshot-runs N]
//!
//! Each phase (one workload on one store) runs in a child process of this binary (a hidden
//! subcommand), so that its peak resident memory (`VmHWM`) is its own and no store's caches
//! or background threads disturb the next one. Stores live under `--dir` (default: the
//! system temporary directory), which should be on the disk you want to measure.
//!
//! Two workloads have phases of their own: `scale` (per store size: a bulk load into a fresh
//! store, point reads, an overwrite of 10% of the keys, each phase a child process that also
//! reports the bytes it wrote to storage and the store's size on disk) and `oneshot` (a whole
//! child process per operation: open an existing store, commit 3 keys, exit; timed by the
//! parent, its flush calls counted in a second pass under `strace -f -c` when strace runs).

use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use walstore_benches::data::{self, space, Positions, Scale, BLOB_SIZES, KEY_LEN, VALUE_LEN};
use walstore_benches::engines::{self, Kind};
use walstore_benches::mem;
use walstore_benches::report::{
    Failure, Figure, OneshotRow, ReadPhase, Report, ScaleRow, WritePhase,
};
use walstore_benches::sysio;
use walstore_benches::Result;

#[derive(Parser, Debug)]
#[command(
    name = "walstore-peers",
    about = "walstore against its peers, same workloads, one run"
)]
struct Cli {
    /// Small counts (under a minute): proves every path works; figures are not for judging.
    #[arg(long)]
    quick: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write the ratio chart as SVG here.
    #[arg(long)]
    svg_out: Option<PathBuf>,
    /// Write the markdown report here too (it is always printed).
    #[arg(long)]
    md_out: Option<PathBuf>,
    /// Directory for the stores (a fresh subdirectory is made and removed).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only these stores (comma-separated ids: walstore, sqlite-full, sqlite-normal, redb,
    /// fjall, plain-files, bare-log).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Only these workloads (comma-separated: a, b, c, d, g, h, e, open, scale, oneshot; d, g
    /// and h read c's store, so need c). Without it: all of them, except scale in a full run
    /// unless --scale-sizes is given (its default sizes take a long time).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Store sizes (keys) of the scale workload (default 1000000,4000000,10000000; 20000 with
    /// --quick).
    #[arg(long, value_delimiter = ',')]
    scale_sizes: Vec<u64>,
    /// Write the scale workload's charts (SVG) here.
    #[arg(long)]
    scale_svg_out: Option<PathBuf>,
    /// Processes per store of the oneshot workload (default 200, 10 with --quick).
    #[arg(long)]
    oneshot_runs: Option<u64>,
    /// Rounds of the commit-bound workloads (a, b, e), the stores taking turns in each round;
    /// the median round is reported (default: 3, 1 with --quick). Device flush times drift,
    /// so taking turns keeps the ratios of one run comparable.
    #[arg(long)]
    rounds: Option<u32>,
    /// Open walstore with `Options::sector_size` (sector padding) set to this many bytes;
    /// passed to the phases through `WALSTORE_PEERS_SECTOR_SIZE`.
    #[arg(long)]
    walstore_sector_size: Option<u32>,
    /// Measure nothing: render the markdown, JSON and SVG of a report saved with --json-out.
    #[arg(long)]
    from_json: Option<PathBuf>,
    #[command(subcommand)]
    phase: Option<Phase>,
}

#[derive(Subcommand, Debug)]
enum Phase {
    /// Runs one phase and prints its figures as JSON (used by the runner itself).
    #[command(name = "__phase", hide = true)]
    Run {
        #[arg(long)]
        engine: String,
        #[arg(long)]
        workload: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        quick: bool,
        /// Scale: keys in the store; oneshot: the process's number (which keys it writes).
        #[arg(long, default_value_t = 0)]
        n: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let outcome = match &cli.phase {
        Some(Phase::Run {
            engine,
            workload,
            dir,
            quick,
            n,
        }) => run_phase(engine, workload, dir, *quick, *n),
        None => run_all(&cli),
    };
    if let Err(e) = outcome {
        eprintln!("walstore-peers: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: runs every phase in a child and reports.

fn run_all(cli: &Cli) -> Result<()> {
    if let Some(bytes) = cli.walstore_sector_size {
        // Read by `engines::open` in every phase (each runs in a child process).
        std::env::set_var(
            walstore_benches::engines::SECTOR_SIZE_ENV,
            bytes.to_string(),
        );
    }
    if let Some(path) = &cli.from_json {
        let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
        let report: Report = serde_json::from_value(saved["report"].clone())?;
        return emit(cli, &report);
    }
    let scale = if cli.quick { Scale::QUICK } else { Scale::FULL };
    let kinds: Vec<Kind> = if cli.engines.is_empty() {
        Kind::ALL.to_vec()
    } else {
        cli.engines
            .iter()
            .map(|id| Kind::from_id(id).ok_or_else(|| format!("unknown store {id:?}")))
            .collect::<std::result::Result<_, _>>()?
    };
    // d, g and h read c's store (h also writes into it, so it comes last of them).
    let all_workloads = [
        "a", "b", "c", "d", "g", "h", "e", "open", "scale", "oneshot",
    ];
    let on_c_store = |w: &str| matches!(w, "c" | "d" | "g" | "h");
    let workloads: Vec<&str> = if cli.workloads.is_empty() {
        let scale_by_default = cli.quick || !cli.scale_sizes.is_empty();
        all_workloads
            .into_iter()
            .filter(|w| *w != "scale" || scale_by_default)
            .collect()
    } else {
        for w in &cli.workloads {
            if !all_workloads.contains(&w.as_str()) {
                return Err(format!("unknown workload {w:?}").into());
            }
        }
        all_workloads
            .into_iter()
            .filter(|w| cli.workloads.iter().any(|x| x == w))
            .collect()
    };
    let parent = match &cli.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let base = tempfile::Builder::new()
        .prefix("walstore-peers-")
        .tempdir_in(&parent)?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut report = Report {
        command: std::iter::once("walstore-peers".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        machine: machine(&parent),
        scale: Some(scale),
        ..Report::default()
    };
    eprintln!("walstore-peers: stores under {}", base.path().display());

    let rounds = cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    for w in &workloads {
        if *w == "scale" {
            let sizes = if cli.scale_sizes.is_empty() {
                scale.scale_sizes()
            } else {
                cli.scale_sizes.clone()
            };
            run_scale(&exe, base.path(), &kinds, &sizes, cli.quick, &mut report);
            continue;
        }
        if *w == "oneshot" {
            let runs = cli.oneshot_runs.unwrap_or(scale.oneshot_runs).max(1);
            run_oneshot(&exe, base.path(), &kinds, runs, cli.quick, &mut report);
            continue;
        }
        let applicable: &[Kind] = match *w {
            "a" => &[
                Kind::Walstore,
                Kind::SqliteFull,
                Kind::SqliteNormal,
                Kind::Redb,
                Kind::Fjall,
                Kind::BareLog,
            ],
            "e" => &[
                Kind::Walstore,
                Kind::SqliteFull,
                Kind::SqliteNormal,
                Kind::Redb,
                Kind::Fjall,
                Kind::PlainFiles,
            ],
            "open" => &[Kind::Walstore],
            _ => &Kind::STORES,
        };
        let applicable: Vec<Kind> = applicable
            .iter()
            .copied()
            .filter(|k| kinds.contains(k))
            .collect();
        let w_rounds = if matches!(*w, "a" | "b" | "e") {
            rounds
        } else {
            1
        };
        let mut per_kind: Vec<Vec<Figure>> = vec![Vec::new(); applicable.len()];
        for round in 0..w_rounds {
            for (slot, kind) in applicable.iter().enumerate() {
                if report
                    .failures
                    .iter()
                    .any(|f| f.engine == kind.id() && f.workload == *w)
                {
                    continue;
                }
                // c, d, g and h share a store per engine; every other phase gets a fresh
                // directory.
                let dir = match *w {
                    "c" | "d" | "g" | "h" => base.path().join(format!("cd-{}", kind.id())),
                    "open" => base.path().join("open-walstore"),
                    _ => base.path().join(format!("{w}-{}-{round}", kind.id())),
                };
                if on_c_store(w) && *w != "c" && !dir.exists() {
                    report.failures.push(Failure {
                        workload: (*w).into(),
                        engine: kind.id().into(),
                        error: "needs workload c's store (run c too)".into(),
                    });
                    continue;
                }
                let t = Instant::now();
                eprint!("  {w:<5} {:<14} ", kind.id());
                let _ = std::io::stderr().flush();
                let subphases: &[&str] = if *w == "open" {
                    &["open-fill", "open"]
                } else {
                    std::slice::from_ref(w)
                };
                for sub in subphases {
                    match child::<Vec<Figure>>(&exe, kind.id(), sub, &dir, cli.quick, 0) {
                        Ok(figs) => {
                            for f in &figs {
                                eprint!(
                                    "{} {}  ",
                                    walstore_benches::report::human(f.value),
                                    f.unit
                                );
                            }
                            per_kind[slot].extend(figs);
                        }
                        Err(e) => {
                            eprint!("FAILED: {e}");
                            report.failures.push(Failure {
                                workload: (*w).into(),
                                engine: kind.id().into(),
                                error: format!("{sub}: {e}"),
                            });
                            break;
                        }
                    }
                }
                eprintln!("({:.1} s)", t.elapsed().as_secs_f64());
                // Keep c's store for the workloads after it that read it; remove everything
                // else once measured.
                let c_store_needed_later = on_c_store(w)
                    && workloads
                        .iter()
                        .skip_while(|x| *x != w)
                        .skip(1)
                        .any(|x| on_c_store(x));
                if !c_store_needed_later {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        for figs in per_kind {
            report.figures.extend(median_rounds(figs));
        }
    }
    eprintln!(
        "walstore-peers: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    emit(cli, &report)?;
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} phase(s) failed", report.failures.len()).into())
    }
}

/// Prints the markdown report and writes the files asked for.
fn emit(cli: &Cli, report: &Report) -> Result<()> {
    let md = report.markdown();
    println!("{md}");
    if let Some(p) = &cli.md_out {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &cli.json_out {
        let json = serde_json::json!({
            "report": report,
            "targets": report.targets(),
        });
        std::fs::write(p, serde_json::to_string_pretty(&json)?)?;
    }
    if let Some(p) = &cli.svg_out {
        std::fs::write(p, report.svg())?;
    }
    if let Some(p) = &cli.scale_svg_out {
        std::fs::write(p, report.scale_svg())?;
    }
    Ok(())
}

/// One figure per workload id: the median of its rounds, the rounds listed in its note.
fn median_rounds(figs: Vec<Figure>) -> Vec<Figure> {
    let mut by_workload: Vec<Vec<Figure>> = Vec::new();
    for f in figs {
        match by_workload.iter_mut().find(|g| g[0].workload == f.workload) {
            Some(g) => g.push(f),
            None => by_workload.push(vec![f]),
        }
    }
    by_workload
        .into_iter()
        .map(|mut g| {
            if g.len() == 1 {
                return g.remove(0);
            }
            let all: Vec<String> = g
                .iter()
                .map(|f| walstore_benches::report::human(f.value))
                .collect();
            g.sort_by(|a, b| a.value.total_cmp(&b.value));
            let n = g.len();
            let mut m = g.swap_remove(n / 2);
            let rounds = format!("median of {n} rounds: {}", all.join(", "));
            m.note = if m.note.is_empty() {
                rounds
            } else {
                format!("{}; {rounds}", m.note)
            };
            m
        })
        .collect()
}

/// The command line of one phase in a child process of `exe`.
fn phase_args(
    engine: &str,
    workload: &str,
    dir: &Path,
    quick: bool,
    n: u64,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "__phase",
        "--engine",
        engine,
        "--workload",
        workload,
        "--dir",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(dir.into());
    args.push("--n".into());
    args.push(n.to_string().into());
    if quick {
        args.push("--quick".into());
    }
    args
}

/// Runs a command to its end; its stdout if it succeeded, else its stderr as the error.
fn run_checked(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} ({})", err.trim(), out.status).into());
    }
    Ok(out.stdout)
}

fn child<T: serde::de::DeserializeOwned>(
    exe: &Path,
    engine: &str,
    workload: &str,
    dir: &Path,
    quick: bool,
    n: u64,
) -> Result<T> {
    let stdout = run_checked(Command::new(exe).args(phase_args(engine, workload, dir, quick, n)))?;
    Ok(serde_json::from_slice(&stdout)?)
}

/// The scale workload: per size and store, a fresh store loaded, read and 10% overwritten,
/// each phase in a child process.
fn run_scale(
    exe: &Path,
    base: &Path,
    kinds: &[Kind],
    sizes: &[u64],
    quick: bool,
    report: &mut Report,
) {
    let stores = [Kind::Walstore, Kind::SqliteFull, Kind::Redb, Kind::Fjall];
    for &n in sizes {
        for kind in stores.into_iter().filter(|k| kinds.contains(k)) {
            let dir = base.join(format!("scale-{}-{n}", kind.id()));
            let t = Instant::now();
            eprint!("  scale {:<14} {n} keys: ", kind.id());
            let _ = std::io::stderr().flush();
            let mut row = ScaleRow {
                size: n,
                engine: kind.id().into(),
                ..ScaleRow::default()
            };
            let mut phases = || -> Result<()> {
                let load: WritePhase = child(exe, kind.id(), "scale-load", &dir, quick, n)?;
                eprint!(
                    "load {} keys/s  ",
                    walstore_benches::report::human(load.keys_per_s())
                );
                row.load = Some(load);
                let reads: ReadPhase = child(exe, kind.id(), "scale-read", &dir, quick, n)?;
                eprint!(
                    "{} gets/s  ",
                    walstore_benches::report::human(reads.gets as f64 / reads.seconds.max(1e-9))
                );
                row.reads = Some(reads);
                let over: WritePhase = child(exe, kind.id(), "scale-overwrite", &dir, quick, n)?;
                eprint!(
                    "overwrite {} keys/s  ",
                    walstore_benches::report::human(over.keys_per_s())
                );
                row.overwrite = Some(over);
                Ok(())
            };
            if let Err(e) = phases() {
                eprint!("FAILED: {e}");
                report.failures.push(Failure {
                    workload: "scale".into(),
                    engine: kind.id().into(),
                    error: format!("{n} keys: {e}"),
                });
            }
            eprintln!("({:.1} s)", t.elapsed().as_secs_f64());
            report.scaling.push(row);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The oneshot workload: `runs` whole processes per store, the stores taking turns; then, if
/// strace runs here, as many again under `strace -f -c` to count their flush calls.
fn run_oneshot(
    exe: &Path,
    base: &Path,
    kinds: &[Kind],
    runs: u64,
    quick: bool,
    report: &mut Report,
) {
    let mut targets: Vec<&str> = vec!["process"];
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
    let dir = |id: &str| base.join(format!("oneshot-{id}"));
    let mut failed: Vec<bool> = vec![false; targets.len()];
    let fail =
        |report: &mut Report, failed: &mut [bool], slot: usize, e: walstore_benches::BoxError| {
            failed[slot] = true;
            report.failures.push(Failure {
                workload: "oneshot".into(),
                engine: targets[slot].into(),
                error: e.to_string(),
            });
        };
    let run = |id: &str, i: u64| -> Result<()> {
        run_checked(Command::new(exe).args(phase_args(id, "oneshot", &dir(id), quick, i)))?;
        Ok(())
    };
    let started = Instant::now();
    eprint!("  oneshot: {runs} processes per store");
    let _ = std::io::stderr().flush();
    // Process 0 creates each store, untimed: every timed process opens an existing store.
    for (slot, id) in targets.iter().enumerate() {
        if let Err(e) = run(id, 0) {
            fail(report, &mut failed, slot, e);
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    for i in 1..=runs {
        for (slot, id) in targets.iter().enumerate() {
            if failed[slot] {
                continue;
            }
            let t = Instant::now();
            match run(id, i) {
                Ok(()) => times[slot].push(t.elapsed()),
                Err(e) => fail(report, &mut failed, slot, e),
            }
        }
    }
    let traced = sysio::strace_available();
    let mut counts: Vec<Vec<sysio::SyncCounts>> = vec![Vec::new(); targets.len()];
    if traced {
        eprint!(", timed; counting syncs under strace");
        let _ = std::io::stderr().flush();
        for i in runs + 1..=2 * runs {
            for (slot, id) in targets.iter().enumerate() {
                if failed[slot] {
                    continue;
                }
                let out = base.join(format!("strace-{id}.txt"));
                let mut cmd = Command::new("strace");
                cmd.args(["-f", "-c", "-o"])
                    .arg(&out)
                    .args(["-e", &format!("trace={}", sysio::SYNC_CALLS.join(","))])
                    .arg(exe)
                    .args(phase_args(id, "oneshot", &dir(id), quick, i));
                match run_checked(&mut cmd).and_then(|_| Ok(std::fs::read_to_string(&out)?)) {
                    Ok(text) => counts[slot].push(sysio::parse_strace_summary(&text)),
                    Err(e) => fail(report, &mut failed, slot, e),
                }
            }
        }
    }
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());
    for (slot, id) in targets.iter().enumerate() {
        let _ = std::fs::remove_dir_all(dir(id));
        if failed[slot] || times[slot].is_empty() {
            continue;
        }
        let t = &times[slot];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut sorted = t.clone();
        sorted.sort();
        let at = |p: usize| ms(sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]);
        let c = &counts[slot];
        let per = |f: fn(&sysio::SyncCounts) -> u64| {
            (!c.is_empty()).then(|| c.iter().map(f).sum::<u64>() as f64 / c.len() as f64)
        };
        let mut notes: Vec<String> = Vec::new();
        notes.push(match *id {
            "process" => "this binary started with nothing to do: the floor of every row".into(),
            "sqlite-full" => "journal_mode=WAL, synchronous=FULL, BEGIN IMMEDIATE".into(),
            "plain-files" => "3 files, each temp + fsync + rename + dir fsync".into(),
            "walstore" => "Durability::Immediate".into(),
            "redb" => "Durability::Immediate".into(),
            "fjall" => "PersistMode::SyncAll".into(),
            _ => String::new(),
        });
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
        report.oneshot.push(OneshotRow {
            engine: (*id).into(),
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
        });
    }
}

fn machine(dir: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let fs = mount_of(dir);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB, Linux {}, stores on {fs}; load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// The file system type and device holding `dir` (longest matching mount point).
fn mount_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (dev, at, fs) = (it.next()?, it.next()?, it.next()?);
            dir.starts_with(at)
                .then(|| (at.len(), format!("{fs} ({dev})")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown file system".into(), |(_, s)| s)
}

// ---------------------------------------------------------------------------------------------
// The child: one phase.

fn run_phase(engine: &str, workload: &str, dir: &Path, quick: bool, n: u64) -> Result<()> {
    if workload == "oneshot" {
        // Prints nothing: the parent times the whole process.
        return oneshot(engine, dir, n);
    }
    let kind = Kind::from_id(engine).ok_or_else(|| format!("unknown store {engine:?}"))?;
    let scale = if quick { Scale::QUICK } else { Scale::FULL };
    let json = match workload {
        "scale-load" => Some(serde_json::to_string(&scale_write(kind, dir, n, false)?)?),
        "scale-overwrite" => Some(serde_json::to_string(&scale_write(kind, dir, n, true)?)?),
        "scale-read" => Some(serde_json::to_string(&scale_read(kind, dir, n, &scale)?)?),
        _ => None,
    };
    if let Some(json) = json {
        println!("{json}");
        return Ok(());
    }
    let figures = match workload {
        "a" if kind == Kind::BareLog => vec![bare_log(dir, &scale)?],
        "a" => vec![single_thread_commits(kind, dir, &scale)?],
        "b" => vec![concurrent_commits(kind, dir, &scale)?],
        "c" => bulk_load(kind, dir, &scale)?,
        "d" => vec![point_reads(kind, dir, &scale)?],
        "g" => vec![gets_per_snapshot(kind, dir, &scale)?],
        "h" => vec![readers_during_writer(kind, dir, &scale)?],
        "e" => vec![blobs(kind, dir, &scale)?],
        "open-fill" => {
            fill_wal(kind, dir, &scale)?;
            Vec::new()
        }
        "open" => vec![open_replay(kind, dir)?],
        other => return Err(format!("unknown workload {other:?}").into()),
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn figure(workload: &str, kind: Kind, ops: u64, elapsed: Duration, unit: &str) -> Figure {
    let seconds = elapsed.as_secs_f64();
    Figure {
        workload: workload.into(),
        engine: kind.id().into(),
        value: ops as f64 / seconds,
        unit: unit.into(),
        ops,
        seconds,
        mem: mem::current(),
        note: String::new(),
    }
}

/// The 3 writes of transaction `i` of workloads a and b.
fn small_txn(space: u8, i: u64) -> [([u8; KEY_LEN], [u8; VALUE_LEN]); 3] {
    std::array::from_fn(|j| {
        let n = i * 3 + j as u64;
        let mut v = [0u8; VALUE_LEN];
        data::fill_value(n, &mut v);
        (data::key(space, n), v)
    })
}

fn as_writes<const K: usize, const V: usize>(txn: &[([u8; K], [u8; V])]) -> Vec<(&[u8], &[u8])> {
    txn.iter().map(|(k, v)| (&k[..], &v[..])).collect()
}

const WARMUP_TXNS: u64 = 10;

fn single_thread_commits(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let n = scale.a_txns;
    let txns: Vec<_> = (0..n + WARMUP_TXNS)
        .map(|i| small_txn(space::A, i))
        .collect();
    // Warm-up commits (first file growth, caches), not counted.
    for t in &txns[n as usize..] {
        h.commit(&as_writes(t))?;
    }
    let started = Instant::now();
    for t in &txns[..n as usize] {
        h.commit(&as_writes(t))?;
    }
    let mut f = figure("a", kind, n, started.elapsed(), "txn/s");
    if !kind.durable() {
        f.note = "not durable per commit".into();
    }
    Ok(f)
}

/// The physical floor of workload a: the bytes of one walstore commit record, written and
/// `fdatasync`ed in a loop over a file that was zero-filled and synced beforehand.
fn bare_log(dir: &Path, scale: &Scale) -> Result<Figure> {
    std::fs::create_dir_all(dir)?;
    let sample = small_txn(space::A, 0);
    let writes: Vec<(&[u8], Option<&[u8]>)> =
        sample.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
    let record = walstore::inspect::encode_transaction(1, 1, &writes, 0);
    let n = scale.a_txns;
    let len = record.len() as u64;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("bare.log"))?;
    let total = (len * (n + WARMUP_TXNS)).next_multiple_of(4096) + 4096;
    file.write_all_at(&vec![0u8; total as usize], 0)?;
    file.sync_all()?;
    let mut off = 0;
    for _ in 0..WARMUP_TXNS {
        file.write_all_at(&record, off)?;
        file.sync_data()?;
        off += len;
    }
    let started = Instant::now();
    for _ in 0..n {
        file.write_all_at(&record, off)?;
        file.sync_data()?;
        off += len;
    }
    let mut f = figure("a", Kind::BareLog, n, started.elapsed(), "txn/s");
    f.note = format!("{len} B write + fdatasync per txn, pre-written file");
    Ok(f)
}

fn concurrent_commits(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine: Arc<dyn engines::Engine> = Arc::from(engines::open(kind, dir)?);
    let threads = scale.b_threads;
    let per = scale.b_txns_per_thread;
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let mut joins = Vec::new();
    for t in 0..threads {
        let engine = Arc::clone(&engine);
        let barrier = Arc::clone(&barrier);
        joins.push(std::thread::spawn(move || -> Result<()> {
            let mut h = engine.handle()?;
            let first = t * (per + WARMUP_TXNS);
            let txns: Vec<_> = (first..first + per + WARMUP_TXNS)
                .map(|i| small_txn(space::B, i))
                .collect();
            for tx in &txns[per as usize..] {
                h.commit(&as_writes(tx))?;
            }
            barrier.wait();
            for tx in &txns[..per as usize] {
                h.commit(&as_writes(tx))?;
            }
            Ok(())
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let mut first_err = None;
    for j in joins {
        let outcome = j.join().map_err(|_| "a committing thread panicked")?;
        if let Err(e) = outcome {
            first_err.get_or_insert(e);
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut f = figure("b", kind, threads * per, elapsed, "txn/s");
    f.note = format!("{threads} threads × {per}");
    if !kind.durable() {
        f.note.push_str("; not durable per commit");
    }
    Ok(f)
}

fn bulk_load(kind: Kind, dir: &Path, scale: &Scale) -> Result<Vec<Figure>> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let batch = scale.c_batch as usize;
    let mut keys = vec![[0u8; KEY_LEN]; batch];
    let mut values = vec![[0u8; VALUE_LEN]; batch];
    let mut committing = Duration::ZERO;
    let mut each = Vec::new();
    let mut i = 0u64;
    while i < scale.c_keys {
        let this = batch.min((scale.c_keys - i) as usize);
        for j in 0..this {
            keys[j] = data::key(space::C, i + j as u64);
            data::fill_value(i + j as u64, &mut values[j]);
        }
        let writes: Vec<(&[u8], &[u8])> = keys[..this]
            .iter()
            .zip(&values[..this])
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        // Only the commits are timed, not making up the data.
        let t = Instant::now();
        h.commit(&writes)?;
        let took = t.elapsed();
        committing += took;
        each.push(took);
        i += this as u64;
    }
    let durable = figure("c-durable", kind, scale.c_keys, committing, "keys/s");
    let t = Instant::now();
    engine.checkpoint()?;
    let checkpoint = t.elapsed();
    let mut full = figure(
        "c-checkpointed",
        kind,
        scale.c_keys,
        committing + checkpoint,
        "keys/s",
    );
    full.note = format!("final checkpoint {:.3} s", checkpoint.as_secs_f64());
    let mut durable = durable;
    each.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    durable.note = format!(
        "{} keys, txns of {}; commit p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        scale.c_keys,
        scale.c_batch,
        ms(each[each.len() / 2]),
        ms(each[each.len() * 9 / 10]),
        ms(each[each.len() - 1])
    );
    if !kind.durable() {
        durable.note.push_str("; not durable per commit");
    }
    Ok(vec![durable, full])
}

fn point_reads(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let mut positions = Positions::new(42);
    let n_keys = scale.c_keys;
    let mut next = || data::key(space::C, positions.next_below(n_keys));
    let started = Instant::now();
    let tally = h.point_reads(scale.d_reads, &mut next)?;
    let elapsed = started.elapsed();
    if tally.bytes != tally.found * VALUE_LEN as u64 {
        return Err(format!("values of the wrong length: {tally:?}").into());
    }
    let mut f = figure("d", kind, scale.d_reads, elapsed, "gets/s");
    f.note = format!("over {n_keys} keys, page cache warm");
    Ok(f)
}

/// Workload g: the key stream of d, as many gets, but each get from a read snapshot of its own.
fn gets_per_snapshot(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let mut positions = Positions::new(42);
    let n_keys = scale.c_keys;
    let mut next = || data::key(space::C, positions.next_below(n_keys));
    let started = Instant::now();
    let tally = h.gets_per_snapshot(scale.d_reads, &mut next)?;
    let elapsed = started.elapsed();
    if tally.bytes != tally.found * VALUE_LEN as u64 {
        return Err(format!("values of the wrong length: {tally:?}").into());
    }
    let mut f = figure("g", kind, scale.d_reads, elapsed, "gets/s");
    f.note = format!("over {n_keys} keys, one snapshot per get, page cache warm");
    if kind == Kind::Fjall {
        f.note
            .push_str("; fjall's d makes the same calls (Keyspace::get, a view per call)");
    }
    Ok(f)
}

/// Workload h: two threads doing g's gets (`scale.h_reads_per_reader` each, a snapshot per
/// get) on c's store while a third commits durable 3-key transactions into a key space of its
/// own until both readers are done. The figure is the readers' gets together per second of
/// the time until the last one finished; the writer's commits/s go in the note.
fn readers_during_writer(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    const READERS: u64 = 2;
    let engine: Arc<dyn engines::Engine> = Arc::from(engines::open(kind, dir)?);
    let per = scale.h_reads_per_reader;
    let n_keys = scale.c_keys;
    let barrier = Arc::new(Barrier::new(READERS as usize + 2));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Handles are made (and the warm-up done) before any thread starts: nothing that can fail
    // comes before a thread's wait on the barrier.
    let mut w = engine.handle()?;
    // Warm-up commits (first file growth, caches), not counted.
    for i in 0..WARMUP_TXNS {
        w.commit(&as_writes(&small_txn(space::H, i)))?;
    }
    let mut reader_handles = Vec::new();
    for _ in 0..READERS {
        reader_handles.push(engine.handle()?);
    }
    let writer = {
        let barrier = Arc::clone(&barrier);
        let stop = Arc::clone(&stop);
        let mut h = w;
        std::thread::spawn(move || -> Result<(u64, Duration)> {
            barrier.wait();
            let started = Instant::now();
            let mut commits = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                h.commit(&as_writes(&small_txn(space::H, WARMUP_TXNS + commits)))?;
                commits += 1;
            }
            Ok((commits, started.elapsed()))
        })
    };
    let mut readers = Vec::new();
    for (r, mut h) in (0..READERS).zip(reader_handles) {
        let barrier = Arc::clone(&barrier);
        readers.push(std::thread::spawn(move || -> Result<engines::ReadTally> {
            let mut positions = Positions::new(42 + r);
            let mut next = || data::key(space::C, positions.next_below(n_keys));
            barrier.wait();
            h.gets_per_snapshot(per, &mut next)
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let mut first_err = None;
    for j in readers {
        let outcome = j.join().map_err(|_| "a reading thread panicked")?;
        match outcome {
            Ok(tally) if tally.bytes != tally.found * VALUE_LEN as u64 => {
                first_err.get_or_insert(format!("values of the wrong length: {tally:?}").into());
            }
            Ok(_) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (commits, writing) = writer.join().map_err(|_| "the writing thread panicked")??;
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut f = figure("h", kind, READERS * per, elapsed, "gets/s");
    f.note = format!(
        "{READERS} readers × {per}, one snapshot per get; writer meanwhile: {} commits/s \
         ({commits} txns of 3 keys)",
        walstore_benches::report::human(commits as f64 / writing.as_secs_f64().max(1e-9))
    );
    if !kind.durable() {
        f.note.push_str("; writer not durable per commit");
    }
    Ok(f)
}

fn blobs(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let keys: Vec<[u8; KEY_LEN]> = (0..4).map(|j| data::key(5, j)).collect();
    let mut values: Vec<Vec<u8>> = BLOB_SIZES
        .iter()
        .enumerate()
        .map(|(j, &len)| {
            let mut v = vec![0u8; len];
            data::fill_value(j as u64, &mut v);
            v
        })
        .collect();
    let mut round = |r: u64, values: &mut Vec<Vec<u8>>| -> Result<()> {
        for v in values.iter_mut() {
            v[..8].copy_from_slice(&r.to_le_bytes());
        }
        let writes: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(values.iter())
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        h.commit(&writes)
    };
    // One warm-up round creates the four values; the timed rounds replace them.
    round(u64::MAX, &mut values)?;
    let started = Instant::now();
    for r in 0..scale.e_rounds {
        round(r, &mut values)?;
    }
    let mut f = figure("e", kind, scale.e_rounds, started.elapsed(), "txn/s");
    f.note = match kind {
        Kind::PlainFiles => {
            "f: 4 files, each temp + fsync + rename + dir fsync; not atomic across the 4".into()
        }
        k if !k.durable() => "not durable per commit".into(),
        _ => String::new(),
    };
    Ok(f)
}

fn replay_options() -> walstore::Options {
    walstore::Options::new()
        .auto_checkpoint(false)
        .wal_size_bytes_checkpoint(1 << 40)
}

/// Fills a walstore WAL with small transactions (3 keys of 100 bytes each, as in a) until
/// it holds `scale.open_wal_bytes`.
fn fill_wal(kind: Kind, dir: &Path, scale: &Scale) -> Result<()> {
    if kind != Kind::Walstore {
        return Err("the open workload is walstore's alone".into());
    }
    let store = replay_options()
        .durability(walstore::Durability::Buffered)
        .wal_preallocate_bytes(scale.open_wal_bytes + (1 << 20))
        .open(dir)?;
    let mut i = 0u64;
    loop {
        for _ in 0..1000 {
            let txn = small_txn(space::OPEN, i);
            store.update(|tx| {
                for (k, v) in &txn {
                    tx.put(k, v)?;
                }
                Ok::<_, walstore::Error>(())
            })?;
            i += 1;
        }
        if store.info()?.wal_bytes >= scale.open_wal_bytes {
            break;
        }
    }
    store.sync()?;
    Ok(())
}

fn open_replay(kind: Kind, dir: &Path) -> Result<Figure> {
    if kind != Kind::Walstore {
        return Err("the open workload is walstore's alone".into());
    }
    let started = Instant::now();
    let store = replay_options().open(dir)?;
    drop(store.begin_read()?);
    let elapsed = started.elapsed();
    let info = store.info()?;
    let mib = info.wal_bytes as f64 / f64::from(1u32 << 20);
    let mut f = figure("open", kind, info.wal_bytes >> 20, elapsed, "MiB/s");
    f.value = mib / elapsed.as_secs_f64();
    f.note = format!(
        "{mib:.0} MiB WAL, {} txns, open {:.3} s, page cache warm",
        info.txns_since_checkpoint,
        elapsed.as_secs_f64()
    );
    Ok(f)
}

// ---------------------------------------------------------------------------------------------
// Scale and one-shot phases (children).

/// One write phase of the scale workload: the bulk load of keys `0..n` in durable txns of
/// 10,000 into a fresh store, or (`overwrite`) new values for 10% of them, distinct keys in
/// random order, in durable txns of 1,000. Bytes written are counted from before the open to
/// after the close, so work a store defers to its close (or to a background thread that the
/// close waits for) counts in the phase that caused it.
fn scale_write(kind: Kind, dir: &Path, n: u64, overwrite: bool) -> Result<WritePhase> {
    if n == 0 {
        return Err("the scale phases need --n (keys in the store) above 0".into());
    }
    let io_before = sysio::io_counters();
    let t = Instant::now();
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let open_seconds = t.elapsed().as_secs_f64();
    let (count, batch) = if overwrite {
        ((n / 10).max(1), data::SCALE_OVERWRITE_TXN)
    } else {
        (n, data::SCALE_LOAD_TXN)
    };
    let batch = batch as usize;
    let mut keys = vec![[0u8; KEY_LEN]; batch];
    let mut values = vec![[0u8; VALUE_LEN]; batch];
    let mut each = Vec::with_capacity(count.div_ceil(batch as u64) as usize);
    let mut committing = Duration::ZERO;
    let mut j = 0u64;
    while j < count {
        let this = batch.min((count - j) as usize);
        for x in 0..this {
            let i = j + x as u64;
            let (idx, seed) = if overwrite {
                let idx = data::overwrite_index(i, n);
                (idx, idx ^ (1 << 62))
            } else {
                (i, i)
            };
            keys[x] = data::key(space::SCALE, idx);
            data::fill_value(seed, &mut values[x]);
        }
        let writes: Vec<(&[u8], &[u8])> = keys[..this]
            .iter()
            .zip(&values[..this])
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        // Only the commits are timed, not making up the data.
        let t = Instant::now();
        h.commit(&writes)?;
        let took = t.elapsed();
        committing += took;
        each.push(took);
        j += this as u64;
    }
    drop(h);
    let t = Instant::now();
    drop(engine);
    let close_seconds = t.elapsed().as_secs_f64();
    let io_after = sysio::io_counters();
    let (file_bytes, alloc_bytes) = sysio::dir_usage(dir)?;
    let (p50_ms, p99_ms, max_ms) = sysio::latency_ms(&each);
    let io = io_before.zip(io_after);
    Ok(WritePhase {
        keys: count,
        txn_keys: batch as u64,
        commit_seconds: committing.as_secs_f64(),
        open_seconds,
        close_seconds,
        p50_ms,
        p99_ms,
        max_ms,
        payload_bytes: count * (KEY_LEN + VALUE_LEN) as u64,
        write_bytes: io.map(|(a, b)| b.write_bytes.saturating_sub(a.write_bytes)),
        cancelled_write_bytes: io.map(|(a, b)| {
            b.cancelled_write_bytes
                .saturating_sub(a.cancelled_write_bytes)
        }),
        file_bytes,
        alloc_bytes,
        mem: mem::current(),
    })
}

/// Point reads of the scale workload: random existing keys of the loaded store, all from one
/// read snapshot (as workload d), in a fresh process (the page cache holds what the load
/// wrote).
fn scale_read(kind: Kind, dir: &Path, n: u64, scale: &Scale) -> Result<ReadPhase> {
    if n == 0 {
        return Err("the scale phases need --n (keys in the store) above 0".into());
    }
    let io_before = sysio::io_counters();
    let t = Instant::now();
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let open_seconds = t.elapsed().as_secs_f64();
    let mut positions = Positions::new(42);
    let mut next = || data::key(space::SCALE, positions.next_below(n));
    let started = Instant::now();
    let tally = h.point_reads(scale.scale_reads, &mut next)?;
    let seconds = started.elapsed().as_secs_f64();
    if tally.bytes != tally.found * VALUE_LEN as u64 {
        return Err(format!("values of the wrong length: {tally:?}").into());
    }
    drop(h);
    drop(engine);
    let io_after = sysio::io_counters();
    Ok(ReadPhase {
        gets: scale.scale_reads,
        seconds,
        open_seconds,
        write_bytes: io_before
            .zip(io_after)
            .map(|(a, b)| b.write_bytes.saturating_sub(a.write_bytes)),
        mem: mem::current(),
    })
}

/// One process of the oneshot workload: open the store in `dir` (created by process 0),
/// commit the 3 keys of transaction `i` durably in one transaction, close, exit. Store
/// `process` opens nothing: the cost of starting this binary. Each store is opened as the
/// other workloads open it (see `engines`), SQLite with a single connection.
fn oneshot(engine: &str, dir: &Path, i: u64) -> Result<()> {
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
