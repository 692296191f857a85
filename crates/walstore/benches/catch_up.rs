//! What catching up with other processes costs when nothing changed: `begin_read` and
//! `begin_write` + `abort` on a store whose log another handle (standing in for another
//! process) has not touched since. Compared with the same calls right after another handle
//! committed one small transaction, which they must then read.
//!
//!     cargo bench -p walstore --bench catch_up

use criterion::{criterion_group, criterion_main, Criterion};
use walstore::{Durability, Options};

fn catch_up(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Options::new()
        .durability(Durability::Buffered)
        .open(dir.path())
        .expect("open a");
    let b = Options::new()
        .durability(Durability::Buffered)
        .open(dir.path())
        .expect("open b");
    // A log with some history, as a running store has.
    for i in 0..10_000u32 {
        a.update(|tx| tx.put(format!("key{i:06}").as_bytes(), &[1u8; 100]))
            .expect("load");
    }
    b.begin_read().expect("b catches up once");

    let mut group = c.benchmark_group("catch_up");
    group.bench_function("begin_read, nothing changed", |bench| {
        bench.iter(|| b.begin_read().expect("read"))
    });
    group.bench_function("begin_write+abort, nothing changed", |bench| {
        bench.iter(|| b.begin_write().expect("write").abort())
    });
    let mut n = 0u64;
    group.bench_function(
        "begin_read after another handle's commit (incl. that commit)",
        |bench| {
            bench.iter(|| {
                n += 1;
                a.update(|tx| tx.put(b"hot", &n.to_le_bytes()))
                    .expect("commit");
                b.begin_read().expect("read")
            })
        },
    );
    group.bench_function("that other handle's commit alone", |bench| {
        bench.iter(|| {
            n += 1;
            a.update(|tx| tx.put(b"hot", &n.to_le_bytes()))
                .expect("commit")
        })
    });
    group.finish();
}

criterion_group!(benches, catch_up);
criterion_main!(benches);
