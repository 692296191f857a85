//! `dump` and `verify`: read the store's files directly, without opening the store, so they
//! work on a store that no longer opens (and never run recovery or take a lock).

use super::Context;
use crate::encoding::{display, path_to_json, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{answer, print_json, say, write_out, Outcome};
use crate::progress::Progress;
use serde_json::{json, Value as Json};
use std::path::Path;
use walstore::inspect::{self, RecordInfo, TailVerdict, WalDump};
use walstore::storage::Storage;

/// File names inside a store directory (docs/FORMAT.md, "Files").
const MANIFEST_NAME: &str = "MANIFEST";
const WAL_NAME: &str = "wal";

/// Refuses a directory without a MANIFEST before `dump` looks for a WAL in it: a wrong path is
/// a usage error, not an I/O error. A store with a MANIFEST and no WAL is damaged (exit 4), as
/// opening it would say.
fn check_is_store(storage: &dyn Storage, dir: &Path) -> Result<(), Failure> {
    let exists = |name: &str| storage.exists(&dir.join(name)).unwrap_or(false);
    if !exists(MANIFEST_NAME) {
        return Err(Failure::usage(format!(
            "{} is not a walstore store: no {MANIFEST_NAME} (check the path)",
            dir.display()
        )));
    }
    if !exists(WAL_NAME) {
        return Err(Failure::new(
            Exit::Corruption,
            format!(
                "{} is missing: the store is damaged (run `walstore verify`; --salvage reads the snapshot files)",
                dir.join(WAL_NAME).display()
            ),
        ));
    }
    Ok(())
}

fn verdict_json(v: &TailVerdict) -> Json {
    match v {
        TailVerdict::Clean => json!({"kind": "clean"}),
        TailVerdict::TornTail { offset, detail } => {
            json!({"kind": "torn_tail", "offset": offset, "detail": detail})
        }
        TailVerdict::Corruption { offset, detail } => {
            json!({"kind": "corruption", "offset": offset, "detail": detail})
        }
    }
}

fn dump_json(d: &WalDump) -> Json {
    fn record_json(r: &RecordInfo) -> Json {
        let mut out = json!({
            "offset": r.offset, "kind": r.kind, "txn_id": r.txn_id, "len": r.len,
            "key": r.key.as_deref().map(to_json), "end": r.end.as_deref().map(to_json),
            "value_len": r.value_len,
            "synced_through": r.synced_through, "committed": r.committed,
        });
        if r.kind == "batch" {
            out["ops"] = r.ops.iter().map(record_json).collect();
        }
        out
    }
    let records: Vec<Json> = d.records.iter().map(record_json).collect();
    json!({
        "file": path_to_json(&d.path), "file_bytes": d.file_bytes,
        "generation": d.generation, "salt": d.salt, "base_txn": d.base_txn, "records": records,
        "committed_txns": d.committed_txns, "end": d.end, "stop": d.stop_reason,
        "verdict": verdict_json(&d.verdict),
    })
}

fn dump_text(d: &WalDump) -> String {
    let mut text = format!(
        "{}: generation {}, salt {:#018x}, first transaction {}\n",
        d.path.display(),
        d.generation,
        d.salt,
        d.base_txn.saturating_add(1)
    );
    for r in d
        .records
        .iter()
        .flat_map(|r| std::iter::once(r).chain(&r.ops))
    {
        let what = match (&r.key, r.value_len, r.synced_through) {
            (Some(k), _, _) if r.kind == "delete-range" => match &r.end {
                Some(end) => format!("from {} to {} (excluded)", display(k), display(end)),
                None => format!("from {} to the last key", display(k)),
            },
            (Some(k), Some(n), _) => format!("{} ({n} value bytes)", display(k)),
            (Some(k), None, _) => display(k),
            (None, _, Some(w)) if r.kind == "clean" => {
                format!("clean close, durable through {w}")
            }
            (None, _, Some(w)) => format!("commit, durable through {w}"),
            _ if r.kind == "batch" => format!("{} writes, {} bytes", r.ops.len(), r.len),
            _ => String::new(),
        };
        let mark = if r.committed { "" } else { "  [not committed]" };
        text.push_str(&format!(
            "{:>10}  txn {:<8} {:<7} {what}{mark}\n",
            r.offset, r.txn_id, r.kind
        ));
    }
    text.push_str(&format!(
        "{} committed transactions; the log ends at offset {}: {}\n",
        d.committed_txns, d.end, d.stop_reason
    ));
    text.push_str(&match &d.verdict {
        TailVerdict::Clean => "recovery: clean end, nothing to discard\n".to_string(),
        TailVerdict::TornTail { offset, detail } => {
            format!("recovery: torn tail from offset {offset} is discarded ({detail})\n")
        }
        TailVerdict::Corruption { offset, detail } => format!(
            "recovery: CORRUPTION at offset {offset}: {detail}; open fails, --salvage reads the prefix\n"
        ),
    });
    text
}

/// Prints the WAL; exits 0 whatever it finds (it is a report; `verify` is the check).
pub(crate) fn dump(cx: &Context<'_>, store: &Path) -> Outcome {
    check_is_store(cx.storage, store)?;
    let d = inspect::dump_wal(cx.storage, store)?;
    if cx.json {
        print_json(&answer(Exit::Ok, None, dump_json(&d)))?;
    } else {
        write_out(dump_text(&d).as_bytes())?;
    }
    Ok(Exit::Ok)
}

pub(crate) fn verify(cx: &Context<'_>, store: &Path) -> Outcome {
    let mut progress: Option<Progress> = None;
    let report = inspect::verify(cx.storage, store, |done, total| {
        progress
            .get_or_insert_with(|| Progress::new(Some(total), "verifying"))
            .set(done);
    })?;
    drop(progress);
    let damage = report.first_damage().map(|(file, problem)| {
        format!(
            "corruption in {} at offset {}: {} (open with --salvage to read what is intact)",
            store.join(&file.name).display(),
            problem.offset,
            problem.detail
        )
    });
    let exit = if damage.is_some() {
        Exit::Corruption
    } else {
        Exit::Ok
    };
    if cx.json {
        let files: Vec<Json> = report
            .files
            .iter()
            .map(|f| {
                json!({
                    "name": f.name, "bytes": f.bytes, "ok": f.problem.is_none(),
                    "problem": f.problem.as_ref().map(|p| json!({
                        "offset": p.offset, "detail": p.detail, "damage": p.is_damage,
                    })),
                })
            })
            .collect();
        let fields = json!({"files": files, "bytes_checked": report.bytes_checked});
        print_json(&answer(exit, damage.as_deref(), fields))?;
    } else {
        let mut text = String::new();
        for f in &report.files {
            text.push_str(&match &f.problem {
                None => format!("ok       {} ({} bytes)\n", f.name, f.bytes),
                Some(p) if p.is_damage => {
                    format!("DAMAGED  {} at offset {}: {}\n", f.name, p.offset, p.detail)
                }
                Some(p) => format!("note     {} at offset {}: {}\n", f.name, p.offset, p.detail),
            });
        }
        write_out(text.as_bytes())?;
    }
    if let Some(message) = &damage {
        say(message);
    }
    Ok(exit)
}
