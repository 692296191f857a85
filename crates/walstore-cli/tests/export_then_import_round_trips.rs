//! `export` then `import` into a new store reproduces every key and value byte for byte,
//! including bytes that are not UTF-8, and `import` merges into what a store already holds.

mod common;

use common::{code, get, json_bytes, ok, stderr, stdout, store, walstore, walstore_stdin};

/// Puts of 50 binary keys and values, one UTF-8 value, and the edge values.
fn binary_puts() -> Vec<u8> {
    let mut input = Vec::new();
    let mut put = |key: &[u8], value: &[u8]| {
        input.extend_from_slice(
            format!(
                "{{\"op\":\"put\",\"key\":{},\"value\":{}}}\n",
                json_bytes(key),
                json_bytes(value)
            )
            .as_bytes(),
        );
    };
    for i in 0..50u8 {
        let value: Vec<u8> = (0..=i).map(|b| b.wrapping_mul(37)).collect();
        put(&[b'k', i, 0xff], &value);
    }
    put(b"text", "caf\u{e9} \"quoted\"\n".as_bytes());
    put(b"empty", b"");
    put(b"nul", b"\0");
    put(&[0x80], &(0..=255u8).collect::<Vec<u8>>());
    input
}

#[test]
fn export_then_import_round_trips_binary_values_exactly() {
    let (_t, _d, s) = store();
    let out = walstore_stdin(&["txn", &s], &binary_puts());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let exported = walstore(&["export", &s]);
    assert_eq!(code(&exported), 0);
    assert_eq!(stdout(&exported).lines().count(), 55, "header and 54 pairs");
    assert!(stdout(&exported).starts_with("{\"format\":\"walstore-export\",\"version\":1}\n"));

    let (_t2, _d2, s2) = store();
    let imported = walstore_stdin(&["import", &s2], &exported.stdout);
    assert_eq!(code(&imported), 0, "{}", stderr(&imported));
    let again = walstore(&["export", &s2]);
    assert_eq!(again.stdout, exported.stdout);
    assert_eq!(get(&s2, "text"), "caf\u{e9} \"quoted\"\n");
    assert_eq!(get(&s2, "empty"), "");
    let nul = walstore(&["get", "--raw", &s2, "nul"]); // one NUL byte is also the typed 0
    assert_eq!(nul.stdout, b"\0");
}

#[test]
fn import_keeps_keys_the_input_does_not_mention() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=1", "b=1"]);
    let out = walstore_stdin(&["import", &s], b"{\"key\":\"b\",\"value\":\"2\"}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ok(&["scan", &s]), "a\t1\nb\t2\n");
}
