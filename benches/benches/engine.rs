//! Criterion benchmarks of the engine alone: commit latency per durability level, commit cost
//! against transaction size, point reads (from the memtable and from checkpointed snapshot
//! files), prefix scans, open (WAL replay) time against WAL size, and checkpoint time against
//! store size and the fraction of keys changed.
//!
//!     cargo bench -p walstore-benches --bench engine             # full
//!     cargo bench -p walstore-benches --bench engine -- --quick  # one quick pass
//!     cargo bench -p walstore-benches --bench engine -- checkpoint   # one group
//!
//! Stores live in the system temporary directory (on this project's machines, the same disk
//! as the work tree). Sample counts are kept small: the durable groups are bound by the
//! device's flush, which varies from run to run far more than criterion's noise threshold.

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use std::time::{Duration, Instant};
use walstore::{Durability, Options, Store};
use walstore_benches::data::{fill_value, key, Positions, VALUE_LEN};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Loads `n` keys of workload space `space` (100-byte values) in Buffered transactions of
/// `batch`, then makes them durable.
fn load(store: &Store, space: u8, n: u64, batch: u64) {
    let mut v = [0u8; VALUE_LEN];
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let mut tx = store.begin_write().expect("begin");
        tx.set_durability(Durability::Buffered);
        for j in i..end {
            fill_value(j, &mut v);
            tx.put(&key(space, j), &v).expect("put");
        }
        tx.commit().expect("commit");
        i = end;
    }
    store.sync().expect("sync");
}

/// Commits one transaction of `keys` fresh keys of workload space `space`, numbering them on
/// from `*next` (100-byte values; `value` is the scratch buffer).
fn commit_fresh(store: &Store, space: u8, keys: u64, next: &mut u64, value: &mut [u8; VALUE_LEN]) {
    store
        .update(|tx| {
            for _ in 0..keys {
                *next += 1;
                fill_value(*next, value);
                tx.put(&key(space, *next), value)?;
            }
            Ok::<_, walstore::Error>(())
        })
        .expect("commit")
}

fn commit_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_3_keys");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for durability in [Durability::Immediate, Durability::Buffered] {
        let dir = tempdir();
        let store = Options::new()
            .durability(durability)
            .open(dir.path())
            .expect("open");
        let mut v = [0u8; VALUE_LEN];
        let mut i = 0u64;
        group.bench_function(
            BenchmarkId::from_parameter(format!("{durability:?}")),
            |b| b.iter(|| commit_fresh(&store, 1, 3, &mut i, &mut v)),
        );
    }
    group.finish();
}

fn txn_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_size_immediate");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let dir = tempdir();
    let store = Options::new().open(dir.path()).expect("open");
    let mut v = [0u8; VALUE_LEN];
    let mut i = 0u64;
    for keys in [1u64, 10, 100, 1_000, 10_000] {
        group.throughput(Throughput::Elements(keys));
        group.bench_with_input(BenchmarkId::new("keys", keys), &keys, |b, &keys| {
            b.iter(|| commit_fresh(&store, 2, keys, &mut i, &mut v))
        });
    }
    group.finish();
}

fn point_reads(c: &mut Criterion) {
    const N: u64 = 200_000;
    const PER_ITER: u64 = 1_000;
    let mut group = c.benchmark_group("point_get");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(PER_ITER));
    for checkpointed in [true, false] {
        let dir = tempdir();
        let store = Options::new()
            .auto_checkpoint(false)
            .wal_size_bytes_checkpoint(1 << 40)
            .open(dir.path())
            .expect("open");
        load(&store, 3, N, 10_000);
        if checkpointed {
            store.checkpoint().expect("checkpoint");
        }
        let name = if checkpointed {
            "200k keys, snapshot files"
        } else {
            "200k keys, memtable"
        };
        let read = store.begin_read().expect("read");
        let mut pos = Positions::new(7);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut bytes = 0;
                for _ in 0..PER_ITER {
                    let k = key(3, pos.next_below(N));
                    bytes += read.get(&k).expect("get").expect("present").len();
                }
                bytes
            })
        });
        let mut missing = Positions::new(8);
        group.bench_function(format!("{name}, absent keys"), |b| {
            b.iter(|| {
                let mut found = 0;
                for _ in 0..PER_ITER {
                    let k = key(4, missing.next_below(N));
                    found += usize::from(read.get(&k).expect("get").is_some());
                }
                found
            })
        });
    }
    group.finish();
}

fn prefix_scans(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan_prefix");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let dir = tempdir();
    let store = Options::new().open(dir.path()).expect("open");
    // 100,000 keys: under prefixes holding 10, 100, 1,000 and 10,000 keys, plus filler.
    let sizes = [10u32, 100, 1_000, 10_000];
    let mut v = [0u8; VALUE_LEN];
    store
        .update(|tx| {
            for (p, &n) in sizes.iter().enumerate() {
                for i in 0..n {
                    fill_value(u64::from(i), &mut v);
                    tx.put(format!("p{p}/{i:08}").as_bytes(), &v)?;
                }
            }
            let filler = 100_000 - sizes.iter().sum::<u32>();
            for i in 0..filler {
                fill_value(u64::from(i), &mut v);
                tx.put(format!("q/{i:08}").as_bytes(), &v)?;
            }
            Ok::<_, walstore::Error>(())
        })
        .expect("load");
    store.checkpoint().expect("checkpoint");
    let read = store.begin_read().expect("read");
    for (p, &n) in sizes.iter().enumerate() {
        let prefix = format!("p{p}/");
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_with_input(BenchmarkId::new("entries", n), &prefix, |b, prefix| {
            b.iter(|| {
                let mut bytes = 0;
                for item in read.scan_prefix(prefix.as_bytes()).expect("scan") {
                    let (k, v) = item.expect("item");
                    bytes += k.len() + v.len();
                }
                bytes
            })
        });
    }
    group.finish();
}

fn open_replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_replay");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let opts = || {
        Options::new()
            .auto_checkpoint(false)
            .wal_size_bytes_checkpoint(1 << 40)
    };
    for mib in [1u64, 4, 16] {
        let dir = tempdir();
        let wal_bytes = {
            let store = opts()
                .durability(Durability::Buffered)
                .open(dir.path())
                .expect("open");
            let mut v = [0u8; VALUE_LEN];
            let mut i = 0u64;
            while store.info().expect("info").wal_bytes < mib << 20 {
                for _ in 0..100 {
                    commit_fresh(&store, 5, 3, &mut i, &mut v);
                }
            }
            store.sync().expect("sync");
            store.info().expect("info").wal_bytes
        };
        group.throughput(Throughput::Bytes(wal_bytes));
        group.bench_with_input(BenchmarkId::new("wal_mib", mib), dir.path(), |b, path| {
            // Only the open and the first read are timed, not closing the store.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let store = opts().open(path).expect("open");
                    drop(store.begin_read().expect("read"));
                    total += t.elapsed();
                    drop(store);
                }
                total
            })
        });
    }
    group.finish();
}

fn checkpoint(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for keys in [10_000u64, 100_000] {
        let dir = tempdir();
        let store = Options::new()
            .auto_checkpoint(false)
            .wal_size_bytes_checkpoint(1 << 40)
            .open(dir.path())
            .expect("open");
        load(&store, 6, keys, 10_000);
        store.checkpoint().expect("first checkpoint");
        for percent in [1u64, 10, 100] {
            let changed = (keys * percent / 100).max(1);
            let mut round = 0u64;
            let mut pos = Positions::new(percent);
            group.throughput(Throughput::Elements(changed));
            group.bench_function(
                BenchmarkId::new(format!("{keys}_keys"), format!("{percent}%_changed")),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            // Change `changed` keys spread over the key space (not timed).
                            round += 1;
                            let mut v = [0u8; VALUE_LEN];
                            let mut tx = store.begin_write().expect("begin");
                            tx.set_durability(Durability::Buffered);
                            for j in 0..changed {
                                let k = if changed == keys {
                                    j
                                } else {
                                    pos.next_below(keys)
                                };
                                fill_value(k ^ round, &mut v);
                                tx.put(&key(6, k), &v).expect("put");
                            }
                            tx.commit().expect("commit");
                            let t = Instant::now();
                            store.checkpoint().expect("checkpoint");
                            total += t.elapsed();
                        }
                        total
                    })
                },
            );
        }
    }
    group.finish();
}

/// A fresh store's first durable commits, each on a new store (the cost of creating a store).
fn create(c: &mut Criterion) {
    let mut group = c.benchmark_group("create_store");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("open new + 1 commit", |b| {
        b.iter_batched(
            tempdir,
            |dir| {
                let store = Store::open(dir.path()).expect("open");
                store.update(|tx| tx.put(b"k", b"v")).expect("commit");
                (store, dir)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    commit_latency,
    txn_size,
    point_reads,
    prefix_scans,
    open_replay,
    checkpoint,
    create
);
criterion_main!(benches);
