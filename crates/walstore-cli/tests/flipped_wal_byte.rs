//! A byte flipped inside a committed transaction of the WAL (the second of three): `verify`
//! exits 4 naming the file and offset, every command that opens the store normally exits 4,
//! and `--salvage` reads the intact prefix (the first transaction) read-only.

mod common;

use common::{code, fails, ok, stderr, stdout, store, walstore};
use std::path::Path;

/// Writes three transactions; flips a byte 40 bytes into the second one's first record.
/// Returns that record's offset in the WAL.
fn damage_second_transaction(s: &str, dir: &Path) -> u64 {
    ok(&["set", s, "first=1"]);
    ok(&["set", s, "second=2"]);
    ok(&["set", s, "third=3"]);
    let dump: serde_json::Value = serde_json::from_str(&ok(&["--json", "dump", s])).expect("json");
    let second = dump["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["txn_id"] == 2)
        .and_then(|r| r["offset"].as_u64())
        .expect("the second transaction's offset");
    assert!(second > 4096, "records start after the 4096-byte header");
    let wal = dir.join("wal");
    let mut bytes = std::fs::read(&wal).expect("read wal");
    bytes[second as usize + 40] ^= 0x04;
    std::fs::write(&wal, &bytes).expect("write wal");
    second
}

#[test]
fn verify_exits_4_naming_the_file_and_offset() {
    let (_t, dir, s) = store();
    let offset = damage_second_transaction(&s, &dir);
    let verify = fails(&["verify", &s], 4);
    let err = stderr(&verify);
    let wal = dir.join("wal");
    assert!(
        err.contains(&format!("{} at offset {offset}", wal.display())),
        "{err}"
    );
    assert!(stdout(&verify).contains(&format!("DAMAGED  wal at offset {offset}")));
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&walstore(&["--json", "verify", &s]))).expect("json");
    assert_eq!(report["ok"], false);
    let dump = ok(&["dump", &s]);
    assert!(
        dump.contains(&format!("CORRUPTION at offset {offset}")),
        "{dump}"
    );
}

#[test]
fn opening_commands_exit_4_and_salvage_reads_the_intact_prefix() {
    let (_t, dir, s) = store();
    damage_second_transaction(&s, &dir);
    let before = std::fs::read(dir.join("wal")).expect("read");
    for args in [
        &["get", &s, "first"][..],
        &["scan", &s],
        &["export", &s],
        &["set", &s, "k=v"],
        &["incr", &s, "n"],
    ] {
        let out = fails(args, 4);
        assert!(stderr(&out).contains("corruption"), "{args:?}");
    }
    let salvaged = walstore(&["--salvage", "get", &s, "first"]);
    assert_eq!(code(&salvaged), 0, "{}", stderr(&salvaged));
    assert_eq!(stdout(&salvaged), "1");
    assert_eq!(ok(&["--salvage", "scan", &s]), "first\t1\n");
    fails(&["--salvage", "get", &s, "second"], 1);
    fails(&["--salvage", "set", &s, "k=v"], 2);
    let exported = ok(&["--salvage", "export", &s]);
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert_eq!(
        std::fs::read(dir.join("wal")).expect("read"),
        before,
        "nothing modified the damaged store"
    );
}
