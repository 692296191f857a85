//! Seeded random schedules over two handles of one store (two processes; `handles3-<seed>`:
//! three handles, three processes), each committing on
//! one thread or on two (a pair of commits, the second written while the first one's WAL
//! sync is held in progress), with increments of shared counters (catch-ups), syncs,
//! checkpoints, closes, and one kill of a handle's process while the other lives (its locks
//! released, its unsynced writes left in the page cache). `handles-<seed>` names one; the
//! strategies add injected I/O errors (`swarm`, `countdown`) and crashes.

use super::data::{value, Dur, EngineSettings, Step, TxOp, Workload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Steps of a `handles-<seed>` workload.
pub const HANDLES_STEPS: usize = 20;

/// A random schedule of `steps` steps over two handles; the same seed gives the same
/// workload. Exactly one step kills a handle, somewhere in the middle third.
pub fn handles_mix(seed: u64, steps: usize) -> Workload {
    handles_mix_over(seed, steps, 2)
}

/// The same over `handles` handles (2 or 3; the third's steps are `Other(Other(step))`).
/// With 2 the schedule is `handles_mix`'s; with 3 the workload is `handles3-<seed>`.
pub fn handles_mix_over(seed: u64, steps: usize, handles: u32) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys = rng.gen_range(3..8u64);
    let kill_at = rng.gen_range(steps / 3..(2 * steps / 3).max(steps / 3 + 1));
    let mut serial = 0u64;
    let mut out = Vec::with_capacity(steps);
    for i in 0..steps {
        let handle = rng.gen_range(0..handles);
        let step = if i == kill_at {
            Step::Kill
        } else {
            random_step(&mut rng, &mut serial, keys)
        };
        out.push(match handle {
            0 => step,
            1 => Step::Other(Box::new(step)),
            _ => Step::Other(Box::new(Step::Other(Box::new(step)))),
        });
    }
    let prefix = if handles == 2 { "handles" } else { "handles3" };
    Workload {
        name: format!("{prefix}-{seed}"),
        steps: out,
        settings: EngineSettings {
            wal_preallocate_bytes: 4096 * rng.gen_range(1..3u64),
            segment_size_bytes_target: 4096,
            read_chunk_bytes: rng.gen_bool(0.5).then(|| 64 << rng.gen_range(0..5u32)),
            sector_size: 0,
            close_checkpoint_bytes: None,
            feed_consumer: false,
        },
    }
}

fn random_step(rng: &mut StdRng, serial: &mut u64, keys: u64) -> Step {
    match rng.gen_range(0..100u32) {
        0..=5 => Step::Checkpoint,
        6..=13 => Step::Sync,
        14..=18 => Step::Reopen,
        19..=35 => {
            *serial += 1;
            Step::Increment {
                serial: *serial,
                key: format!("counter{}", rng.gen_range(0..2u32)),
                durability: durability(rng),
            }
        }
        36..=55 => {
            let first = txn(rng, serial, keys);
            let second = txn(rng, serial, keys);
            Step::Concurrent(Box::new(first), Box::new(second))
        }
        _ => txn(rng, serial, keys),
    }
}

fn txn(rng: &mut StdRng, serial: &mut u64, keys: u64) -> Step {
    *serial += 1;
    let s = *serial;
    let ops = (0..rng.gen_range(1..4usize))
        .map(|i| {
            let key = format!("key{:02}", rng.gen_range(0..keys));
            if rng.gen_bool(0.2) {
                TxOp::Delete { key }
            } else {
                let len = rng.gen_range(0..200usize);
                TxOp::Put {
                    key,
                    value: value(s, &format!("{i}{}", "v".repeat(len))),
                }
            }
        })
        .collect();
    Step::Txn {
        serial: s,
        ops,
        durability: durability(rng),
        abort: false,
    }
}

fn durability(rng: &mut StdRng) -> Dur {
    if rng.gen_bool(0.4) {
        Dur::Buffered
    } else {
        Dur::Immediate
    }
}
