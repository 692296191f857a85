//! What every measuring phase shares: a figure from a count and a time, and the small
//! 3-key transactions of workloads a, b, h, open and oneshot.

use std::time::{Duration, Instant};
use walstore_benches::data::{self, KEY_LEN, VALUE_LEN};
use walstore_benches::engines::{self, Kind};
use walstore_benches::mem;
use walstore_benches::report::Figure;
use walstore_benches::Result;

/// The figure of `ops` operations of `kind` on `workload` in `elapsed`, as a rate.
pub(crate) fn figure(
    workload: &str,
    kind: Kind,
    ops: u64,
    elapsed: Duration,
    unit: &str,
) -> Figure {
    let seconds = elapsed.as_secs_f64();
    Figure {
        workload: workload.into(),
        engine: kind.id().into(),
        value: ops as f64 / seconds,
        unit: unit.into(),
        ops,
        seconds,
        mem: mem::current(),
        note: String::new(),
    }
}

/// The 3 writes of transaction `i` of workloads a and b.
pub(crate) fn small_txn(space: u8, i: u64) -> [([u8; KEY_LEN], [u8; VALUE_LEN]); 3] {
    std::array::from_fn(|j| {
        let n = i * 3 + j as u64;
        let mut v = [0u8; VALUE_LEN];
        data::fill_value(n, &mut v);
        (data::key(space, n), v)
    })
}

/// The writes of a transaction as the engines take them.
pub(crate) fn as_writes<const K: usize, const V: usize>(
    txn: &[([u8; K], [u8; V])],
) -> Vec<(&[u8], &[u8])> {
    txn.iter().map(|(k, v)| (&k[..], &v[..])).collect()
}

/// Commits `keys[i]`, `values[i]` for every `i` below `count` as one transaction and returns
/// how long the commit took (making up the writes is not timed).
pub(crate) fn timed_commit(
    h: &mut dyn engines::Handle,
    keys: &[[u8; KEY_LEN]],
    values: &[[u8; VALUE_LEN]],
    count: usize,
) -> Result<Duration> {
    let writes: Vec<(&[u8], &[u8])> = keys[..count]
        .iter()
        .zip(&values[..count])
        .map(|(k, v)| (&k[..], &v[..]))
        .collect();
    let t = Instant::now();
    h.commit(&writes)?;
    Ok(t.elapsed())
}

/// Transactions committed before the timed ones (first file growth, caches), not counted.
pub(crate) const WARMUP_TXNS: u64 = 10;
