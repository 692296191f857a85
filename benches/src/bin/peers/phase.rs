//! The child: one phase, its figures printed as JSON on standard output.

use crate::logsize;
use crate::oneshot::oneshot;
use crate::scale::{scale_read, scale_write};
use crate::workloads::{
    bare_log, blobs, bulk_load, concurrent_commits, fill_wal, gets_per_snapshot, open_replay,
    point_reads, readers_during_writer, reads_after_load, single_thread_commits,
};
use std::path::Path;
use walstore_benches::data::Scale;
use walstore_benches::engines::Kind;
use walstore_benches::Result;

/// Runs phase `workload` of `engine` in `dir` (`n`: keys of a scale phase, the number of a
/// oneshot process, or what a log-size phase says) and prints its result.
pub(crate) fn run_phase(
    engine: &str,
    workload: &str,
    dir: &Path,
    quick: bool,
    n: u64,
) -> Result<()> {
    if workload == "oneshot" {
        // Prints nothing: the parent times the whole process.
        return oneshot(engine, dir, n);
    }
    if workload.starts_with("logsize-") {
        // Prints what its phase reports itself (set-up, or the process's memory).
        return logsize::run_child(engine, workload, dir, quick, n);
    }
    let kind = Kind::from_id(engine).ok_or_else(|| format!("unknown store {engine:?}"))?;
    let scale = if quick { Scale::QUICK } else { Scale::FULL };
    let json = match workload {
        "scale-load" => Some(serde_json::to_string(&scale_write(kind, dir, n, false)?)?),
        "scale-overwrite" => Some(serde_json::to_string(&scale_write(kind, dir, n, true)?)?),
        "scale-read" => Some(serde_json::to_string(&scale_read(kind, dir, n, &scale)?)?),
        _ => None,
    };
    if let Some(json) = json {
        println!("{json}");
        return Ok(());
    }
    let figures = match workload {
        "a" if kind == Kind::BareLog => vec![bare_log(dir, &scale)?],
        "a" => vec![single_thread_commits(kind, dir, &scale)?],
        "b" => vec![concurrent_commits(kind, dir, &scale)?],
        "c" => bulk_load(kind, dir, &scale)?,
        "d" => vec![point_reads(kind, dir, &scale)?],
        "g" => vec![gets_per_snapshot(kind, dir, &scale)?],
        "h" => vec![readers_during_writer(kind, dir, &scale)?],
        "fresh" => reads_after_load(kind, dir, &scale)?,
        "e" => vec![blobs(kind, dir, &scale)?],
        "open-fill" => {
            fill_wal(kind, dir, &scale)?;
            Vec::new()
        }
        "open" => vec![open_replay(kind, dir)?],
        other => return Err(format!("unknown workload {other:?}").into()),
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}
