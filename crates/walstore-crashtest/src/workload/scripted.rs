//! The seed scenarios: the store's motivating uses, each small enough to explore every crash
//! point of.

use super::data::{put, txn, Dur, Step, TxOp};

/// An agent saves its context: four files that must change together.
pub(super) fn context_save() -> Vec<Step> {
    let mut steps = Vec::new();
    for round in 1..=4u64 {
        let s = round;
        let long = "m".repeat(40 * round as usize);
        steps.push(txn(
            s,
            vec![
                put(s, "messages", &format!("round {round} {long}")),
                put(s, "metadata", &format!("round {round}")),
                put(s, "state", &format!("step {round}")),
                put(s, "global", &format!("saves {round}")),
            ],
            Dur::Immediate,
        ));
        if round == 2 {
            steps.push(Step::Checkpoint);
        }
    }
    steps.push(Step::Txn {
        serial: 90,
        ops: vec![
            put(90, "messages", "abandoned"),
            put(90, "state", "abandoned"),
        ],
        durability: Dur::Immediate,
        abort: true,
    });
    steps
}

/// Three settings changed together, some Buffered then synced.
pub(super) fn config() -> Vec<Step> {
    let keys = ["server.url", "server.namespace", "server.tls-verify"];
    let mut steps = Vec::new();
    for s in 1..=5u64 {
        let bodies = [
            format!("https://host{s}.example"),
            format!("ns{s}"),
            (s % 2 == 0).to_string(),
        ];
        let ops = keys
            .iter()
            .zip(&bodies)
            .map(|(k, b)| put(s, k, b))
            .collect();
        let durability = if s == 3 || s == 4 {
            Dur::Buffered
        } else {
            Dur::Immediate
        };
        steps.push(txn(s, ops, durability));
        if s == 4 {
            steps.push(Step::Sync);
        }
    }
    steps.push(txn(
        6,
        vec![TxOp::Delete {
            key: keys[2].into(),
        }],
        Dur::Immediate,
    ));
    steps
}

/// A counter incremented by read-modify-write, with a reopen in the middle.
pub(super) fn counter() -> Vec<Step> {
    let mut steps = Vec::new();
    for s in 1..=6u64 {
        let durability = if s % 3 == 0 {
            Dur::Buffered
        } else {
            Dur::Immediate
        };
        steps.push(Step::Increment {
            serial: s,
            key: "counter".into(),
            durability,
        });
        if s == 3 {
            steps.push(Step::Reopen);
        }
    }
    steps
}

/// Commits with checkpoints between them, deletes, and enough keys for several snapshot files.
pub(super) fn checkpoints() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut s = 0u64;
    for round in 0..3u64 {
        for _ in 0..2 {
            s += 1;
            let ops = (0..12u64)
                .map(|i| {
                    let key = format!("user/{:04}", (i * 7 + s) % 40);
                    put(s, &key, &"x".repeat(200))
                })
                .chain(std::iter::once(TxOp::Delete {
                    key: format!("user/{:04}", (round * 11) % 40),
                }))
                .collect();
            steps.push(txn(s, ops, Dur::Immediate));
        }
        // Runs pile up one per checkpoint; every third round merges them (and drops the
        // tombstones of the deletes).
        steps.push(if round % 3 == 2 {
            Step::Compact
        } else {
            Step::Checkpoint
        });
    }
    s += 1;
    steps.push(txn(s, vec![put(s, "after", "last")], Dur::Immediate));
    steps
}
