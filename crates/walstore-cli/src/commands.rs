//! One function per command. Each returns the exit code on success paths that are not plain
//! success (a missing key, a failed comparison) and a [`Failure`] for errors.

use crate::encoding::{display, from_json, to_json};
use crate::{Cli, Command, Exit, Failure, Progress};
use serde_json::{json, Value as Json};
use std::io::{BufRead, Write};
use std::path::Path;
use walstore::inspect::{self, TailVerdict};
use walstore::storage::FsStorage;
use walstore::{Options, Store};

type Outcome = Result<Exit, Failure>;

pub(crate) fn execute(cli: &Cli, base: Options) -> Outcome {
    let options = cli.options(base);
    match &cli.command {
        Command::Set { store, pairs } => set(cli, options, store, pairs),
        Command::Get { store, key } => get(cli, options, store, key),
        Command::Del { store, keys } => del(cli, options, store, keys),
        Command::Incr { store, key, by } => incr(cli, options, store, key, by.unwrap_or(1)),
        Command::Cas {
            store,
            key,
            expected,
            new,
        } => cas(cli, options, store, key, expected, new),
        Command::Scan { store, prefix } => scan(cli, options, store, prefix.as_deref()),
        Command::Txn { store } => txn(cli, options, store),
        Command::Export { store } => export(options, store),
        Command::Import { store } => import(cli, options, store),
        Command::Checkpoint { store } => checkpoint(cli, options, store),
        Command::Info { store } => info(cli, options, store),
        Command::Dump { store } => dump(cli, store),
        Command::Verify { store } => verify(cli, store),
        Command::Backup { store, dest } => backup(cli, options, store, dest),
    }
}

/// Opens for writing; refuses `--salvage` (which is read-only).
fn open_writable(cli: &Cli, options: Options, store: &Path) -> Result<Store, Failure> {
    if cli.salvage {
        return Err(Failure::usage(
            "--salvage opens the store read-only: it works with get, scan, export and info",
        ));
    }
    Ok(options.open(store)?)
}

/// Opens read-only: never creates, never modifies.
fn open_readable(options: Options, store: &Path) -> Result<Store, Failure> {
    Ok(options.read_only(true).open(store)?)
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

fn write_out(bytes: &[u8]) -> Result<(), Failure> {
    let mut o = out();
    o.write_all(bytes)
        .and_then(|()| o.flush())
        .map_err(|e| Failure::new(Exit::Io, format!("cannot write to stdout: {e}")))
}

fn print_json(value: &Json) -> Result<(), Failure> {
    write_out(format!("{value}\n").as_bytes())
}

/// Prints `text` (plus a newline), or the JSON object in `--json` mode.
fn report(cli: &Cli, text: impl FnOnce() -> String, value: Json) -> Outcome {
    if cli.json {
        print_json(&value)?;
    } else {
        let text = text();
        if !text.is_empty() {
            write_out(format!("{text}\n").as_bytes())?;
        }
    }
    Ok(Exit::Ok)
}

fn parse_pair(pair: &str) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| Failure::usage(format!("expected KEY=VALUE, got {pair:?}")))?;
    if key.is_empty() {
        return Err(Failure::usage(format!("empty key in {pair:?}")));
    }
    let value = match value.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| {
            Failure::usage(format!("cannot read the value of {key} from {path}: {e}"))
        })?,
        None => value.as_bytes().to_vec(),
    };
    Ok((key.as_bytes().to_vec(), value))
}

fn set(cli: &Cli, options: Options, store: &Path, pairs: &[String]) -> Outcome {
    let pairs = pairs
        .iter()
        .map(|p| parse_pair(p))
        .collect::<Result<Vec<_>, _>>()?;
    let store = open_writable(cli, options, store)?;
    store.update(|tx| {
        for (k, v) in &pairs {
            tx.put(k, v)?;
        }
        Ok::<_, walstore::Error>(())
    })?;
    report(cli, String::new, json!({"ok": true, "keys": pairs.len()}))
}

fn get(cli: &Cli, options: Options, store: &Path, key: &str) -> Outcome {
    let store = open_readable(options, store)?;
    let value = store.begin_read()?.get(key.as_bytes())?;
    match value {
        None => {
            if cli.json {
                print_json(&json!({"ok": false, "key": key, "found": false}))?;
            }
            eprintln!("walstore: key {key:?} not found");
            Ok(Exit::NotFound)
        }
        Some(v) if cli.json => {
            print_json(&json!({"ok": true, "key": key, "found": true, "value": to_json(&v)}))?;
            Ok(Exit::Ok)
        }
        Some(v) => {
            write_out(&v)?;
            Ok(Exit::Ok)
        }
    }
}

fn del(cli: &Cli, options: Options, store: &Path, keys: &[String]) -> Outcome {
    let store = open_writable(cli, options, store)?;
    let existed = store.update(|tx| {
        let mut existed = 0;
        for k in keys {
            if tx.get(k.as_bytes())?.is_some() {
                existed += 1;
            }
            tx.delete(k.as_bytes())?;
        }
        Ok::<_, walstore::Error>(existed)
    })?;
    report(cli, String::new, json!({"ok": true, "deleted": existed}))
}

fn incr(cli: &Cli, options: Options, store: &Path, key: &str, by: i64) -> Outcome {
    let store = open_writable(cli, options, store)?;
    let result = store.update(|tx| {
        let current = match tx.get(key.as_bytes())? {
            None => 0i64,
            Some(v) => match std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
            {
                Some(n) => n,
                None => {
                    return Ok(Err(Failure::usage(format!(
                        "the value of {key:?} is not a decimal integer: {}",
                        display(&v)
                    ))))
                }
            },
        };
        let Some(next) = current.checked_add(by) else {
            return Ok(Err(Failure::usage(format!(
                "{current} + {by} overflows a 64-bit integer"
            ))));
        };
        tx.put(key.as_bytes(), next.to_string().as_bytes())?;
        Ok::<_, walstore::Error>(Ok(next))
    })?;
    let next = result?;
    report(
        cli,
        || next.to_string(),
        json!({"ok": true, "key": key, "value": next}),
    )
}

fn cas(cli: &Cli, options: Options, store: &Path, key: &str, expected: &str, new: &str) -> Outcome {
    let store = open_writable(cli, options, store)?;
    let mut tx = store.begin_write()?;
    let current = tx.get(key.as_bytes())?;
    if current.as_deref() != Some(expected.as_bytes()) {
        tx.abort();
        if cli.json {
            let found = current.as_deref().map(to_json).unwrap_or(Json::Null);
            print_json(&json!({"ok": false, "key": key, "swapped": false, "current": found}))?;
        }
        eprintln!("walstore: {key:?} does not hold the expected value; nothing changed");
        return Ok(Exit::NotFound);
    }
    tx.put(key.as_bytes(), new.as_bytes())?;
    tx.commit()?;
    report(
        cli,
        String::new,
        json!({"ok": true, "key": key, "swapped": true}),
    )
}

fn scan(cli: &Cli, options: Options, store: &Path, prefix: Option<&str>) -> Outcome {
    let store = open_readable(options, store)?;
    let read = store.begin_read()?;
    let items = read.scan_prefix(prefix.unwrap_or("").as_bytes())?;
    let mut o = out();
    for item in items {
        let (k, v) = item?;
        let line = if cli.json {
            format!("{}\n", json!({"key": to_json(&k), "value": to_json(&v)}))
        } else {
            format!("{}\t{}\n", display(&k), display(&v))
        };
        o.write_all(line.as_bytes())
            .map_err(|e| Failure::new(Exit::Io, format!("cannot write to stdout: {e}")))?;
    }
    o.flush()
        .map_err(|e| Failure::new(Exit::Io, format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Ok)
}

/// One operation of `txn`'s input.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Expect(Vec<u8>, Option<Vec<u8>>),
}

fn parse_op(line_no: usize, line: &str) -> Result<Op, Failure> {
    let bad = |why: String| Failure::usage(format!("stdin line {line_no}: {why}"));
    let value: Json = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    let field = |name: &str| -> Result<Vec<u8>, Failure> {
        let v = value
            .get(name)
            .ok_or_else(|| bad(format!("missing \"{name}\"")))?;
        from_json(v).map_err(|e| bad(format!("\"{name}\": {e}")))
    };
    match value.get("op").and_then(Json::as_str) {
        Some("put") => Ok(Op::Put(field("key")?, field("value")?)),
        Some("delete") => Ok(Op::Delete(field("key")?)),
        Some("expect") => {
            let absent = value.get("absent").and_then(Json::as_bool).unwrap_or(false);
            let expected = if absent { None } else { Some(field("value")?) };
            Ok(Op::Expect(field("key")?, expected))
        }
        _ => Err(bad(
            "\"op\" must be \"put\", \"delete\" or \"expect\"".into()
        )),
    }
}

fn read_stdin_lines(
    mut each: impl FnMut(usize, &str) -> Result<(), Failure>,
) -> Result<(), Failure> {
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        if !line.trim().is_empty() {
            each(i + 1, &line)?;
        }
    }
    Ok(())
}

fn txn(cli: &Cli, options: Options, store: &Path) -> Outcome {
    let mut ops = Vec::new();
    read_stdin_lines(|n, line| {
        ops.push(parse_op(n, line)?);
        Ok(())
    })?;
    let store = open_writable(cli, options, store)?;
    let mut tx = store.begin_write()?;
    for op in &ops {
        match op {
            Op::Put(k, v) => tx.put(k, v)?,
            Op::Delete(k) => tx.delete(k)?,
            Op::Expect(k, expected) => {
                let current = tx.get(k)?;
                if current.as_deref() != expected.as_deref() {
                    tx.abort();
                    if cli.json {
                        print_json(&json!({"ok": false, "failed_guard": to_json(k)}))?;
                    }
                    eprintln!(
                        "walstore: guard on {} failed; no operation was applied",
                        display(k)
                    );
                    return Ok(Exit::NotFound);
                }
            }
        }
    }
    let applied = tx.len();
    tx.commit()?;
    report(
        cli,
        String::new,
        json!({"ok": true, "operations": ops.len(), "keys": applied}),
    )
}

/// Keys in the store, counting a key changed since the last checkpoint twice: enough for a
/// progress bar's length.
fn approximate_keys(store: &Store) -> Result<u64, Failure> {
    let info = store.info()?;
    Ok(info.memtable_keys as u64 + info.snapshot_files.iter().map(|f| f.2).sum::<u64>())
}

/// First line of an export: says what the lines are, so a reader can check.
const EXPORT_HEADER: &str = r#"{"format":"walstore-export","version":1}"#;

fn export(options: Options, store: &Path) -> Outcome {
    let store = open_readable(options, store)?;
    let read = store.begin_read()?;
    let keys = approximate_keys(&store)?;
    let mut progress = Progress::new(Some(keys), "exporting");
    let mut o = std::io::BufWriter::new(out());
    let io = |e: std::io::Error| Failure::new(Exit::Io, format!("cannot write to stdout: {e}"));
    writeln!(o, "{EXPORT_HEADER}").map_err(io)?;
    for item in read.range::<&[u8], _>(..)? {
        let (k, v) = item?;
        writeln!(o, "{}", json!({"key": to_json(&k), "value": to_json(&v)})).map_err(io)?;
        progress.inc(1);
    }
    o.flush().map_err(io)?;
    Ok(Exit::Ok)
}

fn import(cli: &Cli, options: Options, store: &Path) -> Outcome {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut progress = Progress::new(None, "reading");
    read_stdin_lines(|n, line| {
        let value: Json = serde_json::from_str(line)
            .map_err(|e| Failure::usage(format!("stdin line {n}: not JSON: {e}")))?;
        if value.get("format").is_some() {
            return match (value.get("format"), value.get("version")) {
                (Some(f), Some(v)) if f == "walstore-export" && v == 1 => Ok(()),
                _ => Err(Failure::usage(format!(
                    "stdin line {n}: not a walstore export version 1"
                ))),
            };
        }
        let field = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| format!("missing \"{name}\""))
                .and_then(from_json)
                .map_err(|e| Failure::usage(format!("stdin line {n}: \"{name}\": {e}")))
        };
        pairs.push((field("key")?, field("value")?));
        progress.inc(1);
        Ok(())
    })?;
    drop(progress);
    let store = open_writable(cli, options, store)?;
    let mut progress = Progress::new(Some(pairs.len() as u64), "importing");
    store.update(|tx| {
        for (k, v) in &pairs {
            tx.put(k, v)?;
            progress.inc(1);
        }
        Ok::<_, walstore::Error>(())
    })?;
    drop(progress);
    report(cli, String::new, json!({"ok": true, "keys": pairs.len()}))
}

fn checkpoint(cli: &Cli, options: Options, store: &Path) -> Outcome {
    let store = open_writable(cli, options, store)?;
    let stats = std::thread::scope(|scope| {
        let worker = scope.spawn(|| store.checkpoint());
        let mut progress = Progress::new(None, "checkpointing");
        while !worker.is_finished() {
            progress.set(0);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        worker.join()
    })
    .map_err(|_| Failure::new(Exit::Io, "the checkpoint thread panicked"))??;
    report(
        cli,
        || {
            format!(
                "generation {}: {} keys changed, {} files written, {} kept, {} removed, {} bytes, {} ms",
                stats.generation,
                stats.keys_changed,
                stats.files_written,
                stats.files_kept,
                stats.files_removed,
                stats.bytes_written,
                stats.micros / 1000
            )
        },
        json!({
            "ok": true,
            "generation": stats.generation,
            "txn_id": stats.txn_id,
            "keys_changed": stats.keys_changed,
            "files_written": stats.files_written,
            "files_kept": stats.files_kept,
            "files_removed": stats.files_removed,
            "bytes_written": stats.bytes_written,
            "wal_bytes": stats.wal_bytes,
            "micros": stats.micros,
        }),
    )
}

fn info(cli: &Cli, options: Options, store: &Path) -> Outcome {
    let store = open_readable(options, store)?;
    let i = store.info()?;
    let files: Vec<Json> = i
        .snapshot_files
        .iter()
        .map(|(name, bytes, entries)| json!({"name": name, "bytes": bytes, "entries": entries}))
        .collect();
    let snapshot_bytes: u64 = i.snapshot_files.iter().map(|f| f.1).sum();
    report(
        cli,
        || {
            let mut text = format!(
                "store: {}\ngeneration: {}\nlast transaction: {}\ntransactions since the last checkpoint: {}\n\
                 WAL: {} bytes of records in a {} byte file\nsnapshot files: {} ({} bytes)",
                i.path.display(),
                i.generation,
                i.last_txn,
                i.txns_since_checkpoint,
                i.wal_bytes,
                i.wal_file_bytes,
                i.snapshot_files.len(),
                snapshot_bytes
            );
            for (name, bytes, entries) in &i.snapshot_files {
                text.push_str(&format!("\n  {name}: {bytes} bytes, {entries} entries"));
            }
            text
        },
        json!({
            "ok": true,
            "path": i.path,
            "generation": i.generation,
            "last_txn": i.last_txn,
            "checkpoint_txn": i.checkpoint_txn,
            "txns_since_checkpoint": i.txns_since_checkpoint,
            "wal_bytes": i.wal_bytes,
            "wal_file_bytes": i.wal_file_bytes,
            "snapshot_files": files,
            "snapshot_bytes": snapshot_bytes,
        }),
    )
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

fn dump(cli: &Cli, store: &Path) -> Outcome {
    let d = inspect::dump_wal(&FsStorage, store)?;
    if cli.json {
        let records: Vec<Json> = d
            .records
            .iter()
            .map(|r| {
                json!({
                    "offset": r.offset, "kind": r.kind, "txn_id": r.txn_id, "len": r.len,
                    "key": r.key.as_deref().map(to_json), "value_len": r.value_len,
                    "synced_through": r.synced_through, "committed": r.committed,
                })
            })
            .collect();
        print_json(&json!({
            "ok": true, "file": d.path, "file_bytes": d.file_bytes, "generation": d.generation,
            "salt": d.salt, "base_txn": d.base_txn, "records": records,
            "committed_txns": d.committed_txns, "end": d.end, "stop": d.stop_reason,
            "verdict": verdict_json(&d.verdict),
        }))?;
        return Ok(Exit::Ok);
    }
    let mut text = format!(
        "{}: generation {}, salt {:#018x}, first transaction {}\n",
        d.path.display(),
        d.generation,
        d.salt,
        d.base_txn + 1
    );
    for r in &d.records {
        let what = match (&r.key, r.value_len, r.synced_through) {
            (Some(k), Some(n), _) => format!("{} ({n} value bytes)", display(k)),
            (Some(k), None, _) => display(k),
            (None, _, Some(w)) => format!("commit, durable through {w}"),
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
        TailVerdict::Clean => "recovery: clean end, nothing to discard".to_string(),
        TailVerdict::TornTail { offset, detail } => {
            format!("recovery: torn tail from offset {offset} is discarded ({detail})")
        }
        TailVerdict::Corruption { offset, detail } => {
            format!("recovery: CORRUPTION at offset {offset}: {detail}; open fails, --salvage reads the prefix")
        }
    });
    write_out(format!("{text}\n").as_bytes())?;
    Ok(Exit::Ok)
}

fn verify(cli: &Cli, store: &Path) -> Outcome {
    let mut progress: Option<Progress> = None;
    let report = inspect::verify(&FsStorage, store, |done, total| {
        progress
            .get_or_insert_with(|| Progress::new(Some(total), "verifying"))
            .set(done);
    })?;
    drop(progress);
    let damage = report
        .first_damage()
        .map(|(f, p)| (f.name.clone(), p.offset, p.detail.clone()));
    if cli.json {
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
        print_json(&json!({
            "ok": damage.is_none(), "files": files, "bytes_checked": report.bytes_checked,
        }))?;
    } else {
        let mut text = String::new();
        for f in &report.files {
            match &f.problem {
                None => text.push_str(&format!("ok       {} ({} bytes)\n", f.name, f.bytes)),
                Some(p) if p.is_damage => text.push_str(&format!(
                    "DAMAGED  {} at offset {}: {}\n",
                    f.name, p.offset, p.detail
                )),
                Some(p) => text.push_str(&format!(
                    "note     {} at offset {}: {}\n",
                    f.name, p.offset, p.detail
                )),
            }
        }
        write_out(text.as_bytes())?;
    }
    match damage {
        None => Ok(Exit::Ok),
        Some((name, offset, detail)) => {
            eprintln!(
                "walstore: corruption in {} at offset {offset}: {detail} (open with --salvage to read what is intact)",
                store.join(name).display()
            );
            Ok(Exit::Corruption)
        }
    }
}

fn backup(cli: &Cli, options: Options, store: &Path, dest: &Path) -> Outcome {
    let store = open_readable(options, store)?;
    let keys = approximate_keys(&store)?;
    let mut progress = Progress::new(Some(keys), "backing up");
    let stats = store.backup(dest, |done| progress.set(done))?;
    drop(progress);
    report(
        cli,
        || {
            format!(
                "backed up {} keys ({} bytes) as of transaction {} to {}",
                stats.keys,
                stats.bytes,
                stats.txn_id,
                dest.display()
            )
        },
        json!({"ok": true, "dest": dest, "keys": stats.keys, "bytes": stats.bytes, "txn_id": stats.txn_id}),
    )
}
