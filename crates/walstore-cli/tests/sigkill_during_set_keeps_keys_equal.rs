//! `set a=i b=i c=i`, killed with SIGKILL at random moments: afterwards `a`, `b` and `c` are
//! always equal, and equal to either the last value seen or the new one (a commit that returned
//! is never lost).

#![cfg(unix)]

mod common;

use common::{ok, store, BIN};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROUNDS: u64 = 60;

/// xorshift64: enough randomness for kill moments, and the seed is printed on failure.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn set_command(s: &str, v: u64) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "set",
        s,
        &format!("a={v}"),
        &format!("b={v}"),
        &format!("c={v}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// `a`, `b` and `c` from one consistent read.
fn read_abc(s: &str) -> (String, String, String) {
    let scan = ok(&["scan", s]);
    let mut values = scan
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap_or("").to_owned());
    let mut value = || values.next().unwrap_or_default();
    (value(), value(), value())
}

#[test]
fn set_of_three_keys_killed_at_random_moments_leaves_them_equal() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "a=0", "b=0", "c=0"]);
    // Kill moments spread over a whole run of the command, as long as it takes here.
    let started = Instant::now();
    for _ in 0..3 {
        assert!(set_command(&s, 0).status().expect("run").success());
    }
    let window_micros = (started.elapsed().as_micros() as u64 / 3).max(500) * 3 / 2;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x2545_f491, |d| d.as_nanos() as u64)
        | 1;
    let initial_seed = seed;
    let (mut last, mut killed, mut killed_after_commit) = (0u64, 0, 0);
    for round in 1..=ROUNDS {
        let mut child = set_command(&s, round).spawn().expect("spawn");
        std::thread::sleep(Duration::from_micros(next(&mut seed) % window_micros));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        let was_killed = status.signal() == Some(9);
        let (a, b, c) = read_abc(&s);
        let context = format!("round {round}, seed {initial_seed:#x}, status {status}");
        assert!(a == b && b == c, "{context}: a={a} b={b} c={c}");
        let value: u64 = a.parse().expect("a number");
        if was_killed {
            killed += 1;
            assert!(
                value == last || value == round,
                "{context}: a={a}, last {last}"
            );
            killed_after_commit += u32::from(value == round);
        } else {
            assert!(status.success(), "{context}");
            assert_eq!(value, round, "{context}: an acknowledged commit was lost");
        }
        last = value;
    }
    eprintln!(
        "{killed} of {ROUNDS} runs killed ({killed_after_commit} after their commit); window {window_micros} us"
    );
    assert!(
        killed > 0,
        "no kill landed while the command ran; seed {initial_seed:#x}"
    );
    ok(&["verify", &s]);
}
