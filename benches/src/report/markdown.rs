//! The report as markdown: the headline table of ratios, the targets, the scale and one-shot
//! tables, and the detail of every figure.

use super::{
    engine_label, human, mib, LogsizeStore, Report, Target, WritePhase, LOGSIZE_MODES, LOGSIZE_OPS,
    WORKLOADS,
};
use crate::engines::Kind;
use std::fmt::Write as _;

impl Report {
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
        if !self.logsize.is_empty() || !self.logsize_stores.is_empty() {
            out.push('\n');
            out.push_str(&self.logsize_tables());
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

    /// The targets of the workloads' figures with verdicts.
    pub fn targets_table(&self) -> String {
        render_targets(&self.figure_targets())
    }

    /// The scale workload: the load and the reads after it, then the overwrite phase.
    pub fn scale_tables(&self) -> String {
        let mut out = String::from(
            "Scale, load: N random keys (16 B) with 100 B values into a fresh store, durable \
             txns of 10,000; then point reads of random existing keys in a fresh process, one \
             read snapshot for all the gets. Write amp. = `write_bytes` of `/proc/self/io` \
             (open to close of the phase's process) / bytes of keys and values committed, and \
             after the slash the same net of `cancelled_write_bytes` (dirty pages of files the \
             process truncated or deleted before the kernel wrote them back: they never reach \
             storage); size = \
             sum of file lengths (allocated blocks) after the close. Memory of the loading process: \
             its peak resident set (`VmHWM`), and at the end of the load (after the close) its \
             anonymous (`RssAnon`: heap, caches) and file-backed (`RssFile`: mapped files) \
             resident memory. Reopen writes: what the reading process wrote (work a store does \
             on open).\n\n\
             | keys | store | load keys/s | commit p50 / p99 / max ms | write amp. / net | size MiB (alloc.) | close s | peak RSS MiB | anon RSS MiB at end | file RSS MiB at end | gets/s | reopen writes MiB |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let amp = |p: &WritePhase| match (p.write_amp(), p.net_write_amp()) {
            (Some(a), Some(n)) => format!("{a:.2} / {n:.2}"),
            _ => "n/a".to_string(),
        };
        let lat = |p: &WritePhase| format!("{:.1} / {:.1} / {:.1}", p.p50_ms, p.p99_ms, p.max_ms);
        let size = |p: &WritePhase| format!("{:.1} ({:.1})", mib(p.file_bytes), mib(p.alloc_bytes));
        let mem = |p: &WritePhase| {
            format!(
                "{:.1} | {:.1} | {:.1}",
                p.mem.peak_rss as f64 / 1024.0,
                p.mem.rss_anon as f64 / 1024.0,
                p.mem.rss_file as f64 / 1024.0
            )
        };
        for r in &self.scaling {
            let label = engine_label(&r.engine);
            let Some(l) = &r.load else {
                let _ = writeln!(out, "| {} | {label} | failed | | | | | | | | | |", r.size);
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
                "| {} | {label} | {} | {} | {} | {} | {:.2} | {} | {gets} | {reopen} |",
                r.size,
                human(l.keys_per_s()),
                lat(l),
                amp(l),
                size(l),
                l.close_seconds,
                mem(l),
            );
        }
        out.push_str(
            "\nScale, overwrite: 10% of the keys (distinct, random order) given new 100 B \
             values, durable txns of 1,000, in a fresh process on the loaded store; same \
             measures.\n\n\
             | keys | store | overwrite keys/s | commit p50 / p99 / max ms | write amp. / net | size MiB (alloc.) | close s | peak RSS MiB | anon RSS MiB at end | file RSS MiB at end |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.scaling {
            let Some(o) = &r.overwrite else { continue };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                r.size,
                engine_label(&r.engine),
                human(o.keys_per_s()),
                lat(o),
                amp(o),
                size(o),
                o.close_seconds,
                mem(o),
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

    /// The log-size workload: the stores as set up, then per operation and mode a table of
    /// sizes against stores, then its targets.
    pub fn logsize_tables(&self) -> String {
        let mut out = String::from(
            "Log size: per size, a store of the base keys (16 B keys, 100 B values; walstore and \
             SQLite then checkpointed), then that many MiB of walstore log beyond the checkpoint \
             in transactions of 10 keys (5 overwrites of base keys, 5 new keys); the same \
             transactions into SQLite FULL (`wal_autocheckpoint=0` while writing) and redb. \
             \"closed\": the set-up process closed the store and exited; \"held\": it keeps \
             the store open while the one-shot processes run. Log bytes: walstore's \
             `wal_bytes` beyond the checkpoint, SQLite's WAL file length, when the writes were \
             done; at the one-shots: the log file's length when they started (none: no file). \
             redb locks its file to one process, so it has no held mode. The one-shot processes \
             open a store as the one-shot workload does (SQLite: one connection with the default \
             `wal_autocheckpoint`, so in held mode the first put3 process checkpoints the WAL; \
             the gets run before the put3s).\n\n\
             | mode | log MiB | store | base keys | txns | log bytes | log file at the one-shots | set-up s | note |\n\
             |---|---:|---|---:|---:|---:|---:|---:|---|\n",
        );
        for s in &self.logsize_stores {
            let LogsizeStore {
                mode,
                size_mib,
                base_keys,
                txns,
                log_bytes,
                log_file_at_ops,
                setup_seconds,
                note,
                ..
            } = s;
            let at_ops = log_file_at_ops.map_or("none".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "| {mode} | {size_mib} | {} | {base_keys} | {txns} | {log_bytes} | {at_ops} | \
                 {setup_seconds:.1} | {note} |",
                engine_label(&s.engine),
            );
        }
        let engines: Vec<Kind> = [Kind::Walstore, Kind::SqliteFull, Kind::Redb]
            .into_iter()
            .filter(|k| self.logsize.iter().any(|r| r.engine == k.id()))
            .collect();
        for mode in LOGSIZE_MODES {
            for op in LOGSIZE_OPS {
                if !self.logsize.iter().any(|r| r.op == op && r.mode == mode) {
                    continue;
                }
                let what = if op == "get" {
                    "a fresh process opens the store, reads one key written in the log (at 0 MiB: \
                     a base key), checks its value and exits"
                } else {
                    "a fresh process opens the store, commits 3 new keys durably in one \
                     transaction and exits"
                };
                let _ = write!(
                    out,
                    "\nLog size, {op}, {mode}: {what}. ms = the process's wall time as its parent \
                     sees it (median, 90th percentile); RSS = the highest peak resident set \
                     (`VmHWM`) of the processes, after \"p50\" their median, and in brackets the \
                     highest anonymous / \
                     file-backed resident memory (`RssAnon` / `RssFile`, this binary's pages \
                     included) after the operation, the store still open.\n\n| log MiB |"
                );
                for k in &engines {
                    let l = k.label();
                    let _ = write!(
                        out,
                        " {l} ms p50 | {l} p90 | {l} peak RSS MiB (anon / file) |"
                    );
                }
                out.push_str(" walstore / SQLite (p50) |\n|---:|");
                for _ in &engines {
                    out.push_str("---:|---:|---:|");
                }
                out.push_str("---:|\n");
                for size in self.logsize_sizes() {
                    let _ = write!(out, "| {size} |");
                    for k in &engines {
                        match self.logsize_row(op, mode, size, *k) {
                            Some(r) => {
                                let _ = write!(
                                    out,
                                    " {:.2} | {:.2} | {:.1}, p50 {:.1} ({:.1} / {:.1}) |",
                                    r.p50_ms,
                                    r.p90_ms,
                                    r.peak_rss_kib as f64 / 1024.0,
                                    r.peak_rss_p50_kib as f64 / 1024.0,
                                    r.open_rss_anon_kib as f64 / 1024.0,
                                    r.open_rss_file_kib as f64 / 1024.0,
                                );
                            }
                            None => out.push_str(" – | – | – |"),
                        }
                    }
                    let ratio = self
                        .logsize_ratio(op, mode, size)
                        .map_or("–".to_string(), |r| format!("{r:.2}"));
                    let _ = writeln!(out, " {ratio} |");
                }
            }
        }
        let targets = self.logsize_targets();
        if !targets.is_empty() {
            out.push_str("\nTargets of issue 21 (in the benchmark, not as timed tests):\n\n");
            out.push_str(&render_targets(&targets));
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
}

/// `targets` with verdicts, as a table.
fn render_targets(targets: &[Target]) -> String {
    let mut out = String::from("| target | required | measured | verdict |\n|---|---:|---:|---|\n");
    for t in targets {
        let measured = t.measured.map_or_else(|| "–".to_string(), |m| t.show(m));
        let bound = if t.at_most { "≤ " } else { "" };
        let _ = writeln!(
            out,
            "| {} | {bound}{} | {} | {} |",
            t.what,
            t.show(t.required),
            measured,
            t.verdict()
        );
    }
    out
}
