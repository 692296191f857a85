//! The invariants of the fault model, and a violation of one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The crash invariants checked after every simulated crash and reopen (numbered as in the
/// fault model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Invariant {
    /// 1. Recovery never panics; the outcome is Ok or a typed error.
    NoPanic,
    /// 2. The recovered state equals the model after commits 1..k for some k.
    PrefixConsistency,
    /// 3. k is at least the last acknowledged commit.
    Durability,
    /// 4. Nothing from an aborted or never-committed transaction is visible.
    NoPhantoms,
    /// 5. Every transaction is all-or-nothing.
    Atomicity,
    /// 6. Indeterminate commits are stable across reopens and crashes during recovery.
    StableIndeterminate,
    /// 7. A torn tail is silent; damage to synced bytes is reported as corruption.
    TornTailVersusCorruption,
    /// 8. New commits succeed after recovery and survive a further crash.
    WritableAfterRecovery,
    /// 9. Every file the store references exists and checksums; no garbage accumulates.
    StructuralIntegrity,
    /// 10. A crash inside a checkpoint leaves the old or the new generation.
    CheckpointAtomicity,
    /// 11. After a failed fsync or write the handle is poisoned until reopen.
    PoisonAfterFailure,
    /// 12. Readers observe committed prefixes: bounded ranges, prefix scans and point
    ///     gets agree with the state.
    ReadsAgree,
    /// 13. The change feed read after recovery yields exactly the recovered commits, in
    ///     commit order, each once (engines with a feed, workloads with a consumer).
    FeedAgrees,
}

impl Invariant {
    /// Every invariant, in order.
    pub const ALL: [Invariant; 13] = [
        Invariant::NoPanic,
        Invariant::PrefixConsistency,
        Invariant::Durability,
        Invariant::NoPhantoms,
        Invariant::Atomicity,
        Invariant::StableIndeterminate,
        Invariant::TornTailVersusCorruption,
        Invariant::WritableAfterRecovery,
        Invariant::StructuralIntegrity,
        Invariant::CheckpointAtomicity,
        Invariant::PoisonAfterFailure,
        Invariant::ReadsAgree,
        Invariant::FeedAgrees,
    ];

    /// The number in the fault model.
    pub fn number(self) -> u8 {
        match self {
            Invariant::NoPanic => 1,
            Invariant::PrefixConsistency => 2,
            Invariant::Durability => 3,
            Invariant::NoPhantoms => 4,
            Invariant::Atomicity => 5,
            Invariant::StableIndeterminate => 6,
            Invariant::TornTailVersusCorruption => 7,
            Invariant::WritableAfterRecovery => 8,
            Invariant::StructuralIntegrity => 9,
            Invariant::CheckpointAtomicity => 10,
            Invariant::PoisonAfterFailure => 11,
            Invariant::ReadsAgree => 12,
            Invariant::FeedAgrees => 13,
        }
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoPanic => "no panic",
            Invariant::PrefixConsistency => "prefix consistency",
            Invariant::Durability => "durability",
            Invariant::NoPhantoms => "no phantoms",
            Invariant::Atomicity => "atomicity",
            Invariant::StableIndeterminate => "stable indeterminate commits",
            Invariant::TornTailVersusCorruption => "torn tail silent, synced damage reported",
            Invariant::WritableAfterRecovery => "writable after recovery",
            Invariant::StructuralIntegrity => "structural integrity",
            Invariant::CheckpointAtomicity => "checkpoint atomicity",
            Invariant::PoisonAfterFailure => "poison after a failed fsync or write",
            Invariant::ReadsAgree => "bounded reads agree with the state",
            Invariant::FeedAgrees => "the change feed agrees with the recovered commits",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant {} ({})", self.number(), self.name())
    }
}

/// A broken invariant, with what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// One sentence on what happened.
    pub detail: String,
    /// What the oracle allowed.
    pub expected: String,
    /// What the engine did.
    pub actual: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(
        invariant: Invariant,
        detail: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Violation {
            invariant,
            detail: detail.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    /// The same finding, named as another invariant (with the reason prepended).
    pub fn renamed(mut self, invariant: Invariant, why: &str) -> Self {
        if invariant != self.invariant {
            self.detail = format!("{why}: {} [first seen as {}]", self.detail, self.invariant);
            self.invariant = invariant;
        }
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n  expected: {}\n  actual:   {}",
            self.invariant, self.detail, self.expected, self.actual
        )
    }
}
