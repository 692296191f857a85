//! The little the harness knows about the engine's files: for invariant 9 (structural
//! integrity), which snapshot files the manifest names (FORMAT.md §6) and whether a snapshot
//! file's checksums hold (FORMAT.md §5); for the post-recovery probe, how many log bytes a
//! one-put transaction takes (FORMAT.md §4); for aimed corruption (F13), where the fields of
//! each file's headers and records lie ([`fields_of`]). Everything else is judged by
//! behaviour.
//!
//! It imports nothing of the harness: walstore's implementation of the structural check hook
//! (`engine::WalstoreLayout`) and the workloads and recipes that aim at walstore's bytes
//! build on it.

use crc32fast::hash as crc32;

/// Bytes of a WAL record header (FORMAT.md §4.1).
const RECORD_HEADER_BYTES: u64 = 32;
/// Bytes of a commit record: header and 16-byte payload (FORMAT.md §4.2).
const COMMIT_RECORD_BYTES: u64 = RECORD_HEADER_BYTES + 16;

/// Bytes of the shortest LEB128 varint of `n` (FORMAT.md §4.2).
fn varint_len(n: u64) -> u64 {
    (64 - u64::from((n | 1).leading_zeros())).div_ceil(7)
}

/// The value length that makes a transaction of one put of `key` take exactly `bytes` bytes
/// of the log (a batch record holding the put, then the commit record, FORMAT.md §4), if any
/// does. Some lengths none does: a value length's varint grows by a byte at 128, so no put
/// takes exactly one byte more than a 127-byte value's.
pub fn put_value_len_for(key: &str, bytes: u64) -> Option<usize> {
    let key_len = key.len() as u64;
    let fixed = RECORD_HEADER_BYTES + 1 + varint_len(key_len) + key_len + COMMIT_RECORD_BYTES;
    let rest = bytes.checked_sub(fixed)?;
    (1..=5)
        .filter_map(|width| rest.checked_sub(width))
        .find(|&value| varint_len(value) + value == rest)
        .and_then(|value| usize::try_from(value).ok())
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
    // Format version 2: runs, each a file count, four zero bytes, then its files.
    let runs = u32_at(body, 32)? as usize;
    let mut at = 40;
    let mut ids = Vec::with_capacity(body.len() / 28);
    for _ in 0..runs.min(body.len() / 8) {
        let count = u32_at(body, at)? as usize;
        at += 8;
        for _ in 0..count.min(body.len() / 28) {
            ids.push(u64_at(body, at)?);
            let key_len = u32_at(body, at + 24)? as usize;
            at += 28 + key_len;
        }
    }
    Ok(ids)
}

/// Checks a snapshot file's length and every checksum: the header's, then the body's (format
/// version 2) or the page table's and every page's (versions 3 and 4: a CRC per 4 KiB page of
/// the body, FORMAT.md §5.4; version 4 differs from 3 only inside entries, §5.5).
pub fn check_snapshot(bytes: &[u8]) -> Result<(), String> {
    if bytes.get(..8) != Some(&b"WSTORSNP"[..]) {
        return Err("bad snapshot magic".into());
    }
    // A 96-byte header, its checksum at 92.
    if bytes.len() < 96 || crc32(&bytes[..92]) != u32_at(bytes, 92)? {
        return Err("snapshot header checksum mismatch".into());
    }
    let file_len = u64_at(bytes, 56)?;
    if file_len != bytes.len() as u64 {
        return Err(format!(
            "snapshot is {} bytes, header says {file_len}",
            bytes.len()
        ));
    }
    match u32_at(bytes, 8)? {
        2 => {
            if crc32(&bytes[96..]) != u32_at(bytes, 64)? {
                return Err("snapshot body checksum mismatch".into());
            }
        }
        3 | 4 => {
            let table = usize::try_from(u64_at(bytes, 80)?)
                .ok()
                .filter(|t| (96..=bytes.len()).contains(t))
                .ok_or("snapshot page table offset out of range")?;
            let pages = (table - 96).div_ceil(SNAPSHOT_PAGE);
            if bytes.len() - table != 4 * pages {
                return Err("snapshot page table length differs from the body's pages".into());
            }
            if crc32(&bytes[table..]) != u32_at(bytes, 64)? {
                return Err("snapshot page table checksum mismatch".into());
            }
            for (i, page) in bytes[96..table].chunks(SNAPSHOT_PAGE).enumerate() {
                if crc32(page) != u32_at(bytes, table + 4 * i)? {
                    return Err(format!("snapshot page {i} checksum mismatch"));
                }
            }
        }
        other => return Err(format!("snapshot format version {other}")),
    }
    Ok(())
}

/// Bytes of a snapshot file's body one page CRC covers (format versions 3 and 4).
const SNAPSHOT_PAGE: usize = 4096;

/// One field of a file's format: bytes `start..start + len`, named for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
    /// Which field (`record kind`, `WAL header salt`, ...).
    pub name: &'static str,
}

const WAL_HEADER_FIELDS: [(u64, u64, &str); 7] = [
    (0, 8, "WAL header magic"),
    (8, 4, "WAL header version"),
    (12, 4, "WAL header checksum algorithm"),
    (16, 8, "WAL header generation"),
    (24, 8, "WAL header salt"),
    (32, 8, "WAL header base id"),
    (40, 4, "WAL header checksum"),
];
const RECORD_FIELDS: [(u64, u64, &str); 6] = [
    (0, 4, "record checksum"),
    (4, 4, "record length"),
    (8, 1, "record kind"),
    (9, 7, "record padding"),
    (16, 8, "record salt"),
    (24, 8, "record transaction id"),
];
/// The start of a batch record's first write: its tag and (one-byte) lengths.
const BATCH_FIELDS: [(u64, u64, &str); 2] = [
    (32, 1, "batch first write tag"),
    (33, 2, "batch first write lengths"),
];
const COMMIT_FIELDS: [(u64, u64, &str); 3] = [
    (32, 4, "commit record count"),
    (36, 4, "commit transaction checksum"),
    (40, 8, "commit watermark"),
];
const MANIFEST_FIELDS: [(u64, u64, &str); 11] = [
    (0, 8, "manifest magic"),
    (8, 4, "manifest version"),
    (12, 4, "manifest checksum algorithm"),
    (16, 4, "manifest body length"),
    (20, 4, "manifest body checksum"),
    (24, 4, "manifest header checksum"),
    (32, 8, "manifest generation"),
    (40, 8, "manifest salt"),
    (48, 8, "manifest base id"),
    (56, 8, "manifest next file id"),
    (64, 4, "manifest run count"),
];
const SNAPSHOT_FIELDS: [(u64, u64, &str); 16] = [
    (0, 8, "snapshot magic"),
    (8, 4, "snapshot version"),
    (12, 4, "snapshot checksum algorithm"),
    (16, 8, "snapshot file id"),
    (24, 8, "snapshot entry count"),
    (32, 8, "snapshot index offset"),
    (40, 8, "snapshot filter offset"),
    (48, 8, "snapshot range deletions offset"),
    (56, 8, "snapshot file length"),
    (64, 4, "snapshot body or page table checksum"),
    (68, 4, "snapshot shared prefix"),
    (72, 4, "snapshot filter probes"),
    (76, 4, "snapshot range deletion count"),
    (80, 8, "snapshot page table offset"),
    (92, 4, "snapshot header checksum"),
    (96, 8, "snapshot first entry lengths"),
];

/// The header and record fields of a store file named `name` (FORMAT.md §3-§6): the WAL
/// header and every record header and commit payload reachable from offset 4096, the
/// manifest's header and body fields, a snapshot file's header. Fields past the end of
/// `bytes` are left out.
pub fn fields_of(name: &str, bytes: &[u8]) -> Vec<Field> {
    let table = |fields: &[(u64, u64, &'static str)], base: u64| -> Vec<Field> {
        fields
            .iter()
            .map(|&(start, len, name)| Field {
                start: base + start,
                len,
                name,
            })
            .collect()
    };
    let mut out = if name == "wal" {
        let mut out = table(&WAL_HEADER_FIELDS, 0);
        out.extend(wal_record_fields(bytes));
        out
    } else if name == MANIFEST {
        table(&MANIFEST_FIELDS, 0)
    } else if is_snapshot_name(name) {
        let mut out = table(&SNAPSHOT_FIELDS, 0);
        let version = u32_at(bytes, 8).ok();
        // Version 4: the first entry's lengths are two varints (FORMAT.md §5.5), not 8 bytes.
        let lengths = out
            .iter_mut()
            .find(|f| f.name == "snapshot first entry lengths");
        if let (Some(4), Some(lengths)) = (version, lengths) {
            lengths.len = varints_len(bytes.get(96..).unwrap_or(&[]), 2).max(1);
        }
        // Versions 3 and 4: the page table's first CRC (FORMAT.md §5.4).
        if let Some(3 | 4) = version {
            if let Ok(at) = u64_at(bytes, 80) {
                out.push(Field {
                    start: at,
                    len: 4,
                    name: "snapshot first page checksum",
                });
            }
        }
        out
    } else {
        Vec::new()
    };
    out.retain(|f| f.start + f.len <= bytes.len() as u64);
    out
}

/// Bytes of the `count` LEB128 varints `bytes` starts with (each ends at a byte below 0x80),
/// at most 5 each; as many as there are if `bytes` ends first.
fn varints_len(bytes: &[u8], count: usize) -> u64 {
    let mut at = 0;
    for _ in 0..count {
        let rest = bytes.get(at..).unwrap_or(&[]);
        let len = rest.iter().take(5).position(|b| b & 0x80 == 0);
        at += len.map_or(rest.len().min(5), |n| n + 1);
    }
    at as u64
}

/// Fields of the records laid end to end from offset 4096, up to zeros or a length that
/// does not fit (stale records of earlier generations included).
fn wal_record_fields(bytes: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    let mut pos = 4096usize;
    while let Some(header) = bytes.get(pos..pos + RECORD_HEADER_BYTES as usize) {
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let Ok(declared) = u32_at(header, 4) else {
            break;
        };
        let end = pos + RECORD_HEADER_BYTES as usize + declared as usize;
        if end > bytes.len() {
            break;
        }
        let base = pos as u64;
        out.extend(RECORD_FIELDS.iter().map(|&(start, len, name)| Field {
            start: base + start,
            len,
            name,
        }));
        if header[8] == 5 && declared >= 3 {
            out.extend(BATCH_FIELDS.iter().map(|&(start, len, name)| Field {
                start: base + start,
                len,
                name,
            }));
        }
        if header[8] == 3 && declared == 16 {
            out.extend(COMMIT_FIELDS.iter().map(|&(start, len, name)| Field {
                start: base + start,
                len,
                name,
            }));
        }
        pos = end;
    }
    out
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
        // FORMAT.md §7: a batch of the put k1=v1 is 39 bytes, a commit record 48.
        assert_eq!(put_value_len_for("k1", 39 + 48), Some(2));
        assert_eq!(put_value_len_for("k1", 50), None);
        // Values of 127 and 128 bytes: their varints take 1 and 2 bytes.
        assert_eq!(put_value_len_for("k1", 37 + 127 + 48), Some(127));
        assert_eq!(put_value_len_for("k1", 37 + 1 + 128 + 48), Some(128));
        assert_eq!(put_value_len_for("k1", 37 + 128 + 48), None);
    }

    #[test]
    fn fields_of_a_log_follow_its_records() {
        // A put record of 8 payload bytes, then a commit record (FORMAT.md §7 sizes).
        let mut wal = vec![0u8; 4096 + 40 + 48 + 100];
        wal[4096 + 4] = 8;
        wal[4096 + 8] = 1;
        wal[4136 + 4] = 16;
        wal[4136 + 8] = 3;
        let fields = fields_of("wal", &wal);
        let named = |n: &str| fields.iter().filter(|f| f.name == n).count();
        assert_eq!(named("record kind"), 2);
        assert_eq!(named("commit watermark"), 1);
        assert_eq!(named("WAL header salt"), 1);
        let watermark = fields.iter().find(|f| f.name == "commit watermark");
        assert_eq!(watermark.map(|f| f.start), Some(4136 + 40));
    }

    /// A version 3 or 4 snapshot file (FORMAT.md §5.4, §5.5) checks out; a flip in any page of
    /// its body, in its page table or in the table's offset does not.
    #[test]
    fn a_paged_snapshot_checks_out_and_every_damaged_page_does_not() {
        for version in [3u32, 4] {
            paged_snapshot_of_version(version);
        }
    }

    fn paged_snapshot_of_version(version: u32) {
        // Version 4's first entry: key length 0x80 0x01 (128), value length + 1 = 3.
        let body: Vec<u8> = [0x80, 0x01, 0x03]
            .into_iter()
            .chain((3..9000u32).map(|i| (i * 7) as u8 & 0x7f))
            .collect();
        let table_at = 96 + body.len();
        let table: Vec<u8> = body
            .chunks(SNAPSHOT_PAGE)
            .flat_map(|p| crc32(p).to_le_bytes())
            .collect();
        let mut file = vec![0u8; 96];
        file[..8].copy_from_slice(b"WSTORSNP");
        file[8..12].copy_from_slice(&version.to_le_bytes());
        let len = (table_at + table.len()) as u64;
        file[56..64].copy_from_slice(&len.to_le_bytes());
        file[64..68].copy_from_slice(&crc32(&table).to_le_bytes());
        file[80..88].copy_from_slice(&(table_at as u64).to_le_bytes());
        let header_crc = crc32(&file[..92]);
        file[92..96].copy_from_slice(&header_crc.to_le_bytes());
        file.extend_from_slice(&body);
        file.extend_from_slice(&table);
        check_snapshot(&file).expect("a valid file");
        for at in [96, 96 + 4096, file.len() - 5, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(check_snapshot(&bad).is_err(), "byte {at}");
        }
        let fields = fields_of("snap-0000000000000001.dat", &file);
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        assert!(names.contains(&"snapshot page table offset"));
        assert!(names.contains(&"snapshot first page checksum"));
        let lengths = fields
            .iter()
            .find(|f| f.name == "snapshot first entry lengths");
        let expected = if version == 4 { 3 } else { 8 };
        assert_eq!(lengths.map(|f| (f.start, f.len)), Some((96, expected)));
    }

    #[test]
    fn garbage_is_not_a_manifest_or_a_snapshot() {
        assert!(manifest_snapshot_ids(&[0u8; 40]).is_err());
        assert!(check_snapshot(b"WSTORSNP").is_err());
    }
}
