//! walstore next to SQLite, redb, fjall, the plain-files recipe and a bare log, on the same
//! workloads with the same data, in one run.
//!
//!     cargo run --release -p walstore-benches --bin walstore-peers -- [--quick]
//!         [--json-out PATH] [--svg-out PATH] [--md-out PATH] [--dir DIR]
//!         [--engines walstore,redb,...] [--workloads a,b,...]
//!         [--scale-sizes 1000000,4000000,10000000] [--scale-svg-out PATH] [--oneshot-runs N]
//!         [--logsize-runs N]
//!
//! Each phase (one workload on one store) runs in a child process of this binary (a hidden
//! subcommand), so that its peak resident memory (`VmHWM`) is its own and no store's caches
//! or background threads disturb the next one. Stores live under `--dir` (default: the
//! system temporary directory), which should be on the disk you want to measure.
//!
//! Two workloads have phases of their own: `scale` (per store size: a bulk load into a fresh
//! store, point reads, an overwrite of 10% of the keys, each phase a child process that also
//! reports the bytes it wrote to storage and the store's size on disk) and `oneshot` (a whole
//! child process per operation: open an existing store, commit 3 keys, exit; timed by the
//! parent, its flush calls counted in a second pass under `strace -f -c` when strace runs).
//! A third, `logsize`, sets up stores whose log holds 0 to 48 MiB beyond the last checkpoint
//! (one child process per store, which closes it or holds it open meanwhile) and times a whole
//! child process per get and per 3-key durable commit on them.
//!
//! Rooms: `cli` (the command line), `runner` (the parent), `spawn` (a phase in a child
//! process), `phase` (the child), `workloads`, `scale`, `oneshot` and `logsize` (the phases,
//! parent side included for the three with phases of their own), `measure` (what the phases share),
//! `machine` (the report's machine line).

mod cli;
mod logsize;
mod machine;
mod measure;
mod oneshot;
mod phase;
mod runner;
mod scale;
mod spawn;
mod workloads;

use clap::Parser;
use cli::{Cli, Phase};

fn main() {
    let cli = Cli::parse();
    let outcome = match &cli.phase {
        Some(Phase::Run {
            engine,
            workload,
            dir,
            quick,
            n,
        }) => phase::run_phase(engine, workload, dir, *quick, *n),
        None => runner::run_all(&cli),
    };
    if let Err(e) = outcome {
        eprintln!("walstore-peers: {e}");
        std::process::exit(1);
    }
}
