//! The catalogue of real programs (`examples/programs/real/`, docs/CRASHTEST.md "A catalogue
//! of real programs"): each one's verdict, the fault class that breaks it and the first fix
//! must not change. Besides python3, the tools come from Debian packages (git, sqlite3, jq, moreutils); a
//! missing tool fails the test naming its package (CI: `apt-get install -y git sqlite3 jq
//! moreutils`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/programs/real")
}

/// Fails, naming the Debian package, if `tool` is not on PATH.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is missing: install the Debian package `{package}` (apt-get install -y {package})"
    );
}

struct Verdict {
    code: i32,
    stdout: String,
}

/// `program` with `init`, `run` and `check` of one script (`{cmd} init|run|check {dir}`).
fn catalogue(cmd: &str, env: &[(&str, &str)]) -> Verdict {
    let dir = tempfile::tempdir().expect("a directory");
    let artifacts = tempfile::tempdir().expect("a directory");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_walstore-crashtest"))
        .args(["program", "--dir"])
        .arg(dir.path())
        .args(["--init", &format!("{cmd} init {{dir}}")])
        .args(["--run", &format!("{cmd} run {{dir}}")])
        .args(["--check", &format!("{cmd} check {{dir}}")])
        .arg("--artifacts")
        .arg(artifacts.path())
        .args(["--print-limit", "1"])
        .envs(env.iter().copied())
        .output()
        .expect("walstore-crashtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{cmd}: {:.1}s\n{stdout}{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    Verdict {
        code: out.status.code().unwrap_or(-1),
        stdout,
    }
}

fn script(name: &str) -> String {
    format!("sh {}", real().join(name).display())
}

fn verdict_line(v: &Verdict) -> &str {
    v.stdout
        .lines()
        .find(|l| l.starts_with("FAIL:") || l.starts_with("PASS:"))
        .expect("a verdict line")
}

fn assert_fails(v: &Verdict, broken_by: &str, first_fix: &str) {
    assert_eq!(v.code, 1, "expected violations");
    let verdict = verdict_line(v);
    let broken = verdict.split("broken by ").nth(1).expect("broken by");
    assert!(
        broken.starts_with(broken_by),
        "expected {broken_by}: {verdict}"
    );
    let fix = v
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("first fix (from violation 1, the simplest): "))
        .expect("a first fix");
    assert!(
        fix.starts_with(first_fix),
        "expected '{first_fix}...': {fix}"
    );
}

fn assert_passes(v: &Verdict) {
    assert_eq!(v.code, 0, "expected no violation");
    assert!(verdict_line(v).starts_with("PASS"));
}

#[test]
fn git_config_loses_saves_because_config_is_renamed_unsynced() {
    require("git", "git");
    let v = catalogue(&script("git_config.sh"), &[]);
    assert_fails(
        &v,
        "F1 ",
        "a rename was kept but the renamed file's data was not synced",
    );
}

#[test]
fn git_commit_is_modelled_and_broken_by_a_power_cut() {
    require("git", "git");
    let v = catalogue(&script("git_commit.sh"), &[]);
    // Every operation modelled (loose objects linked or renamed into place); the index and
    // the branch's ref are renamed over the old ones without an fsync of their data.
    assert!(!verdict_line(&v).contains("F15"), "{}", verdict_line(&v));
    assert_fails(
        &v,
        "F",
        "a rename was kept but the renamed file's data was not synced",
    );
}

#[test]
fn sqlite3_in_wal_mode_at_synchronous_full_passes() {
    require("sqlite3", "sqlite3");
    let v = catalogue(&script("sqlite_wal.sh"), &[("SYNC", "FULL")]);
    assert_passes(&v);
}

#[test]
fn sqlite3_in_wal_mode_at_synchronous_off_loses_commits() {
    require("sqlite3", "sqlite3");
    let v = catalogue(&script("sqlite_wal.sh"), &[("SYNC", "OFF")]);
    assert_fails(&v, "F1 ", "data was acknowledged before it was synced");
}

#[test]
fn jq_into_a_temporary_file_and_mv_loses_the_rename() {
    require("jq", "jq");
    let v = catalogue(&script("jq_mv.sh"), &[]);
    assert_fails(&v, "F", "a rename was lost or half done");
}

#[test]
fn jq_through_sponge_is_a_move_in_from_tmpdir_and_loses_the_rename() {
    require("jq", "jq");
    require("sponge", "moreutils");
    let v = catalogue(&script("jq_sponge.sh"), &[]);
    // sponge's temporary file in $TMPDIR, renamed over f.json: recorded as a move in.
    assert!(v.stdout.contains("move in f.json"), "{}", v.stdout);
    assert_fails(&v, "F", "a rename was lost or half done");
}

/// The interpreter itself, not a shim.
fn python(script: &str) -> String {
    let py = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    let py = String::from_utf8_lossy(&py.stdout).trim().to_string();
    format!("{py} -B {}", real().join(script).display())
}

#[test]
fn a_python_atomic_writer_passes() {
    let v = catalogue(&python("atomic_writer.py"), &[]);
    assert_passes(&v);
}

#[test]
fn shelve_over_dbm_dumb_breaks_at_a_process_kill() {
    // dbm.dumb renames its index to .bak and then writes a new one: a kill in between leaves
    // no index.
    let v = catalogue(&python("dbm_dumb.py"), &[]);
    assert_fails(&v, "F15 ", "a process kill alone breaks it");
}
