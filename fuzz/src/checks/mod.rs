//! What must hold for every input of every fuzz target: one module per target, the helpers
//! they share in [`common`], and the input format of the structured targets in [`input`].
//!
//! These files are compiled twice: as module `checks` of the fuzz crate (`fuzz/src/lib.rs`),
//! and through `#[path]` as a module of `crates/walstore/tests/fuzz_regressions.rs`. So every
//! corpus file and every input the fuzzer ever failed on replays under plain `cargo test`
//! through exactly the checks the fuzzer applied. They use `walstore`, `arbitrary`, `xxhash-rust` (a
//! dependency of both) and `std` only.
//!
//! Every check panics with a message when an invariant fails: that is how libFuzzer and the
//! test harness notice. The including crate provides `crate::alloc_probe::peak_during`, which
//! measures the bytes allocated while a closure runs (the fuzz crate counts them with its
//! global allocator; the test build returns `None` and skips the bound).

pub mod common;
pub mod feedfile;
pub mod index;
pub mod input;
pub mod logindex;
pub mod manifest;
pub mod ops;
pub mod recovery;
pub mod snapshot;
pub mod wal_record;
