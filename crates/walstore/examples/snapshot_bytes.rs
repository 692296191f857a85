//! Bytes a sorted run costs per byte of what it holds (FORMAT.md §5.5): `N` keys of 16 bytes
//! (`user/%011d`) with 100-byte values, put through the public API, folded into snapshot files
//! by a checkpoint and merged into one run; prints the files' total size over the keys' and
//! values' bytes.
//!
//!     cargo run -p walstore --example snapshot_bytes [N]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map_or(Ok(100_000), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("walstore-snapbytes-{}", std::process::id()));
    let store = walstore::Options::new().auto_checkpoint(false).open(&dir)?;
    let mut value = [0u8; 100];
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut tx = store.begin_write()?;
        tx.set_durability(walstore::Durability::Buffered);
        for &i in chunk {
            // Values that differ per key (a byte pattern, not one repeated byte).
            for (j, b) in value.iter_mut().enumerate() {
                *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
            }
            tx.put(format!("user/{i:011}").as_bytes(), &value)?;
        }
        tx.commit()?;
    }
    store.checkpoint()?;
    store.compact()?;
    let info = store.info()?;
    let file_bytes: u64 = info.snapshot_files.iter().map(|f| f.1).sum();
    let entries: u64 = info.snapshot_files.iter().map(|f| f.2).sum();
    let payload = n * (16 + 100);
    println!(
        "{entries} entries in {} files: {file_bytes} bytes for {payload} bytes of keys and values: \
         {:.4}x, {:.2} bytes per entry beyond the key and value",
        info.snapshot_files.len(),
        file_bytes as f64 / payload as f64,
        (file_bytes - payload) as f64 / n as f64
    );
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
