//! The measuring phases of workloads a, b, c, d, g, h, fresh, e and open, each run in a child
//! process against one store.

use crate::measure::{as_writes, figure, small_txn, timed_commit, WARMUP_TXNS};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use walstore_benches::data::{self, space, Positions, Scale, BLOB_SIZES, KEY_LEN, VALUE_LEN};
use walstore_benches::engines::{self, Kind};
use walstore_benches::report::Figure;
use walstore_benches::Result;

pub(crate) fn single_thread_commits(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let n = scale.a_txns;
    let txns: Vec<_> = (0..n + WARMUP_TXNS)
        .map(|i| small_txn(space::A, i))
        .collect();
    // Warm-up commits (first file growth, caches), not counted.
    for t in &txns[n as usize..] {
        h.commit(&as_writes(t))?;
    }
    let started = Instant::now();
    for t in &txns[..n as usize] {
        h.commit(&as_writes(t))?;
    }
    let mut f = figure("a", kind, n, started.elapsed(), "txn/s");
    if !kind.durable() {
        f.note = "not durable per commit".into();
    }
    Ok(f)
}

/// The physical floor of workload a: the bytes of one walstore commit record, written and
/// `fdatasync`ed in a loop over a file that was zero-filled and synced beforehand.
pub(crate) fn bare_log(dir: &Path, scale: &Scale) -> Result<Figure> {
    std::fs::create_dir_all(dir)?;
    let sample = small_txn(space::A, 0);
    let writes: Vec<(&[u8], Option<&[u8]>)> =
        sample.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
    let record = walstore::inspect::encode_transaction(1, 1, &writes, 0);
    let n = scale.a_txns;
    let len = record.len() as u64;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("bare.log"))?;
    let total = (len * (n + WARMUP_TXNS)).next_multiple_of(4096) + 4096;
    file.write_all_at(&vec![0u8; total as usize], 0)?;
    file.sync_all()?;
    let mut off = 0;
    for _ in 0..WARMUP_TXNS {
        file.write_all_at(&record, off)?;
        file.sync_data()?;
        off += len;
    }
    let started = Instant::now();
    for _ in 0..n {
        file.write_all_at(&record, off)?;
        file.sync_data()?;
        off += len;
    }
    let mut f = figure("a", Kind::BareLog, n, started.elapsed(), "txn/s");
    f.note = format!("{len} B write + fdatasync per txn, pre-written file");
    Ok(f)
}

pub(crate) fn concurrent_commits(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine: Arc<dyn engines::Engine> = Arc::from(engines::open(kind, dir)?);
    let threads = scale.b_threads;
    let per = scale.b_txns_per_thread;
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let mut joins = Vec::new();
    for t in 0..threads {
        let engine = Arc::clone(&engine);
        let barrier = Arc::clone(&barrier);
        joins.push(std::thread::spawn(move || -> Result<()> {
            let mut h = engine.handle()?;
            let first = t * (per + WARMUP_TXNS);
            let txns: Vec<_> = (first..first + per + WARMUP_TXNS)
                .map(|i| small_txn(space::B, i))
                .collect();
            for tx in &txns[per as usize..] {
                h.commit(&as_writes(tx))?;
            }
            barrier.wait();
            for tx in &txns[..per as usize] {
                h.commit(&as_writes(tx))?;
            }
            Ok(())
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let mut first_err = None;
    for j in joins {
        let outcome = j.join().map_err(|_| "a committing thread panicked")?;
        if let Err(e) = outcome {
            first_err.get_or_insert(e);
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut f = figure("b", kind, threads * per, elapsed, "txn/s");
    f.note = format!("{threads} threads × {per}");
    if !kind.durable() {
        f.note.push_str("; not durable per commit");
    }
    Ok(f)
}

pub(crate) fn bulk_load(kind: Kind, dir: &Path, scale: &Scale) -> Result<Vec<Figure>> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let (committing, mut each) = load_c(&mut *h, scale)?;
    let durable = figure("c-durable", kind, scale.c_keys, committing, "keys/s");
    let t = Instant::now();
    engine.checkpoint()?;
    let checkpoint = t.elapsed();
    let mut full = figure(
        "c-checkpointed",
        kind,
        scale.c_keys,
        committing + checkpoint,
        "keys/s",
    );
    full.note = format!("final checkpoint {:.3} s", checkpoint.as_secs_f64());
    let mut durable = durable;
    each.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    durable.note = format!(
        "{} keys, txns of {}; commit p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        scale.c_keys,
        scale.c_batch,
        ms(each[each.len() / 2]),
        ms(each[each.len() * 9 / 10]),
        ms(each[each.len() - 1])
    );
    if !kind.durable() {
        durable.note.push_str("; not durable per commit");
    }
    Ok(vec![durable, full])
}

/// c's load through `h`: keys `0..c_keys` in durable transactions of `c_batch`. Returns the
/// time spent committing and each commit's time.
fn load_c(h: &mut dyn engines::Handle, scale: &Scale) -> Result<(Duration, Vec<Duration>)> {
    let batch = scale.c_batch as usize;
    let mut keys = vec![[0u8; KEY_LEN]; batch];
    let mut values = vec![[0u8; VALUE_LEN]; batch];
    let mut committing = Duration::ZERO;
    let mut each = Vec::new();
    let mut i = 0u64;
    while i < scale.c_keys {
        let this = batch.min((scale.c_keys - i) as usize);
        for j in 0..this {
            keys[j] = data::key(space::C, i + j as u64);
            data::fill_value(i + j as u64, &mut values[j]);
        }
        let took = timed_commit(h, &keys, &values, this)?;
        committing += took;
        each.push(took);
        i += this as u64;
    }
    Ok((committing, each))
}

/// Workload "fresh": d's and g's gets (figures `d-fresh`, `g-fresh`) in the process that has
/// just loaded c's data into a store of its own, with no checkpoint asked for. walstore's
/// background checkpoints and merges may still run meanwhile, and what they have not folded
/// yet is read through the log index: issue 21's "immediately after the load".
pub(crate) fn reads_after_load(kind: Kind, dir: &Path, scale: &Scale) -> Result<Vec<Figure>> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    load_c(&mut *h, scale)?;
    let mut d = gets_through(kind, &mut *h, scale, "d-fresh", |h, n, next| {
        h.point_reads(n, next)
    })?;
    d.note = format!(
        "over the {} keys just loaded, no checkpoint asked",
        scale.c_keys
    );
    let mut g = gets_through(kind, &mut *h, scale, "g-fresh", |h, n, next| {
        h.gets_per_snapshot(n, next)
    })?;
    g.note = format!(
        "over the {} keys just loaded, one snapshot per get, no checkpoint asked",
        scale.c_keys
    );
    Ok(vec![d, g])
}

pub(crate) fn point_reads(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let mut f = gets_through(kind, &mut *h, scale, "d", |h, n, next| {
        h.point_reads(n, next)
    })?;
    f.note = format!("over {} keys, page cache warm", scale.c_keys);
    Ok(f)
}

/// Workload g: the key stream of d, as many gets, but each get from a read snapshot of its own.
pub(crate) fn gets_per_snapshot(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let mut f = gets_through(kind, &mut *h, scale, "g", |h, n, next| {
        h.gets_per_snapshot(n, next)
    })?;
    f.note = format!(
        "over {} keys, one snapshot per get, page cache warm",
        scale.c_keys
    );
    if kind == Kind::Fjall {
        f.note
            .push_str("; fjall's d makes the same calls (Keyspace::get, a view per call)");
    }
    Ok(f)
}

/// d's key stream (`d_reads` gets of random existing keys of c's) through `h` and `gets`,
/// timed as figure `name` (d and g differ only in how each get is made).
fn gets_through(
    kind: Kind,
    h: &mut dyn engines::Handle,
    scale: &Scale,
    name: &str,
    gets: impl FnOnce(
        &mut dyn engines::Handle,
        u64,
        &mut dyn FnMut() -> [u8; KEY_LEN],
    ) -> Result<engines::ReadTally>,
) -> Result<Figure> {
    let mut positions = Positions::new(42);
    let n_keys = scale.c_keys;
    let mut next = || data::key(space::C, positions.next_below(n_keys));
    let started = Instant::now();
    let tally = gets(h, scale.d_reads, &mut next)?;
    let elapsed = started.elapsed();
    if tally.bytes != tally.found * VALUE_LEN as u64 {
        return Err(format!("values of the wrong length: {tally:?}").into());
    }
    Ok(figure(name, kind, scale.d_reads, elapsed, "gets/s"))
}

/// Workload h: two threads doing g's gets (`scale.h_reads_per_reader` each, a snapshot per
/// get) on c's store while a third commits durable 3-key transactions into a key space of its
/// own until both readers are done. The figure is the readers' gets together per second of
/// the time until the last one finished; the writer's commits/s go in the note.
pub(crate) fn readers_during_writer(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine: Arc<dyn engines::Engine> = Arc::from(engines::open(kind, dir)?);
    let per = scale.h_reads_per_reader;
    let n_keys = scale.c_keys;
    let barrier = Arc::new(Barrier::new(H_READERS as usize + 2));
    let stop = Arc::new(AtomicBool::new(false));
    // Handles are made (and the warm-up done) before any thread starts: nothing that can fail
    // comes before a thread's wait on the barrier.
    let mut w = engine.handle()?;
    // Warm-up commits (first file growth, caches), not counted.
    for i in 0..WARMUP_TXNS {
        w.commit(&as_writes(&small_txn(space::H, i)))?;
    }
    let mut reader_handles = Vec::new();
    for _ in 0..H_READERS {
        reader_handles.push(engine.handle()?);
    }
    let writer = spawn_writer(w, Arc::clone(&barrier), Arc::clone(&stop));
    let mut readers = Vec::new();
    for (r, mut h) in (0..H_READERS).zip(reader_handles) {
        let barrier = Arc::clone(&barrier);
        readers.push(std::thread::spawn(move || -> Result<engines::ReadTally> {
            let mut positions = Positions::new(42 + r);
            let mut next = || data::key(space::C, positions.next_below(n_keys));
            barrier.wait();
            h.gets_per_snapshot(per, &mut next)
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let first_err = join_readers(readers)?;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (commits, writing) = writer.join().map_err(|_| "the writing thread panicked")??;
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut f = figure("h", kind, H_READERS * per, elapsed, "gets/s");
    f.note = format!(
        "{H_READERS} readers × {per}, one snapshot per get; writer meanwhile: {} commits/s \
         ({commits} txns of 3 keys)",
        walstore_benches::report::human(commits as f64 / writing.as_secs_f64().max(1e-9))
    );
    if !kind.durable() {
        f.note.push_str("; writer not durable per commit");
    }
    Ok(f)
}

/// Reader threads of workload h.
const H_READERS: u64 = 2;

/// Workload h's writer: after the barrier, durable 3-key commits until `stop`; returns how
/// many it made and in how long.
fn spawn_writer(
    mut h: Box<dyn engines::Handle>,
    barrier: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<(u64, Duration)>> {
    std::thread::spawn(move || -> Result<(u64, Duration)> {
        barrier.wait();
        let started = Instant::now();
        let mut commits = 0u64;
        while !stop.load(Ordering::Relaxed) {
            h.commit(&as_writes(&small_txn(space::H, WARMUP_TXNS + commits)))?;
            commits += 1;
        }
        Ok((commits, started.elapsed()))
    })
}

/// Waits for workload h's readers; the first error any of them met (values of the wrong
/// length included), or an error if one panicked.
fn join_readers(
    readers: Vec<JoinHandle<Result<engines::ReadTally>>>,
) -> Result<Option<walstore_benches::BoxError>> {
    let mut first_err = None;
    for j in readers {
        let outcome = j.join().map_err(|_| "a reading thread panicked")?;
        match outcome {
            Ok(tally) if tally.bytes != tally.found * VALUE_LEN as u64 => {
                first_err.get_or_insert(format!("values of the wrong length: {tally:?}").into());
            }
            Ok(_) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Ok(first_err)
}

pub(crate) fn blobs(kind: Kind, dir: &Path, scale: &Scale) -> Result<Figure> {
    let engine = engines::open(kind, dir)?;
    let mut h = engine.handle()?;
    let keys: Vec<[u8; KEY_LEN]> = (0..4).map(|j| data::key(5, j)).collect();
    let mut values: Vec<Vec<u8>> = BLOB_SIZES
        .iter()
        .enumerate()
        .map(|(j, &len)| {
            let mut v = vec![0u8; len];
            data::fill_value(j as u64, &mut v);
            v
        })
        .collect();
    let mut round = |r: u64, values: &mut Vec<Vec<u8>>| -> Result<()> {
        for v in values.iter_mut() {
            v[..8].copy_from_slice(&r.to_le_bytes());
        }
        let writes: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(values.iter())
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        h.commit(&writes)
    };
    // One warm-up round creates the four values; the timed rounds replace them.
    round(u64::MAX, &mut values)?;
    let started = Instant::now();
    for r in 0..scale.e_rounds {
        round(r, &mut values)?;
    }
    let mut f = figure("e", kind, scale.e_rounds, started.elapsed(), "txn/s");
    f.note = match kind {
        Kind::PlainFiles => {
            "f: 4 files, each temp + fsync + rename + dir fsync; not atomic across the 4".into()
        }
        k if !k.durable() => "not durable per commit".into(),
        _ => String::new(),
    };
    Ok(f)
}

fn replay_options() -> walstore::Options {
    walstore::Options::new()
        .auto_checkpoint(false)
        .wal_size_bytes_checkpoint(1 << 40)
}

/// Fills a walstore WAL with small transactions (3 keys of 100 bytes each, as in a) until
/// it holds `scale.open_wal_bytes`.
pub(crate) fn fill_wal(kind: Kind, dir: &Path, scale: &Scale) -> Result<()> {
    if kind != Kind::Walstore {
        return Err("the open workload is walstore's alone".into());
    }
    let store = replay_options()
        .durability(walstore::Durability::Buffered)
        .wal_preallocate_bytes(scale.open_wal_bytes + (1 << 20))
        .open(dir)?;
    let mut i = 0u64;
    loop {
        for _ in 0..1000 {
            let txn = small_txn(space::OPEN, i);
            store.update(|tx| {
                for (k, v) in &txn {
                    tx.put(k, v)?;
                }
                Ok::<_, walstore::Error>(())
            })?;
            i += 1;
        }
        if store.info()?.wal_bytes >= scale.open_wal_bytes {
            break;
        }
    }
    store.sync()?;
    Ok(())
}

pub(crate) fn open_replay(kind: Kind, dir: &Path) -> Result<Figure> {
    if kind != Kind::Walstore {
        return Err("the open workload is walstore's alone".into());
    }
    let started = Instant::now();
    let store = replay_options().open(dir)?;
    drop(store.begin_read()?);
    let elapsed = started.elapsed();
    let info = store.info()?;
    let mib = info.wal_bytes as f64 / f64::from(1u32 << 20);
    let mut f = figure("open", kind, info.wal_bytes >> 20, elapsed, "MiB/s");
    f.value = mib / elapsed.as_secs_f64();
    f.note = format!(
        "{mib:.0} MiB WAL, {} txns, open {:.3} s, page cache warm",
        info.txns_since_checkpoint,
        elapsed.as_secs_f64()
    );
    Ok(f)
}
