//! The little the harness knows about the engine's files: for invariant 9 (structural
//! integrity), which snapshot files the manifest names (FORMAT.md §6) and whether a snapshot
//! file's checksums hold (FORMAT.md §5); for the post-recovery probe, how many log bytes a
//! one-put transaction takes (FORMAT.md §4). Everything else is judged by behaviour.

use crc32fast::hash as crc32;

/// Bytes of a WAL record header (FORMAT.md §4.1).
const RECORD_HEADER_BYTES: u64 = 32;
/// Bytes of a commit record: header and 16-byte payload (FORMAT.md §4.2).
const COMMIT_RECORD_BYTES: u64 = RECORD_HEADER_BYTES + 16;

/// The value length that makes a transaction of one put of `key` take exactly `bytes` bytes
/// of the log (put record plus commit record, FORMAT.md §4), if any does.
pub fn put_value_len_for(key: &str, bytes: u64) -> Option<usize> {
    let fixed = RECORD_HEADER_BYTES + 4 + key.len() as u64 + COMMIT_RECORD_BYTES;
    bytes
        .checked_sub(fixed)
        .and_then(|v| usize::try_from(v).ok())
}

/// Name of the manifest.
pub const MANIFEST: &str = "MANIFEST";

/// Whether a file name is a snapshot file under its final name (`snap-<16 hex>.dat`).
pub fn is_snapshot_name(name: &str) -> bool {
    name.strip_prefix("snap-")
        .and_then(|rest| rest.strip_suffix(".dat"))
        .is_some_and(|hex| hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The file name of snapshot file `id`.
pub fn snapshot_name(id: u64) -> String {
    format!("snap-{id:016x}.dat")
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

/// The snapshot file ids a manifest names, after checking its checksums.
pub fn manifest_snapshot_ids(bytes: &[u8]) -> Result<Vec<u64>, String> {
    if bytes.get(..8) != Some(&b"WSTORMAN"[..]) {
        return Err("bad manifest magic".into());
    }
    if crc32(&bytes[..24.min(bytes.len())]) != u32_at(bytes, 24)? {
        return Err("manifest header checksum mismatch".into());
    }
    let body_len = u32_at(bytes, 16)? as usize;
    if bytes.len() != 32 + body_len {
        return Err(format!(
            "manifest is {} bytes, header says {}",
            bytes.len(),
            32 + body_len
        ));
    }
    let body = &bytes[32..];
    if crc32(body) != u32_at(bytes, 20)? {
        return Err("manifest body checksum mismatch".into());
    }
    let count = u32_at(body, 32)? as usize;
    let mut at = 40;
    let mut ids = Vec::with_capacity(count.min(body.len() / 28));
    for _ in 0..count {
        ids.push(u64_at(body, at)?);
        let key_len = u32_at(body, at + 24)? as usize;
        at += 28 + key_len;
    }
    Ok(ids)
}

/// Checks a snapshot file's length and both checksums.
pub fn check_snapshot(bytes: &[u8]) -> Result<(), String> {
    if bytes.get(..8) != Some(&b"WSTORSNP"[..]) {
        return Err("bad snapshot magic".into());
    }
    if bytes.len() < 64 || crc32(&bytes[..60]) != u32_at(bytes, 60)? {
        return Err("snapshot header checksum mismatch".into());
    }
    let file_len = u64_at(bytes, 40)?;
    if file_len != bytes.len() as u64 {
        return Err(format!(
            "snapshot is {} bytes, header says {file_len}",
            bytes.len()
        ));
    }
    if crc32(&bytes[64..]) != u32_at(bytes, 48)? {
        return Err("snapshot body checksum mismatch".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        assert!(is_snapshot_name(&snapshot_name(0x1f)));
        assert!(!is_snapshot_name("snap-0000000000000001.tmp"));
        assert!(!is_snapshot_name("snap-1.dat"));
    }

    #[test]
    fn the_format_example_transaction_has_the_documented_size() {
        // FORMAT.md §7: a put of k1=v1 is 40 bytes, a commit record 48.
        assert_eq!(put_value_len_for("k1", 40 + 48), Some(2));
        assert_eq!(put_value_len_for("k1", 50), None);
    }

    #[test]
    fn garbage_is_not_a_manifest_or_a_snapshot() {
        assert!(manifest_snapshot_ids(&[0u8; 40]).is_err());
        assert!(check_snapshot(b"WSTORSNP").is_err());
    }
}
