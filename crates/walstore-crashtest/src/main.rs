//! The `walstore-crashtest` command: run, explore, replay, minimize, kill, program.

mod program_cmd;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;
use walstore_crashtest::artifact;
use walstore_crashtest::crashgen::{MediaModel, Variant};
use walstore_crashtest::engine::EngineConfig;
use walstore_crashtest::explore::{ExploreConfig, Failure, Strategy};
use walstore_crashtest::killtest::{child_writer, run_kill_test, KillConfig};
use walstore_crashtest::minimize::minimize;
use walstore_crashtest::plan::{random_tasks, run_tasks, tier, Task};
use walstore_crashtest::stats::Stats;
use walstore_crashtest::workload::{Workload, SCRIPTED};

#[derive(Parser, Debug)]
#[command(
    name = "walstore-crashtest",
    about = "Crash-recovery harness for walstore: simulated power loss, I/O errors and kills"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Media {
    /// Sector size for torn writes.
    #[arg(long, default_value_t = 512)]
    sector: usize,
    /// The whole fault model: no powersafe overwrite, directory entries persist in any order,
    /// a failed directory sync is transient.
    #[arg(long)]
    strict: bool,
    /// Directory for failure artifacts.
    #[arg(long, default_value = "crashtest-artifacts")]
    artifacts: PathBuf,
    /// Leave out an image recipe (repeatable), e.g. `--without TornGarbage`.
    #[arg(long, value_parser = parse_variant)]
    without: Vec<Variant>,
    /// Commit a fixed-size value after recovery instead of one sized to take the place of the
    /// first commit recovery left out.
    #[arg(long)]
    plain_probe: bool,
    /// Open the engine with sector padding (`Options::sector_size(4096)`): every append ends
    /// on a 4 KiB boundary, which closes finding D under `--strict`.
    #[arg(long)]
    sector_padding: bool,
    /// Worker threads, each exploring one task at a time (default: one per core). The figures
    /// and failures reported do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
}

fn parse_variant(name: &str) -> Result<Variant, String> {
    Variant::parse(name).ok_or_else(|| {
        let names: Vec<String> = Variant::ALL.iter().map(|v| format!("{v:?}")).collect();
        format!("unknown recipe {name}; one of {}", names.join(", "))
    })
}

impl Media {
    /// The number of worker threads.
    fn jobs(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// Removes the left-out recipes from every task.
    fn apply(&self, tasks: Vec<Task>) -> Vec<Task> {
        tasks
            .into_iter()
            .map(|mut t| {
                t.config.variants.retain(|v| !self.without.contains(v));
                t.config
                    .recovery_variants
                    .retain(|v| !self.without.contains(v));
                t.config.aligned_probe &= !self.plain_probe;
                if self.sector_padding {
                    t.workload.settings.sector_size = 4096;
                }
                t
            })
            .collect()
    }

    fn model(&self) -> MediaModel {
        if self.strict {
            MediaModel::strict(self.sector)
        } else {
            MediaModel {
                sector: self.sector,
                ..MediaModel::default()
            }
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// `random`, or a scripted workload (context-save, config, counter, checkpoints,
    /// torn-tails, large).
    #[arg(long, default_value = "random")]
    workload: String,
    /// power (crash after every op), sync (crash after every fsync), io (countdown
    /// errors), swarm (random errors and crashes).
    #[arg(long, default_value = "swarm")]
    profile: String,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of seeds.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Steps per random workload.
    #[arg(long, default_value_t = 24)]
    steps: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    time_budget_secs: u64,
    #[command(flatten)]
    media: Media,
}

#[derive(Args, Debug)]
struct ExploreArgs {
    /// A named tier; overrides --workload and --strategy.
    #[arg(long)]
    tier: Option<String>,
    /// A scripted workload, `random-<seed>`, `handles-<seed>`, or `all`.
    #[arg(long, default_value = "all")]
    workload: String,
    /// sync-points, every-op, countdown, recovery-crash, swarm, aimed, torn-tails, or
    /// `all`.
    #[arg(long, default_value = "all")]
    strategy: String,
    /// Seeded images per recipe and crash point.
    #[arg(long, default_value_t = 2)]
    rounds: u64,
    /// Seed of the image recipes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep going after a failure (always so with --tier).
    #[arg(long)]
    keep_going: bool,
    #[command(flatten)]
    media: Media,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Seeded runs of a workload under a fault profile, within a time budget.
    Run(RunArgs),
    /// Exhaustive strategies over the scripted workloads (`--tier ci` for CI, `--tier full`).
    Explore(ExploreArgs),
    /// Re-checks a saved failure artifact.
    Replay {
        /// The artifact directory.
        dir: PathBuf,
    },
    /// Shrinks a saved failure to the fewest steps and faults; saves the result.
    Minimize {
        /// The artifact directory.
        dir: PathBuf,
    },
    /// Kills a real writer process with SIGKILL at random moments on the real file system.
    Kill {
        /// Store directory (a fresh temporary one if omitted).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Kill / reopen rounds.
        #[arg(long, default_value_t = 20)]
        rounds: u32,
        /// Seed of the kill delays.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Longest delay before a kill.
        #[arg(long, default_value_t = 200)]
        delay_ms_max: u64,
        /// Commit with Buffered durability.
        #[arg(long)]
        buffered: bool,
    },
    /// Records a real program's file operations in DIR (strace) and runs its checker on every
    /// crash image of them.
    Program(program_cmd::ProgramArgs),
    /// Materialises one crash image of a `program` run into a directory.
    ProgramImage(program_cmd::ImageArgs),
    /// The child of `kill` (commits in a loop, prints acknowledged transaction numbers).
    #[command(hide = true)]
    ChildWriter {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        buffered: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Explore(args) => explore(args),
        Command::Replay { dir } => replay(&dir),
        Command::Minimize { dir } => minimize_artifact(&dir),
        Command::Kill {
            dir,
            rounds,
            seed,
            delay_ms_max,
            buffered,
        } => kill(dir, rounds, seed, delay_ms_max, buffered),
        Command::Program(args) => program_cmd::program(args),
        Command::ProgramImage(args) => program_cmd::program_image(args),
        Command::ChildWriter { dir, buffered } => match child_writer(&dir, buffered) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child writer: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `run`: seeded runs of a workload under a fault profile, within a time budget.
fn run(args: RunArgs) -> ExitCode {
    let Some(strategy) = profile_strategy(&args.profile) else {
        eprintln!(
            "unknown profile {}: use power, sync, io or swarm",
            args.profile
        );
        return ExitCode::from(2);
    };
    let config = ExploreConfig {
        media: args.media.model(),
        ..ExploreConfig::default()
    };
    let Some(tasks) = run_tasks_of(&args, strategy, &config) else {
        eprintln!("unknown workload {}", args.workload);
        return ExitCode::from(2);
    };
    let tasks = args.media.apply(tasks);
    execute(
        &tasks,
        Some(Duration::from_secs(args.time_budget_secs)),
        false,
        &args.media,
    )
}

/// The tasks of `run`: random workloads under the swarm's seeds, or one scripted workload
/// once a seed; `None` for an unknown workload.
fn run_tasks_of(args: &RunArgs, strategy: Strategy, config: &ExploreConfig) -> Option<Vec<Task>> {
    let (seed, seeds) = (args.seed, args.seeds);
    if args.workload == "random" {
        return Some(
            random_tasks(seed..=seed + seeds.saturating_sub(1), args.steps, config, 0)
                .into_iter()
                .filter(|t| t.strategy == Strategy::Swarm)
                .map(|t| Task { strategy, ..t })
                .collect(),
        );
    }
    let w = Workload::by_name(&args.workload)?;
    Some(
        (seed..seed + seeds)
            .map(|s| Task {
                workload: w.clone(),
                strategy,
                config: ExploreConfig {
                    seed: s,
                    ..config.clone()
                },
            })
            .collect(),
    )
}

/// `explore`: a named tier, or the strategies named over the workloads named.
fn explore(args: ExploreArgs) -> ExitCode {
    // A tier reports every failing task; a single exploration stops at the first.
    let stop_at_first = !args.keep_going && args.tier.is_none();
    let tasks = match &args.tier {
        Some(name) => match tier(name, args.media.model()) {
            Some(t) => t,
            None => {
                eprintln!("unknown tier {name}: use ci or full");
                return ExitCode::from(2);
            }
        },
        None => {
            let config = ExploreConfig {
                rounds: args.rounds,
                seed: args.seed,
                media: args.media.model(),
                ..ExploreConfig::default()
            };
            match explicit_tasks(&args.workload, &args.strategy, &config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let tasks = args.media.apply(tasks);
    execute(&tasks, None, stop_at_first, &args.media)
}

fn profile_strategy(profile: &str) -> Option<Strategy> {
    Some(match profile {
        "power" => Strategy::EveryOp,
        "sync" => Strategy::SyncPoints,
        "io" => Strategy::Countdown,
        "swarm" => Strategy::Swarm,
        _ => return None,
    })
}

fn explicit_tasks(
    workload: &str,
    strategy: &str,
    config: &ExploreConfig,
) -> Result<Vec<Task>, String> {
    let workloads: Vec<Workload> = if workload == "all" {
        SCRIPTED
            .iter()
            .filter_map(|n| Workload::by_name(n))
            .collect()
    } else {
        vec![Workload::by_name(workload).ok_or_else(|| format!("unknown workload {workload}"))?]
    };
    let strategies: Vec<Strategy> = if strategy == "all" {
        Strategy::ALL.to_vec()
    } else {
        vec![Strategy::parse(strategy).ok_or_else(|| format!("unknown strategy {strategy}"))?]
    };
    Ok(workloads
        .iter()
        .flat_map(|w| {
            strategies.iter().map(move |s| Task {
                workload: w.clone(),
                strategy: *s,
                config: config.clone(),
            })
        })
        .collect())
}

/// Runs tasks with a progress bar (only on a terminal), saves failures, prints the summary.
fn execute(
    tasks: &[Task],
    budget: Option<Duration>,
    stop_at_first: bool,
    media: &Media,
) -> ExitCode {
    let bar = ProgressBar::with_draw_target(
        Some(tasks.len() as u64),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tasks {msg}")
    {
        bar.set_style(style);
    }
    let engine = EngineConfig::default();
    let (stats, failures) = run_tasks(
        tasks,
        &engine,
        budget,
        stop_at_first,
        media.jobs(),
        |done, s: &Stats| {
            bar.set_position(done as u64);
            bar.set_message(format!(
                "{} images, {} violations",
                s.images_checked, s.violations
            ));
        },
    );
    bar.finish_and_clear();
    for failure in &failures {
        report_failure(failure, &media.artifacts);
    }
    println!("{stats}");
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report_failure(failure: &Failure, root: &Path) {
    println!(
        "VIOLATION in {} / {}: {}",
        failure.case.workload.name, failure.case.strategy, failure.violation
    );
    match artifact::save(failure, root) {
        Ok(dir) => {
            println!("  artifact:  {}", dir.display());
            println!("  reproduce: {}", artifact::reproduce_command(&dir));
            println!("  minimize:  walstore-crashtest minimize {}", dir.display());
        }
        Err(e) => println!(
            "  (could not save the artifact under {}: {e})",
            root.display()
        ),
    }
}

fn replay(dir: &Path) -> ExitCode {
    let loaded = match artifact::load(dir) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot load {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    println!("recorded: {}", loaded.violation);
    match artifact::replay(&loaded, &EngineConfig::default()) {
        Some(v) => {
            println!("replayed: {v}");
            ExitCode::FAILURE
        }
        None => {
            println!("replayed: no violation (fixed, or the failure needs its engine variant)");
            ExitCode::SUCCESS
        }
    }
}

fn minimize_artifact(dir: &Path) -> ExitCode {
    let loaded = match artifact::load(dir) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot load {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let engine = EngineConfig::default();
    let Some(failure) = walstore_crashtest::explore::rerun(&loaded.case, &engine).failure else {
        println!("the case no longer fails with this engine; nothing to minimize");
        return ExitCode::SUCCESS;
    };
    let small = minimize(&failure, &engine);
    println!(
        "minimized from {} to {} steps: {}",
        loaded.case.workload.steps.len(),
        small.case.workload.steps.len(),
        small.violation
    );
    let root = dir.parent().unwrap_or(Path::new(".")).join("minimized");
    report_failure(&small, &root);
    ExitCode::FAILURE
}

fn kill(
    dir: Option<PathBuf>,
    rounds: u32,
    seed: u64,
    delay_ms_max: u64,
    buffered: bool,
) -> ExitCode {
    let temporary = dir.is_none();
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("walstore-kill-{}-{seed}", std::process::id()))
    });
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find this executable: {e}");
            return ExitCode::from(2);
        }
    };
    let config = KillConfig {
        dir: dir.clone(),
        rounds,
        seed,
        delay_ms_max,
        buffered,
    };
    let result = run_kill_test(&exe, &config);
    match result {
        Ok(report) => {
            if temporary {
                // Best effort: the store is only evidence when the test fails.
                let _ = std::fs::remove_dir_all(&dir);
            }
            println!(
                "kill test passed: {} rounds, last acknowledged {}, last recovered {} ({})",
                report.rounds,
                report.last_acknowledged,
                report.last_recovered,
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(v) => {
            println!("VIOLATION in the kill test: {v}");
            println!(
                "  reproduce: walstore-crashtest kill --rounds {rounds} --seed {seed} --delay-ms-max {delay_ms_max}{}",
                if buffered { " --buffered" } else { "" }
            );
            ExitCode::FAILURE
        }
    }
}
