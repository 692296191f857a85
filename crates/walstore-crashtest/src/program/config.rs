//! What the user gave: the directory, the three commands, the tier, and the errors that end a
//! run with exit status 2 (bad usage, or a run that cannot be judged).

use crate::crashgen::MediaModel;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How much to explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    /// The default media model (ordered names, powersafe overwrite, 512-byte sectors) and 3
    /// seeds per random recipe and crash point.
    Ci,
    /// Also the strict model (names in any order, torn renames, garbage over synced bytes of
    /// a torn sector) with 512- and 4096-byte sectors, 16 seeds.
    Full,
}

impl Tier {
    /// Parses `ci` or `full`.
    pub fn parse(name: &str) -> Option<Tier> {
        match name {
            "ci" => Some(Tier::Ci),
            "full" => Some(Tier::Full),
            _ => None,
        }
    }

    /// The media models explored, with the names printed in reports and commands.
    pub fn media(self) -> Vec<(&'static str, MediaModel)> {
        match self {
            Tier::Ci => vec![("default", MediaModel::default())],
            Tier::Full => vec![
                ("default", MediaModel::default()),
                ("strict-512", MediaModel::strict(512)),
                ("strict-4096", MediaModel::strict(4096)),
            ],
        }
    }

    /// Seeds per random recipe and crash point.
    pub fn seeds(self) -> u64 {
        match self {
            Tier::Ci => 3,
            Tier::Full => 16,
        }
    }
}

/// The media model a report names.
pub fn media_by_name(name: &str) -> Option<MediaModel> {
    Tier::Full
        .media()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| m)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProgramConfig {
    /// The directory the program works in.
    pub dir: PathBuf,
    /// Prepares the directory (not recorded; its result is durable).
    pub init: Option<String>,
    /// The program (recorded).
    pub run: String,
    /// The checker, run once per distinct image.
    pub check: String,
    /// How much to explore.
    pub tier: Tier,
    /// Where the recording, the report and violation images go.
    pub artifacts: PathBuf,
    /// Most violations printed in full (all are in `violations.json`).
    pub print_limit: usize,
    /// Paths outside the directory the program may change (`--allow-outside`).
    pub allow_outside: Vec<PathBuf>,
    /// A `--run` exiting non-zero is expected (`--run-may-fail`).
    pub run_may_fail: bool,
    /// The longest one checker run may take (`--check-timeout`).
    pub check_timeout: Duration,
}

/// Why a run could not be done (exit status 2).
#[derive(Debug)]
pub enum ProgramError {
    /// The directory is missing or not a directory.
    Dir(PathBuf),
    /// A command could not start or failed where it must not (`--init`, the checker on the
    /// initial state).
    Command {
        /// Which (`--init`, `--run`, `--check`).
        which: &'static str,
        /// What happened.
        detail: String,
    },
    /// `strace` is missing or cannot trace here.
    Strace(String),
    /// The recording cannot be modelled (a write larger than the trace's string limit).
    Recording(String),
    /// The recording cannot be judged: operations the harness does not model, named.
    Unmodelled(Vec<String>),
    /// The program left state outside the directory (paths), not allowed by `--allow-outside`.
    Outside(Vec<String>),
    /// `--run` exited non-zero (its status and the end of its standard error) without
    /// `--run-may-fail`.
    RunFailed(String),
    /// The replayed state is not the real directory after the run (the differences).
    SelfCheck(Vec<String>),
    /// The checker was killed by a signal or ran past `--check-timeout` on an image.
    Checker(String),
    /// Reading or writing the artifacts or images failed.
    Io(String, io::Error),
    /// A bad argument of `program-image`.
    Usage(String),
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::Dir(d) => write!(f, "{} is not a directory", d.display()),
            ProgramError::Command { which, detail } => write!(f, "{which}: {detail}"),
            ProgramError::Strace(e) => write!(
                f,
                "strace: {e} (install it: apt-get install -y strace; it needs ptrace)"
            ),
            ProgramError::Recording(e) => write!(f, "recording: {e}"),
            ProgramError::Unmodelled(what) => write!(
                f,
                "the program did what the harness does not model, so no verdict is given:\n  {}",
                what.join("\n  ")
            ),
            ProgramError::Outside(paths) => write!(
                f,
                "the program left state outside --dir, which crash images do not hold (move \
                 it into --dir, or name each path with --allow-outside PATH if it is not \
                 state):\n  {}",
                paths.join("\n  ")
            ),
            ProgramError::RunFailed(detail) => write!(
                f,
                "--run failed ({detail}); no verdict is given on a failed run (--run-may-fail \
                 if failing is expected)"
            ),
            ProgramError::SelfCheck(diffs) => write!(
                f,
                "self-check: the replayed recording does not end in the state the program left \
                 in --dir, so the recording missed something and no verdict is given:\n  {}",
                diffs.join("\n  ")
            ),
            ProgramError::Checker(detail) => write!(f, "--check: {detail}"),
            ProgramError::Io(what, e) => write!(f, "{what}: {e}"),
            ProgramError::Usage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProgramError {}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ProgramError {
    let what = what.into();
    move |e| ProgramError::Io(what, e)
}

/// Replaces `{dir}` in a command.
pub(crate) fn with_dir(cmd: &str, dir: &Path) -> String {
    cmd.replace("{dir}", &dir.display().to_string())
}

pub(crate) fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}
