//! What the end of the log means: a torn tail, or damage to bytes that had been synced
//! (RECOVERY.md L1-L6), decided by the commit markers of this generation found past the stop.

use super::probe::{search_records_of, Probe, ReadConfig};
use super::record::RecordBody;
use crate::storage::StorageFile;
use std::io;

/// What lies after the point where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailClass {
    /// `Some((offset, detail))` when bytes that had been synced are damaged.
    pub corruption: Option<(u64, String)>,
    /// End of the last byte that plausibly belongs to a record of this generation; the torn
    /// tail to clear before appending spans from the log's end to here.
    pub dirty_end: u64,
}

/// Decides whether the log's stop at `stop_offset` is a torn tail or corruption, by looking
/// for later intact commit markers of this generation (see the module documentation).
pub fn classify_tail(
    file: &dyn StorageFile,
    limit: u64,
    salt: u64,
    expected_txn: u64,
    stop_offset: u64,
    cfg: ReadConfig,
) -> io::Result<TailClass> {
    let mut dirty_end = stop_offset;
    let mut corruption = None;
    let limit = if cfg.faults.tail_search_one_chunk() {
        limit.min(stop_offset.saturating_add(cfg.chunk_bytes as u64))
    } else {
        limit
    };
    search_records_of(
        file,
        limit,
        salt,
        stop_offset + 1,
        cfg,
        |rec_start, found| {
            let (rec_end, marker) = match found {
                Probe::Record(rec) => {
                    let marker = match rec.body {
                        RecordBody::Commit(m) if rec.txn_id >= expected_txn => Some(m),
                        _ => None,
                    };
                    (Some(rec_start + rec.len_total as u64), marker)
                }
                Probe::Invalid { declared_end, .. } => (declared_end.filter(|e| *e <= limit), None),
                Probe::Short { .. } | Probe::Zero => (None, None),
            };
            dirty_end = dirty_end.max(rec_end.unwrap_or(0));
            if let Some(marker) = marker.filter(|m| m.synced_through > stop_offset) {
                corruption.get_or_insert_with(|| {
                    (
                        stop_offset,
                        format!(
                            "damaged log record followed by an intact commit at offset \
                         {rec_start} that proves offsets up to {} were durable",
                            marker.synced_through
                        ),
                    )
                });
            }
            true
        },
    )?;
    Ok(TailClass {
        corruption,
        dirty_end,
    })
}
