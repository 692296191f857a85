//! Runs the checker on images, on as many threads as the machine has cores.

use super::config::{io_err, shell, with_dir, ProgramConfig, ProgramError};
use super::dirimage::write_image;
use crate::crashgen::{FaultClass, Variant};
use crate::image::Image;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One image to check.
pub(crate) struct Job {
    /// The operation the crash follows.
    pub after: Option<usize>,
    /// The recipe.
    pub variant: Variant,
    /// Its seed.
    pub seed: u64,
    /// The media model's name.
    pub media: &'static str,
    /// The image.
    pub image: Image,
    /// The faults it shows.
    pub classes: Vec<FaultClass>,
    /// Stdout lines acknowledged at the crash point.
    pub acked: usize,
    /// Files whose bytes or presence differ from the live state.
    pub lost: Vec<String>,
}

impl Job {
    /// How a message names the image (`program-image` takes the same four).
    pub fn label(&self) -> String {
        let op = self.after.map_or("-1".to_string(), |i| i.to_string());
        format!(
            "the image --after-op {op} --variant {:?} --seed {} --media {}",
            self.variant, self.seed, self.media
        )
    }
}

/// Accepted, the exit status, the output.
pub(crate) type Verdict = (bool, Option<i32>, String);

/// Checks every job, on as many threads as the machine has cores (each with its own image
/// directory); verdicts in job order.
pub(crate) fn check_all(
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
                        (&image_dir, &acked_file),
                        &job.label(),
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

/// Materialises `image`, writes the acknowledged lines, runs the checker. `label` names the
/// image in errors.
pub(crate) fn check_image(
    cfg: &ProgramConfig,
    image: &Image,
    acked: &[String],
    files: (&Path, &Path),
    label: &str,
) -> Result<Verdict, ProgramError> {
    let (image_dir, acked_file) = files;
    write_image(image, image_dir).map_err(io_err("materialise an image"))?;
    let mut text = acked.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    fs::write(acked_file, text).map_err(io_err("write the acknowledged lines"))?;
    let output_file = acked_file.with_extension("out");
    let out = fs::File::create(&output_file).map_err(io_err("the checker's output file"))?;
    let err = out
        .try_clone()
        .map_err(io_err("the checker's output file"))?;
    let mut command = shell(&with_dir(&cfg.check, image_dir));
    command
        .env("CRASHTEST_ACKED", acked_file)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let status = run_with_timeout(&mut command, cfg.check_timeout, label)?;
    let output = String::from_utf8_lossy(&fs::read(&output_file).unwrap_or_default()).into_owned();
    if matches!(status.code(), Some(126 | 127)) {
        return Err(ProgramError::Command {
            which: "--check",
            detail: format!("cannot start: {}", output.trim()),
        });
    }
    if let Some(signal) = killed_by(status) {
        return Err(ProgramError::Checker(format!(
            "the checker was killed by signal {signal} ({}) on {label}: a checker must exit 0 \
             or 1 on every image, however damaged; output: {}",
            signal_name(signal),
            output.trim()
        )));
    }
    Ok((status.success(), status.code(), output))
}

/// Runs `command` (in its own process group), killing the group after `timeout`.
fn run_with_timeout(
    command: &mut std::process::Command,
    timeout: Duration,
    label: &str,
) -> Result<ExitStatus, ProgramError> {
    let mut child = command.spawn().map_err(|e| ProgramError::Command {
        which: "--check",
        detail: e.to_string(),
    })?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(io_err("wait for the checker"))? {
            Some(status) => return Ok(status),
            None if Instant::now() >= deadline => {
                // The whole group: `sh -c` and whatever the checker started.
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProgramError::Checker(format!(
                    "the checker ran longer than --check-timeout ({} s) on {label} and was \
                     killed; raise --check-timeout if it is only slow",
                    timeout.as_secs()
                )));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The signal that ended the checker: its own, or the `128 + N` status a shell reports for a
/// command it ran that died of signal N.
fn killed_by(status: ExitStatus) -> Option<i32> {
    status.signal().or(match status.code() {
        Some(c) if (129..=128 + 64).contains(&c) => Some(c - 128),
        _ => None,
    })
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "see kill -l",
    }
}
