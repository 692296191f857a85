//! Point reads of keys written since the last checkpoint (served by the log index) against
//! the same reads after a checkpoint (served by a run): issue 21's "recent reads as fast as
//! reads from runs".
//!
//! `cargo run --release -p walstore --example recent_reads [KEYS] [GETS]` (defaults 1,000,000
//! and 1,000,000): loads KEYS random 16-byte keys with 100-byte values in transactions of
//! 10,000 (no checkpoint: the threshold is raised above the load), then times GETS random gets
//! in one read snapshot and GETS gets with a snapshot each, checkpoints, and times both again.

use std::time::Instant;
use walstore::{Durability, Options, Store};

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn time_gets(store: &Store, keys: u64, gets: u64, snapshot_each: bool) -> f64 {
    let mut x = 88172645463325252u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % keys
    };
    let start = Instant::now();
    let mut found = 0u64;
    if snapshot_each {
        for _ in 0..gets {
            let r = store.begin_read().expect("read");
            found += r.get(&key(next())).expect("get").is_some() as u64;
        }
    } else {
        let r = store.begin_read().expect("read");
        for _ in 0..gets {
            found += r.get(&key(next())).expect("get").is_some() as u64;
        }
    }
    assert_eq!(found, gets, "every key is there");
    gets as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let keys = args.next().unwrap_or(1_000_000);
    let gets = args.next().unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Options::new()
        .durability(Durability::Buffered)
        .wal_size_bytes_checkpoint(1 << 40)
        .open(dir.path().join("store"))
        .expect("open");
    let value = [7u8; 100];
    let mut i = 0;
    while i < keys {
        let end = (i + 10_000).min(keys);
        store
            .update(|tx| (i..end).try_for_each(|k| tx.put(&key(k), &value)))
            .expect("commit");
        i = end;
    }
    let info = store.info().expect("info");
    println!(
        "{keys} keys in the log ({} bytes; log index {} entries), {gets} gets each:",
        info.wal_bytes, info.log_index_entries
    );
    let log_one = time_gets(&store, keys, gets, false);
    let log_each = time_gets(&store, keys, gets, true);
    store.checkpoint().expect("checkpoint");
    let runs = store.info().expect("info").runs;
    let run_one = time_gets(&store, keys, gets, false);
    let run_each = time_gets(&store, keys, gets, true);
    println!("  one snapshot:      log index {log_one:>12.0} gets/s, runs ({runs}) {run_one:>12.0} gets/s, ratio {:.2}", log_one / run_one);
    println!("  snapshot per get:  log index {log_each:>12.0} gets/s, runs ({runs}) {run_each:>12.0} gets/s, ratio {:.2}", log_each / run_each);
}
