//! `checkpoint`, `compact`, `info` and `backup`: the store's housekeeping, through the engine's API.

use super::consumers::{feed_json, feed_text};
use super::transfer::approximate_keys;
use super::Context;
use crate::encoding::path_to_json;
use crate::exit::{Exit, Failure};
use crate::output::{report, Outcome};
use crate::progress::Progress;
use serde_json::{json, Value as Json};
use std::path::Path;
use std::time::{Duration, Instant};
use walstore::LockWait;

/// Runs `work` in another thread while a spinner labelled `label` shows it is alive (the
/// engine reports no progress for checkpoints and merges).
fn with_spinner<T: Send>(
    label: &'static str,
    what: &str,
    work: impl FnOnce() -> Result<T, Failure> + Send,
) -> Result<T, Failure> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        let mut progress = Progress::new(None, label);
        while !worker.is_finished() {
            progress.set(0);
            std::thread::sleep(Duration::from_millis(50));
        }
        worker.join()
    })
    .map_err(|_| {
        Failure::new(
            Exit::Io,
            format!("the {what} failed unexpectedly; run `walstore verify`, then retry"),
        )
    })?
}

pub(crate) fn checkpoint(cx: &Context<'_>, store: &Path) -> Outcome {
    let store = cx.open_writable(store)?;
    let stats = with_spinner("checkpointing", "checkpoint", || Ok(store.checkpoint()?))?;
    cx.close(store)?;
    report(
        cx.json,
        || {
            format!(
                "generation {}: {} keys changed, {} files written, {} kept, {} bytes, {} ms",
                stats.generation,
                stats.keys_changed,
                stats.files_written,
                stats.files_kept,
                stats.bytes_written,
                stats.micros / 1000
            )
        },
        &json!({
            "generation": stats.generation,
            "txn_id": stats.txn_id,
            "keys_changed": stats.keys_changed,
            "files_written": stats.files_written,
            "files_kept": stats.files_kept,
            "bytes_written": stats.bytes_written,
            "wal_bytes": stats.wal_bytes,
            "micros": stats.micros,
        }),
    )
}

/// "1 run", "2 runs".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Whether `--wait` allows another attempt after `waited`.
fn may_retry(wait: LockWait, waited: Duration) -> bool {
    match wait {
        LockWait::NoWait => false,
        LockWait::Forever => true,
        LockWait::Timeout(limit) => waited < limit,
    }
}

pub(crate) fn compact(cx: &Context<'_>, store: &Path) -> Outcome {
    // Without the background worker: it could take the merge lock and make `compact` a no-op.
    let store = cx.open_writable_with(store, |options| options.auto_checkpoint(false))?;
    let (merges, runs) = with_spinner("compacting", "compaction", || {
        let started = Instant::now();
        loop {
            let merges = store.compact()?;
            let runs = store.info()?.runs;
            // Nothing merged with runs left: another process holds the merge lock.
            if !merges.is_empty() || runs == 0 {
                return Ok((merges, runs));
            }
            if !may_retry(cx.lock_wait, started.elapsed()) {
                return Err(Failure::new(
                    Exit::Busy,
                    "another process is merging the store's runs: retry, or wait longer with --wait SECONDS",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })?;
    cx.close(store)?;
    let merges_json: Vec<Json> = merges
        .iter()
        .map(|m| {
            json!({
                "runs_merged": m.runs_merged,
                "files_read": m.files_read,
                "files_written": m.files_written,
                "bytes_read": m.bytes_read,
                "bytes_written": m.bytes_written,
                "bottom": m.bottom,
            })
        })
        .collect();
    report(
        cx.json,
        || {
            if merges.is_empty() {
                return "nothing to compact: the store has no runs".to_owned();
            }
            let mut lines: Vec<String> = merges
                .iter()
                .map(|m| {
                    format!(
                        "merged {} ({}, {} bytes) into {} ({} bytes)",
                        plural(m.runs_merged, "run"),
                        plural(m.files_read, "file"),
                        m.bytes_read,
                        plural(m.files_written, "file"),
                        m.bytes_written
                    )
                })
                .collect();
            lines.push(format!("runs: {runs}"));
            lines.join("\n")
        },
        &json!({"merges": merges_json, "runs": runs}),
    )
}

pub(crate) fn info(cx: &Context<'_>, store: &Path) -> Outcome {
    let store = cx.open_readable(store)?;
    let i = store.info()?;
    let files: Vec<Json> = i
        .snapshot_files
        .iter()
        .map(|(name, bytes, entries)| json!({"name": name, "bytes": bytes, "entries": entries}))
        .collect();
    let snapshot_bytes: u64 = i.snapshot_files.iter().map(|f| f.1).sum();
    let feed = store.feed_state()?;
    cx.close(store)?;
    report(
        cx.json,
        || {
            let mut text = format!(
                "store: {}\ngeneration: {}\nlast transaction: {}\ntransactions since the last checkpoint: {}\n\
                 WAL: {} bytes of records in a {} byte file\nlog index: {} entries, {} bytes\n\
                 runs: {}\nsnapshot files: {} ({} bytes)",
                i.path.display(),
                i.generation,
                i.last_txn,
                i.txns_since_checkpoint,
                i.wal_bytes,
                i.wal_file_bytes,
                i.log_index_entries,
                i.log_index_bytes,
                i.runs,
                i.snapshot_files.len(),
                snapshot_bytes
            );
            for (name, bytes, entries) in &i.snapshot_files {
                text.push_str(&format!("\n  {name}: {bytes} bytes, {entries} entries"));
            }
            text.push('\n');
            text.push_str(&feed_text(&feed));
            text
        },
        &json!({
            "path": path_to_json(&i.path),
            "generation": i.generation,
            "last_txn": i.last_txn,
            "checkpoint_txn": i.checkpoint_txn,
            "txns_since_checkpoint": i.txns_since_checkpoint,
            "wal_bytes": i.wal_bytes,
            "wal_file_bytes": i.wal_file_bytes,
            "log_index_entries": i.log_index_entries,
            "log_index_bytes": i.log_index_bytes,
            "runs": i.runs,
            "snapshot_files": files,
            "snapshot_bytes": snapshot_bytes,
            "read_only": i.read_only,
            "feed": feed_json(&feed),
        }),
    )
}

pub(crate) fn backup(cx: &Context<'_>, store: &Path, dest: &Path) -> Outcome {
    let store = cx.open_readable(store)?;
    let mut progress = Progress::new(Some(approximate_keys(&store)?), "backing up");
    let stats = store.backup(dest, |done| progress.set(done))?;
    drop(progress);
    cx.close(store)?;
    report(
        cx.json,
        || {
            format!(
                "backed up {} keys ({} bytes) as of transaction {} to {}",
                stats.keys,
                stats.bytes,
                stats.txn_id,
                dest.display()
            )
        },
        &json!({
            "dest": path_to_json(dest), "keys": stats.keys, "bytes": stats.bytes,
            "txn_id": stats.txn_id,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_retries_only_as_long_as_wait_allows() {
        let second = Duration::from_secs(1);
        assert!(!may_retry(LockWait::NoWait, Duration::ZERO));
        assert!(may_retry(LockWait::Forever, second * 1000));
        assert!(may_retry(LockWait::Timeout(second), second / 2));
        assert!(!may_retry(LockWait::Timeout(second), second));
        assert_eq!(plural(1, "run"), "1 run");
        assert_eq!(plural(0, "file"), "0 files");
    }
}
