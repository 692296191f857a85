//! Runs the built `walstore` binary as a script would, and reads what it did.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_walstore");

/// Runs `walstore ARGS` with stdin empty and waits for it.
pub fn walstore<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run walstore")
}

/// Runs `walstore ARGS` with `input` on stdin.
pub fn walstore_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn walstore");
    let mut stdin = child.stdin.take().expect("stdin");
    // The command may exit before reading everything (a usage error); that is not a failure.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("wait")
}

/// The exit code (the process must have exited, not died of a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally, not by a signal")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary directory and, inside it, the path of a store not yet created.
pub fn store() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let s = dir.to_str().expect("utf8").to_owned();
    (tmp, dir, s)
}

/// Runs a command that must succeed with nothing on stderr; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = walstore(args);
    assert_eq!(code(&out), 0, "walstore {args:?}: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "walstore {args:?} wrote to stderr");
    stdout(&out)
}

/// The value of `key`, which must exist.
pub fn get(s: &str, key: &str) -> String {
    ok(&["get", s, key])
}

/// Asserts the exit code and that stderr holds exactly one line starting `walstore:`.
pub fn fails(args: &[&str], expected: i32) -> Output {
    let out = walstore(args);
    assert_eq!(code(&out), expected, "walstore {args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("walstore: ") && err.ends_with('\n') && err.lines().count() == 1,
        "walstore {args:?}: one line on stderr expected, got {err:?}"
    );
    out
}

/// Bytes as the JSON of the export format.
pub fn json_bytes(bytes: &[u8]) -> String {
    walstore_cli::encoding::to_json(bytes).to_string()
}
