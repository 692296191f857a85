//! Workloads: what the driver does to the store, as data (so a failure can be saved,
//! replayed and shrunk).
//!
//! Every value written carries the serial number of the transaction that wrote it
//! (`s<serial>:...`), so the oracle can tell, for any value it finds after a crash, which
//! transaction it came from (an aborted one is a phantom, half of a committed one is an
//! atomicity violation).

mod data;
mod during;
mod feed;
mod handles;
mod random;
mod scripted;
mod shaped;

pub use data::{counter_of, serial_of, value, Dur, EngineSettings, Step, TxOp, Workload};
pub use handles::{handles_mix, handles_mix_over, HANDLES_STEPS};
pub use random::random_mix;

/// Names of the scripted scenarios.
pub const SCRIPTED: [&str; 5] = [
    "context-save",
    "config",
    "counter",
    "checkpoints",
    "torn-tails",
];

/// A scripted scenario by name.
pub fn scripted(name: &str) -> Option<Workload> {
    let steps = match name {
        "context-save" => scripted::context_save(),
        "config" => scripted::config(),
        "counter" => scripted::counter(),
        "checkpoints" => scripted::checkpoints(),
        "torn-tails" => return Some(shaped::torn_tails()),
        "large" => return Some(shaped::large()),
        "two-handles" => return Some(shaped::two_handles()),
        "threads" => return Some(shaped::threads()),
        "handoff" => return Some(shaped::handoff()),
        "ranges" => return Some(shaped::ranges()),
        "merges" => return Some(shaped::merges()),
        "clean-reopen" => return Some(shaped::clean_reopen()),
        "close-fold" => return Some(shaped::close_fold()),
        "visibility" => return Some(shaped::visibility()),
        "read-then-commit" => return Some(shaped::read_then_commit()),
        "feed" => return Some(feed::feed()),
        "checkpoint-tail" => return Some(during::checkpoint_tail()),
        "kill-mid-commit" => return Some(during::kill_mid_commit()),
        "zero-runs" => return Some(during::zero_runs()),
        _ => return None,
    };
    Some(Workload {
        name: name.to_string(),
        steps,
        settings: EngineSettings::default(),
    })
}

impl Workload {
    /// Looks a workload up by name: a scripted scenario, `random-<seed>`, `handles-<seed>` or
    /// `handles3-<seed>` (three handles).
    pub fn by_name(name: &str) -> Option<Workload> {
        if let Some(seed) = name.strip_prefix("handles3-") {
            return seed
                .parse()
                .ok()
                .map(|s| handles_mix_over(s, HANDLES_STEPS, 3));
        }
        if let Some(seed) = name.strip_prefix("handles-") {
            return seed.parse().ok().map(|s| handles_mix(s, HANDLES_STEPS));
        }
        if let Some(seed) = name.strip_prefix("random-") {
            return seed.parse().ok().map(|s| random_mix(s, 24));
        }
        scripted(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_serial() {
        let v = value(42, "7");
        assert_eq!(serial_of(&v), Some(42));
        assert_eq!(counter_of(&v), Some(7));
        assert_eq!(serial_of("plain"), None);
    }

    #[test]
    fn every_named_workload_resolves() {
        for name in SCRIPTED {
            assert!(Workload::by_name(name).is_some(), "{name}");
        }
        assert_eq!(Workload::by_name("random-3"), Workload::by_name("random-3"));
    }
}
