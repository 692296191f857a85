//! The `snapshot` target: snapshot files, decoded from raw bytes.

use super::common::{bounded, crc32, le_u32, le_u64};
use walstore::{inspect, Error, MAX_KEY_BYTES};

/// Encodes a snapshot file as FORMAT.md §5 describes it (independently of the engine).
pub fn encode_snapshot(id: u64, entries: &[(Vec<u8>, Vec<u8>)], shared: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut offsets = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        offsets.push(64 + body.len());
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        body.extend_from_slice(key);
        body.extend_from_slice(value);
    }
    let index_offset = 64 + body.len();
    for ((key, _), offset) in entries.iter().zip(offsets) {
        let mut prefix = [0u8; 8];
        let rest = key.get(shared..).unwrap_or(&[]);
        let n = rest.len().min(8);
        prefix[..n].copy_from_slice(&rest[..n]);
        body.extend_from_slice(&prefix);
        body.extend_from_slice(&(offset as u32).to_le_bytes());
    }
    let file_len = 64 + body.len();
    let mut out = Vec::with_capacity(file_len);
    out.extend_from_slice(b"WSTORSNP");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&(index_offset as u64).to_le_bytes());
    out.extend_from_slice(&(file_len as u64).to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&(shared as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let header_crc = crc32(&out[..60]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// `snapshot` target: the input is a snapshot file, decoded under the id its header names.
///
/// - Ok or `Corruption` (with an offset inside the file) or `UnsupportedFormat`, nothing else;
/// - an accepted file has at least one entry, keys in range and strictly increasing, every
///   key starting with the shared prefix, and is exactly the canonical encoding of its entries
///   (so no byte of it escapes validation); the same bytes under another id are refused;
/// - decoding allocates at most a small multiple of the input.
pub fn check(data: &[u8]) {
    let id = le_u64(data, 16).unwrap_or(0);
    let decoded = bounded("decode_snapshot", data.len(), 8, 1 << 16, || {
        inspect::decode_snapshot(id, data)
    });
    match decoded {
        Ok(entries) => {
            assert!(!entries.is_empty(), "a snapshot file without entries");
            for pair in entries.windows(2) {
                assert!(pair[0].0 < pair[1].0, "keys not strictly increasing");
            }
            let shared = le_u32(data, 52).expect("an accepted file has a header") as usize;
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
            assert!(
                encode_snapshot(id, &entries, shared) == data,
                "an accepted snapshot file is not the canonical encoding of its entries"
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
        Err(Error::UnsupportedFormat { found, .. }) => assert_ne!(found, 1),
        Err(other) => panic!("snapshot decoding failed with an unexpected error: {other:?}"),
    }
}
