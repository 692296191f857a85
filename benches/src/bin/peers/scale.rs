//! The scale workload: per store size, a fresh store loaded, read and 10% overwritten, each
//! phase in a child process that also reports what it wrote to storage.

use crate::measure::timed_commit;
use crate::spawn::child;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use walstore_benches::data::{self, space, Positions, Scale, KEY_LEN, VALUE_LEN};
use walstore_benches::engines::{self, Kind};
use walstore_benches::mem;
use walstore_benches::report::{Failure, ReadPhase, Report, ScaleRow, WritePhase};
use walstore_benches::sysio;
use walstore_benches::Result;

// ---------------------------------------------------------------------------------------------
// The parent.

/// The scale workload: per size and store, a fresh store loaded, read and 10% overwritten,
/// each phase in a child process.
pub(crate) fn run_scale(
    exe: &Path,
    base: &Path,
    kinds: &[Kind],
    sizes: &[u64],
    quick: bool,
    report: &mut Report,
) {
    let stores = [Kind::Walstore, Kind::SqliteFull, Kind::Redb, Kind::Fjall];
    for &n in sizes {
        for kind in stores.into_iter().filter(|k| kinds.contains(k)) {
            let dir = base.join(format!("scale-{}-{n}", kind.id()));
            let t = Instant::now();
            eprint!("  scale {:<14} {n} keys: ", kind.id());
            let _ = std::io::stderr().flush();
            let mut row = ScaleRow {
                size: n,
                engine: kind.id().into(),
                ..ScaleRow::default()
            };
            let mut phases = || -> Result<()> {
                let load: WritePhase = child(exe, kind.id(), "scale-load", &dir, quick, n)?;
                eprint!(
                    "load {} keys/s  ",
                    walstore_benches::report::human(load.keys_per_s())
                );
                row.load = Some(load);
                let reads: ReadPhase = child(exe, kind.id(), "scale-read", &dir, quick, n)?;
                eprint!(
                    "{} gets/s  ",
                    walstore_benches::report::human(reads.gets as f64 / reads.seconds.max(1e-9))
                );
                row.reads = Some(reads);
                let over: WritePhase = child(exe, kind.id(), "scale-overwrite", &dir, quick, n)?;
                eprint!(
                    "overwrite {} keys/s  ",
                    walstore_benches::report::human(over.keys_per_s())
                );
                row.overwrite = Some(over);
                Ok(())
            };
            if let Err(e) = phases() {
                eprint!("FAILED: {e}");
                report.failures.push(Failure {
                    workload: "scale".into(),
                    engine: kind.id().into(),
                    error: format!("{n} keys: {e}"),
                });
            }
            eprintln!("({:.1} s)", t.elapsed().as_secs_f64());
            report.scaling.push(row);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The children.

/// One write phase of the scale workload: the bulk load of keys `0..n` in durable txns of
/// 10,000 into a fresh store, or (`overwrite`) new values for 10% of them, distinct keys in
/// random order, in durable txns of 1,000. Bytes written are counted from before the open to
/// after the close, so work a store defers to its close (or to a background thread that the
/// close waits for) counts in the phase that caused it.
pub(crate) fn scale_write(kind: Kind, dir: &Path, n: u64, overwrite: bool) -> Result<WritePhase> {
    if n == 0 {
        return Err("the scale phases need --n (keys in the store) above 0".into());
    }
    let io_before = sysio::io_counters();
    let t = Instant::now();
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let open_seconds = t.elapsed().as_secs_f64();
    let (count, batch) = if overwrite {
        ((n / 10).max(1), data::SCALE_OVERWRITE_TXN)
    } else {
        (n, data::SCALE_LOAD_TXN)
    };
    let (committing, each) = commit_batches(h.as_mut(), n, count, batch as usize, overwrite)?;
    drop(h);
    let t = Instant::now();
    drop(engine);
    let close_seconds = t.elapsed().as_secs_f64();
    let io_after = sysio::io_counters();
    let (file_bytes, alloc_bytes) = sysio::dir_usage(dir)?;
    let (p50_ms, p99_ms, max_ms) = sysio::latency_ms(&each);
    let io = io_before.zip(io_after);
    Ok(WritePhase {
        keys: count,
        txn_keys: batch,
        commit_seconds: committing.as_secs_f64(),
        open_seconds,
        close_seconds,
        p50_ms,
        p99_ms,
        max_ms,
        payload_bytes: count * (KEY_LEN + VALUE_LEN) as u64,
        write_bytes: io.map(|(a, b)| b.write_bytes.saturating_sub(a.write_bytes)),
        cancelled_write_bytes: io.map(|(a, b)| {
            b.cancelled_write_bytes
                .saturating_sub(a.cancelled_write_bytes)
        }),
        file_bytes,
        alloc_bytes,
        mem: mem::current(),
    })
}

/// The commits of one write phase: `count` keys in durable transactions of `batch`, the
/// load's keys `0..count` or (`overwrite`) new values for distinct random keys of the `n`.
/// Returns the time spent committing and each commit's latency; making up the data is not
/// timed.
fn commit_batches(
    h: &mut dyn engines::Handle,
    n: u64,
    count: u64,
    batch: usize,
    overwrite: bool,
) -> Result<(Duration, Vec<Duration>)> {
    let mut keys = vec![[0u8; KEY_LEN]; batch];
    let mut values = vec![[0u8; VALUE_LEN]; batch];
    let mut each = Vec::with_capacity(count.div_ceil(batch as u64) as usize);
    let mut committing = Duration::ZERO;
    let mut j = 0u64;
    while j < count {
        let this = batch.min((count - j) as usize);
        for x in 0..this {
            let i = j + x as u64;
            let (idx, seed) = if overwrite {
                let idx = data::overwrite_index(i, n);
                (idx, idx ^ (1 << 62))
            } else {
                (i, i)
            };
            keys[x] = data::key(space::SCALE, idx);
            data::fill_value(seed, &mut values[x]);
        }
        let took = timed_commit(&mut *h, &keys, &values, this)?;
        committing += took;
        each.push(took);
        j += this as u64;
    }
    Ok((committing, each))
}

/// Point reads of the scale workload: random existing keys of the loaded store, all from one
/// read snapshot (as workload d), in a fresh process (the page cache holds what the load
/// wrote).
pub(crate) fn scale_read(kind: Kind, dir: &Path, n: u64, scale: &Scale) -> Result<ReadPhase> {
    if n == 0 {
        return Err("the scale phases need --n (keys in the store) above 0".into());
    }
    let io_before = sysio::io_counters();
    let t = Instant::now();
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let open_seconds = t.elapsed().as_secs_f64();
    let mut positions = Positions::new(42);
    let mut next = || data::key(space::SCALE, positions.next_below(n));
    let started = Instant::now();
    let tally = h.point_reads(scale.scale_reads, &mut next)?;
    let seconds = started.elapsed().as_secs_f64();
    if tally.bytes != tally.found * VALUE_LEN as u64 {
        return Err(format!("values of the wrong length: {tally:?}").into());
    }
    drop(h);
    drop(engine);
    let io_after = sysio::io_counters();
    Ok(ReadPhase {
        gets: scale.scale_reads,
        seconds,
        open_seconds,
        write_bytes: io_before
            .zip(io_after)
            .map(|(a, b)| b.write_bytes.saturating_sub(a.write_bytes)),
        mem: mem::current(),
    })
}
