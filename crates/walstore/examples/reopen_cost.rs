//! What a read-write open costs after a clean close and after a kill (RECOVERY.md S1).
//!
//! A store gets `KEYS` random keys folded into snapshot files, then a child process commits
//! `TXNS` small transactions and either closes the store (a clean marker) or exits without
//! closing it (as a killed writer would). The parent then times `Options::open` in a fresh
//! process each time: after a kill, the open folds the unproven commits into snapshot files
//! with a checkpoint; after a clean close it does not.
//!
//!     cargo run --release -p walstore --example reopen_cost [KEYS] [TXNS] [ROUNDS]

use std::process::Command;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") => return child(&args[2], args[3].parse()?, &args[4]),
        Some("--open") => return open(&args[2]),
        _ => {}
    }
    let keys: u64 = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let txns: u64 = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let rounds: usize = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("walstore-reopen-{}", std::process::id()));
    let store = walstore::Store::open(&dir)?;
    let mut tx = store.begin_write()?;
    tx.set_durability(walstore::Durability::Buffered);
    for i in 0..keys {
        let key = format!("key{:016x}", mix(i));
        tx.put(key.as_bytes(), &[b'v'; 100])?;
    }
    tx.commit()?;
    store.checkpoint()?;
    store.close()?;
    println!("{keys} keys of 100 bytes in snapshot files, then {txns} commits of one key");
    let exe = std::env::current_exe()?;
    let dir_arg = dir.to_str().ok_or("non-UTF-8 path")?;
    for how in ["close", "exit"] {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let status = Command::new(&exe)
                .args(["--child", dir_arg, &txns.to_string(), how])
                .status()?;
            if !status.success() {
                return Err("child failed".into());
            }
            let out = Command::new(&exe).args(["--open", dir_arg]).output()?;
            let text = String::from_utf8(out.stdout)?;
            times.push(text.trim().parse::<f64>()?);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "after {}: open median {:.2} ms (min {:.2}, max {:.2}, {rounds} rounds)",
            if how == "close" {
                "a clean close"
            } else {
                "an exit without close (as after a kill)"
            },
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Commits `txns` one-key transactions, then closes the store or exits without closing it.
fn child(dir: &str, txns: u64, how: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = walstore::Options::new().auto_checkpoint(false).open(dir)?;
    for i in 0..txns {
        store.update(|tx| tx.put(format!("key{:016x}", mix(i)).as_bytes(), b"changed"))?;
    }
    if how == "close" {
        store.close()?;
    } else {
        // `exit` runs no destructor: the store is left as a SIGKILL leaves it.
        std::process::exit(0);
    }
    Ok(())
}

/// Times one read-write open, printing milliseconds.
fn open(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let store = walstore::Options::new().auto_checkpoint(false).open(dir)?;
    let elapsed = started.elapsed();
    drop(store);
    println!("{}", elapsed.as_secs_f64() * 1e3);
    Ok(())
}

fn mix(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}
