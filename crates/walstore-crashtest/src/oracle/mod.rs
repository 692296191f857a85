//! The oracle: a reference model of the commits ([`history`]), the states a recovery may
//! produce at a crash point ([`expect`]), and the invariants it checks ([`invariant`]).

pub mod expect;
pub mod history;
pub mod invariant;

pub use expect::{describe, Expectation, State};
pub use history::{History, Status};
pub use invariant::{Invariant, Violation};
