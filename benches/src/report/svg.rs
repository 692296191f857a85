//! The report as SVG: a bar chart of walstore's ratio to each other store per workload, and
//! the scale workload's line charts against store size.

use super::{engine_label, human, Report, ScaleRow, WritePhase, WORKLOADS};
use crate::engines::Kind;
use std::fmt::Write as _;

/// Bar width, gap between groups, left margin, top margin and plot height of the ratio chart.
const BAR_W: f64 = 16.0;
const GAP: f64 = 24.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const PLOT_H: f64 = 300.0;

/// One workload's bars: walstore's ratio to each peer that has a figure.
type Group<'a> = (&'a str, Vec<(Kind, f64)>);

/// The ratio chart's geometry: its groups, their widths and the log-scale bounds.
struct RatioChart<'a> {
    groups: Vec<Group<'a>>,
    group_w: Vec<f64>,
    plot_w: f64,
    lo: f64,
    hi: f64,
}

impl RatioChart<'_> {
    /// The y coordinate of ratio `r`.
    fn y(&self, r: f64) -> f64 {
        TOP + PLOT_H * (self.hi - r.log10()) / (self.hi - self.lo)
    }

    /// Grid lines at 1, 2, 5 × 10^n; the line at 1× (parity) in black.
    fn grid(&self, s: &mut String) {
        let mut decade = self.lo.floor() as i32;
        while f64::from(decade) <= self.hi {
            for m in [1.0, 2.0, 5.0] {
                let r = m * 10f64.powi(decade);
                if r.log10() < self.lo - 1e-9 || r.log10() > self.hi + 1e-9 {
                    continue;
                }
                let yy = self.y(r);
                let (stroke, w) = if (r - 1.0).abs() < 1e-9 {
                    ("#000", 1.5)
                } else {
                    ("#ddd", 1.0)
                };
                let _ = writeln!(
                    s,
                    r#"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{stroke}" stroke-width="{w}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}×</text>"#,
                    LEFT + self.plot_w,
                    LEFT - 6.0,
                    yy + 4.0,
                    trim(r)
                );
            }
            decade += 1;
        }
    }

    /// Every group's bars, from the 1× line up or down, and the group's label.
    fn bars(&self, s: &mut String) {
        let mut x = LEFT + GAP;
        for ((id, bars), gw) in self.groups.iter().zip(&self.group_w) {
            for (i, (k, r)) in bars.iter().enumerate() {
                let bx = x + i as f64 * BAR_W;
                let (y0, y1) = (self.y(1.0), self.y(*r));
                let (yt, h) = if y1 < y0 {
                    (y1, y0 - y1)
                } else {
                    (y0, y1 - y0)
                };
                let _ = writeln!(
                    s,
                    r#"<rect x="{bx:.1}" y="{yt:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.2}×</title></rect>"#,
                    BAR_W - 2.0,
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
                x + (gw - GAP) / 2.0,
                TOP + PLOT_H + 20.0
            );
            x += gw;
        }
    }

    /// The colour of each peer, right of the plot.
    fn legend(&self, s: &mut String, peers: &[Kind]) {
        for (i, k) in peers.iter().enumerate() {
            let ly = TOP + 10.0 + i as f64 * 18.0;
            let lx = LEFT + self.plot_w + 16.0;
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
    }
}

/// Panel width, panel height and margin of the scale charts (the top margin is `TOP`).
const PANEL_W: f64 = 260.0;
const PANEL_H: f64 = 180.0;
const MARGIN: f64 = 60.0;

/// What one scale panel plots of a row.
type Pick = fn(&ScaleRow) -> Option<f64>;

/// The scale charts' panels: title, and the figure each plots.
const PANELS: [(&str, Pick); 5] = [
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

/// One scale panel's geometry: its left edge and the log-scale bounds of both axes.
struct Panel {
    x0: f64,
    xlo: f64,
    xhi: f64,
    ylo: f64,
    yhi: f64,
}

impl Panel {
    fn px(&self, n: f64) -> f64 {
        self.x0 + PANEL_W * (n.log10() - self.xlo) / (self.xhi - self.xlo)
    }

    fn py(&self, v: f64) -> f64 {
        TOP + PANEL_H * (self.yhi - v.log10()) / (self.yhi - self.ylo)
    }
}

impl Report {
    /// A bar chart of walstore's ratio to each other store per workload (log scale; the
    /// line at 1× is parity).
    pub fn svg(&self) -> String {
        let peers: Vec<Kind> = self
            .columns()
            .into_iter()
            .filter(|k| *k != Kind::Walstore)
            .collect();
        let chart = self.ratio_chart(&peers);
        let width = LEFT + chart.plot_w + 170.0;
        let height = TOP + PLOT_H + 60.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="14">walstore × other store (walstore's figure / theirs; log scale, above 1 = walstore faster)</text>"#
        );
        chart.grid(&mut s);
        chart.bars(&mut s);
        chart.legend(&mut s, &peers);
        s.push_str("</svg>\n");
        s
    }

    /// The ratio chart's groups (workloads with at least one ratio) and geometry.
    fn ratio_chart(&self, peers: &[Kind]) -> RatioChart<'static> {
        let groups: Vec<Group<'static>> = WORKLOADS
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
        let group_w: Vec<f64> = groups
            .iter()
            .map(|(_, b)| b.len() as f64 * BAR_W + GAP)
            .collect();
        let plot_w: f64 = group_w.iter().sum::<f64>() + GAP;
        RatioChart {
            groups,
            group_w,
            plot_w,
            lo,
            hi,
        }
    }

    /// The scale workload as small line charts against store size (both axes log scale):
    /// load keys/s, overwrite keys/s, gets/s, and write amplification of each phase.
    pub fn scale_svg(&self) -> String {
        let mut engines: Vec<&str> = Vec::new();
        for r in &self.scaling {
            if !engines.contains(&r.engine.as_str()) {
                engines.push(&r.engine);
            }
        }
        let mut sizes: Vec<u64> = self.scaling.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let width = MARGIN + PANELS.len() as f64 * (PANEL_W + MARGIN) + 120.0;
        let height = TOP + PANEL_H + 70.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{MARGIN}" y="20" font-size="14">Scale workload against store size (keys; log scales)</text>"#
        );
        let (xlo, xhi) = match (sizes.first(), sizes.last()) {
            (Some(a), Some(b)) if b > a => ((*a as f64).log10(), (*b as f64).log10()),
            (Some(a), _) => ((*a as f64).log10() - 0.5, (*a as f64).log10() + 0.5),
            _ => (0.0, 1.0),
        };
        for (i, (title, pick)) in PANELS.iter().enumerate() {
            let x0 = MARGIN + i as f64 * (PANEL_W + MARGIN);
            self.scale_panel(&mut s, (x0, xlo, xhi), title, *pick, &engines, &sizes);
        }
        for (i, id) in engines.iter().enumerate() {
            let lx = MARGIN + PANELS.len() as f64 * (PANEL_W + MARGIN) - MARGIN / 2.0;
            let ly = TOP + 10.0 + i as f64 * 18.0;
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

    /// One scale panel at `x0` (sizes from `xlo` to `xhi`, log10): its frame and title, its
    /// axis labels, and a line per store.
    fn scale_panel(
        &self,
        s: &mut String,
        (x0, xlo, xhi): (f64, f64, f64),
        title: &str,
        pick: Pick,
        engines: &[&str],
        sizes: &[u64],
    ) {
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
        let panel = Panel {
            x0,
            xlo,
            xhi,
            ylo,
            yhi,
        };
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{title}</text>"##,
            x0 + PANEL_W / 2.0,
            TOP - 6.0
        );
        for (v, anchor) in [(lo, ylo), (hi, yhi)] {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 4.0,
                TOP + PANEL_H * (yhi - anchor) / (yhi - ylo) + 4.0,
                human(v)
            );
        }
        for n in sizes {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                panel.px(*n as f64),
                TOP + PANEL_H + 14.0,
                human(*n as f64)
            );
        }
        for id in engines {
            self.scale_line(s, &panel, pick, id);
        }
    }

    /// Store `id`'s line and points in one scale panel.
    fn scale_line(&self, s: &mut String, panel: &Panel, pick: Pick, id: &str) {
        let colour = Kind::from_id(id).map_or("#000", color);
        let points: Vec<(f64, f64)> = self
            .scaling
            .iter()
            .filter(|r| r.engine == id)
            .filter_map(|r| pick(r).filter(|v| *v > 0.0).map(|v| (r.size as f64, v)))
            .map(|(n, v)| (panel.px(n), panel.py(v)))
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
pub(super) fn nice(r: f64, up: bool) -> f64 {
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
