//! A store on a full file system: writes exit 5 with a message about space, and every value
//! acknowledged before is still there, byte for byte, once space returns.
//!
//! Twice: on a real tmpfs mounted by the test (where the machine allows mounting), and on the
//! engine's simulated file system through the library (always).

mod common;

use clap::Parser;
use common::{code, ok, stderr, walstore};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use walstore::storage::{MemoryStorage, StorageOp};
use walstore_cli::{Backend, Cli, Exit};

const ENOSPC: i32 = 28;

/// A tmpfs mounted at a directory, unmounted on drop (also when the test fails).
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
        assert!(status.success(), "remount to {size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_tmpfs_exits_5_about_space_and_keeps_every_acknowledged_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "1m") else {
        eprintln!("mounting a tmpfs is not allowed here; the simulated test still runs");
        return;
    };
    let s = fs.0.join("store");
    let s = s.to_str().expect("utf8");
    // A new store zero-fills 4 MiB of log ahead of use: on a 1 MiB disk creating it fails.
    let first = walstore(&["set", s, "k0=v0"]);
    if code(&first) != 0 {
        assert_eq!(code(&first), 5, "{}", stderr(&first));
        assert!(
            stderr(&first).contains("disk is full"),
            "{}",
            stderr(&first)
        );
        fs.resize("5m");
        ok(&["set", s, "k0=v0"]);
    }
    let mut acknowledged = vec![("k0".to_string(), "v0".to_string())];
    let mut failure = None;
    for i in 1..400 {
        let (key, value) = (format!("k{i}"), format!("{i:>60000}"));
        let out = walstore(&["set", s, &format!("{key}={value}")]);
        if code(&out) == 0 {
            acknowledged.push((key, value));
        } else {
            failure = Some(out);
            break;
        }
    }
    let out = failure.expect("the disk must fill up");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("disk is full"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    // Still full: reads work. (A small write may still fit in the log's zero-filled space.)
    assert_eq!(ok(&["get", s, "k0"]), "v0");
    fs.resize("64m");
    for (key, value) in &acknowledged {
        let got = walstore(&["get", s, key]);
        assert_eq!(code(&got), 0, "{key} lost: {}", stderr(&got));
        assert!(
            got.stdout == value.as_bytes(),
            "{key} changed after the disk filled"
        );
    }
    ok(&["set", s, "after=space returned"]);
    ok(&["checkpoint", s]);
    ok(&["verify", s]);
}

fn run(backend: &Backend, args: &[&str]) -> Result<Exit, walstore_cli::Failure> {
    let cli = Cli::try_parse_from(std::iter::once("walstore").chain(args.iter().copied()))
        .expect("valid arguments");
    walstore_cli::execute(&cli, backend)
}

#[test]
fn a_full_simulated_disk_exits_5_about_space_and_keeps_every_acknowledged_value() {
    let memory = MemoryStorage::new();
    let backend = Backend::with_storage(
        Arc::new(memory.clone()),
        walstore::Options::new().auto_checkpoint(false),
    );
    for i in 0..10 {
        let pair = format!("k{i}={i}");
        assert_eq!(run(&backend, &["set", "/db", &pair]).ok(), Some(Exit::Ok));
    }
    memory.fail_after(0, Some(StorageOp::Write), ENOSPC, true);
    for args in [
        &["set", "/db", "k0=lost", "new=lost"][..],
        &["incr", "/db", "k1"],
        &["del", "/db", "k2"],
    ] {
        let failure = run(&backend, args).expect_err("the disk is full");
        assert_eq!(failure.exit, Exit::Io, "{args:?}: {}", failure.message);
        assert!(
            failure.message.contains("disk is full"),
            "{}",
            failure.message
        );
    }
    assert!(memory.clear_fault(), "the fault fired");
    assert_eq!(run(&backend, &["verify", "/db"]).ok(), Some(Exit::Ok));
    let store = walstore::Options::new()
        .storage(Arc::new(memory.clone()))
        .read_only(true)
        .open("/db")
        .expect("reopen");
    let read = store.begin_read().expect("read");
    for i in 0..10 {
        let value = read.get(format!("k{i}").as_bytes()).expect("get");
        assert_eq!(value.as_deref(), Some(i.to_string().as_bytes()), "k{i}");
    }
    assert_eq!(read.get(b"new").expect("get"), None);
    assert_eq!(
        run(&backend, &["set", "/db", "after=1"]).ok(),
        Some(Exit::Ok)
    );
}
