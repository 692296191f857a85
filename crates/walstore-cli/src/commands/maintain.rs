//! `checkpoint`, `info` and `backup`: the store's housekeeping, through the engine's API.

use super::transfer::approximate_keys;
use super::Context;
use crate::encoding::path_to_json;
use crate::exit::{Exit, Failure};
use crate::output::{report, Outcome};
use crate::progress::Progress;
use serde_json::{json, Value as Json};
use std::path::Path;
use std::time::Duration;

pub(crate) fn checkpoint(cx: &Context<'_>, store: &Path) -> Outcome {
    let store = cx.open_writable(store)?;
    // The engine reports no progress for a checkpoint: a spinner shows it is alive.
    let stats = std::thread::scope(|scope| {
        let worker = scope.spawn(|| store.checkpoint());
        let mut progress = Progress::new(None, "checkpointing");
        while !worker.is_finished() {
            progress.set(0);
            std::thread::sleep(Duration::from_millis(50));
        }
        worker.join()
    })
    .map_err(|_| {
        Failure::new(
            Exit::Io,
            "the checkpoint failed unexpectedly; run `walstore verify`, then retry",
        )
    })??;
    cx.close(store)?;
    report(
        cx.json,
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
        &json!({
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

pub(crate) fn info(cx: &Context<'_>, store: &Path) -> Outcome {
    let store = cx.open_readable(store)?;
    let i = store.info()?;
    let files: Vec<Json> = i
        .snapshot_files
        .iter()
        .map(|(name, bytes, entries)| json!({"name": name, "bytes": bytes, "entries": entries}))
        .collect();
    let snapshot_bytes: u64 = i.snapshot_files.iter().map(|f| f.1).sum();
    cx.close(store)?;
    report(
        cx.json,
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
        &json!({
            "path": path_to_json(&i.path),
            "generation": i.generation,
            "last_txn": i.last_txn,
            "checkpoint_txn": i.checkpoint_txn,
            "txns_since_checkpoint": i.txns_since_checkpoint,
            "wal_bytes": i.wal_bytes,
            "wal_file_bytes": i.wal_file_bytes,
            "snapshot_files": files,
            "snapshot_bytes": snapshot_bytes,
            "read_only": i.read_only,
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
