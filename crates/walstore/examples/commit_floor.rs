//! How close a single-threaded `Immediate` commit loop comes to the physical floor: a bare
//! loop of `pwrite` + `fdatasync` of the same number of bytes to a pre-written (zero-filled
//! and synced) file on the same disk, measured in the same run, alternating rounds.
//!
//!     cargo run --release -p walstore --example commit_floor [DIR] [COMMITS]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let base = match args.get(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::current_dir()?.join("target").join("commit-floor"),
    };
    let commits: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;

    // The bytes one commit of 3 keys (16-byte key, 100-byte value) writes to the WAL.
    let record_bytes = walstore::inspect::encode_transaction(
        1,
        1,
        &[
            (&[b'k'; 16], Some(&[b'v'; 100])),
            (&[b'l'; 16], Some(&[b'v'; 100])),
            (&[b'm'; 16], Some(&[b'v'; 100])),
        ],
        0,
    )
    .len();

    let mut floor = Vec::new();
    let mut store = Vec::new();
    for round in 0..3 {
        floor.push(bare_loop(
            &base.join(format!("bare{round}")),
            record_bytes,
            commits,
        )?);
        store.push(walstore_loop(&base.join(format!("store{round}")), commits)?);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (f, s) = (best(&floor), best(&store));
    println!("bytes per commit: {record_bytes}; commits per round: {commits}; best of 3 rounds");
    println!("bare pwrite+fdatasync on a pre-written file: {f:>8.0} /s   (rounds {floor:.0?})");
    println!("walstore Immediate commit, 3 keys:           {s:>8.0} /s   (rounds {store:.0?})");
    println!("ratio walstore / floor: {:.3}", s / f);
    std::fs::remove_dir_all(&base)?;
    Ok(())
}

fn bare_loop(path: &std::path::Path, len: usize, n: usize) -> std::io::Result<f64> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let total = (len * n + 4096) as u64;
    file.write_all_at(&vec![0u8; total as usize], 0)?;
    file.sync_all()?;
    let buf = vec![0xabu8; len];
    let started = Instant::now();
    for i in 0..n {
        file.write_all_at(&buf, (i * len) as u64)?;
        file.sync_data()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn walstore_loop(dir: &std::path::Path, n: usize) -> walstore::Result<f64> {
    let store = walstore::Options::new()
        .wal_preallocate_bytes(8 << 20)
        .open(dir)?;
    // Warm up: the first commit grows the preallocated log.
    store.update(|tx| tx.put(b"warmup", b"1"))?;
    let value = [b'v'; 100];
    let started = Instant::now();
    for i in 0..n as u64 {
        store.update(|tx| {
            for k in 0..3u64 {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&(i * 3 + k).to_be_bytes());
                tx.put(&key, &value)?;
            }
            Ok::<_, walstore::Error>(())
        })?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
