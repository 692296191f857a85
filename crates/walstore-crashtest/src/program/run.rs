//! One `program` run from start to end: `--init`, the recording, the replay, the images and
//! the checker's verdicts; and [`materialise`], which rebuilds one image from the artifacts.

use super::checker::{check_all, check_image, Job};
use super::config::{io_err, shell, with_dir, ProgramConfig, ProgramError};
use super::diagnosis::{diagnose, renamed_unsynced, simplicity};
use super::dirimage::{read_dir_image, write_image};
use super::ops::{Op, Recording};
use super::outcome::{Outcome, Violation};
use super::record::record;
use super::replay::{name_faults, replay, Point, Replay, ROOT};
use super::selfcheck::differences;
use crate::crashgen::{generate, FaultClass, MediaModel, Variant};
use crate::image::Image;
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

/// The recipes that apply to any program (the WAL- and manifest-aimed ones are walstore's).
pub const RECIPES: [Variant; 8] = Variant::GENERIC;

/// The directories of a run.
struct Dirs {
    /// The directory as given, made absolute.
    given: PathBuf,
    /// The directory with symbolic links resolved.
    canonical: PathBuf,
    /// The artifacts directory (canonical).
    artifacts: PathBuf,
}

/// Runs `--init`, records `--run`, and checks every image.
pub fn run_program(
    cfg: &ProgramConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, ProgramError> {
    let dirs = prepare(cfg)?;
    let initial = read_dir_image(&dirs.canonical)?;
    initial
        .save(&dirs.artifacts.join("initial"))
        .map_err(io_err("save the initial image"))?;

    let started = Instant::now();
    let (recording, run_status) =
        record(cfg, &dirs.given, &dirs.canonical, &dirs.artifacts, &initial)?;
    let record_secs = started.elapsed().as_secs_f64();
    save_json(&dirs.artifacts.join("trace.json"), &recording)?;
    progress(&format!(
        "recorded {} operations ({} stdout lines) in {record_secs:.2}s",
        recording.ops.len(),
        recording.ops.iter().filter(|o| !o.is_fs()).count()
    ));

    let started = Instant::now();
    let replayed = replay(&initial, &recording);
    judgeable(cfg, &recording, run_status, &dirs, &replayed)?;
    let mut outcome = Outcome {
        crash_points: replayed.points.len(),
        refused: replayed.refused.clone(),
        run_status,
        record_secs,
        ..Outcome::default()
    };
    let work = dirs.artifacts.join("work");
    fs::create_dir_all(&work).map_err(io_err("the work directory"))?;
    check_initial(cfg, &initial, &work)?;

    let lines = stdout_lines(&recording);
    let jobs = make_jobs(cfg, &replayed, &mut outcome);
    let verdicts = check_all(cfg, &jobs, &lines, &work)?;
    for (job, (ok, status, output)) in jobs.into_iter().zip(verdicts) {
        outcome.images_checked += 1;
        for c in &job.classes {
            let count = outcome.per_class.entry(*c).or_default();
            count.checked += 1;
            count.rejected += u64::from(!ok);
        }
        if !ok {
            let violation = violation(&dirs.artifacts, job, &recording, status, output);
            outcome.violations.push(violation);
        }
    }
    outcome
        .violations
        .sort_by_key(|v| simplicity(&v.classes, v.lost_files.len(), v.after_op));
    outcome.recording = recording;
    outcome.check_secs = started.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&work);
    save_json(&dirs.artifacts.join("violations.json"), &outcome.violations)?;
    Ok(outcome)
}

/// A run is judged only if it succeeded (or may fail), every operation was modelled, no
/// state was left outside the directory, and the replay ends in the real directory's state.
fn judgeable(
    cfg: &ProgramConfig,
    recording: &Recording,
    run_status: Option<i32>,
    dirs: &Dirs,
    replayed: &Replay,
) -> Result<(), ProgramError> {
    if run_status != Some(0) && !cfg.run_may_fail {
        let err = fs::read_to_string(dirs.artifacts.join("stderr.txt")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        let status = run_status.map_or("killed by a signal".into(), |c| format!("exit {c}"));
        let detail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        return Err(ProgramError::RunFailed(format!("{status}: {detail}")));
    }
    if !recording.unmodelled.is_empty() {
        return Err(ProgramError::Unmodelled(recording.unmodelled.clone()));
    }
    if !recording.outside.is_empty() {
        return Err(ProgramError::Outside(recording.outside.clone()));
    }
    if !replayed.refused.is_empty() {
        let refused = replayed
            .refused
            .iter()
            .map(|r| format!("the simulated file system refused {r}"))
            .collect();
        return Err(ProgramError::Unmodelled(refused));
    }
    let last = replayed.points.last().map(live_image).unwrap_or_default();
    let real = read_dir_image(&dirs.canonical)?;
    let diffs = differences(&last, &real, &recording.mapped);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(ProgramError::SelfCheck(diffs))
    }
}

/// Checks the directory, makes the artifacts directory and runs `--init`.
fn prepare(cfg: &ProgramConfig) -> Result<Dirs, ProgramError> {
    if !cfg.dir.is_dir() {
        return Err(ProgramError::Dir(cfg.dir.clone()));
    }
    let given = std::path::absolute(&cfg.dir).map_err(io_err("the directory"))?;
    let canonical = fs::canonicalize(&cfg.dir).map_err(io_err("the directory"))?;
    fs::create_dir_all(&cfg.artifacts).map_err(io_err("the artifacts directory"))?;
    let artifacts = fs::canonicalize(&cfg.artifacts).map_err(io_err("the artifacts directory"))?;
    if let Some(init) = &cfg.init {
        run_init(init, &canonical)?;
    }
    Ok(Dirs {
        given,
        canonical,
        artifacts,
    })
}

fn run_init(init: &str, dir: &Path) -> Result<(), ProgramError> {
    let out = shell(&with_dir(init, dir))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ProgramError::Command {
            which: "--init",
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ProgramError::Command {
        which: "--init",
        detail: format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

fn save_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), ProgramError> {
    let name = path.display().to_string();
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ProgramError::Io(name.clone(), io::Error::other(e)))?;
    fs::write(path, text).map_err(io_err(name))
}

/// The checker must accept the state `--init` left.
fn check_initial(cfg: &ProgramConfig, initial: &Image, work: &Path) -> Result<(), ProgramError> {
    let image_dir = work.join("initial");
    let acked_file = work.join("initial-acked.txt");
    let label = "the state --init left";
    let (ok, status, output) = check_image(cfg, initial, &[], (&image_dir, &acked_file), label)?;
    if ok {
        return Ok(());
    }
    Err(ProgramError::Command {
        which: "--check",
        detail: format!(
            "rejects the state --init left, before any crash (status {status:?}): {}",
            output.trim()
        ),
    })
}

fn stdout_lines(recording: &Recording) -> Vec<String> {
    recording
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::Stdout { line } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// Every distinct (image, acknowledged lines) pair of every crash point, recipe, seed and
/// media model of the tier.
fn make_jobs(cfg: &ProgramConfig, replayed: &Replay, outcome: &mut Outcome) -> Vec<Job> {
    let mut seen: HashSet<(u64, usize)> = HashSet::new();
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
                    let Some(mut job) = job_of(point, variant, seed, &media, &live) else {
                        continue;
                    };
                    outcome.images_generated += 1;
                    if seen.insert((job.image.digest(), point.acked)) {
                        job.media = media_name;
                        jobs.push(job);
                    }
                }
            }
        }
    }
    jobs
}

/// The image one recipe makes of a crash point, with the faults it shows.
fn job_of(
    point: &Point,
    variant: Variant,
    seed: u64,
    media: &MediaModel,
    live: &Image,
) -> Option<Job> {
    let g = generate(&point.state, variant, seed, media)?;
    let mut image = g.image;
    image.dirs.insert(PathBuf::from("/"));
    let mut classes: BTreeSet<FaultClass> = g.classes.into_iter().collect();
    if variant.is_power_loss() {
        classes.extend(name_faults(&point.state, &image));
    }
    if image == *live {
        // Nothing was lost: the image is the state a process kill leaves.
        classes.clear();
        classes.insert(FaultClass::F15);
    }
    let lost = lost_files(&image, live);
    Some(Job {
        lost,
        after: point.after,
        variant,
        seed,
        media: "",
        image,
        classes: classes.into_iter().collect(),
        acked: point.acked,
    })
}

/// Files of the directory whose presence or bytes in `image` are not those of `live`.
fn lost_files(image: &Image, live: &Image) -> Vec<String> {
    let names: BTreeSet<&PathBuf> = image.files.keys().chain(live.files.keys()).collect();
    names
        .into_iter()
        .filter(|p| p.starts_with(ROOT) && image.files.get(*p) != live.files.get(*p))
        .map(|p| p.strip_prefix(ROOT).unwrap_or(p).display().to_string())
        .collect()
}

fn violation(
    artifacts: &Path,
    job: Job,
    recording: &Recording,
    status: Option<i32>,
    output: String,
) -> Violation {
    let lines = stdout_lines(recording);
    let renamed = renamed_unsynced(&recording.ops, job.after, &job.lost);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "walstore-crashtest".into());
    let op = job.after.map_or("-1".to_string(), |i| i.to_string());
    let materialise = format!(
        "{exe} program-image --artifacts {} --after-op {op} --variant {:?} --seed {} --media {} --into /tmp/crash-image",
        artifacts.display(),
        job.variant,
        job.seed,
        job.media,
    );
    Violation {
        after_op: job.after,
        variant: job.variant,
        seed: job.seed,
        media: job.media.to_string(),
        classes: job.classes.clone(),
        acked: lines[..job.acked].to_vec(),
        checker_status: status,
        checker_output: output,
        materialise,
        diagnosis: diagnose(&job.classes, renamed),
        lost_files: job.lost,
    }
}

fn live_image(point: &Point) -> Image {
    let mut image = Image::live_of(&point.state);
    image.dirs.insert(PathBuf::from("/"));
    image
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
