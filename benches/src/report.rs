//! The runner's results and how they are shown: a markdown table, JSON, and an SVG bar chart
//! of ratios.

use crate::engines::Kind;
use crate::mem::MemKib;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One measured figure: one workload on one store. Every figure is a rate, so higher is
/// better and "walstore ×" is walstore's figure divided by the other's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Workload id (see [`WORKLOADS`]).
    pub workload: String,
    /// Store id ([`Kind::id`]).
    pub engine: String,
    /// The rate.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Operations counted.
    pub ops: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Memory of the process that ran the phase, at its end.
    pub mem: MemKib,
    /// Anything needed to read the figure right.
    pub note: String,
}

/// A phase that did not complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Workload id.
    pub workload: String,
    /// Store id.
    pub engine: String,
    /// What went wrong.
    pub error: String,
}

/// Workload ids and titles, in table order.
pub const WORKLOADS: [(&str, &str); 9] = [
    (
        "a",
        "a: durable txns of 3 keys (16 B key, 100 B value), 1 thread",
    ),
    ("b", "b: the same from 4 threads, committing concurrently"),
    (
        "c-durable",
        "c: bulk load, random order, durable txns of 10,000 (durable)",
    ),
    ("c-checkpointed", "c: the same, until fully checkpointed"),
    ("d", "d: random point reads over c's data, 1 thread"),
    ("g", "g: the same gets, one read snapshot per get, 1 thread"),
    (
        "h",
        "h: g's gets from 2 threads while 1 thread commits 3-key txns durably",
    ),
    (
        "e",
        "e: durable txns replacing 4 values of 4/16/1/64 KiB (plain files: f)",
    ),
    (
        "open",
        "open: replay of a WAL of small txns (walstore only)",
    ),
];

/// Everything one run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// The machine.
    pub machine: String,
    /// Sizes of the workloads.
    pub scale: Option<crate::data::Scale>,
    /// Measured figures.
    pub figures: Vec<Figure>,
    /// Phases that failed.
    pub failures: Vec<Failure>,
    /// The scale workload: one row per store size and store.
    #[serde(default)]
    pub scaling: Vec<ScaleRow>,
    /// The one-shot workload: one row per store (and the bare process).
    #[serde(default)]
    pub oneshot: Vec<OneshotRow>,
}

/// One write phase of the scale workload on one store, measured by the process that ran it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WritePhase {
    /// Keys committed.
    pub keys: u64,
    /// Keys per durable transaction.
    pub txn_keys: u64,
    /// Seconds spent in commit calls (making up the data not counted).
    pub commit_seconds: f64,
    /// Seconds to open the store at the start of the phase.
    pub open_seconds: f64,
    /// Seconds to close the store at the end of the phase (waits for work the store defers).
    pub close_seconds: f64,
    /// Commit latency, median, ms.
    pub p50_ms: f64,
    /// Commit latency, 99th percentile, ms.
    pub p99_ms: f64,
    /// Commit latency, slowest, ms.
    pub max_ms: f64,
    /// Bytes of keys and values committed.
    pub payload_bytes: u64,
    /// `write_bytes` of `/proc/self/io` from before the open to after the close (`None`: not
    /// available).
    pub write_bytes: Option<u64>,
    /// `cancelled_write_bytes` over the same span.
    pub cancelled_write_bytes: Option<u64>,
    /// Sum of the lengths of the store's files after the close.
    pub file_bytes: u64,
    /// Sum of the store's allocated blocks after the close.
    pub alloc_bytes: u64,
    /// Memory of the process at the end of the phase.
    pub mem: MemKib,
}

impl WritePhase {
    /// Keys per second of commit time.
    pub fn keys_per_s(&self) -> f64 {
        self.keys as f64 / self.commit_seconds.max(1e-9)
    }

    /// Bytes written to storage per byte of keys and values committed.
    pub fn write_amp(&self) -> Option<f64> {
        let w = self.write_bytes?;
        (self.payload_bytes > 0).then(|| w as f64 / self.payload_bytes as f64)
    }
}

/// The point reads of the scale workload, in a fresh process after the load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadPhase {
    /// Gets (every one finds its key).
    pub gets: u64,
    /// Seconds spent reading (one read snapshot for all the gets).
    pub seconds: f64,
    /// Seconds to open the store.
    pub open_seconds: f64,
    /// `write_bytes` of the reading process, open to close (a store may write on open).
    pub write_bytes: Option<u64>,
    /// Memory of the process at the end of the phase.
    pub mem: MemKib,
}

/// The scale workload on one store at one size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScaleRow {
    /// Keys bulk-loaded.
    pub size: u64,
    /// Store id ([`Kind::id`]).
    pub engine: String,
    /// The bulk load into a fresh store.
    pub load: Option<WritePhase>,
    /// Point reads after the load.
    pub reads: Option<ReadPhase>,
    /// 10% of the keys overwritten.
    pub overwrite: Option<WritePhase>,
}

/// The one-shot workload on one store: whole processes that open, commit 3 keys, exit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OneshotRow {
    /// Store id ([`Kind::id`]), or `process` for a child that opens nothing.
    pub engine: String,
    /// Timed processes.
    pub runs: u64,
    /// Wall time per process (spawn to exit as the parent sees it), mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Processes counted under strace (a separate pass; 0: not counted).
    pub traced_runs: u64,
    /// `fdatasync` calls per process (`None`: not counted).
    pub fdatasync_per_op: Option<f64>,
    /// `fsync` calls per process.
    pub fsync_per_op: Option<f64>,
    /// `msync`, `sync_file_range`, `syncfs` calls per process.
    pub other_syncs_per_op: Option<f64>,
    /// How the calls were counted, or why not.
    pub note: String,
}

/// The table name of a store id (the one-shot's bare process included).
fn engine_label(id: &str) -> &str {
    match Kind::from_id(id) {
        Some(k) => k.label(),
        None if id == "process" => "process alone",
        None => id,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// A target of the issue, checked against one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The ratio required.
    pub required: f64,
    /// The ratio measured, if both figures exist.
    pub measured: Option<f64>,
}

impl Target {
    /// "met", "MISSED" or "not measured".
    pub fn verdict(&self) -> &'static str {
        match self.measured {
            Some(m) if m >= self.required => "met",
            Some(_) => "MISSED",
            None => "not measured",
        }
    }
}

impl Report {
    /// The figure of `engine` on `workload`.
    pub fn get(&self, workload: &str, engine: Kind) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.workload == workload && f.engine == engine.id())
    }

    /// walstore's figure divided by `engine`'s on `workload`.
    pub fn ratio(&self, workload: &str, engine: Kind) -> Option<f64> {
        let ours = self.get(workload, Kind::Walstore)?.value;
        let theirs = self.get(workload, engine)?.value;
        (theirs > 0.0).then_some(ours / theirs)
    }

    fn best_durable_peer(&self, workload: &str) -> Option<(Kind, f64)> {
        [Kind::SqliteFull, Kind::Redb, Kind::Fjall]
            .into_iter()
            .filter_map(|k| self.get(workload, k).map(|f| (k, f.value)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The issue's targets, with the ratios this run measured.
    pub fn targets(&self) -> Vec<Target> {
        let ws = |w: &str| self.get(w, Kind::Walstore).map(|f| f.value);
        let vs_best = |w: &str| -> (String, Option<f64>) {
            match self.best_durable_peer(w) {
                Some((k, v)) => (k.label().to_string(), ws(w).map(|o| o / v)),
                None => ("best durable peer".to_string(), None),
            }
        };
        let (a_best, a_ratio) = vs_best("a");
        let (b_best, b_ratio) = vs_best("b");
        let (c_best, c_ratio) = vs_best("c-durable");
        let open_rate = ws("open");
        vec![
            Target {
                what: "a: walstore / bare write+fdatasync loop".into(),
                required: 0.9,
                measured: self.ratio("a", Kind::BareLog),
            },
            Target {
                what: format!("a: walstore / best durable peer ({a_best})"),
                required: 1.15,
                measured: a_ratio,
            },
            Target {
                what: "b: walstore b / walstore a".into(),
                required: 1.6,
                measured: ws("b").zip(ws("a")).map(|(b, a)| b / a),
            },
            Target {
                what: format!("b: walstore / best durable peer ({b_best})"),
                required: 2.0,
                measured: b_ratio,
            },
            Target {
                what: format!("c: durable bulk load, walstore / fastest durable peer ({c_best})"),
                required: 2.0,
                measured: c_ratio,
            },
            Target {
                what: "d: point reads, walstore / redb".into(),
                required: 2.0,
                measured: self.ratio("d", Kind::Redb),
            },
            Target {
                what: "e: walstore / SQLite FULL".into(),
                required: 1.5,
                measured: self.ratio("e", Kind::SqliteFull),
            },
            Target {
                what: "e: walstore / plain-files recipe (f)".into(),
                required: 8.0,
                measured: self.ratio("e", Kind::PlainFiles),
            },
            Target {
                what: "open: WAL replay MiB/s / 400 MiB/s".into(),
                required: 1.0,
                measured: open_rate.map(|r| r / 400.0),
            },
        ]
    }

    /// The kinds that have at least one figure, in column order.
    fn columns(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| self.figures.iter().any(|f| f.engine == k.id()))
            .collect()
    }

    /// The whole report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Command: `{}`  ", self.command);
        let _ = writeln!(out, "Machine: {}\n", self.machine);
        if !self.figures.is_empty() {
            out.push_str(&self.headline_table());
            out.push_str(
                "\nCells: figure (walstore ×: walstore's figure / this one; above 1 walstore is \
                 faster). \\* SQLite NORMAL in WAL mode does not sync each commit: not durable, \
                 shown for reference.\n\n",
            );
            out.push_str(&self.targets_table());
            out.push('\n');
            out.push_str(&self.detail_table());
        }
        if !self.scaling.is_empty() {
            out.push('\n');
            out.push_str(&self.scale_tables());
        }
        if !self.oneshot.is_empty() {
            out.push('\n');
            out.push_str(&self.oneshot_table());
        }
        if !self.failures.is_empty() {
            out.push_str("\nFailed phases:\n\n");
            for f in &self.failures {
                let _ = writeln!(out, "- {} on {}: {}", f.workload, f.engine, f.error);
            }
        }
        out
    }

    /// Rows: workloads; columns: stores; cells: figure and ratio.
    pub fn headline_table(&self) -> String {
        let cols = self.columns();
        let mut out = String::from("| workload | unit |");
        for k in &cols {
            let _ = write!(out, " {} |", k.label());
        }
        out.push_str("\n|---|---|");
        for _ in &cols {
            out.push_str("---:|");
        }
        out.push('\n');
        for (id, title) in WORKLOADS {
            let Some(unit) = self
                .figures
                .iter()
                .find(|f| f.workload == id)
                .map(|f| f.unit.clone())
            else {
                continue;
            };
            let _ = write!(out, "| {title} | {unit} |");
            for k in &cols {
                match self.get(id, *k) {
                    Some(f) if *k == Kind::Walstore => {
                        let _ = write!(out, " **{}** |", human(f.value));
                    }
                    Some(f) => match self.ratio(id, *k) {
                        Some(r) => {
                            let _ = write!(out, " {} ({:.2}×) |", human(f.value), r);
                        }
                        None => {
                            let _ = write!(out, " {} |", human(f.value));
                        }
                    },
                    None => out.push_str(" |"),
                }
            }
            out.push('\n');
        }
        out
    }

    /// The issue's targets with verdicts.
    pub fn targets_table(&self) -> String {
        let mut out =
            String::from("| target | required | measured | verdict |\n|---|---:|---:|---|\n");
        for t in self.targets() {
            let measured = t
                .measured
                .map_or_else(|| "–".to_string(), |m| format!("{m:.2}×"));
            let _ = writeln!(
                out,
                "| {} | {:.2}× | {} | {} |",
                t.what,
                t.required,
                measured,
                t.verdict()
            );
        }
        out
    }

    /// The scale workload: the load and the reads after it, then the overwrite phase.
    pub fn scale_tables(&self) -> String {
        let mut out = String::from(
            "Scale, load: N random keys (16 B) with 100 B values into a fresh store, durable \
             txns of 10,000; then point reads of random existing keys in a fresh process, one \
             read snapshot for all the gets. Write amp. = `write_bytes` of `/proc/self/io` \
             (open to close of the phase's process) / bytes of keys and values committed; size = \
             sum of file lengths (allocated blocks) after the close. Reopen writes: what the reading \
             process wrote (work a store does on open).\n\n\
             | keys | store | load keys/s | commit p50 / p99 / max ms | write amp. | size MiB (alloc.) | close s | peak RSS MiB | gets/s | reopen writes MiB |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let amp = |p: &WritePhase| {
            p.write_amp()
                .map_or("n/a".to_string(), |a| format!("{a:.2}"))
        };
        let lat = |p: &WritePhase| format!("{:.1} / {:.1} / {:.1}", p.p50_ms, p.p99_ms, p.max_ms);
        let size = |p: &WritePhase| format!("{:.1} ({:.1})", mib(p.file_bytes), mib(p.alloc_bytes));
        for r in &self.scaling {
            let label = engine_label(&r.engine);
            let Some(l) = &r.load else {
                let _ = writeln!(out, "| {} | {label} | failed | | | | | | | |", r.size);
                continue;
            };
            let gets = r.reads.as_ref().map_or("–".to_string(), |g| {
                human(g.gets as f64 / g.seconds.max(1e-9))
            });
            let reopen = r
                .reads
                .as_ref()
                .and_then(|g| g.write_bytes)
                .map_or("n/a".to_string(), |w| format!("{:.2}", mib(w)));
            let _ = writeln!(
                out,
                "| {} | {label} | {} | {} | {} | {} | {:.2} | {:.1} | {gets} | {reopen} |",
                r.size,
                human(l.keys_per_s()),
                lat(l),
                amp(l),
                size(l),
                l.close_seconds,
                l.mem.peak_rss as f64 / 1024.0,
            );
        }
        out.push_str(
            "\nScale, overwrite: 10% of the keys (distinct, random order) given new 100 B \
             values, durable txns of 1,000, in a fresh process on the loaded store; same \
             measures.\n\n\
             | keys | store | overwrite keys/s | commit p50 / p99 / max ms | write amp. | size MiB (alloc.) | close s | peak RSS MiB |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.scaling {
            let Some(o) = &r.overwrite else { continue };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.1} |",
                r.size,
                engine_label(&r.engine),
                human(o.keys_per_s()),
                lat(o),
                amp(o),
                size(o),
                o.close_seconds,
                o.mem.peak_rss as f64 / 1024.0,
            );
        }
        out
    }

    /// The one-shot workload.
    pub fn oneshot_table(&self) -> String {
        let mut out = String::from(
            "One-shot: a fresh process opens an existing store, commits 3 keys (16 B key, \
             100 B value) durably in one transaction and exits; ms = the process's wall time \
             as its parent sees it (spawn to exit). Syncs counted in a separate pass of as many \
             processes under `strace -f -c`.\n\n\
             | store | runs | ms mean | p50 | p90 | max | fdatasync / op | fsync / op | other syncs / op | note |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let per = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.2}"));
        for r in &self.oneshot {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
                engine_label(&r.engine),
                r.runs,
                r.mean_ms,
                r.p50_ms,
                r.p90_ms,
                r.max_ms,
                per(r.fdatasync_per_op),
                per(r.fsync_per_op),
                per(r.other_syncs_per_op),
                r.note
            );
        }
        out
    }

    /// Every figure with its time, memory and note.
    pub fn detail_table(&self) -> String {
        let mut out = String::from(
            "| workload | store | figure | unit | ops | seconds | peak RSS MiB | anon RSS MiB at end | file RSS MiB at end | walstore × | note |\n\
             |---|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for (id, _) in WORKLOADS {
            for k in Kind::ALL {
                let Some(f) = self.get(id, k) else { continue };
                let ratio = if k == Kind::Walstore {
                    String::new()
                } else {
                    self.ratio(id, k)
                        .map_or_else(String::new, |r| format!("{r:.2}"))
                };
                let _ = writeln!(
                    out,
                    "| {id} | {} | {} | {} | {} | {:.3} | {:.1} | {:.1} | {:.1} | {ratio} | {} |",
                    k.label(),
                    human(f.value),
                    f.unit,
                    f.ops,
                    f.seconds,
                    f.mem.peak_rss as f64 / 1024.0,
                    f.mem.rss_anon as f64 / 1024.0,
                    f.mem.rss_file as f64 / 1024.0,
                    f.note
                );
            }
        }
        out
    }

    /// A bar chart of walstore's ratio to each other store per workload (log scale; the
    /// line at 1× is parity).
    pub fn svg(&self) -> String {
        let peers: Vec<Kind> = self
            .columns()
            .into_iter()
            .filter(|k| *k != Kind::Walstore)
            .collect();
        let groups: Vec<(&str, Vec<(Kind, f64)>)> = WORKLOADS
            .iter()
            .map(|(id, _)| {
                let bars = peers
                    .iter()
                    .filter_map(|k| self.ratio(id, *k).map(|r| (*k, r)))
                    .collect::<Vec<_>>();
                (*id, bars)
            })
            .filter(|(_, bars)| !bars.is_empty())
            .collect();
        let all: Vec<f64> = groups
            .iter()
            .flat_map(|(_, b)| b.iter().map(|(_, r)| *r))
            .collect();
        let lo = nice(all.iter().cloned().fold(0.5f64, f64::min), false).log10();
        let hi = nice(all.iter().cloned().fold(2.0f64, f64::max), true).log10();
        let (bar_w, gap, left, top, plot_h) = (16.0, 24.0, 70.0, 40.0, 300.0);
        let group_w: Vec<f64> = groups
            .iter()
            .map(|(_, b)| b.len() as f64 * bar_w + gap)
            .collect();
        let plot_w: f64 = group_w.iter().sum::<f64>() + gap;
        let width = left + plot_w + 170.0;
        let height = top + plot_h + 60.0;
        let y = |r: f64| top + plot_h * (hi - r.log10()) / (hi - lo);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="20" font-size="14">walstore × other store (walstore's figure / theirs; log scale, above 1 = walstore faster)</text>"#
        );
        // Grid lines at 1, 2, 5 × 10^n.
        let mut decade = lo.floor() as i32;
        while f64::from(decade) <= hi {
            for m in [1.0, 2.0, 5.0] {
                let r = m * 10f64.powi(decade);
                if r.log10() < lo - 1e-9 || r.log10() > hi + 1e-9 {
                    continue;
                }
                let yy = y(r);
                let (stroke, w) = if (r - 1.0).abs() < 1e-9 {
                    ("#000", 1.5)
                } else {
                    ("#ddd", 1.0)
                };
                let _ = writeln!(
                    s,
                    r#"<line x1="{left}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{stroke}" stroke-width="{w}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}×</text>"#,
                    left + plot_w,
                    left - 6.0,
                    yy + 4.0,
                    trim(r)
                );
            }
            decade += 1;
        }
        let mut x = left + gap;
        for ((id, bars), gw) in groups.iter().zip(&group_w) {
            for (i, (k, r)) in bars.iter().enumerate() {
                let bx = x + i as f64 * bar_w;
                let (y0, y1) = (y(1.0), y(*r));
                let (yt, h) = if y1 < y0 {
                    (y1, y0 - y1)
                } else {
                    (y0, y1 - y0)
                };
                let _ = writeln!(
                    s,
                    r#"<rect x="{bx:.1}" y="{yt:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.2}×</title></rect>"#,
                    bar_w - 2.0,
                    h.max(1.0),
                    color(*k),
                    id,
                    k.label(),
                    r
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{id}</text>"#,
                x + (gw - gap) / 2.0,
                top + plot_h + 20.0
            );
            x += gw;
        }
        for (i, k) in peers.iter().enumerate() {
            let ly = top + 10.0 + i as f64 * 18.0;
            let lx = left + plot_w + 16.0;
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                ly - 10.0,
                color(*k),
                lx + 18.0,
                ly,
                k.label()
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

impl Report {
    /// The scale workload as small line charts against store size (both axes log scale):
    /// load keys/s, overwrite keys/s, gets/s, and write amplification of each phase.
    pub fn scale_svg(&self) -> String {
        type Pick = fn(&ScaleRow) -> Option<f64>;
        let panels: [(&str, Pick); 5] = [
            ("load keys/s", |r| {
                r.load.as_ref().map(WritePhase::keys_per_s)
            }),
            ("overwrite keys/s", |r| {
                r.overwrite.as_ref().map(WritePhase::keys_per_s)
            }),
            ("gets/s after the load", |r| {
                r.reads
                    .as_ref()
                    .map(|g| g.gets as f64 / g.seconds.max(1e-9))
            }),
            ("load write amplification", |r| {
                r.load.as_ref().and_then(WritePhase::write_amp)
            }),
            ("overwrite write amplification", |r| {
                r.overwrite.as_ref().and_then(WritePhase::write_amp)
            }),
        ];
        let mut engines: Vec<&str> = Vec::new();
        for r in &self.scaling {
            if !engines.contains(&r.engine.as_str()) {
                engines.push(&r.engine);
            }
        }
        let mut sizes: Vec<u64> = self.scaling.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let (pw, ph, margin, top) = (260.0, 180.0, 60.0, 40.0);
        let width = margin + panels.len() as f64 * (pw + margin) + 120.0;
        let height = top + ph + 70.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{margin}" y="20" font-size="14">Scale workload against store size (keys; log scales)</text>"#
        );
        let (xlo, xhi) = match (sizes.first(), sizes.last()) {
            (Some(a), Some(b)) if b > a => ((*a as f64).log10(), (*b as f64).log10()),
            (Some(a), _) => ((*a as f64).log10() - 0.5, (*a as f64).log10() + 0.5),
            _ => (0.0, 1.0),
        };
        for (i, (title, pick)) in panels.iter().enumerate() {
            let x0 = margin + i as f64 * (pw + margin);
            let values: Vec<f64> = self
                .scaling
                .iter()
                .filter_map(pick)
                .filter(|v| *v > 0.0)
                .collect();
            let lo = nice(
                values.iter().cloned().fold(f64::MAX, f64::min).min(1e12),
                false,
            );
            let hi = nice(
                values.iter().cloned().fold(0.0, f64::max).max(lo * 2.0),
                true,
            );
            let (ylo, yhi) = (lo.log10(), hi.log10());
            let px = |n: f64| x0 + pw * (n.log10() - xlo) / (xhi - xlo);
            let py = |v: f64| top + ph * (yhi - v.log10()) / (yhi - ylo);
            let _ = writeln!(
                s,
                r##"<rect x="{x0:.1}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{title}</text>"##,
                x0 + pw / 2.0,
                top - 6.0
            );
            for (v, anchor) in [(lo, ylo), (hi, yhi)] {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    x0 - 4.0,
                    top + ph * (yhi - anchor) / (yhi - ylo) + 4.0,
                    human(v)
                );
            }
            for n in &sizes {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    px(*n as f64),
                    top + ph + 14.0,
                    human(*n as f64)
                );
            }
            for id in &engines {
                let colour = Kind::from_id(id).map_or("#000", color);
                let points: Vec<(f64, f64)> = self
                    .scaling
                    .iter()
                    .filter(|r| r.engine == *id)
                    .filter_map(|r| pick(r).filter(|v| *v > 0.0).map(|v| (r.size as f64, v)))
                    .map(|(n, v)| (px(n), py(v)))
                    .collect();
                if points.len() > 1 {
                    let path: Vec<String> = points
                        .iter()
                        .map(|(x, y)| format!("{x:.1},{y:.1}"))
                        .collect();
                    let _ = writeln!(
                        s,
                        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                        path.join(" ")
                    );
                }
                for (x, y) in points {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"><title>{}</title></circle>"#,
                        engine_label(id)
                    );
                }
            }
        }
        for (i, id) in engines.iter().enumerate() {
            let lx = margin + panels.len() as f64 * (pw + margin) - margin / 2.0;
            let ly = top + 10.0 + i as f64 * 18.0;
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 10.0,
                Kind::from_id(id).map_or("#000", color),
                lx + 18.0,
                engine_label(id)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn color(k: Kind) -> &'static str {
    match k {
        Kind::Walstore => "#222222",
        Kind::SqliteFull => "#1f77b4",
        Kind::SqliteNormal => "#9ecae1",
        Kind::Redb => "#d62728",
        Kind::Fjall => "#2ca02c",
        Kind::PlainFiles => "#9467bd",
        Kind::BareLog => "#7f7f7f",
    }
}

/// The nearest of 1, 2 or 5 × 10^n below (or above) `r`.
fn nice(r: f64, up: bool) -> f64 {
    let decade = 10f64.powf(r.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * decade);
    if up {
        steps
            .into_iter()
            .find(|s| *s >= r * (1.0 - 1e-9))
            .unwrap_or(r)
    } else {
        steps
            .into_iter()
            .rev()
            .find(|s| *s <= r * (1.0 + 1e-9))
            .unwrap_or(r)
    }
}

fn trim(r: f64) -> String {
    if r >= 1.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

/// A rate with a thousands separator or a k/M suffix.
pub fn human(v: f64) -> String {
    if v >= 10_000_000.0 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1_000_000.0 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 100.0 {
        let n = v.round() as u64;
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(workload: &str, engine: Kind, value: f64) -> Figure {
        Figure {
            workload: workload.into(),
            engine: engine.id().into(),
            value,
            unit: "txn/s".into(),
            ops: 1,
            seconds: 1.0,
            mem: MemKib::default(),
            note: String::new(),
        }
    }

    #[test]
    fn ratios_targets_and_outputs() {
        let report = Report {
            command: "walstore-peers --quick".into(),
            machine: "test".into(),
            scale: None,
            figures: vec![
                fig("a", Kind::Walstore, 4000.0),
                fig("a", Kind::BareLog, 5000.0),
                fig("a", Kind::SqliteFull, 2000.0),
                fig("a", Kind::Redb, 1000.0),
                fig("e", Kind::Walstore, 300.0),
                fig("e", Kind::PlainFiles, 30.0),
                fig("g", Kind::Walstore, 900_000.0),
                fig("g", Kind::Redb, 300_000.0),
            ],
            failures: vec![],
            ..Report::default()
        };
        assert_eq!(report.ratio("a", Kind::SqliteFull), Some(2.0));
        let t = report.targets();
        assert_eq!(t[0].measured, Some(0.8));
        assert_eq!(t[0].verdict(), "MISSED");
        assert_eq!(t[1].measured, Some(2.0));
        assert_eq!(t[1].verdict(), "met");
        assert_eq!(t[7].measured, Some(10.0));
        assert_eq!(t[2].verdict(), "not measured");
        let md = report.markdown();
        assert!(md.contains("| a: durable txns"));
        assert!(md.contains("2,000 (2.00×)"));
        assert!(md.contains("| g: the same gets, one read snapshot per get, 1 thread | txn/s | **900,000** | | 300,000 (3.00×) |"));
        assert!(md.contains("| g | redb | 300,000 |"));
        let svg = report.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 5);
    }

    #[test]
    fn scale_and_oneshot_tables() {
        let phase = |keys: u64, secs: f64| WritePhase {
            keys,
            txn_keys: 10_000,
            commit_seconds: secs,
            payload_bytes: keys * 116,
            write_bytes: Some(keys * 116 * 3),
            file_bytes: 5 << 20,
            alloc_bytes: 6 << 20,
            ..WritePhase::default()
        };
        let report = Report {
            scaling: vec![
                ScaleRow {
                    size: 100_000,
                    engine: "walstore".into(),
                    load: Some(phase(100_000, 0.5)),
                    reads: Some(ReadPhase {
                        gets: 1000,
                        seconds: 0.001,
                        ..ReadPhase::default()
                    }),
                    overwrite: Some(phase(10_000, 0.1)),
                },
                ScaleRow {
                    size: 300_000,
                    engine: "walstore".into(),
                    load: Some(phase(300_000, 2.0)),
                    reads: None,
                    overwrite: None,
                },
            ],
            oneshot: vec![OneshotRow {
                engine: "process".into(),
                runs: 10,
                mean_ms: 1.5,
                note: "n/a: strace not found".into(),
                ..OneshotRow::default()
            }],
            ..Report::default()
        };
        let md = report.markdown();
        assert!(!md.contains("| target |"), "no figures, no targets table");
        assert!(md.contains("| 100000 | walstore | 200,000 | 0.0 / 0.0 / 0.0 | 3.00 | 5.0 (6.0) |"));
        assert!(md.contains("| 100000 | walstore | 100,000 |"));
        assert!(md.contains("| process alone | 10 | 1.50 |"));
        assert!(md.contains("| n/a | n/a |"));
        let svg = report.scale_svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline"));
        // Saved reports from before these workloads still load.
        let old = r#"{"command":"x","machine":"y","scale":null,"figures":[],"failures":[]}"#;
        let back: Report = serde_json::from_str(old).expect("an old report loads");
        assert!(back.scaling.is_empty() && back.oneshot.is_empty());
    }

    #[test]
    fn chart_bounds_are_round() {
        assert_eq!(nice(0.08, false), 0.05);
        assert_eq!(nice(8.5, true), 10.0);
        assert_eq!(nice(2.0, true), 2.0);
        assert_eq!(nice(0.5, false), 0.5);
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1234.4), "1,234");
        assert_eq!(human(2_500_000.0), "2.50 M");
        assert_eq!(human(12.34), "12.3");
    }
}
