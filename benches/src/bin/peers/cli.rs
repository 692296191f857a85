//! The runner's command line: what to measure and where to write it, and the hidden
//! subcommand that runs one phase in a child process.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "walstore-peers",
    about = "walstore against its peers, same workloads, one run"
)]
pub(crate) struct Cli {
    /// Small counts (under a minute): proves every path works; figures are not for judging.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub(crate) json_out: Option<PathBuf>,
    /// Write the ratio chart as SVG here.
    #[arg(long)]
    pub(crate) svg_out: Option<PathBuf>,
    /// Write the markdown report here too (it is always printed).
    #[arg(long)]
    pub(crate) md_out: Option<PathBuf>,
    /// Directory for the stores (a fresh subdirectory is made and removed).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Only these stores (comma-separated ids: walstore, sqlite-full, sqlite-normal, redb,
    /// fjall, plain-files, bare-log).
    #[arg(long, value_delimiter = ',')]
    pub(crate) engines: Vec<String>,
    /// Only these workloads (comma-separated: a, b, c, d, g, h, fresh, e, open, scale, oneshot,
    /// logsize; d, g and h read c's store, so need c; fresh loads c's data into a store of its
    /// own and runs d's and g's gets at once, in the loading process, no checkpoint asked).
    /// Without it: all of them, except scale in
    /// a full run unless --scale-sizes is given (its default sizes take a long time), and
    /// logsize in a full run. logsize: stores whose log holds 0, 4, 16 and 48 MiB beyond the
    /// last checkpoint (0, 1, 2 and 4 with --quick), closed or held open by the process that
    /// set them up; a fresh process per get of one key and per durable commit of 3 keys, on
    /// walstore, sqlite-full and redb (needs walstore).
    #[arg(long, value_delimiter = ',')]
    pub(crate) workloads: Vec<String>,
    /// Store sizes (keys) of the scale workload (default 1000000,4000000,10000000; 20000 with
    /// --quick).
    #[arg(long, value_delimiter = ',')]
    pub(crate) scale_sizes: Vec<u64>,
    /// Write the scale workload's charts (SVG) here.
    #[arg(long)]
    pub(crate) scale_svg_out: Option<PathBuf>,
    /// Processes per store of the oneshot workload (default 200, 10 with --quick).
    #[arg(long)]
    pub(crate) oneshot_runs: Option<u64>,
    /// Processes per log size, mode, store and operation of the logsize workload (default 50,
    /// 5 with --quick).
    #[arg(long)]
    pub(crate) logsize_runs: Option<u64>,
    /// Rounds of the commit-bound workloads (a, b, e), the stores taking turns in each round;
    /// the median round is reported (default: 3, 1 with --quick). Device flush times drift,
    /// so taking turns keeps the ratios of one run comparable.
    #[arg(long)]
    pub(crate) rounds: Option<u32>,
    /// Open walstore with `Options::sector_size` (sector padding) set to this many bytes;
    /// passed to the phases through `WALSTORE_PEERS_SECTOR_SIZE`.
    #[arg(long)]
    pub(crate) walstore_sector_size: Option<u32>,
    /// Measure nothing: render the markdown, JSON and SVG of a report saved with --json-out.
    #[arg(long)]
    pub(crate) from_json: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) phase: Option<Phase>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Phase {
    /// Runs one phase and prints its figures as JSON (used by the runner itself).
    #[command(name = "__phase", hide = true)]
    Run {
        #[arg(long)]
        engine: String,
        #[arg(long)]
        workload: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        quick: bool,
        /// Scale: keys in the store; oneshot: the process's number (which keys it writes);
        /// logsize: log bytes or transactions of a set-up, the log's transactions of a get,
        /// the process's number of a put3.
        #[arg(long, default_value_t = 0)]
        n: u64,
    },
}
