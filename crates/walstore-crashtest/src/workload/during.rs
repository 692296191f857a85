//! Workloads of commits made while something else is in progress: `checkpoint-tail`, commits
//! of another thread and of another handle while a checkpoint writes its run;
//! `kill-mid-commit`, a handle's process killed between its log write and its commit-index
//! update, the other handle writing next.

use super::data::{delete_range, put, txn, Dur, EngineSettings, Step, TxOp, Workload};

/// Two checkpoints, each with a commit made while it writes its first run (walstore's
/// two-phase checkpoint: the commit lands in phase 2's tail run): the first by another
/// thread of the handle (Buffered: a rewrite, a delete and a range deletion of keys the
/// frozen memtable holds), the second by the other handle (Immediate: rewrites). The tail
/// run must rank above the first run: reads right after each checkpoint, the other handle's
/// read, a reopen and every crash point after it see the tail's values.
pub fn checkpoint_tail() -> Workload {
    let other = |step: Step| Step::Other(Box::new(step));
    let during = |step: Step| Step::Concurrent(Box::new(Step::Checkpoint), Box::new(step));
    let keys = ["c/a", "c/b", "c/c", "c/d", "c/e"];
    let steps = vec![
        txn(
            1,
            keys.iter().map(|k| put(1, k, "one")).collect(),
            Dur::Immediate,
        ),
        other(txn(2, vec![put(2, "c/f", "two")], Dur::Immediate)),
        during(txn(
            3,
            vec![
                put(3, "c/a", "three"),
                TxOp::Delete { key: "c/b".into() },
                delete_range("c/c", "c/e"),
            ],
            Dur::Buffered,
        )),
        txn(
            4,
            vec![put(4, "c/b", "four"), put(4, "c/c", "four")],
            Dur::Immediate,
        ),
        during(other(txn(
            5,
            vec![put(5, "c/a", "five"), put(5, "c/c", "five")],
            Dur::Immediate,
        ))),
        other(Step::Read),
        Step::Reopen,
        txn(6, vec![put(6, "c/g", "six")], Dur::Immediate),
    ];
    Workload {
        name: "checkpoint-tail".into(),
        steps,
        settings: EngineSettings::default(),
    }
}

/// Each handle's process killed in the middle of a commit, after its log write and before
/// it publishes the commit (the writer lock released dirty): the other handle reads, then
/// commits (it must keep the killed commit, which the log holds), reads again; a Buffered
/// and an Immediate commit killed, then a reopen.
pub fn kill_mid_commit() -> Workload {
    let other = |step: Step| Step::Other(Box::new(step));
    let killed = |step: Step| Step::Concurrent(Box::new(Step::Kill), Box::new(step));
    let steps = vec![
        txn(
            1,
            vec![put(1, "k/a", "one"), put(1, "k/b", "one")],
            Dur::Immediate,
        ),
        other(txn(2, vec![put(2, "k/c", "two")], Dur::Immediate)),
        killed(txn(3, vec![put(3, "k/a", "three")], Dur::Buffered)),
        other(Step::Read),
        other(txn(4, vec![put(4, "k/d", "four")], Dur::Immediate)),
        other(Step::Read),
        txn(5, vec![put(5, "k/b", "five")], Dur::Buffered),
        other(killed(txn(6, vec![put(6, "k/c", "six")], Dur::Immediate))),
        txn(7, vec![put(7, "k/e", "seven")], Dur::Immediate),
        Step::Read,
        Step::Reopen,
        txn(8, vec![put(8, "k/f", "eight")], Dur::Immediate),
    ];
    Workload {
        name: "kill-mid-commit".into(),
        steps,
        settings: EngineSettings::default(),
    }
}

/// Transactions whose values hold runs of zero bytes over whole sectors (at 512 and 4096
/// bytes), left unsynced by Buffered commits and synced by Immediate ones: a torn write of one
/// with garbage only over its zero sectors is a torn tail that zeroing makes whole again. Any
/// repair of the torn tail whose first record header is not zeroed and synced before the rest
/// may, cut by a crash, bring back a transaction the first open discarded (finding F's class:
/// at any zero sector of a transaction, not only a watermark's high bytes at a sector's start).
pub fn zero_runs() -> Workload {
    let zeros = |serial: u64, key: &str, sectors: usize| {
        let body = format!("<{}>", "\0".repeat(sectors * 4096));
        put(serial, key, &body)
    };
    let steps = vec![
        txn(1, vec![put(1, "z/a", "one")], Dur::Immediate),
        txn(2, vec![zeros(2, "z/b", 2)], Dur::Buffered),
        txn(
            3,
            vec![put(3, "z/c", "three"), zeros(3, "z/d", 1)],
            Dur::Immediate,
        ),
        txn(
            4,
            vec![zeros(4, "z/e", 2), put(4, "z/a", "four")],
            Dur::Buffered,
        ),
    ];
    Workload {
        name: "zero-runs".into(),
        steps,
        settings: EngineSettings {
            wal_preallocate_bytes: 32768,
            ..EngineSettings::default()
        },
    }
}
