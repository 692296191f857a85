//! Seeded random transaction mixes: puts, deletes, multi-key transactions, aborts, both
//! durability levels, checkpoints, syncs and reopens; half of them with the engine's read
//! chunk shrunk.

use super::data::{value, Dur, EngineSettings, Step, TxOp, Workload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random mix of `steps` steps; the same seed gives the same workload.
pub fn random_mix(seed: u64, steps: usize) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys = rng.gen_range(4..24u64);
    let mut out = Vec::with_capacity(steps);
    let mut serial = 0u64;
    for _ in 0..steps {
        let roll = rng.gen_range(0..100u32);
        let step = match roll {
            0..=4 => Step::Checkpoint,
            5 => Step::Compact,
            6..=8 => Step::Sync,
            9..=10 => Step::Reopen,
            11..=20 => {
                serial += 1;
                Step::Increment {
                    serial,
                    key: format!("counter{}", rng.gen_range(0..2u32)),
                    durability: durability(&mut rng),
                }
            }
            _ => {
                serial += 1;
                let n = rng.gen_range(1..6usize);
                let ops = (0..n)
                    .map(|i| {
                        let key = format!("key{:03}", rng.gen_range(0..keys));
                        if rng.gen_bool(0.2) {
                            TxOp::Delete { key }
                        } else {
                            let len = rng.gen_range(0..300usize);
                            TxOp::Put {
                                key,
                                value: value(serial, &format!("{i}{}", "v".repeat(len))),
                            }
                        }
                    })
                    .collect();
                Step::Txn {
                    serial,
                    ops,
                    durability: durability(&mut rng),
                    abort: rng.gen_bool(0.08),
                }
            }
        };
        out.push(step);
    }
    Workload {
        name: format!("random-{seed}"),
        steps: out,
        settings: EngineSettings {
            wal_preallocate_bytes: 4096 * rng.gen_range(1..4u64),
            segment_size_bytes_target: 4096,
            // Half the seeds read the log in chunks of 64 to 1024 bytes, so that their logs
            // of a few KiB cross the read-chunk boundaries that large logs cross.
            read_chunk_bytes: rng.gen_bool(0.5).then(|| 64 << rng.gen_range(0..5u32)),
            sector_size: 0,
            close_checkpoint_bytes: None,
            feed_consumer: false,
        },
    }
}

fn durability(rng: &mut StdRng) -> Dur {
    if rng.gen_bool(0.3) {
        Dur::Buffered
    } else {
        Dur::Immediate
    }
}
