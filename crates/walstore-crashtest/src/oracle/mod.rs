//! The oracle: a reference model of the commits ([`history`]), the states a recovery may
//! produce at a crash point ([`expect`]), the invariants it checks ([`invariant`]), and the
//! change feed's agreement with a recovered state ([`feed`]).

pub mod expect;
pub mod feed;
pub mod history;
pub mod invariant;

pub use expect::{describe, Expectation, State};
pub use history::{History, Status};
pub use invariant::{Invariant, Violation};
