//! `walstore-crashtest program` on the example programs of `examples/programs/`: the verdict
//! on each (and the fault class that breaks it) must not change; the fork program (a child
//! writing while its parent reads on the same descriptor number) is accepted; every run that
//! cannot be judged exits 2 with no verdict (state outside --dir, a failing --run, an
//! operation not modelled, a failed self-check, a checker killed or past its timeout). Needs
//! `strace` and `python3` (CI installs strace; see .ci/run). The real programs are in
//! `programs_real.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> PathBuf {
    repo().join("examples/programs")
}

/// The interpreter itself, not a shim (pyenv's shim costs a shell per checker run).
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 runs");
        String::from_utf8(out.stdout)
            .expect("a path")
            .trim()
            .to_string()
    })
}

/// The `walstore` command, built next to this test's binary if missing.
fn walstore() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_walstore-crashtest"))
            .parent()
            .expect("the binary's directory")
            .to_path_buf();
        let bin = dir.join("walstore");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Always (re)build: cheap when fresh, and never tests a stale CLI.
        let status = Command::new(cargo)
            .args(["build", "-p", "walstore-cli", "--bin", "walstore"])
            .current_dir(repo())
            .env(
                "CARGO_TARGET_DIR",
                dir.parent().expect("the target directory"),
            )
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the walstore command failed");
        bin
    })
}

struct Run {
    code: i32,
    stdout: String,
}

fn crashtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walstore-crashtest"))
        .args(args)
        .env("WALSTORE", walstore())
        .output()
        .expect("walstore-crashtest runs")
}

fn run_program(name: &str, init: &str, check: &str, files: &str) -> Run {
    let dir = tempfile::tempdir().expect("a directory");
    let artifacts = tempfile::tempdir().expect("a directory");
    let e = examples();
    let (py, e) = (python(), e.display());
    let started = Instant::now();
    let out = crashtest(&[
        "program",
        "--dir",
        &dir.path().display().to_string(),
        "--init",
        &format!("{py} -B {e}/{init} {{dir}} {files}"),
        "--run",
        &format!("{py} -B {e}/{name} {{dir}}"),
        "--check",
        &format!("{py} -B {e}/{check} {{dir}} {files}"),
        "--tier",
        "ci",
        "--artifacts",
        &artifacts.path().display().to_string(),
        "--print-limit",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{name}: {:.1}s\n{stdout}{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
    }
}

fn verdict_line(run: &Run) -> &str {
    run.stdout
        .lines()
        .find(|l| l.starts_with("FAIL:") || l.starts_with("PASS:"))
        .expect("a verdict line")
}

fn assert_broken_by(run: &Run, class: &str) {
    assert_eq!(run.code, 1, "expected violations");
    let verdict = verdict_line(run);
    let broken = verdict.split("broken by ").nth(1).expect("broken by");
    assert!(
        broken.starts_with(&format!("{class} ")),
        "expected {class} to break it: {verdict}"
    );
    assert!(run.stdout.contains("VIOLATION 1:"));
    assert!(run.stdout.contains("materialise: "));
    assert!(run.stdout.contains("operations leading to it:"));
}

fn assert_pass(run: &Run) {
    assert_eq!(run.code, 0, "expected no violation");
    assert!(verdict_line(run).starts_with("PASS"));
}

#[test]
fn four_files_rewritten_in_place_break_at_a_process_kill() {
    let run = run_program("1_in_place.py", "init_json.py", "check_json.py", "");
    assert_broken_by(&run, "F15");
}

#[test]
fn replace_without_directory_fsync_loses_the_rename() {
    let run = run_program(
        "2_replace_no_dirsync.py",
        "init_json.py",
        "check_json.py",
        "",
    );
    assert_broken_by(&run, "F8");
}

#[test]
fn replace_with_file_and_directory_fsync_passes() {
    let run = run_program("3_replace_dirsync.py", "init_json.py", "check_json.py", "");
    assert_pass(&run);
}

#[test]
fn replace_without_fsync_of_the_temporary_file_loses_its_data() {
    let run = run_program(
        "4_replace_no_fsync.py",
        "init_json.py",
        "check_json.py",
        "context.json",
    );
    assert_broken_by(&run, "F1");
}

#[test]
fn the_save_through_the_walstore_command_passes() {
    let run = run_program(
        "5_walstore_cli.py",
        "init_walstore.py",
        "check_walstore.py",
        "",
    );
    assert_pass(&run);
    // The store's own files were recorded: the WAL, a snapshot and the manifest.
    assert!(run.stdout.contains("crash points: "));
}

#[test]
fn a_violation_image_is_materialised_by_its_command() {
    let dir = tempfile::tempdir().expect("a directory");
    let artifacts = tempfile::tempdir().expect("a directory");
    let into = tempfile::tempdir().expect("a directory");
    let (py, e) = (python(), examples());
    let e = e.display();
    let out = crashtest(&[
        "program",
        "--dir",
        &dir.path().display().to_string(),
        "--init",
        &format!("{py} -B {e}/init_json.py {{dir}} context.json"),
        "--run",
        &format!("{py} -B {e}/4_replace_no_fsync.py {{dir}}"),
        "--check",
        &format!("{py} -B {e}/check_json.py {{dir}} context.json"),
        "--artifacts",
        &artifacts.path().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("materialise: "))
        .expect("a materialise command");
    let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let last = words.len() - 1;
    words[last] = into.path().join("image").display().to_string();
    let made = Command::new(&words[0])
        .args(&words[1..])
        .output()
        .expect("program-image runs");
    assert!(made.status.success(), "{made:?}");
    // The checker rejects the materialised image as it rejected the one it was shown.
    let acked = artifacts.path().join("acked-for-test.txt");
    let first = &stdout[stdout.find("acknowledged: ").expect("acked")..];
    let saves: Vec<&str> = first
        .lines()
        .next()
        .unwrap_or("")
        .split('"')
        .filter(|s| s.starts_with("saved"))
        .collect();
    std::fs::write(&acked, saves.join("\n")).expect("write acked");
    let check = Command::new(py)
        .arg("-B")
        .arg(examples().join("check_json.py"))
        .arg(into.path().join("image"))
        .arg("context.json")
        .env("CRASHTEST_ACKED", &acked)
        .output()
        .expect("the checker runs");
    assert!(!check.status.success(), "{check:?}");
}

#[test]
fn bad_usage_exits_2() {
    let missing = crashtest(&[
        "program",
        "--dir",
        "/nonexistent/h15p",
        "--run",
        "true",
        "--check",
        "true",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    let dir = tempfile::tempdir().expect("a directory");
    let d = dir.path().display().to_string();
    let no_program = crashtest(&[
        "program",
        "--dir",
        &d,
        "--run",
        "/nonexistent/program",
        "--check",
        "true",
    ]);
    assert_eq!(no_program.status.code(), Some(2), "{no_program:?}");
    let no_checker = crashtest(&[
        "program",
        "--dir",
        &d,
        "--run",
        "true",
        "--check",
        "/nonexistent/checker",
    ]);
    assert_eq!(no_checker.status.code(), Some(2), "{no_checker:?}");
    let bad_tier = crashtest(&[
        "program", "--dir", &d, "--run", "true", "--check", "true", "--tier", "huge",
    ]);
    assert_eq!(bad_tier.status.code(), Some(2));
}

#[test]
fn strace_that_cannot_trace_is_bad_usage() {
    // A stand-in for strace where ptrace is refused: it complains and traces nothing.
    let bin = tempfile::tempdir().expect("a directory");
    let fake = bin.path().join("strace");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'strace: PTRACE_TRACEME: Operation not permitted' >&2\nexit 1\n",
    )
    .expect("write");
    let made_executable = Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .expect("chmod");
    assert!(made_executable.success());
    let dir = tempfile::tempdir().expect("a directory");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_walstore-crashtest"))
        .args(["program", "--dir"])
        .arg(dir.path())
        .args(["--run", "true", "--check", "true"])
        .env("PATH", path)
        .output()
        .expect("walstore-crashtest runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("strace"));
}

#[test]
fn a_checker_that_rejects_the_initial_state_is_bad_usage() {
    let dir = tempfile::tempdir().expect("a directory");
    let out = crashtest(&[
        "program",
        "--dir",
        &dir.path().display().to_string(),
        "--run",
        "true",
        "--check",
        "false",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejects the state"));
}

/// `program` on a fresh directory with shell commands; returns the exit status, stdout and
/// stderr.
fn program_sh(init: Option<&str>, run: &str, check: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("a directory");
    let artifacts = tempfile::tempdir().expect("a directory");
    let d = dir.path().display().to_string();
    let a = artifacts.path().display().to_string();
    let mut args = vec!["program", "--dir", &d, "--run", run, "--check", check];
    args.extend(["--artifacts", &a, "--print-limit", "1"]);
    if let Some(init) = init {
        args.extend(["--init", init]);
    }
    args.extend(extra);
    let out = crashtest(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("{run}\n{stdout}{stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn a_child_that_writes_and_syncs_while_its_parent_reads_is_accepted() {
    let (py, e) = (python(), examples());
    let run = format!("{py} -B {}/fork_child_writes.py {{dir}}", e.display());
    let check = format!("sh {}/check_hello.sh {{dir}}", e.display());
    let (code, stdout, _) = program_sh(None, &run, &check, &[]);
    assert_eq!(code, 0, "expected PASS");
    assert!(stdout.contains("PASS: every image accepted"));
    assert!(
        stdout.contains("1 stdout lines"),
        "the acknowledgement was recorded"
    );
}

#[test]
fn state_left_outside_the_directory_exits_2_naming_it_unless_allowed() {
    let outside = tempfile::tempdir().expect("a directory");
    let file = outside.path().join("state.txt");
    let run = format!("echo 1 > {}; echo 1 > {{dir}}/f", file.display());
    let (code, _, stderr) = program_sh(None, &run, "true", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("outside --dir"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    let allowed = outside.path().display().to_string();
    let (code, stdout, _) = program_sh(None, &run, "true", &["--allow-outside", &allowed]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_failing_run_exits_2_unless_failure_is_expected() {
    let run = "echo 1 > {dir}/f; exit 3";
    let (code, _, stderr) = program_sh(None, run, "true", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--run failed (exit 3"), "{stderr}");
    let (code, stdout, _) = program_sh(None, run, "true", &["--run-may-fail"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("program exit status 3"), "{stdout}");
}

#[test]
fn a_checker_killed_by_a_signal_is_reported_with_it() {
    let (code, _, stderr) = program_sh(None, "true", "kill -SEGV $$", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("signal 11 (SIGSEGV)"), "{stderr}");
}

#[test]
fn a_checker_past_its_timeout_is_killed_and_named() {
    // The checker waits for a file that never appears; the timeout ends it.
    let check = "while [ ! -e {dir}/never ]; do sleep 0.05; done";
    let (code, _, stderr) = program_sh(None, "true", check, &["--check-timeout", "1"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("longer than --check-timeout (1 s)"),
        "{stderr}"
    );
}

#[test]
fn an_operation_that_is_not_modelled_exits_2_naming_it() {
    let (code, stdout, stderr) = program_sh(None, "ln -s target {dir}/link", "true", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("symlink link -> target"), "{stderr}");
    assert!(
        !stdout.contains("PASS") && !stdout.contains("FAIL"),
        "no verdict"
    );
}

#[test]
fn a_change_the_recording_missed_fails_the_self_check() {
    // A writer started by --init (not traced) waits for the run's signal file and then writes
    // into the directory; the run waits for its file, so the change happens during the run.
    let init = "(while [ ! -e {dir}/go ]; do sleep 0.05; done; echo late > {dir}/late) \
                >/dev/null 2>&1 &";
    let run = "touch {dir}/go; while [ ! -e {dir}/late ]; do sleep 0.05; done";
    let (code, _, stderr) = program_sh(Some(init), run, "true", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("self-check"), "{stderr}");
    assert!(
        stderr.contains("late: in the directory, not in the replay"),
        "{stderr}"
    );
}
