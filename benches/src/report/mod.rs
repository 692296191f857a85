//! The runner's results and how they are shown: a markdown table, JSON, and SVG charts.
//!
//! This module holds the report's types and what is computed from them (ratios, targets);
//! `markdown` renders the tables and `svg` the charts.

mod markdown;
mod svg;

use crate::engines::Kind;
use crate::mem::MemKib;
use serde::{Deserialize, Serialize};

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
pub const WORKLOADS: [(&str, &str); 11] = [
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
        "d-fresh",
        "d right after c's load, in the loading process (no checkpoint asked)",
    ),
    (
        "g-fresh",
        "g right after c's load, in the loading process (no checkpoint asked)",
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
    /// The log-size workload: one row per operation, mode, log size and store.
    #[serde(default)]
    pub logsize: Vec<LogsizeRow>,
    /// The log-size workload's stores: one per mode, log size and store, as set up.
    #[serde(default)]
    pub logsize_stores: Vec<LogsizeStore>,
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

    /// [`WritePhase::write_amp`] net of `cancelled_write_bytes`: dirty pages of a file the
    /// process truncated or deleted before the kernel wrote them back never reach storage,
    /// but `write_bytes` counted them when they were dirtied (the kernel's
    /// `Documentation/filesystems/proc.rst` names this as its inaccuracy).
    pub fn net_write_amp(&self) -> Option<f64> {
        let w = self.write_bytes?;
        let c = self.cancelled_write_bytes.unwrap_or(0);
        (self.payload_bytes > 0).then(|| w.saturating_sub(c) as f64 / self.payload_bytes as f64)
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

/// The log-size workload's operations, in table order: a get of one key, a durable commit of
/// three keys, each a whole process.
pub const LOGSIZE_OPS: [&str; 2] = ["get", "put3"];
/// The log-size workload's modes, in table order: the store closed by the process that set it
/// up, or held open by it while the one-shot processes run.
pub const LOGSIZE_MODES: [&str; 2] = ["closed", "held"];

/// Processes of the log-size workload on one store at one log size: one operation in one mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogsizeRow {
    /// `get` or `put3` ([`LOGSIZE_OPS`]).
    pub op: String,
    /// `closed` or `held` ([`LOGSIZE_MODES`]).
    pub mode: String,
    /// MiB of walstore log beyond the last checkpoint the store was set up with.
    pub size_mib: u64,
    /// Store id ([`Kind::id`]).
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
    /// Peak resident set (`VmHWM`) of the processes, the highest of them, KiB.
    pub peak_rss_kib: u64,
    /// The median process's peak resident set, KiB.
    pub peak_rss_p50_kib: u64,
    /// Anonymous resident memory (`RssAnon`: heap, the store's caches) after the operation,
    /// the store still open, the highest of the processes, KiB.
    #[serde(default)]
    pub open_rss_anon_kib: u64,
    /// File-backed resident memory (`RssFile`: mapped files, this binary's included) at the
    /// same point, the highest of the processes, KiB.
    #[serde(default)]
    pub open_rss_file_kib: u64,
}

impl LogsizeRow {
    /// The row of processes that took `ms` each (not empty), each with its peak resident set
    /// (KiB) and its memory after the operation with the store open (`mems`).
    pub fn from_runs(
        op: &str,
        mode: &str,
        size_mib: u64,
        engine: &str,
        ms: &[f64],
        mems: &[(u64, MemKib)],
    ) -> Option<LogsizeRow> {
        if ms.is_empty() {
            return None;
        }
        let mut sorted = ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut peaks: Vec<u64> = mems.iter().map(|m| m.0).collect();
        peaks.sort_unstable();
        let highest = |f: fn(&MemKib) -> u64| mems.iter().map(|m| f(&m.1)).max().unwrap_or(0);
        Some(LogsizeRow {
            op: op.into(),
            mode: mode.into(),
            size_mib,
            engine: engine.into(),
            runs: ms.len() as u64,
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            p50_ms: percentile(&sorted, 50),
            p90_ms: percentile(&sorted, 90),
            max_ms: sorted[sorted.len() - 1],
            peak_rss_kib: peaks.last().copied().unwrap_or(0),
            peak_rss_p50_kib: if peaks.is_empty() {
                0
            } else {
                percentile(&peaks, 50)
            },
            open_rss_anon_kib: highest(|m| m.rss_anon),
            open_rss_file_kib: highest(|m| m.rss_file),
        })
    }
}

/// The element at percentile `p` of `sorted` (not empty), as the one-shot rows take it: index
/// `len * p / 100`, the last at most.
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> T {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// One store of the log-size workload as its set-up process left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogsizeStore {
    /// `closed` or `held`.
    pub mode: String,
    /// MiB of walstore log asked for beyond the last checkpoint.
    pub size_mib: u64,
    /// Store id ([`Kind::id`]).
    pub engine: String,
    /// Keys loaded before the checkpoint.
    pub base_keys: u64,
    /// Transactions written after the checkpoint (the same ones in every store).
    pub txns: u64,
    /// Bytes of log beyond the last checkpoint when the writes were done: walstore's
    /// `StoreInfo::wal_bytes`, SQLite's WAL file length (redb: no log, 0).
    pub log_bytes: u64,
    /// Length of the log file when the one-shot processes started (after the set-up process
    /// closed the store, or while it held it open); `None`: no log file (SQLite removes its
    /// WAL when the last connection closes).
    pub log_file_at_ops: Option<u64>,
    /// Seconds the set-up took (load, checkpoint, log).
    pub setup_seconds: f64,
    /// Anything needed to read the row right.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The ratio required (at least), or with `at_most` the bound.
    pub required: f64,
    /// The ratio measured, if both figures exist.
    pub measured: Option<f64>,
    /// Whether the measured figure must be at most `required` (else at least).
    #[serde(default)]
    pub at_most: bool,
    /// Unit of `required` and `measured`; empty: a ratio (×).
    #[serde(default)]
    pub unit: String,
}

impl Target {
    /// "met", "MISSED" or "not measured".
    pub fn verdict(&self) -> &'static str {
        match self.measured {
            Some(m) if self.at_most && m <= self.required => "met",
            Some(m) if !self.at_most && m >= self.required => "met",
            Some(_) => "MISSED",
            None => "not measured",
        }
    }

    /// `v` in the target's unit.
    pub fn show(&self, v: f64) -> String {
        if self.unit.is_empty() {
            format!("{v:.2}×")
        } else {
            format!("{v:.2} {}", self.unit)
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

    /// The issue's targets, with the ratios this run measured: those of the workloads' figures,
    /// then the log-size workload's.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = self.figure_targets();
        t.extend(self.logsize_targets());
        t
    }

    /// The row of the log-size workload for `op`, `mode`, `size_mib` and `engine`.
    pub fn logsize_row(
        &self,
        op: &str,
        mode: &str,
        size_mib: u64,
        engine: Kind,
    ) -> Option<&LogsizeRow> {
        self.logsize.iter().find(|r| {
            r.op == op && r.mode == mode && r.size_mib == size_mib && r.engine == engine.id()
        })
    }

    /// The log sizes of the log-size workload's rows, ascending.
    pub fn logsize_sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self.logsize.iter().map(|r| r.size_mib).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// walstore's median time divided by SQLite FULL's for `op` in `mode` at `size_mib`.
    pub fn logsize_ratio(&self, op: &str, mode: &str, size_mib: u64) -> Option<f64> {
        let ours = self.logsize_row(op, mode, size_mib, Kind::Walstore)?.p50_ms;
        let theirs = self
            .logsize_row(op, mode, size_mib, Kind::SqliteFull)?
            .p50_ms;
        (theirs > 0.0).then_some(ours / theirs)
    }

    /// Issue 21's targets, per operation and mode that ran: walstore's median time at most
    /// SQLite FULL's at every log size (measured: the highest walstore / SQLite ratio of
    /// medians over the sizes; a size without both figures leaves it unmeasured), and
    /// walstore's peak RSS at the largest log size within 2 MiB of its peak at size 0.
    pub fn logsize_targets(&self) -> Vec<Target> {
        let sizes = self.logsize_sizes();
        let mut out = Vec::new();
        for mode in LOGSIZE_MODES {
            for op in LOGSIZE_OPS {
                if !self.logsize.iter().any(|r| r.op == op && r.mode == mode) {
                    continue;
                }
                let ratios: Option<Vec<f64>> = sizes
                    .iter()
                    .map(|&s| self.logsize_ratio(op, mode, s))
                    .collect();
                out.push(Target {
                    what: format!(
                        "log size, {op}, {mode}: walstore / SQLite FULL median ms, highest over \
                         the sizes"
                    ),
                    required: 1.0,
                    measured: ratios
                        .filter(|r| !r.is_empty())
                        .map(|r| r.into_iter().fold(f64::MIN, f64::max)),
                    at_most: true,
                    unit: String::new(),
                });
                let largest = sizes.last().copied().unwrap_or(0);
                let peak = |s: u64| {
                    self.logsize_row(op, mode, s, Kind::Walstore)
                        .map(|r| r.peak_rss_kib as f64 / 1024.0)
                };
                out.push(Target {
                    what: format!(
                        "log size, {op}, {mode}: walstore peak RSS at {largest} MiB of log − at 0"
                    ),
                    required: 2.0,
                    measured: (largest > 0)
                        .then(|| peak(largest).zip(peak(0)).map(|(a, b)| a - b))
                        .flatten(),
                    at_most: true,
                    unit: "MiB".into(),
                });
            }
        }
        out
    }

    /// The targets of the workloads' figures (a to e, open), with the ratios this run
    /// measured.
    fn figure_targets(&self) -> Vec<Target> {
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
                ..Target::default()
            },
            Target {
                what: format!("a: walstore / best durable peer ({a_best})"),
                required: 1.15,
                measured: a_ratio,
                ..Target::default()
            },
            Target {
                what: "b: walstore b / walstore a".into(),
                required: 1.6,
                measured: ws("b").zip(ws("a")).map(|(b, a)| b / a),
                ..Target::default()
            },
            Target {
                what: format!("b: walstore / best durable peer ({b_best})"),
                required: 2.0,
                measured: b_ratio,
                ..Target::default()
            },
            Target {
                what: format!("c: durable bulk load, walstore / fastest durable peer ({c_best})"),
                required: 2.0,
                measured: c_ratio,
                ..Target::default()
            },
            Target {
                what: "d: point reads, walstore / redb".into(),
                required: 2.0,
                measured: self.ratio("d", Kind::Redb),
                ..Target::default()
            },
            Target {
                what: "d right after the load, walstore / redb".into(),
                required: 1.5,
                measured: self.ratio("d-fresh", Kind::Redb),
                ..Target::default()
            },
            Target {
                what: "g: gets, a snapshot each, walstore / redb".into(),
                required: 1.5,
                measured: self.ratio("g", Kind::Redb),
                ..Target::default()
            },
            Target {
                what: "g right after the load, walstore / redb".into(),
                required: 1.5,
                measured: self.ratio("g-fresh", Kind::Redb),
                ..Target::default()
            },
            Target {
                what: "e: walstore / SQLite FULL".into(),
                required: 1.5,
                measured: self.ratio("e", Kind::SqliteFull),
                ..Target::default()
            },
            Target {
                what: "e: walstore / plain-files recipe (f)".into(),
                required: 8.0,
                measured: self.ratio("e", Kind::PlainFiles),
                ..Target::default()
            },
            Target {
                what: "open: WAL replay MiB/s / 400 MiB/s".into(),
                required: 1.0,
                measured: open_rate.map(|r| r / 400.0),
                ..Target::default()
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
    use super::svg::nice;
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
        let named = |what: &str| {
            t.iter()
                .find(|t| t.what.starts_with(what))
                .unwrap_or_else(|| panic!("no target {what:?}"))
        };
        assert_eq!(named("e: walstore / plain-files").measured, Some(10.0));
        assert_eq!(named("g: gets, a snapshot each").measured, Some(3.0));
        assert_eq!(named("g: gets, a snapshot each").verdict(), "met");
        assert_eq!(named("g right after the load").verdict(), "not measured");
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
            cancelled_write_bytes: Some(keys * 116),
            file_bytes: 5 << 20,
            alloc_bytes: 6 << 20,
            mem: MemKib {
                peak_rss: 1024,
                rss_anon: 512,
                rss_file: 307,
            },
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
        assert!(md.contains(
            "| 100000 | walstore | 200,000 | 0.0 / 0.0 / 0.0 | 3.00 / 2.00 | 5.0 (6.0) |"
        ));
        assert!(md.contains("| 100000 | walstore | 100,000 |"));
        assert!(
            md.contains("| 1.0 | 0.5 | 0.3 | 1.00 M | n/a |"),
            "peak, anon and file RSS"
        );
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
    fn logsize_rows_targets_and_tables() {
        // Medians and the 90th percentile as the one-shot rows take them.
        let ms: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let mems: Vec<(u64, MemKib)> = (0..10)
            .map(|i| {
                let open = MemKib {
                    peak_rss: 0,
                    rss_anon: 3000 + 10 * (i % 3),
                    rss_file: 2000 - 10 * i,
                };
                (7000 + 100 * i, open)
            })
            .collect();
        let r = LogsizeRow::from_runs("get", "closed", 0, "walstore", &ms, &mems)
            .expect("ten runs make a row");
        assert_eq!(
            (r.runs, r.p50_ms, r.p90_ms, r.max_ms),
            (10, 6.0, 10.0, 10.0)
        );
        assert_eq!(r.mean_ms, 5.5);
        assert_eq!((r.peak_rss_kib, r.peak_rss_p50_kib), (7900, 7500));
        assert_eq!((r.open_rss_anon_kib, r.open_rss_file_kib), (3020, 2000));
        assert!(LogsizeRow::from_runs("get", "closed", 0, "walstore", &[], &[]).is_none());
        assert_eq!(percentile(&[1, 2, 3], 99), 3);

        let row = |op: &str, size: u64, engine: Kind, p50: f64, rss_mib: u64| LogsizeRow {
            op: op.into(),
            mode: "closed".into(),
            size_mib: size,
            engine: engine.id().into(),
            runs: 50,
            p50_ms: p50,
            peak_rss_kib: rss_mib << 10,
            peak_rss_p50_kib: (rss_mib << 10) / 2,
            ..LogsizeRow::default()
        };
        let mut report = Report {
            logsize: vec![
                row("get", 0, Kind::Walstore, 4.0, 8),
                row("get", 0, Kind::SqliteFull, 5.0, 6),
                row("get", 48, Kind::Walstore, 6.0, 9),
                row("get", 48, Kind::SqliteFull, 5.0, 6),
                row("put3", 0, Kind::Walstore, 10.0, 8),
                row("put3", 0, Kind::SqliteFull, 20.0, 6),
                row("put3", 48, Kind::Walstore, 10.0, 40),
                row("put3", 48, Kind::SqliteFull, 20.0, 6),
                row("put3", 48, Kind::Redb, 30.0, 5),
            ],
            logsize_stores: vec![LogsizeStore {
                mode: "closed".into(),
                size_mib: 48,
                engine: "walstore".into(),
                base_keys: 100_000,
                txns: 32_000,
                log_bytes: 48 << 20,
                log_file_at_ops: Some(51 << 20),
                ..LogsizeStore::default()
            }],
            ..Report::default()
        };
        assert_eq!(report.logsize_sizes(), vec![0, 48]);
        assert_eq!(report.logsize_ratio("get", "closed", 48), Some(1.2));
        assert_eq!(report.logsize_ratio("put3", "held", 48), None);
        let t = report.logsize_targets();
        assert_eq!(t.len(), 4, "two targets per operation and mode that ran");
        assert_eq!(t[0].measured, Some(1.2));
        assert_eq!(t[0].verdict(), "MISSED");
        assert_eq!(t[1].measured, Some(1.0));
        assert_eq!(t[1].verdict(), "met");
        assert_eq!(t[2].measured, Some(0.5));
        assert_eq!(t[2].verdict(), "met");
        assert_eq!(t[3].measured, Some(32.0));
        assert_eq!(t[3].verdict(), "MISSED");
        assert!(
            report.targets().ends_with(&t),
            "the log-size targets after the others"
        );
        let md = report.markdown();
        assert!(md.contains("| closed | 48 | walstore | 100000 | 32000 | 50331648 | 53477376 |"));
        assert!(md.contains("| 48 | 6.00 | 0.00 | 9.0, p50 4.5 (0.0 / 0.0) | 5.00 | 0.00 | 6.0, p50 3.0 (0.0 / 0.0) | – | – | – | 1.20 |"));
        assert!(md.contains(
            "| 48 | 10.00 | 0.00 | 40.0, p50 20.0 (0.0 / 0.0) | 20.00 | 0.00 | 6.0, p50 3.0 (0.0 / 0.0) | 30.00 | 0.00 | 5.0, p50 2.5 (0.0 / 0.0) | 0.50 |"
        ));
        assert!(md.contains("| log size, get, closed: walstore peak RSS at 48 MiB of log − at 0 | ≤ 2.00 MiB | 1.00 MiB | met |"));
        assert!(!md.contains("Log size, get, held"));
        // A size without SQLite's figure leaves the time target unmeasured.
        report
            .logsize
            .retain(|r| !(r.size_mib == 48 && r.engine == "sqlite-full"));
        assert_eq!(report.logsize_targets()[0].verdict(), "not measured");
        // Saved reports from before the workload still load, their targets too.
        let old = r#"{"what":"x","required":1.0,"measured":2.0}"#;
        let back: Target = serde_json::from_str(old).expect("an old target loads");
        assert_eq!(back.verdict(), "met");
        assert_eq!(back.show(2.0), "2.00×");
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
