//! Crash-testing any program: record what it does in one directory (through `strace`), replay
//! the recording into the simulated file system, and run the program's checker on every
//! distinct post-crash image the fault model's recipes make of every crash point.
//!
//! Flow: `--init` prepares the directory (its result is taken as durable) -> the directory is
//! read into an [`Image`] -> `--run` runs under `strace` ([`strace`] turns the log into
//! [`ops::Op`]s, stdout lines included, in one order) -> [`replay`] gives a crash point after
//! every operation -> [`crate::crashgen::generate`] makes images -> each distinct (image,
//! acknowledged lines) pair is materialised into a temporary directory and `--check` runs on it.
//!
//! Invariant: the program runs once, on the real directory; everything after is simulated, so
//! one `(trace.json, operation, recipe, seed, media)` names an image exactly
//! ([`materialise`] rebuilds it).

pub mod ops;
pub mod replay;
pub mod strace;

use crate::crashgen::{generate, FaultClass, MediaModel, Variant};
use crate::image::Image;
use ops::{Op, Recording};
use replay::{name_faults, replay, sim_path, Point, ROOT};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The recipes that apply to any program (the WAL- and manifest-aimed ones are walstore's).
pub const RECIPES: [Variant; 8] = Variant::GENERIC;

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
            ProgramError::Io(what, e) => write!(f, "{what}: {e}"),
            ProgramError::Usage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProgramError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ProgramError {
    let what = what.into();
    move |e| ProgramError::Io(what, e)
}

/// One rejected image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Violation {
    /// Index of the operation the crash follows (`None`: before the first one).
    pub after_op: Option<usize>,
    /// The recipe.
    pub variant: Variant,
    /// Its seed.
    pub seed: u64,
    /// The media model's name.
    pub media: String,
    /// The faults the image shows.
    pub classes: Vec<FaultClass>,
    /// The acknowledged lines the checker was given.
    pub acked: Vec<String>,
    /// The checker's exit status and output.
    pub checker_status: Option<i32>,
    /// The checker's standard output and error.
    pub checker_output: String,
    /// A command that materialises the image.
    pub materialise: String,
}

/// Images checked and rejected, per fault class.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ClassCount {
    /// Distinct images showing the class that were checked.
    pub checked: u64,
    /// Of those, rejected by the checker.
    pub rejected: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// The recording.
    pub recording: Recording,
    /// Crash points explored.
    pub crash_points: usize,
    /// Images generated (before deduplication).
    pub images_generated: u64,
    /// Distinct images checked.
    pub images_checked: u64,
    /// Per fault class.
    pub per_class: BTreeMap<FaultClass, ClassCount>,
    /// Every rejected image.
    pub violations: Vec<Violation>,
    /// Operations the replay refused (the recording missed something).
    pub refused: Vec<String>,
    /// The program's exit status.
    pub run_status: Option<i32>,
    /// Seconds recording, seconds checking.
    pub record_secs: f64,
    /// Seconds generating and checking images.
    pub check_secs: f64,
}

impl Outcome {
    /// The fault classes that break the program, from the weakest violation(s): a process kill
    /// if one breaks it, else the loss of unsynced data alone if that does, else the classes
    /// of the violations showing the fewest faults besides F1.
    pub fn broken_by(&self) -> Vec<FaultClass> {
        if self
            .violations
            .iter()
            .any(|v| v.classes == [FaultClass::F15])
        {
            return vec![FaultClass::F15];
        }
        if self
            .violations
            .iter()
            .any(|v| v.classes == [FaultClass::F1])
        {
            return vec![FaultClass::F1];
        }
        // F1 (some unsynced change lost) comes with every power-loss image; a more specific
        // class names the fault better when there is one.
        let specific = |v: &Violation| -> Vec<FaultClass> {
            let rest: Vec<FaultClass> = v
                .classes
                .iter()
                .copied()
                .filter(|c| *c != FaultClass::F1)
                .collect();
            if rest.is_empty() {
                v.classes.clone()
            } else {
                rest
            }
        };
        let Some(fewest) = self.violations.iter().map(|v| specific(v).len()).min() else {
            return Vec::new();
        };
        let set: BTreeSet<FaultClass> = self
            .violations
            .iter()
            .map(specific)
            .filter(|c| c.len() == fewest)
            .flatten()
            .collect();
        set.into_iter().collect()
    }

    /// Every class some rejected image shows.
    pub fn rejected_classes(&self) -> Vec<FaultClass> {
        self.per_class
            .iter()
            .filter(|(_, c)| c.rejected > 0)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// Replaces `{dir}` in a command.
fn with_dir(cmd: &str, dir: &Path) -> String {
    cmd.replace("{dir}", &dir.display().to_string())
}

fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

/// Reads a real directory into an image rooted at [`ROOT`].
pub fn read_dir_image(dir: &Path) -> Result<Image, ProgramError> {
    let mut image = Image::default();
    image.dirs.insert(PathBuf::from(ROOT));
    image.dirs.insert(PathBuf::from("/"));
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let real = dir.join(&rel);
        let entries = fs::read_dir(&real).map_err(io_err(format!("read {}", real.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", real.display())))?;
            let name = rel.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(io_err(format!("stat {}", name.display())))?;
            let sim = sim_path(&name.to_string_lossy());
            if kind.is_dir() {
                image.dirs.insert(sim);
                stack.push(name);
            } else if kind.is_file() {
                let bytes =
                    fs::read(entry.path()).map_err(io_err(format!("read {}", name.display())))?;
                image.files.insert(sim, bytes);
            }
        }
    }
    Ok(image)
}

/// Writes an image into `into` (emptied first) as a real directory tree.
pub fn write_image(image: &Image, into: &Path) -> io::Result<()> {
    if into.exists() {
        fs::remove_dir_all(into)?;
    }
    fs::create_dir_all(into)?;
    for d in &image.dirs {
        if let Ok(rel) = d.strip_prefix(ROOT) {
            fs::create_dir_all(into.join(rel))?;
        }
    }
    for (path, bytes) in &image.files {
        if let Ok(rel) = path.strip_prefix(ROOT) {
            let target = into.join(rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(target, bytes)?;
        }
    }
    Ok(())
}

/// Runs `--init`, records `--run`, and checks every image.
pub fn run_program(
    cfg: &ProgramConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, ProgramError> {
    if !cfg.dir.is_dir() {
        return Err(ProgramError::Dir(cfg.dir.clone()));
    }
    let given = std::path::absolute(&cfg.dir).map_err(io_err("the directory"))?;
    let canonical = fs::canonicalize(&cfg.dir).map_err(io_err("the directory"))?;
    fs::create_dir_all(&cfg.artifacts).map_err(io_err("the artifacts directory"))?;
    let artifacts = fs::canonicalize(&cfg.artifacts).map_err(io_err("the artifacts directory"))?;

    if let Some(init) = &cfg.init {
        let out = shell(&with_dir(init, &canonical))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ProgramError::Command {
                which: "--init",
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(ProgramError::Command {
                which: "--init",
                detail: format!(
                    "exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
    }
    let initial = read_dir_image(&canonical)?;
    initial
        .save(&artifacts.join("initial"))
        .map_err(io_err("save the initial image"))?;

    let started = Instant::now();
    let (recording, run_status) = record(cfg, &given, &canonical, &artifacts, &initial)?;
    let record_secs = started.elapsed().as_secs_f64();
    let trace_json = serde_json::to_string_pretty(&recording)
        .map_err(|e| ProgramError::Io("trace.json".into(), io::Error::other(e)))?;
    fs::write(artifacts.join("trace.json"), trace_json).map_err(io_err("write trace.json"))?;
    progress(&format!(
        "recorded {} operations ({} stdout lines) in {record_secs:.2}s",
        recording.ops.len(),
        recording.ops.iter().filter(|o| !o.is_fs()).count()
    ));

    let started = Instant::now();
    let replayed = replay(&initial, &recording);
    let mut outcome = Outcome {
        crash_points: replayed.points.len(),
        refused: replayed.refused.clone(),
        run_status,
        record_secs,
        ..Outcome::default()
    };
    let work = artifacts.join("work");
    let image_dir = work.join("initial");
    let acked_file = work.join("initial-acked.txt");
    fs::create_dir_all(&work).map_err(io_err("the work directory"))?;

    // The checker must accept the state --init left.
    let verdict = check_image(cfg, &initial, &[], &image_dir, &acked_file)?;
    if !verdict.0 {
        return Err(ProgramError::Command {
            which: "--check",
            detail: format!(
                "rejects the state --init left, before any crash (status {:?}): {}",
                verdict.1,
                verdict.2.trim()
            ),
        });
    }

    let lines: Vec<String> = recording
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::Stdout { line } => Some(line.clone()),
            _ => None,
        })
        .collect();
    let mut seen: HashSet<(u64, usize)> = HashSet::new();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "walstore-crashtest".into());
    let mut jobs = Vec::new();
    for (media_name, media) in cfg.tier.media() {
        for point in &replayed.points {
            let live = live_image(point);
            for variant in RECIPES {
                let seeds = if variant.is_random() {
                    cfg.tier.seeds()
                } else {
                    1
                };
                for seed in 0..seeds {
                    let Some(g) = generate(&point.state, variant, seed, &media) else {
                        continue;
                    };
                    outcome.images_generated += 1;
                    let mut image = g.image;
                    image.dirs.insert(PathBuf::from("/"));
                    if !seen.insert((image.digest(), point.acked)) {
                        continue;
                    }
                    let mut classes: BTreeSet<FaultClass> = g.classes.into_iter().collect();
                    if variant.is_power_loss() {
                        classes.extend(name_faults(&point.state, &image));
                    }
                    if image == live {
                        // Nothing was lost: the image is the state a process kill leaves.
                        classes.clear();
                        classes.insert(FaultClass::F15);
                    }
                    jobs.push(Job {
                        after: point.after,
                        variant,
                        seed,
                        media: media_name,
                        image,
                        classes: classes.into_iter().collect(),
                        acked: point.acked,
                    });
                }
            }
        }
    }
    let verdicts = check_all(cfg, &jobs, &lines, &work)?;
    for (job, (ok, status, output)) in jobs.into_iter().zip(verdicts) {
        outcome.images_checked += 1;
        for c in &job.classes {
            let count = outcome.per_class.entry(*c).or_default();
            count.checked += 1;
            count.rejected += u64::from(!ok);
        }
        if !ok {
            let op = job.after.map_or("-1".to_string(), |i| i.to_string());
            let materialise = format!(
                "{exe} program-image --artifacts {} --after-op {op} --variant {:?} --seed {} --media {} --into /tmp/crash-image",
                artifacts.display(),
                job.variant,
                job.seed,
                job.media,
            );
            outcome.violations.push(Violation {
                after_op: job.after,
                variant: job.variant,
                seed: job.seed,
                media: job.media.to_string(),
                classes: job.classes,
                acked: lines[..job.acked].to_vec(),
                checker_status: status,
                checker_output: output,
                materialise,
            });
        }
    }
    outcome.recording = recording;
    outcome.check_secs = started.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&work);
    let report = serde_json::to_string_pretty(&outcome.violations)
        .map_err(|e| ProgramError::Io("violations.json".into(), io::Error::other(e)))?;
    fs::write(artifacts.join("violations.json"), report).map_err(io_err("violations.json"))?;
    Ok(outcome)
}

/// One image to check.
struct Job {
    after: Option<usize>,
    variant: Variant,
    seed: u64,
    media: &'static str,
    image: Image,
    classes: Vec<FaultClass>,
    acked: usize,
}

type Verdict = (bool, Option<i32>, String);

/// Checks every job, on as many threads as the machine has cores (each with its own image
/// directory); verdicts in job order.
fn check_all(
    cfg: &ProgramConfig,
    jobs: &[Job],
    lines: &[String],
    work: &Path,
) -> Result<Vec<Verdict>, ProgramError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8)
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Verdict, ProgramError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (next, results) = (&next, &results);
            scope.spawn(move || {
                let image_dir = work.join(format!("image-{w}"));
                let acked_file = work.join(format!("acked-{w}.txt"));
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let verdict = check_image(
                        cfg,
                        &job.image,
                        &lines[..job.acked],
                        &image_dir,
                        &acked_file,
                    );
                    let failed = verdict.is_err();
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(verdict);
                    }
                    if failed {
                        next.store(jobs.len(), Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| ProgramError::Usage("a checker thread panicked".into()))?;
    let mut out = Vec::with_capacity(jobs.len());
    for r in results {
        match r {
            Some(v) => out.push(v?),
            None => return Err(ProgramError::Usage("an image was not checked".into())),
        }
    }
    Ok(out)
}

fn live_image(point: &Point) -> Image {
    let mut image = Image::live_of(&point.state);
    image.dirs.insert(PathBuf::from("/"));
    image
}

/// Materialises `image`, writes the acknowledged lines, runs the checker.
fn check_image(
    cfg: &ProgramConfig,
    image: &Image,
    acked: &[String],
    image_dir: &Path,
    acked_file: &Path,
) -> Result<(bool, Option<i32>, String), ProgramError> {
    write_image(image, image_dir).map_err(io_err("materialise an image"))?;
    let mut text = acked.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    fs::write(acked_file, text).map_err(io_err("write the acknowledged lines"))?;
    let out = shell(&with_dir(&cfg.check, image_dir))
        .env("CRASHTEST_ACKED", acked_file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ProgramError::Command {
            which: "--check",
            detail: e.to_string(),
        })?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    if matches!(out.status.code(), Some(126 | 127)) {
        return Err(ProgramError::Command {
            which: "--check",
            detail: format!("cannot start: {}", output.trim()),
        });
    }
    Ok((out.status.success(), out.status.code(), output))
}

/// Runs `--run` under strace and parses the log.
fn record(
    cfg: &ProgramConfig,
    given: &Path,
    canonical: &Path,
    artifacts: &Path,
    initial: &Image,
) -> Result<(Recording, Option<i32>), ProgramError> {
    let log = artifacts.join("strace.log");
    let stdout_path = artifacts.join("stdout.txt");
    let stderr_path = artifacts.join("stderr.txt");
    let stdout = fs::File::create(&stdout_path).map_err(io_err("stdout.txt"))?;
    let stderr = fs::File::create(&stderr_path).map_err(io_err("stderr.txt"))?;
    let status = Command::new("strace")
        .args(["-f", "-qq", "-xx", "-y", "-s", "4194304", "-e"])
        .arg(format!("trace={}", strace::TRACED))
        .arg("-o")
        .arg(&log)
        .args(["sh", "-c"])
        .arg(with_dir(&cfg.run, canonical))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|e| ProgramError::Strace(e.to_string()))?;
    let text = fs::read(&log).map_err(|e| ProgramError::Strace(format!("no log: {e}")))?;
    let text = String::from_utf8_lossy(&text);
    if text.trim().is_empty() {
        // strace reports a refused ptrace (or a bad option) on stderr and traces nothing;
        // any program, even `sh -c true`, makes traced calls (opening its libraries).
        let err = fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(ProgramError::Strace(format!(
            "nothing was traced ({status}): {}",
            err.trim()
        )));
    }
    if matches!(status.code(), Some(126 | 127)) {
        let err = fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(ProgramError::Command {
            which: "--run",
            detail: format!("cannot start: {}", err.trim()),
        });
    }
    if strace::truncated_string(&text) {
        return Err(ProgramError::Recording(
            "a single write is larger than 4 MiB (strace's string limit)".into(),
        ));
    }
    let mut sizes = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    for (path, bytes) in &initial.files {
        if let Ok(rel) = path.strip_prefix(ROOT) {
            sizes.insert(rel.to_string_lossy().into_owned(), bytes.len() as u64);
        }
    }
    for d in &initial.dirs {
        if let Ok(rel) = d.strip_prefix(ROOT) {
            dirs.insert(rel.to_string_lossy().into_owned());
        }
    }
    let cwd = std::env::current_dir().map_err(io_err("the current directory"))?;
    let mut roots = vec![canonical.to_path_buf()];
    if given != canonical {
        roots.push(given.to_path_buf());
    }
    let parser = strace::Parser::new(roots, stdout_path, cwd, sizes, dirs);
    Ok((parser.parse_log(&text), status.code()))
}

/// Rebuilds one image from a run's artifacts (`program-image`).
pub fn materialise(
    artifacts: &Path,
    after_op: Option<usize>,
    variant: Variant,
    seed: u64,
    media: &MediaModel,
    into: &Path,
) -> Result<Image, ProgramError> {
    let text = fs::read_to_string(artifacts.join("trace.json")).map_err(io_err("trace.json"))?;
    let recording: Recording =
        serde_json::from_str(&text).map_err(|e| ProgramError::Usage(format!("trace.json: {e}")))?;
    let initial = Image::load(&artifacts.join("initial")).map_err(io_err("initial image"))?;
    let replayed = replay(&initial, &recording);
    let point = replayed
        .points
        .iter()
        .find(|p| p.after == after_op)
        .ok_or_else(|| ProgramError::Usage("no crash point after that operation".into()))?;
    let g = generate(&point.state, variant, seed, media)
        .ok_or_else(|| ProgramError::Usage("the recipe does not apply there".into()))?;
    write_image(&g.image, into).map_err(io_err(format!("write {}", into.display())))?;
    Ok(g.image)
}

/// The report printed by the `program` command.
pub fn report(cfg: &ProgramConfig, outcome: &Outcome) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let ops = &outcome.recording.ops;
    let _ = writeln!(
        s,
        "program: {} operations recorded ({} file-system, {} stdout lines), program exit status {}",
        ops.len(),
        ops.iter().filter(|o| o.is_fs()).count(),
        ops.iter().filter(|o| !o.is_fs()).count(),
        outcome
            .run_status
            .map_or("(signal)".to_string(), |c| c.to_string())
    );
    for u in &outcome.recording.unmodelled {
        let _ = writeln!(s, "  not modelled: {u}");
    }
    for r in &outcome.refused {
        let _ = writeln!(s, "  replay refused: {r}");
    }
    let _ = writeln!(
        s,
        "crash points: {}, images generated: {}, distinct images checked: {}",
        outcome.crash_points, outcome.images_generated, outcome.images_checked
    );
    let _ = writeln!(s, "per fault class (distinct images showing it):");
    for (class, count) in &outcome.per_class {
        let _ = writeln!(
            s,
            "  {class:<4} {:<46} checked {:>5}  rejected {:>5}",
            describe(*class),
            count.checked,
            count.rejected
        );
    }
    for (n, v) in outcome.violations.iter().enumerate() {
        if n >= cfg.print_limit {
            let _ = writeln!(
                s,
                "... {} more violations in {}",
                outcome.violations.len() - n,
                cfg.artifacts.join("violations.json").display()
            );
            break;
        }
        let _ = writeln!(s, "\nVIOLATION {}:", n + 1);
        let classes: Vec<String> = v.classes.iter().map(|c| c.to_string()).collect();
        let crash = v.after_op.map_or("before the first operation".into(), |i| {
            format!("after op {i}")
        });
        let _ = writeln!(
            s,
            "  fault: {} ({}), recipe {:?} seed {}, media {}, crash {crash}",
            classes.join("+"),
            v.classes
                .iter()
                .map(|c| describe(*c))
                .collect::<Vec<_>>()
                .join("; "),
            v.variant,
            v.seed,
            v.media
        );
        let _ = writeln!(s, "  acknowledged: {:?}", v.acked);
        let _ = writeln!(s, "  operations leading to it:");
        let end = v.after_op.map_or(0, |i| i + 1);
        let start = end.saturating_sub(12);
        for (i, op) in ops.iter().enumerate().take(end).skip(start) {
            let _ = writeln!(s, "    {i:>4} {op}");
        }
        let _ = writeln!(
            s,
            "  checker (exit {}):",
            v.checker_status
                .map_or("signal".to_string(), |c| c.to_string())
        );
        for line in v.checker_output.lines().take(12) {
            let _ = writeln!(s, "    | {line}");
        }
        let _ = writeln!(s, "  materialise: {}", v.materialise);
    }
    let verdict = if outcome.violations.is_empty() {
        "PASS: every image accepted".to_string()
    } else {
        let broken: Vec<String> = outcome
            .broken_by()
            .iter()
            .map(|c| format!("{c} ({})", describe(*c)))
            .collect();
        format!(
            "FAIL: {} of {} images rejected; broken by {}",
            outcome.violations.len(),
            outcome.images_checked,
            broken.join(", ")
        )
    };
    let _ = writeln!(
        s,
        "\n{verdict}\ntime: record {:.2}s, images {:.2}s",
        outcome.record_secs, outcome.check_secs
    );
    s
}

/// One line on a fault class.
pub fn describe(class: FaultClass) -> &'static str {
    match class {
        FaultClass::F1 => "unsynced data lost",
        FaultClass::F2 => "prefix of unsynced writes kept",
        FaultClass::F3 => "subset of unsynced writes kept",
        FaultClass::F4 => "torn sectors",
        FaultClass::F5 => "garbage sectors",
        FaultClass::F6 => "size and data diverge",
        FaultClass::F7 => "new file's directory entry lost",
        FaultClass::F8 => "rename lost or half done",
        FaultClass::F9 => "unlink or truncation undone",
        FaultClass::F10 => "I/O error",
        FaultClass::F11 => "failed fsync dropped pages",
        FaultClass::F13 => "synced bytes corrupted",
        FaultClass::F15 => "process kill (nothing lost)",
        FaultClass::F16 => "crash during recovery",
        FaultClass::F18 => "writes reordered across files",
    }
}

/// How long a run took, for tests and reports.
pub fn total_time(outcome: &Outcome) -> Duration {
    Duration::from_secs_f64(outcome.record_secs + outcome.check_secs)
}
