//! Workload data, derived from an index with a fixed mixing function: every engine and every
//! child process sees byte-identical keys and values, and none of them holds the data set in
//! memory (which would hide the engine's own peak memory).

/// Bytes of every key in the workloads.
pub const KEY_LEN: usize = 16;
/// Bytes of a small value (workloads a to d).
pub const VALUE_LEN: usize = 100;
/// Value sizes of workload e (and the plain-files recipe f), in bytes: 4, 16, 1 and 64 KiB.
pub const BLOB_SIZES: [usize; 4] = [4 << 10, 16 << 10, 1 << 10, 64 << 10];

/// SplitMix64: a fast, well-mixed 64-bit permutation step.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Key number `i` of a key space `space` (workloads use different spaces so their keys never
/// collide): 8 mixed bytes then the index, both big-endian. Inserting `i = 0, 1, 2, ...` is
/// therefore a random key order.
pub fn key(space: u8, i: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    let h = mix(i ^ (u64::from(space) << 56));
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Fills `out` with the incompressible value bytes of item `i` (same bytes for every engine;
/// incompressible so that an engine that compresses gains nothing the others do not).
pub fn fill_value(i: u64, out: &mut [u8]) {
    let mut state = mix(i.wrapping_add(0x5EED));
    for chunk in out.chunks_mut(8) {
        state = mix(state);
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// A small deterministic generator for read positions (the same sequence for every engine).
#[derive(Debug, Clone)]
pub struct Positions {
    state: u64,
}

impl Positions {
    /// A sequence seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Positions { state: seed }
    }

    /// The next position in `0..n`.
    pub fn next_below(&mut self, n: u64) -> u64 {
        self.state = self.state.wrapping_add(1);
        // Lemire's multiply-shift reduction: unbiased enough for benchmark positions.
        ((u128::from(mix(self.state)) * u128::from(n)) >> 64) as u64
    }
}

/// How big each workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scale {
    /// Workload a: durable transactions of 3 keys, one thread.
    pub a_txns: u64,
    /// Workload b: committing threads.
    pub b_threads: u64,
    /// Workload b: transactions per thread.
    pub b_txns_per_thread: u64,
    /// Workload c: keys bulk-loaded.
    pub c_keys: u64,
    /// Workload c: keys per durable transaction.
    pub c_batch: u64,
    /// Workload d: random point reads (and workload g: as many gets, a snapshot each).
    pub d_reads: u64,
    /// Workload h: gets per reader thread (two readers, one durable writer meanwhile).
    #[serde(default)]
    pub h_reads_per_reader: u64,
    /// Workload e (and f): rounds replacing the four blobs.
    pub e_rounds: u64,
    /// Open: WAL bytes of small transactions to replay.
    pub open_wal_bytes: u64,
    /// Scale: random point reads after each load.
    #[serde(default)]
    pub scale_reads: u64,
    /// One-shot: processes per store, unless `--oneshot-runs` says otherwise.
    #[serde(default)]
    pub oneshot_runs: u64,
    /// Log size: processes per size, mode, store and operation, unless `--logsize-runs` says
    /// otherwise.
    #[serde(default)]
    pub logsize_runs: u64,
    /// Log size: keys loaded (and, in walstore, checkpointed) before the log is written.
    #[serde(default)]
    pub logsize_base_keys: u64,
    /// Log size: MiB of walstore log beyond the last checkpoint, one store per size.
    #[serde(default)]
    pub logsize_mib: [u64; 4],
}

impl Scale {
    /// The sizes.
    pub const FULL: Scale = Scale {
        a_txns: 2_000,
        b_threads: 4,
        b_txns_per_thread: 500,
        c_keys: 1_000_000,
        c_batch: 10_000,
        d_reads: 1_000_000,
        h_reads_per_reader: 500_000,
        e_rounds: 500,
        open_wal_bytes: 256 << 20,
        scale_reads: 1_000_000,
        oneshot_runs: 200,
        logsize_runs: 50,
        logsize_base_keys: 100_000,
        logsize_mib: [0, 4, 16, 48],
    };

    /// Small sizes for CI: proves every path works in well under a minute.
    pub const QUICK: Scale = Scale {
        a_txns: 200,
        b_threads: 4,
        b_txns_per_thread: 50,
        c_keys: 50_000,
        c_batch: 5_000,
        d_reads: 50_000,
        h_reads_per_reader: 20_000,
        e_rounds: 40,
        open_wal_bytes: 16 << 20,
        scale_reads: 20_000,
        oneshot_runs: 10,
        logsize_runs: 5,
        logsize_base_keys: 20_000,
        logsize_mib: [0, 1, 2, 4],
    };

    /// Store sizes (keys) of the scale workload, unless `--scale-sizes` names others.
    pub fn scale_sizes(&self) -> Vec<u64> {
        if *self == Scale::QUICK {
            vec![20_000]
        } else {
            vec![1_000_000, 4_000_000, 10_000_000]
        }
    }
}

/// Scale workload: keys per durable transaction of the bulk load.
pub const SCALE_LOAD_TXN: u64 = 10_000;
/// Scale workload: keys per durable transaction of the overwrite phase.
pub const SCALE_OVERWRITE_TXN: u64 = 1_000;

/// Key number `j` of the scale workload's overwrite phase over a store of `n` keys: distinct
/// for `j` in `0..n` (the step is a prime above any store size, so it is coprime with `n`);
/// the keys themselves start with mixed bytes, so any set of indexes is a random key order.
pub fn overwrite_index(j: u64, n: u64) -> u64 {
    const STEP: u128 = 1_000_000_007;
    ((u128::from(j) * STEP) % u128::from(n.max(1))) as u64
}

/// Log-size workload: keys per transaction of the log written after the checkpoint (half of
/// them overwrite base keys, half are new keys).
pub const LOGSIZE_TXN_KEYS: u64 = 10;

/// Marks the value seeds of the log-size workload's log writes, so that a base key's
/// overwritten value differs from its base value.
const LOGSIZE_LOG_SEED: u64 = 1 << 62;

/// Write `j` (below [`LOGSIZE_TXN_KEYS`]) of log transaction `t` of the log-size workload over
/// a base of keys `0..base`: the key's index (in [`space::LOGSIZE`]) and the seed of its value
/// ([`fill_value`]). The first half of a transaction's writes overwrite base keys (distinct
/// for the first `base` overwrites, then round again), the second half add keys from `base` up.
pub fn logsize_write(t: u64, j: u64, base: u64) -> (u64, u64) {
    let half = LOGSIZE_TXN_KEYS / 2;
    let index = if j < half {
        overwrite_index(t * half + j, base)
    } else {
        base + t * half + (j - half)
    };
    (index, (t * LOGSIZE_TXN_KEYS + j) | LOGSIZE_LOG_SEED)
}

/// The key a get of the log-size workload reads from a store with `txns` log transactions over
/// a base of `base` keys, and the seed of the value it must find: the first write of the last
/// log transaction (a base key it overwrote, in the log), or without a log a base key.
pub fn logsize_probe(txns: u64, base: u64) -> (u64, u64) {
    if txns == 0 {
        (base / 2, base / 2)
    } else {
        logsize_write(txns - 1, 0, base)
    }
}

/// Key spaces, one per workload.
pub mod space {
    /// Workload a.
    pub const A: u8 = 1;
    /// Workload b.
    pub const B: u8 = 2;
    /// Workloads c and d (and g and h, which read c's store).
    pub const C: u8 = 3;
    /// Open-time WAL.
    pub const OPEN: u8 = 4;
    // 5: workload e's four blob keys.
    /// The scale workload.
    pub const SCALE: u8 = 6;
    /// The one-shot workload.
    pub const ONESHOT: u8 = 7;
    /// Workload h's writer (commits into c's store, beside c's keys).
    pub const H: u8 = 8;
    /// The log-size workload's base and log.
    pub const LOGSIZE: u8 = 9;
    /// The log-size workload's one-shot 3-key commits.
    pub const LOGSIZE_PUT: u8 = 10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_deterministic() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            assert!(seen.insert(key(space::C, i)));
        }
        assert_eq!(key(space::A, 7), key(space::A, 7));
        assert_ne!(key(space::A, 7), key(space::B, 7));
    }

    #[test]
    fn values_fill_any_length() {
        let mut a = vec![0u8; 100];
        let mut b = vec![0u8; 100];
        fill_value(3, &mut a);
        fill_value(3, &mut b);
        assert_eq!(a, b);
        fill_value(4, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn overwrite_indexes_are_distinct() {
        let n = 20_000;
        let seen: std::collections::HashSet<u64> =
            (0..n / 10).map(|j| overwrite_index(j, n)).collect();
        assert_eq!(seen.len() as u64, n / 10);
        assert!(seen.iter().all(|&i| i < n));
    }

    #[test]
    fn logsize_writes_and_probe() {
        let base = 1000;
        // One transaction: 5 distinct base keys, then 5 new keys past the base.
        let txn: Vec<(u64, u64)> = (0..LOGSIZE_TXN_KEYS)
            .map(|j| logsize_write(7, j, base))
            .collect();
        let keys: std::collections::HashSet<u64> = txn.iter().map(|w| w.0).collect();
        assert_eq!(keys.len() as u64, LOGSIZE_TXN_KEYS);
        assert!(txn[..5].iter().all(|w| w.0 < base));
        assert_eq!(txn[5].0, base + 35);
        // Every log value differs from every base value (seeds below the base).
        assert!(txn.iter().all(|w| w.1 >= LOGSIZE_LOG_SEED));
        assert_ne!(logsize_write(0, 0, base).1, logsize_write(0, 1, base).1);
        // The probe: a base key without a log, else the last transaction's overwrite.
        assert_eq!(logsize_probe(0, base), (500, 500));
        assert_eq!(logsize_probe(8, base), txn[0]);
        assert!(logsize_probe(8, base).0 < base);
    }

    #[test]
    fn positions_stay_in_range() {
        let mut p = Positions::new(1);
        for _ in 0..1000 {
            assert!(p.next_below(17) < 17);
        }
    }
}
