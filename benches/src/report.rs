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
pub const WORKLOADS: [(&str, &str); 7] = [
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
        out.push_str(&self.headline_table());
        out.push_str(
            "\nCells: figure (walstore ×: walstore's figure / this one; above 1 walstore is \
             faster). \\* SQLite NORMAL in WAL mode does not sync each commit: not durable, \
             shown for reference.\n\n",
        );
        out.push_str(&self.targets_table());
        out.push('\n');
        out.push_str(&self.detail_table());
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
            ],
            failures: vec![],
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
        let svg = report.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 4);
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
