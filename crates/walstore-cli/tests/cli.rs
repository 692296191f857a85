//! The `walstore` binary, run as scripts run it: every command, every exit code, concurrent
//! processes, SIGKILL, damage, a full disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_walstore");

fn walstore(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run walstore")
}

fn walstore_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn walstore");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally, not by a signal")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn store() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let s = dir.to_str().expect("utf8").to_owned();
    (tmp, dir, s)
}

fn ok(args: &[&str]) -> String {
    let out = walstore(args);
    assert_eq!(code(&out), 0, "walstore {args:?}: {}", stderr(&out));
    stdout(&out)
}

fn get(s: &str, key: &str) -> String {
    ok(&["get", s, key])
}

#[test]
fn set_get_del_scan_and_the_key_missing_exit_code() {
    let (_t, _d, s) = store();
    ok(&[
        "set",
        &s,
        "server.url=https://example.net",
        "server.namespace=prod",
        "server.tls-verify=true",
    ]);
    assert_eq!(get(&s, "server.namespace"), "prod");
    assert_eq!(
        ok(&["scan", &s, "server."]),
        "server.namespace\tprod\nserver.tls-verify\ttrue\nserver.url\thttps://example.net\n"
    );
    ok(&["del", &s, "server.url", "server.tls-verify"]);
    let missing = walstore(&["get", &s, "server.url"]);
    assert_eq!(code(&missing), 1);
    assert!(stdout(&missing).is_empty());
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(ok(&["scan", &s]), "server.namespace\tprod\n");
    let json = ok(&["--json", "get", &s, "server.namespace"]);
    assert_eq!(
        json.trim(),
        r#"{"found":true,"key":"server.namespace","ok":true,"value":"prod"}"#
    );
}

#[test]
fn set_takes_values_from_files_and_get_writes_the_bytes_exactly() {
    let (t, _d, s) = store();
    let file = t.path().join("value.bin");
    let bytes: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    std::fs::write(&file, &bytes).expect("write");
    ok(&["set", &s, &format!("blob=@{}", file.display())]);
    let out = walstore(&["get", &s, "blob"]);
    assert_eq!(code(&out), 0);
    assert_eq!(out.stdout, bytes);
}

#[test]
fn incr_and_cas() {
    let (_t, _d, s) = store();
    assert_eq!(ok(&["incr", &s, "n"]), "1\n");
    assert_eq!(ok(&["incr", &s, "n", "41"]), "42\n");
    assert_eq!(ok(&["incr", &s, "n", "-2"]), "40\n");
    ok(&["cas", &s, "n", "40", "100"]);
    assert_eq!(get(&s, "n"), "100");
    let failed = walstore(&["cas", &s, "n", "40", "7"]);
    assert_eq!(code(&failed), 1);
    assert_eq!(get(&s, "n"), "100");
    ok(&["set", &s, "word=hello"]);
    let not_a_number = walstore(&["incr", &s, "word"]);
    assert_eq!(code(&not_a_number), 2);
    assert!(stderr(&not_a_number).contains("not a decimal integer"));
    assert_eq!(get(&s, "word"), "hello");
}

#[test]
fn txn_applies_everything_or_nothing() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "balance.a=10", "balance.b=5"]);
    let input = br#"{"op":"expect","key":"balance.a","value":"10"}
{"op":"put","key":"balance.a","value":"7"}
{"op":"put","key":"balance.b","value":"8"}
{"op":"expect","key":"log","absent":true}
{"op":"put","key":{"base64":"/wA="},"value":{"base64":"AAEC"}}
"#;
    let out = walstore_stdin(&["txn", &s], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        (get(&s, "balance.a"), get(&s, "balance.b")),
        ("7".into(), "8".into())
    );
    // A failing guard applies nothing, not even the operations before it.
    let guarded = br#"{"op":"put","key":"balance.a","value":"0"}
{"op":"expect","key":"balance.b","value":"999"}
"#;
    let out = walstore_stdin(&["txn", &s], guarded);
    assert_eq!(code(&out), 1);
    assert_eq!(get(&s, "balance.a"), "7");
    // Malformed input is a usage error and applies nothing.
    let out = walstore_stdin(
        &["txn", &s],
        b"{\"op\":\"put\",\"key\":\"x\",\"value\":\"1\"}\nnot json\n",
    );
    assert_eq!(code(&out), 2);
    assert_eq!(code(&walstore(&["get", &s, "x"])), 1);
}

#[test]
fn export_then_import_round_trips_binary_values_exactly() {
    let (_t, _d, s) = store();
    let mut input = Vec::new();
    for i in 0..50u8 {
        let key = json_bytes(&[b'k', i, 0xff]);
        let value = json_bytes(&(0..=i).map(|b| b.wrapping_mul(37)).collect::<Vec<u8>>());
        input.extend_from_slice(
            format!("{{\"op\":\"put\",\"key\":{key},\"value\":{value}}}\n").as_bytes(),
        );
    }
    input.extend_from_slice(b"{\"op\":\"put\",\"key\":\"text\",\"value\":\"caf\\u00e9\"}\n");
    assert_eq!(code(&walstore_stdin(&["txn", &s], &input)), 0);
    let exported = walstore(&["export", &s]);
    assert_eq!(code(&exported), 0);
    let (_t2, _d2, s2) = store();
    let imported = walstore_stdin(&["import", &s2], &exported.stdout);
    assert_eq!(code(&imported), 0, "{}", stderr(&imported));
    let again = walstore(&["export", &s2]);
    assert_eq!(again.stdout, exported.stdout);
    assert_eq!(stdout(&exported).lines().count(), 52, "header and 51 pairs");
    assert_eq!(get(&s2, "text"), "café");
}

fn json_bytes(bytes: &[u8]) -> String {
    walstore_cli::encoding::to_json(bytes).to_string()
}

#[test]
fn checkpoint_info_dump_verify_and_backup() {
    let (t, _d, s) = store();
    for i in 0..20 {
        ok(&["set", &s, &format!("k{i:02}=v{i}")]);
    }
    let info = ok(&["--json", "info", &s]);
    assert!(info.contains("\"txns_since_checkpoint\":20"), "{info}");
    let dump = ok(&["dump", &s]);
    assert!(dump.contains("20 committed transactions"), "{dump}");
    assert!(dump.contains("recovery: clean end"), "{dump}");
    let cp = ok(&["--json", "checkpoint", &s]);
    assert!(
        cp.contains("\"generation\":1") && cp.contains("\"keys_changed\":20"),
        "{cp}"
    );
    let info = ok(&["info", &s]);
    assert!(
        info.contains("generation: 1") && info.contains("snap-"),
        "{info}"
    );
    let verify = ok(&["verify", &s]);
    assert!(
        verify.contains("ok       MANIFEST") && verify.contains("ok       snap-"),
        "{verify}"
    );
    let dest = t.path().join("copy");
    let dest_s = dest.to_str().expect("utf8");
    ok(&["set", &s, "after=backup-source"]);
    ok(&["backup", &s, dest_s]);
    assert_eq!(get(dest_s, "k07"), "v7");
    assert_eq!(get(dest_s, "after"), "backup-source");
    ok(&["set", dest_s, "dest=writable"]);
    assert_eq!(
        code(&walstore(&["backup", &s, dest_s])),
        2,
        "a non-empty destination is refused"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (t, _d, s) = store();
    for args in [
        vec!["frobnicate"],
        vec!["set", &s],
        vec!["set", &s, "no-equals-sign"],
        vec!["set", &s, "=value"],
        vec!["incr", &s, "n", "not-a-number"],
        vec!["set", &s, "k=@/nonexistent/file"],
        vec!["--salvage", "set", &s, "k=v"],
    ] {
        let out = walstore(&args);
        assert_eq!(code(&out), 2, "walstore {args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
    let foreign = t.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), b"mine").expect("write");
    let out = walstore(&["set", foreign.to_str().expect("utf8"), "k=v"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not a walstore store"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(foreign.join("notes.txt")).expect("read"),
        b"mine"
    );
}

#[test]
fn a_held_writer_lock_exits_3_after_the_wait() {
    let (_t, dir, s) = store();
    ok(&["set", &s, "k=before"]);
    let holder = walstore::Store::open(&dir).expect("open");
    let tx = holder.begin_write().expect("hold the writer lock");
    let out = walstore(&["--wait", "0.2", "set", &s, "k=after"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    drop(tx);
    // Reading does not need the lock, and the value is untouched.
    assert_eq!(get(&s, "k"), "before");
    ok(&["--wait", "0", "set", &s, "k=after"]);
    assert_eq!(get(&s, "k"), "after");
}

#[test]
fn two_processes_running_incr_200_times_each_end_at_400() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "counter=0"]);
    let script =
        format!("for i in $(seq 200); do {BIN} incr {s} counter >/dev/null || exit 1; done");
    let shells: Vec<_> = (0..2)
        .map(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .spawn()
                .expect("sh")
        })
        .collect();
    for mut sh in shells {
        assert!(sh.wait().expect("wait").success());
    }
    assert_eq!(get(&s, "counter"), "400");
}

#[test]
fn set_of_three_keys_killed_at_random_moments_leaves_them_equal() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=0", "b=0", "c=0"]);
    let mut seed = 0x2545_f491_u64;
    for round in 1..=40u64 {
        let v = round.to_string();
        let mut child = Command::new(BIN)
            .args([
                "set",
                &s,
                &format!("a={v}"),
                &format!("b={v}"),
                &format!("c={v}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 4000));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let (a, b, c) = (get(&s, "a"), get(&s, "b"), get(&s, "c"));
        assert!(a == b && b == c, "round {round}: a={a} b={b} c={c}");
    }
    ok(&["verify", &s]);
}

/// Flips a byte inside the second of three transactions of a fresh store's WAL.
fn damage_second_transaction(s: &str, dir: &Path) -> u64 {
    ok(&["set", s, "first=1"]);
    ok(&["set", s, "second=2"]);
    ok(&["set", s, "third=3"]);
    let dump = ok(&["--json", "dump", s]);
    let parsed: serde_json::Value = serde_json::from_str(&dump).expect("json");
    let second = parsed["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["txn_id"] == 2)
        .expect("second transaction")["offset"]
        .as_u64()
        .expect("offset");
    let wal = dir.join("wal");
    let mut bytes = std::fs::read(&wal).expect("read wal");
    bytes[second as usize + 40] ^= 0x04;
    std::fs::write(&wal, &bytes).expect("write wal");
    second
}

#[test]
fn a_flipped_byte_in_the_wal_is_found_by_verify_and_salvage_reads_around_it() {
    let (_t, dir, s) = store();
    let offset = damage_second_transaction(&s, &dir);
    let verify = walstore(&["verify", &s]);
    assert_eq!(code(&verify), 4);
    let err = stderr(&verify);
    assert!(
        err.contains("wal") && err.contains(&format!("offset {offset}")),
        "{err}"
    );
    let get_strict = walstore(&["get", &s, "first"]);
    assert_eq!(code(&get_strict), 4, "{}", stderr(&get_strict));
    assert!(stderr(&get_strict).contains("corruption"));
    let salvaged = walstore(&["--salvage", "get", &s, "first"]);
    assert_eq!(code(&salvaged), 0, "{}", stderr(&salvaged));
    assert_eq!(stdout(&salvaged), "1");
    let dump = ok(&["dump", &s]);
    assert!(dump.contains("CORRUPTION"), "{dump}");
    assert_eq!(
        code(&walstore(&["set", &s, "k=v"])),
        4,
        "writes refuse a corrupt store"
    );
}

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_exits_5_about_space_and_keeps_every_acknowledged_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "1m") else {
        full_disk_on_the_simulated_file_system();
        return;
    };
    let s = fs.0.join("store");
    let s = s.to_str().expect("utf8");
    // A new store zero-fills 4 MiB of log ahead of use: on a 1 MiB disk even creating it fails.
    let first = walstore(&["set", s, "k0=v"]);
    let mut acknowledged = Vec::new();
    if code(&first) == 0 {
        acknowledged.push("k0".to_string());
    } else {
        assert_eq!(code(&first), 5, "{}", stderr(&first));
        fs.resize("5m");
        ok(&["set", s, "k0=v"]);
        acknowledged.push("k0".to_string());
    }
    let big = "x".repeat(60_000);
    let mut failure = None;
    for i in 1..200 {
        let out = walstore(&["set", s, &format!("k{i}={big}")]);
        match code(&out) {
            0 => acknowledged.push(format!("k{i}")),
            _ => {
                failure = Some(out);
                break;
            }
        }
    }
    let out = failure.expect("the disk must fill up");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("disk is full"), "{}", stderr(&out));
    fs.resize("64m");
    for key in &acknowledged {
        let got = walstore(&["get", s, key]);
        assert_eq!(
            code(&got),
            0,
            "{key} lost after the disk filled: {}",
            stderr(&got)
        );
    }
    ok(&["set", s, "after=space returned"]);
    ok(&["verify", s]);
}

/// Where mounting is not allowed: the same command code on the engine's simulated file system.
fn full_disk_on_the_simulated_file_system() {
    use clap::Parser;
    use std::sync::Arc;
    use walstore::storage::{MemoryStorage, StorageOp};
    eprintln!("mount not allowed here: running the full-disk test on the simulated file system");
    let memory = MemoryStorage::new();
    let base = || {
        walstore::Options::new()
            .storage(Arc::new(memory.clone()))
            .auto_checkpoint(false)
    };
    let run = |args: &[&str]| {
        let cli = walstore_cli::Cli::try_parse_from(
            std::iter::once("walstore").chain(args.iter().copied()),
        )
        .expect("parse");
        walstore_cli::run(&cli, base())
    };
    assert_eq!(run(&["set", "/db", "a=1"]), walstore_cli::Exit::Ok);
    memory.fail_after(0, Some(StorageOp::Write), 28, true);
    assert_eq!(
        run(&["set", "/db", &format!("b={}", "x".repeat(100_000))]),
        walstore_cli::Exit::Io
    );
    memory.clear_fault();
    assert_eq!(run(&["get", "/db", "a"]), walstore_cli::Exit::Ok);
}
