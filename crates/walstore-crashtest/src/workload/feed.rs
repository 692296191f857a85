//! The `feed` workload: a change feed consumer is registered at the first open, so every
//! checkpoint seals its generation's log (`log-<gen>.seg`, then `FEED` listing it, before the
//! manifest switch) until the consumer acknowledges it; after every crash the feed is read
//! from the consumer's position and checked against the recovered commits (invariant 13): a
//! seal whose segment is not durable when listed, a log reset before its seal, or an
//! acknowledgement that outlives the commits it names, loses or repeats commits.

use super::data::{delete_range, put, txn, Dur, EngineSettings, Step, TxOp, Workload};

/// Commits of both durabilities, a range deletion, three checkpoints (seals), two
/// acknowledgements (one of a Buffered commit), a reopen.
pub fn feed() -> Workload {
    let steps = vec![
        txn(
            1,
            vec![put(1, "a/1", "one"), put(1, "a/2", "one")],
            Dur::Immediate,
        ),
        txn(
            2,
            vec![delete_range("a/1", "a/2"), put(2, "b/1", "two")],
            Dur::Buffered,
        ),
        Step::Sync,
        Step::Checkpoint,
        txn(3, vec![put(3, "a/3", "three")], Dur::Immediate),
        // Acknowledges 1-3: the sealed segment of 1-2 is dropped, 3 is in the live log.
        Step::FeedAck,
        txn(
            4,
            vec![TxOp::Delete { key: "a/2".into() }, put(4, "b/2", "four")],
            Dur::Buffered,
        ),
        Step::Checkpoint,
        Step::Reopen,
        txn(5, vec![put(5, "a/1", "five")], Dur::Buffered),
        // Acknowledges a Buffered commit: the log is made durable first.
        Step::FeedAck,
        Step::Checkpoint,
        txn(6, vec![put(6, "c/1", "six")], Dur::Immediate),
    ];
    Workload {
        name: "feed".into(),
        steps,
        settings: EngineSettings {
            feed_consumer: true,
            ..EngineSettings::default()
        },
    }
}
