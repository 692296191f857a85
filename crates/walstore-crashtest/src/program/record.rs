//! Runs `--run` under strace and turns the log into a [`Recording`].

use super::config::{io_err, with_dir, ProgramConfig, ProgramError};
use super::ops::Recording;
use super::replay::ROOT;
use super::strace;
use crate::image::Image;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `--run` under strace and parses the log.
pub(crate) fn record(
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
    let cwd = std::env::current_dir().map_err(io_err("the current directory"))?;
    let mut roots = vec![canonical.to_path_buf()];
    if given != canonical {
        roots.push(given.to_path_buf());
    }
    let mut allowed = vec![artifacts.to_path_buf()];
    for a in &cfg.allow_outside {
        // strace names files by their real paths: resolve links where the path exists.
        let path = fs::canonicalize(a).or_else(|_| std::path::absolute(a));
        allowed.push(path.map_err(io_err("--allow-outside"))?);
    }
    let (files, dirs) = initial_files(initial);
    let parser = strace::Parser::new(strace::Setup {
        roots,
        allowed,
        stdout: stdout_path,
        cwd,
        files,
        dirs,
    });
    Ok((parser.parse_log(&text), status.code()))
}

/// The files and subdirectories of the directory before the run, by relative name.
fn initial_files(initial: &Image) -> (BTreeMap<String, Vec<u8>>, BTreeSet<String>) {
    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    for (path, bytes) in &initial.files {
        if let Ok(rel) = path.strip_prefix(ROOT) {
            files.insert(rel.to_string_lossy().into_owned(), bytes.clone());
        }
    }
    for d in &initial.dirs {
        if let Ok(rel) = d.strip_prefix(ROOT) {
            dirs.insert(rel.to_string_lossy().into_owned());
        }
    }
    (files, dirs)
}
