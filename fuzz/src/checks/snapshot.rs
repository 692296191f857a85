//! The `snapshot` target: snapshot files, decoded from raw bytes.

use super::common::{bounded, crc32, le_u32, le_u64};
use walstore::{inspect, Error, MAX_KEY_BYTES};

/// A snapshot entry: key and value (`None`: a tombstone); a range deletion: start and end.
type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Encodes a snapshot file of format `version` (2: one CRC over the body; 3: a CRC per 4 KiB
/// page, FORMAT.md §5.4; 4: version 3 with an entry's lengths as varints, FORMAT.md §5.5) as
/// FORMAT.md §5 describes it (independently of the engine).
pub fn encode_snapshot(
    version: u32,
    id: u64,
    entries: &[Entry],
    deletes: &[Entry],
    shared: usize,
) -> Vec<u8> {
    const HEADER: usize = 96;
    let mut body = Vec::new();
    let mut offsets = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        offsets.push(HEADER + body.len());
        if version >= 4 {
            leb128(key.len(), &mut body);
            leb128(value.as_ref().map_or(0, |v| v.len() + 1), &mut body);
        } else {
            body.extend_from_slice(&(key.len() as u32).to_le_bytes());
            let len = value.as_ref().map_or(u32::MAX, |v| v.len() as u32);
            body.extend_from_slice(&len.to_le_bytes());
        }
        body.extend_from_slice(key);
        body.extend_from_slice(value.as_deref().unwrap_or(&[]));
    }
    let index_offset = HEADER + body.len();
    for ((key, _), offset) in entries.iter().zip(offsets) {
        let mut prefix = [0u8; 8];
        let rest = key.get(shared..).unwrap_or(&[]);
        let n = rest.len().min(8);
        prefix[..n].copy_from_slice(&rest[..n]);
        body.extend_from_slice(&prefix);
        body.extend_from_slice(&(offset as u32).to_le_bytes());
    }
    let filter_offset = HEADER + body.len();
    let probes: u32 = if entries.is_empty() { 0 } else { 7 };
    if !entries.is_empty() {
        let bytes = (entries.len() * 10).div_ceil(8).max(8);
        let bits = bytes as u64 * 8;
        let mut filter = vec![0u8; bytes];
        for (key, _) in entries {
            let h = xxhash_rust::xxh3::xxh3_64(key);
            let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
            for j in 0..u64::from(probes) {
                let bit = a.wrapping_add(j.wrapping_mul(b)) % bits;
                filter[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        body.extend_from_slice(&filter);
    }
    let deletes_offset = HEADER + body.len();
    for (start, end) in deletes {
        let end = end.as_deref().unwrap_or(&[]);
        body.extend_from_slice(&(start.len() as u32).to_le_bytes());
        body.extend_from_slice(&(end.len() as u32).to_le_bytes());
        body.extend_from_slice(start);
        body.extend_from_slice(end);
    }
    let table_offset = HEADER + body.len();
    let table: Vec<u8> = body
        .chunks(4096)
        .flat_map(|p| crc32(p).to_le_bytes())
        .collect();
    let paged = version >= 3;
    let (file_len, table_crc) = if paged {
        (table_offset + table.len(), crc32(&table))
    } else {
        (table_offset, crc32(&body))
    };
    let mut out = Vec::with_capacity(file_len);
    out.extend_from_slice(b"WSTORSNP");
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    for v in [
        entries.len(),
        index_offset,
        filter_offset,
        deletes_offset,
        file_len,
    ] {
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }
    out.extend_from_slice(&table_crc.to_le_bytes());
    out.extend_from_slice(&(shared as u32).to_le_bytes());
    out.extend_from_slice(&probes.to_le_bytes());
    out.extend_from_slice(&(deletes.len() as u32).to_le_bytes());
    let reserved = if paged { table_offset as u64 } else { 0 };
    out.extend_from_slice(&reserved.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    let header_crc = crc32(&out[..92]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&body);
    if paged {
        out.extend_from_slice(&table);
    }
    out
}

/// Appends `n` as unsigned LEB128: 7 bits a byte, low bits first, the high bit on all but the
/// last byte.
fn leb128(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `snapshot` target: the input is a snapshot file, decoded under the id its header names.
///
/// - Ok or `Corruption` (with an offset inside the file) or `UnsupportedFormat`, nothing else;
/// - an accepted file has at least one entry or range deletion, keys in range and strictly
///   increasing, every key starting with the shared prefix, range deletions non-empty, sorted
///   and disjoint, and is exactly the canonical encoding of what it holds (so no byte of it
///   escapes validation); the same bytes under another id are refused;
/// - decoding allocates at most a small multiple of the input.
pub fn check(data: &[u8]) {
    let id = le_u64(data, 16).unwrap_or(0);
    let decoded = bounded("decode_snapshot", data.len(), 8, 1 << 16, || {
        inspect::decode_snapshot(id, data)
    });
    match decoded {
        Ok((entries, deletes)) => {
            assert!(
                !entries.is_empty() || !deletes.is_empty(),
                "a snapshot file holding nothing"
            );
            for (start, end) in &deletes {
                assert!(!start.is_empty() && start.len() <= MAX_KEY_BYTES);
                assert!(
                    end.as_ref().is_none_or(|e| e > start),
                    "an empty range deletion"
                );
            }
            for pair in deletes.windows(2) {
                let reach = pair[0]
                    .1
                    .as_ref()
                    .expect("only the last deletion is unbounded");
                assert!(reach <= &pair[1].0, "range deletions overlap");
            }
            for pair in entries.windows(2) {
                assert!(pair[0].0 < pair[1].0, "keys not strictly increasing");
            }
            let shared = le_u32(data, 68).expect("an accepted file has a header") as usize;
            for (key, _) in &entries {
                assert!(
                    !key.is_empty() && key.len() <= MAX_KEY_BYTES,
                    "key length {}",
                    key.len()
                );
                assert!(
                    key.len() >= shared && key[..shared] == entries[0].0[..shared],
                    "a key does not start with the shared prefix"
                );
            }
            let version = le_u32(data, 8).expect("an accepted file has a header");
            assert!(
                encode_snapshot(version, id, &entries, &deletes, shared) == data,
                "an accepted snapshot file is not the canonical encoding of what it holds"
            );
            let other = inspect::decode_snapshot(id ^ 1, data);
            assert!(
                matches!(other, Err(Error::Corruption { .. })),
                "a snapshot file was accepted under another id: {other:?}"
            );
        }
        Err(Error::Corruption { offset, .. }) => assert!(
            offset <= data.len() as u64,
            "corruption reported at offset {offset}, past the {} bytes of the file",
            data.len()
        ),
        Err(Error::UnsupportedFormat { found, .. }) => assert!(
            !(2..=4).contains(&found),
            "a readable version {found} refused as unsupported"
        ),
        Err(other) => panic!("snapshot decoding failed with an unexpected error: {other:?}"),
    }
}
