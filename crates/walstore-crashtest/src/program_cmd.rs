//! The `program` and `program-image` commands (see `walstore_crashtest::program`).

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use walstore_crashtest::crashgen::Variant;
use walstore_crashtest::program::{
    materialise, media_by_name, report, run_program, ProgramConfig, Tier,
};

/// `program`: record a real program's file operations in DIR and check every crash image.
#[derive(Args, Debug)]
pub struct ProgramArgs {
    /// The directory the program works in (must exist).
    #[arg(long)]
    dir: PathBuf,
    /// Prepares the directory; not recorded, its result is durable. `{dir}` is replaced.
    #[arg(long)]
    init: Option<String>,
    /// The program, run once under strace (`sh -c`). `{dir}` is replaced.
    #[arg(long)]
    run: String,
    /// The checker, run once per distinct crash image with `{dir}` replaced by a directory
    /// holding the image and CRASHTEST_ACKED naming a file of the acknowledged stdout lines;
    /// exit 0 accepts the image.
    #[arg(long)]
    check: String,
    /// ci (default media model, 3 seeds per recipe) or full (also the strict model, 16 seeds).
    #[arg(long, default_value = "ci")]
    tier: String,
    /// Where the recording (trace.json, strace.log), violations.json and the initial image go
    /// (default: a new directory under the system's temporary directory).
    #[arg(long)]
    artifacts: Option<PathBuf>,
    /// Most violations printed in full.
    #[arg(long, default_value_t = 10)]
    print_limit: usize,
    /// A path outside DIR the program may create, change or remove (repeatable; a directory
    /// covers everything under it). Otherwise state left outside DIR exits 2.
    #[arg(long, value_name = "PATH")]
    allow_outside: Vec<PathBuf>,
    /// A `--run` that exits non-zero is expected (otherwise it exits 2, with no verdict).
    #[arg(long)]
    run_may_fail: bool,
    /// The longest one checker run may take, in seconds (a checker still running then is
    /// killed and the run exits 2).
    #[arg(long, default_value_t = 60)]
    check_timeout: u64,
}

/// `program-image`: materialise one image of a `program` run into a directory.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The run's artifacts directory.
    #[arg(long)]
    artifacts: PathBuf,
    /// The operation the crash follows (-1: before the first one).
    #[arg(long, allow_negative_numbers = true)]
    after_op: i64,
    /// The recipe (DropUnsynced, ProcessKill, Prefix, Subset, Torn, TornGarbage,
    /// SizeDivergence, DirEntries).
    #[arg(long)]
    variant: String,
    /// The recipe's seed.
    #[arg(long)]
    seed: u64,
    /// default, strict-512 or strict-4096.
    #[arg(long, default_value = "default")]
    media: String,
    /// The directory to write the image into (replaced).
    #[arg(long)]
    into: PathBuf,
}

pub fn program(args: ProgramArgs) -> ExitCode {
    let Some(tier) = Tier::parse(&args.tier) else {
        eprintln!("unknown tier {}: use ci or full", args.tier);
        return ExitCode::from(2);
    };
    let artifacts = args.artifacts.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("walstore-crashtest-program-{}", std::process::id()))
    });
    let cfg = ProgramConfig {
        dir: args.dir,
        init: args.init,
        run: args.run,
        check: args.check,
        tier,
        artifacts,
        print_limit: args.print_limit,
        allow_outside: args.allow_outside,
        run_may_fail: args.run_may_fail,
        check_timeout: std::time::Duration::from_secs(args.check_timeout),
    };
    match run_program(&cfg, &mut |msg| eprintln!("{msg}")) {
        Ok(outcome) => {
            print!("{}", report(&cfg, &outcome));
            println!("artifacts: {}", cfg.artifacts.display());
            if outcome.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("program: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn program_image(args: ImageArgs) -> ExitCode {
    let Some(variant) = Variant::parse(&args.variant) else {
        eprintln!("unknown recipe {}", args.variant);
        return ExitCode::from(2);
    };
    let Some(media) = media_by_name(&args.media) else {
        eprintln!(
            "unknown media {}: use default, strict-512 or strict-4096",
            args.media
        );
        return ExitCode::from(2);
    };
    let after = usize::try_from(args.after_op).ok();
    match materialise(
        &args.artifacts,
        after,
        variant,
        args.seed,
        &media,
        &args.into,
    ) {
        Ok(image) => {
            println!(
                "{} files written to {}",
                image.files.len(),
                args.into.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("program-image: {e}");
            ExitCode::from(2)
        }
    }
}
