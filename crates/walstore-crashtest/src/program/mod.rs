//! Crash-testing any program: record what it does in one directory (through `strace`), replay
//! the recording into the simulated file system, and run the program's checker on every
//! distinct post-crash image the fault model's recipes make of every crash point.
//!
//! Flow ([`run_program`], `run.rs`): `--init` prepares the directory (its result is taken as
//! durable) -> the directory is read into an [`Image`](crate::image::Image) (`dirimage.rs`) ->
//! `--run` runs under `strace` (`record.rs`; [`strace`] turns the log into [`ops::Op`]s, stdout
//! lines included, in one order) -> [`replay`] gives a crash point after every operation ->
//! [`crate::crashgen::generate`] makes images -> each distinct (image, acknowledged lines) pair
//! is materialised into a temporary directory and `--check` runs on it (`checker.rs`) ->
//! [`Outcome`] (`outcome.rs`) -> [`report`] (`report.rs`).
//!
//! Invariant: the program runs once, on the real directory; everything after is simulated, so
//! one `(trace.json, operation, recipe, seed, media)` names an image exactly
//! ([`materialise`] rebuilds it).
//!
//! Before any image, a run must be judgeable (`run.rs`): `--run` succeeded, every operation
//! was modelled, no state was left outside the directory, and the replay ends in the real
//! directory's state (`selfcheck.rs`); otherwise [`ProgramError`] (exit status 2).
//!
//! Module layering (no module imports one above it): `ops`, `config` <- `strace`, `replay`,
//! `outcome`, `diagnosis` <- `dirimage`, `selfcheck`, `report` <- `record`, `checker` <- `run` <- this file
//! (re-exports only).

mod checker;
mod config;
mod diagnosis;
mod dirimage;
pub mod ops;
mod outcome;
mod record;
pub mod replay;
mod report;
mod run;
mod selfcheck;
pub mod strace;

pub use config::{media_by_name, ProgramConfig, ProgramError, Tier};
pub use diagnosis::{remedy, RENAMED_UNSYNCED};
pub use dirimage::{read_dir_image, write_image};
pub use outcome::{total_time, ClassCount, Outcome, Violation};
pub use report::{describe, report};
pub use run::{materialise, run_program, RECIPES};
