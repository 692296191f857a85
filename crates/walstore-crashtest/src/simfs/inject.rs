//! I/O error injection: a countdown (fail the N-th matching call, once or from then on) and
//! per-seed random probabilities ("swarm" testing).
//!
//! Fault F10 is an error from a write, `set_len`, create, rename, unlink or directory sync,
//! optionally after part of a write landed (a short write). Fault F11 is a failed file sync:
//! the simulated kernel drops the file's dirty pages, and a retried sync succeeds (the error
//! is reported once) unless the fault is persistent.

use crate::trace::OpClass;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Errno {
    /// EIO (5).
    Eio,
    /// ENOSPC (28).
    Enospc,
}

impl Errno {
    /// The `std::io::Error` the simulated call returns.
    pub fn to_io(self) -> io::Error {
        match self {
            Errno::Eio => io::Error::from_raw_os_error(5),
            Errno::Enospc => io::Error::from_raw_os_error(28),
        }
    }
}

/// Fail the `nth` matching call (1-based), optionally every later matching call too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountdownFault {
    /// Which matching call fails first (1 = the first).
    pub nth: u64,
    /// Only calls of this class count (any state-changing call if `None`).
    pub class: Option<OpClass>,
    /// The error returned.
    pub errno: Errno,
    /// Keep failing every later matching call (otherwise the fault fires once).
    pub persistent: bool,
    /// A failing write lands its first half before failing.
    pub short_write: bool,
}

impl fmt::Display for CountdownFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = self
            .class
            .map_or_else(|| "any call".to_string(), |c| c.to_string());
        write!(
            f,
            "{:?} on {} #{}{}{}",
            self.errno,
            class,
            self.nth,
            if self.persistent {
                ", persistent"
            } else {
                ", transient"
            },
            if self.short_write {
                ", short write"
            } else {
                ""
            }
        )
    }
}

/// Per-call fault probabilities of one swarm seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SwarmProbabilities {
    /// Seed of the generator that rolls the dice.
    pub seed: u64,
    /// Probability that a write fails (EIO or ENOSPC).
    pub write: f64,
    /// Probability that a failing write lands half of its bytes first.
    pub short_write: f64,
    /// Probability that a file sync fails and drops the dirty pages.
    pub sync: f64,
    /// Probability that a create, `set_len`, rename, unlink or directory sync fails.
    pub metadata: f64,
}

impl SwarmProbabilities {
    /// Draws the probabilities of one swarm seed: each class is off for some seeds and
    /// frequent for others, so different seeds stress different error paths.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5157_4152_4d00_0000);
        let levels = [0.0, 0.0, 0.002, 0.01, 0.04];
        let pick = |rng: &mut StdRng| levels[rng.gen_range(0..levels.len())];
        SwarmProbabilities {
            seed,
            write: pick(&mut rng),
            short_write: 0.5,
            sync: pick(&mut rng),
            metadata: pick(&mut rng),
        }
    }
}

/// What the injector decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// The error to return.
    pub errno: Errno,
    /// Land the first half of a write before failing.
    pub short_write: bool,
}

/// A fault that fired: which call, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredFault {
    /// Trace index of the failed call.
    pub op_index: u64,
    /// Class of the failed call.
    pub class: OpClass,
    /// Path of the failed call.
    pub path: String,
    /// The error returned.
    pub errno: Errno,
    /// Whether part of a write landed.
    pub short_write: bool,
}

impl fmt::Display for FiredFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op #{} {} {}: {:?}{}",
            self.op_index,
            self.class,
            self.path,
            self.errno,
            if self.short_write {
                " after a short write"
            } else {
                ""
            }
        )
    }
}

/// Decides, call by call, whether to fail.
#[derive(Debug, Default)]
pub struct Injector {
    countdown: Option<CountdownFault>,
    matching_seen: u64,
    countdown_fired: bool,
    swarm: Option<(SwarmProbabilities, StdRng)>,
}

impl Injector {
    /// Arms a countdown fault (replacing any earlier one).
    pub fn set_countdown(&mut self, fault: CountdownFault) {
        self.countdown = Some(fault);
        self.matching_seen = 0;
        self.countdown_fired = false;
    }

    /// Arms random faults with the given probabilities.
    pub fn set_swarm(&mut self, probabilities: SwarmProbabilities) {
        let rng = StdRng::seed_from_u64(probabilities.seed);
        self.swarm = Some((probabilities, rng));
    }

    /// Disarms every fault.
    pub fn clear(&mut self) {
        self.countdown = None;
        self.swarm = None;
    }

    /// Decides the fate of one call.
    pub fn decide(&mut self, class: OpClass) -> Option<Injection> {
        if let Some(injection) = self.decide_countdown(class) {
            return Some(injection);
        }
        self.decide_swarm(class)
    }

    fn decide_countdown(&mut self, class: OpClass) -> Option<Injection> {
        let fault = self.countdown.as_ref()?;
        if fault.class.is_some_and(|c| c != class) {
            return None;
        }
        self.matching_seen += 1;
        let fires = if self.countdown_fired {
            fault.persistent
        } else {
            self.matching_seen >= fault.nth
        };
        if !fires {
            return None;
        }
        self.countdown_fired = true;
        Some(Injection {
            errno: fault.errno,
            short_write: fault.short_write && class == OpClass::Write,
        })
    }

    fn decide_swarm(&mut self, class: OpClass) -> Option<Injection> {
        let (p, rng) = self.swarm.as_mut()?;
        let probability = match class {
            OpClass::Write => p.write,
            OpClass::Sync => p.sync,
            _ => p.metadata,
        };
        if probability <= 0.0 || !rng.gen_bool(probability.min(1.0)) {
            return None;
        }
        let errno = match class {
            OpClass::Write | OpClass::SetLen | OpClass::Create if rng.gen_bool(0.5) => {
                Errno::Enospc
            }
            _ => Errno::Eio,
        };
        let short_write = class == OpClass::Write && rng.gen_bool(p.short_write.min(1.0));
        Some(Injection { errno, short_write })
    }
}
