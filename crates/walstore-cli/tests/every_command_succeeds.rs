//! The success path of every command, in text and `--json` form, through the built binary.

mod common;

use common::{code, get, ok, stderr, stdout, store, walstore, walstore_stdin};
use serde_json::Value as Json;

fn json(text: &str) -> Json {
    serde_json::from_str(text.trim()).expect("one JSON object")
}

#[test]
fn set_get_del_and_scan() {
    let (_t, _d, s) = store();
    ok(&[
        "set",
        &s,
        "server.url=https://example.net/?a=b",
        "server.namespace=prod",
        "server.tls-verify=true",
    ]);
    assert_eq!(get(&s, "server.namespace"), "prod");
    assert_eq!(get(&s, "server.url"), "https://example.net/?a=b");
    assert_eq!(
        ok(&["scan", &s, "server."]),
        "server.namespace\tprod\nserver.tls-verify\ttrue\nserver.url\thttps://example.net/?a=b\n"
    );
    ok(&[
        "del",
        &s,
        "server.url",
        "server.tls-verify",
        "never-existed",
    ]);
    assert_eq!(ok(&["scan", &s]), "server.namespace\tprod\n");
    let got = json(&ok(&["--json", "get", &s, "server.namespace"]));
    assert_eq!(
        got,
        serde_json::json!({"ok": true, "exit": 0, "entries": [
            {"key": "server.namespace", "found": true, "value": "prod"}
        ]})
    );
    let deleted = json(&ok(&["--json", "del", &s, "server.namespace", "x"]));
    assert_eq!(deleted["deleted"], 1);
    assert_eq!(ok(&["scan", &s]), "");
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
    let scanned = json(&ok(&["--json", "scan", &s]));
    assert_eq!(scanned["value"]["base64"].as_str().map(str::len), Some(684));
}

#[cfg(unix)]
#[test]
fn keys_and_values_that_are_not_utf8_pass_through_the_command_line() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let (_t, _d, s) = store();
    let pair = OsStr::from_bytes(b"bin\xff\x01=val\xfe\x02ue");
    let out = walstore(&[OsStr::new("set"), OsStr::new(&s), pair]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = walstore(&[
        OsStr::new("get"),
        OsStr::new(&s),
        OsStr::from_bytes(b"bin\xff\x01"),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, b"val\xfe\x02ue");
    assert_eq!(ok(&["scan", &s]), "bin\\xff\\x01\tval\\xfe\\x02ue\n");
}

#[test]
fn incr_counts_from_zero_and_cas_swaps_only_the_expected_value() {
    let (_t, _d, s) = store();
    // A text counter (`cas` compares the stored bytes; a missing counter would start typed).
    ok(&["set", &s, "n=0"]);
    assert_eq!(ok(&["incr", &s, "n"]), "1\n");
    assert_eq!(ok(&["incr", &s, "n", "41"]), "42\n");
    assert_eq!(ok(&["incr", &s, "n", "-2"]), "40\n");
    assert_eq!(json(&ok(&["--json", "incr", &s, "n"]))["value"], 41);
    ok(&["cas", &s, "n", "41", "100"]);
    assert_eq!(get(&s, "n"), "100");
    assert_eq!(
        json(&ok(&["--json", "cas", &s, "n", "100", "7"]))["swapped"],
        true
    );
    assert_eq!(get(&s, "n"), "7");
}

#[test]
fn txn_applies_puts_deletes_and_guards_together() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "balance.a=10", "balance.b=5", "tmp=x"]);
    let input = br#"{"op":"expect","key":"balance.a","value":"10"}
{"op":"put","key":"balance.a","value":"7"}
{"op":"put","key":"balance.b","value":"8"}
{"op":"expect","key":"balance.b","value":"8"}

{"op":"expect","key":"log","absent":true}
{"op":"delete","key":"tmp"}
{"op":"put","key":{"base64":"/wA="},"value":{"base64":"AAEC"}}
"#;
    let out = walstore_stdin(&["--json", "txn", &s], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        json(&stdout(&out)),
        serde_json::json!({"ok": true, "exit": 0, "operations": 7, "keys": 4})
    );
    assert_eq!(
        (get(&s, "balance.a"), get(&s, "balance.b")),
        ("7".into(), "8".into())
    );
    assert_eq!(code(&walstore(&["get", &s, "tmp"])), 1);
    let exported = ok(&["export", &s]);
    assert!(
        exported.contains(r#"{"key":{"base64":"/wA="},"value":"\u0000\u0001\u0002"}"#),
        "{exported}"
    );
}

#[test]
fn checkpoint_info_dump_verify_and_backup() {
    let (t, _d, s) = store();
    for i in 0..20 {
        ok(&["set", &s, &format!("k{i:02}=v{i}")]);
    }
    let info = json(&ok(&["--json", "info", &s]));
    assert_eq!(info["txns_since_checkpoint"], 20);
    assert_eq!(info["generation"], 0);
    let dump = ok(&["dump", &s]);
    assert!(dump.contains("20 committed transactions"), "{dump}");
    assert!(dump.contains("recovery: clean end"), "{dump}");
    let dump = json(&ok(&["--json", "dump", &s]));
    assert_eq!(dump["records"][0]["offset"], 4096);
    assert_eq!(dump["records"][0]["kind"], "batch");
    assert_eq!(dump["records"][0]["ops"][0]["offset"], 4096 + 32);
    assert_eq!(dump["records"][0]["ops"][0]["key"], "k00");
    assert_eq!(dump["verdict"]["kind"], "clean");
    let cp = json(&ok(&["--json", "checkpoint", &s]));
    assert_eq!(
        (&cp["generation"], &cp["keys_changed"]),
        (&1.into(), &20.into())
    );
    let info = ok(&["info", &s]);
    assert!(
        info.contains("generation: 1") && info.contains("snap-"),
        "{info}"
    );
    assert!(
        ok(&["checkpoint", &s]).starts_with("generation 1: 0 keys changed"),
        "nothing new to fold"
    );
    let verify = ok(&["verify", &s]);
    assert!(
        verify.contains("ok       MANIFEST") && verify.contains("ok       snap-"),
        "{verify}"
    );
    assert_eq!(json(&ok(&["--json", "verify", &s]))["ok"], true);
    let dest = t.path().join("copy");
    let dest_s = dest.to_str().expect("utf8");
    ok(&["set", &s, "after=backup-source"]);
    let backed = json(&ok(&["--json", "backup", &s, dest_s]));
    assert_eq!(backed["keys"], 21);
    assert_eq!(get(dest_s, "k07"), "v7");
    assert_eq!(get(dest_s, "after"), "backup-source");
    ok(&["verify", dest_s]);
    ok(&["set", dest_s, "dest=writable"]);
}

#[test]
fn buffered_durability_and_a_generous_wait_still_commit() {
    let (_t, _d, s) = store();
    ok(&["--durability", "buffered", "set", &s, "fast=1"]);
    ok(&[
        "set",
        &s,
        "--durability",
        "immediate",
        "--wait",
        "2.5",
        "safe=2",
    ]);
    assert_eq!(get(&s, "fast"), "1");
    assert_eq!(get(&s, "safe"), "2");
}

#[test]
fn help_and_version_succeed_on_stdout() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["help", "txn"],
        &["set", "--help"],
    ] {
        let out = walstore(args);
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn long_commands_write_no_progress_bar_when_stderr_is_not_a_terminal() {
    // `ok` asserts an empty stderr; a store big enough that the commands do real work.
    let (t, _d, s) = store();
    let mut input = Vec::new();
    for i in 0..20_000 {
        input.extend_from_slice(format!("{{\"key\":\"k{i:05}\",\"value\":\"{i}\"}}\n").as_bytes());
    }
    let imported = walstore_stdin(&["import", &s], &input);
    assert_eq!((code(&imported), stderr(&imported)), (0, String::new()));
    assert_eq!(ok(&["export", &s]).lines().count(), 20_001);
    ok(&["checkpoint", &s]);
    ok(&["verify", &s]);
    ok(&["backup", &s, t.path().join("b").to_str().expect("utf8")]);
}
