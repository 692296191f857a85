//! Running one phase in a child process of this binary, and reading back what it printed.

use std::path::Path;
use std::process::Command;
use walstore_benches::Result;

/// The command line of one phase in a child process of `exe`.
pub(crate) fn phase_args(
    engine: &str,
    workload: &str,
    dir: &Path,
    quick: bool,
    n: u64,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "__phase",
        "--engine",
        engine,
        "--workload",
        workload,
        "--dir",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(dir.into());
    args.push("--n".into());
    args.push(n.to_string().into());
    if quick {
        args.push("--quick".into());
    }
    args
}

/// Runs a command to its end; its stdout if it succeeded, else its stderr as the error.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} ({})", err.trim(), out.status).into());
    }
    Ok(out.stdout)
}

/// Runs one phase of `engine` on `workload` in a child process; what it printed, as JSON.
pub(crate) fn child<T: serde::de::DeserializeOwned>(
    exe: &Path,
    engine: &str,
    workload: &str,
    dir: &Path,
    quick: bool,
    n: u64,
) -> Result<T> {
    let stdout = run_checked(Command::new(exe).args(phase_args(engine, workload, dir, quick, n)))?;
    Ok(serde_json::from_slice(&stdout)?)
}
