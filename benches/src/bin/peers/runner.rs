//! The parent: chooses the stores and workloads, runs every phase in a child process (the
//! commit-bound workloads in rounds, the stores taking turns), and reports.

use crate::cli::Cli;
use crate::logsize::run_logsize;
use crate::machine::machine;
use crate::oneshot::run_oneshot;
use crate::scale::run_scale;
use crate::spawn::child;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use walstore_benches::data::Scale;
use walstore_benches::engines::Kind;
use walstore_benches::report::{human, Failure, Figure, Report};
use walstore_benches::Result;

/// Every workload, in the order they run. d, g and h read c's store (h also writes into it,
/// so it comes last of them); fresh loads c's data into a store of its own and reads it at
/// once.
const ALL_WORKLOADS: [&str; 12] = [
    "a", "b", "c", "d", "g", "h", "fresh", "e", "open", "scale", "oneshot", "logsize",
];

/// Whether workload `w` runs on c's store.
fn on_c_store(w: &str) -> bool {
    matches!(w, "c" | "d" | "g" | "h")
}

/// Runs what the command line asks for (or renders a saved report) and reports it.
pub(crate) fn run_all(cli: &Cli) -> Result<()> {
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
    let kinds = chosen_kinds(cli)?;
    let workloads = chosen_workloads(cli)?;
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
    let runner = Runner {
        exe: std::env::current_exe()?,
        base: base.path(),
        kinds,
        workloads,
        quick: cli.quick,
        rounds: cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
    };
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
    runner.run(cli, &scale, &mut report);
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

/// The stores asked for (all of them without `--engines`).
fn chosen_kinds(cli: &Cli) -> Result<Vec<Kind>> {
    if cli.engines.is_empty() {
        return Ok(Kind::ALL.to_vec());
    }
    Ok(cli
        .engines
        .iter()
        .map(|id| Kind::from_id(id).ok_or_else(|| format!("unknown store {id:?}")))
        .collect::<std::result::Result<_, _>>()?)
}

/// The workloads asked for, in running order. Without `--workloads`: all of them, except
/// scale in a full run unless `--scale-sizes` is given, and logsize in a full run (long).
fn chosen_workloads(cli: &Cli) -> Result<Vec<&'static str>> {
    if cli.workloads.is_empty() {
        let scale_by_default = cli.quick || !cli.scale_sizes.is_empty();
        return Ok(ALL_WORKLOADS
            .into_iter()
            .filter(|w| *w != "scale" || scale_by_default)
            .filter(|w| *w != "logsize" || cli.quick)
            .collect());
    }
    for w in &cli.workloads {
        if !ALL_WORKLOADS.contains(&w.as_str()) {
            return Err(format!("unknown workload {w:?}").into());
        }
    }
    Ok(ALL_WORKLOADS
        .into_iter()
        .filter(|w| cli.workloads.iter().any(|x| x == w))
        .collect())
}

/// One run: this binary (run again for each phase), where the stores live, and what to run.
struct Runner<'a> {
    exe: PathBuf,
    base: &'a Path,
    kinds: Vec<Kind>,
    workloads: Vec<&'static str>,
    quick: bool,
    rounds: u32,
}

impl Runner<'_> {
    /// Runs every chosen workload in order.
    fn run(&self, cli: &Cli, scale: &Scale, report: &mut Report) {
        for w in &self.workloads {
            match *w {
                "scale" => {
                    let sizes = if cli.scale_sizes.is_empty() {
                        scale.scale_sizes()
                    } else {
                        cli.scale_sizes.clone()
                    };
                    run_scale(
                        &self.exe,
                        self.base,
                        &self.kinds,
                        &sizes,
                        self.quick,
                        report,
                    );
                }
                "oneshot" => {
                    let runs = cli.oneshot_runs.unwrap_or(scale.oneshot_runs).max(1);
                    run_oneshot(&self.exe, self.base, &self.kinds, runs, self.quick, report);
                }
                "logsize" => {
                    let runs = cli.logsize_runs.unwrap_or(scale.logsize_runs).max(1);
                    run_logsize(
                        &self.exe,
                        self.base,
                        &self.kinds,
                        scale,
                        runs,
                        self.quick,
                        report,
                    );
                }
                w => self.workload(w, report),
            }
        }
    }

    /// Workload `w` on every store it applies to, in rounds for the commit-bound ones; one
    /// figure per store and figure id (the median of the rounds).
    fn workload(&self, w: &'static str, report: &mut Report) {
        let applicable: Vec<Kind> = applicable(w)
            .iter()
            .copied()
            .filter(|k| self.kinds.contains(k))
            .collect();
        let rounds = if matches!(w, "a" | "b" | "e") {
            self.rounds
        } else {
            1
        };
        let mut per_kind: Vec<Vec<Figure>> = vec![Vec::new(); applicable.len()];
        for round in 0..rounds {
            for (slot, kind) in applicable.iter().enumerate() {
                if report
                    .failures
                    .iter()
                    .any(|f| f.engine == kind.id() && f.workload == w)
                {
                    continue;
                }
                self.phase(w, *kind, round, &mut per_kind[slot], report);
            }
        }
        for figs in per_kind {
            report.figures.extend(median_rounds(figs));
        }
    }

    /// One round of workload `w` on `kind`: its figures added to `figures`, or its failure
    /// to `report`.
    fn phase(
        &self,
        w: &'static str,
        kind: Kind,
        round: u32,
        figures: &mut Vec<Figure>,
        report: &mut Report,
    ) {
        // c, d, g and h share a store per engine; every other phase gets a fresh directory.
        let dir = match w {
            "c" | "d" | "g" | "h" => self.base.join(format!("cd-{}", kind.id())),
            "open" => self.base.join("open-walstore"),
            _ => self.base.join(format!("{w}-{}-{round}", kind.id())),
        };
        if on_c_store(w) && w != "c" && !dir.exists() {
            report.failures.push(Failure {
                workload: w.into(),
                engine: kind.id().into(),
                error: "needs workload c's store (run c too)".into(),
            });
            return;
        }
        let t = Instant::now();
        eprint!("  {w:<5} {:<14} ", kind.id());
        let _ = std::io::stderr().flush();
        let subphases: &[&str] = if w == "open" {
            &["open-fill", "open"]
        } else {
            std::slice::from_ref(&w)
        };
        for sub in subphases {
            match child::<Vec<Figure>>(&self.exe, kind.id(), sub, &dir, self.quick, 0) {
                Ok(figs) => {
                    for f in &figs {
                        eprint!("{} {}  ", human(f.value), f.unit);
                    }
                    figures.extend(figs);
                }
                Err(e) => {
                    eprint!("FAILED: {e}");
                    report.failures.push(Failure {
                        workload: w.into(),
                        engine: kind.id().into(),
                        error: format!("{sub}: {e}"),
                    });
                    break;
                }
            }
        }
        eprintln!("({:.1} s)", t.elapsed().as_secs_f64());
        // Keep c's store for the workloads after it that read it; remove everything else
        // once measured.
        let c_store_needed_later = on_c_store(w)
            && self
                .workloads
                .iter()
                .skip_while(|x| **x != w)
                .skip(1)
                .any(|x| on_c_store(x));
        if !c_store_needed_later {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The stores workload `w` applies to.
fn applicable(w: &str) -> &'static [Kind] {
    match w {
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
            let all: Vec<String> = g.iter().map(|f| human(f.value)).collect();
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
