//! The `manifest` target: MANIFEST files, decoded from raw bytes.

use super::common::{bounded, crc32, le_u64};
use walstore::{inspect, Error, MAX_KEY_BYTES};

/// Encodes a manifest as FORMAT.md §6 describes it (independently of the engine).
pub fn encode_manifest(info: &inspect::ManifestInfo, next_file_id: u64) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [info.generation, info.salt, info.base_txn, next_file_id] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&(info.runs.len() as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    for run in &info.runs {
        body.extend_from_slice(&(run.len() as u32).to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for (file_id, file_len, entry_count, first_key) in run {
            body.extend_from_slice(&file_id.to_le_bytes());
            body.extend_from_slice(&file_len.to_le_bytes());
            body.extend_from_slice(&entry_count.to_le_bytes());
            body.extend_from_slice(&(first_key.len() as u32).to_le_bytes());
            body.extend_from_slice(first_key);
        }
    }
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(b"WSTORMAN");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    let header_crc = crc32(&out[..24]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// `manifest` target: the input is a MANIFEST file.
///
/// - Ok or `Corruption` (offset inside the file) or `UnsupportedFormat`, nothing else;
/// - an accepted manifest names runs of at least one snapshot file each, with ids below its
///   next id, first keys in range and strictly increasing within a run, and is exactly the
///   canonical encoding of what it says;
/// - decoding allocates at most a small multiple of the input.
pub fn check(data: &[u8]) {
    let decoded = bounded("decode_manifest", data.len(), 8, 1 << 16, || {
        inspect::decode_manifest(data)
    });
    match decoded {
        Ok(info) => {
            let next_file_id = le_u64(data, 32 + 24).expect("an accepted manifest has a body");
            assert_eq!(info.next_file_id, next_file_id);
            for run in &info.runs {
                assert!(!run.is_empty(), "a run without files");
                for (file_id, _, _, first_key) in run {
                    assert!(*file_id < next_file_id, "file id {file_id} >= next id");
                    assert!(!first_key.is_empty() && first_key.len() <= MAX_KEY_BYTES);
                }
                for pair in run.windows(2) {
                    assert!(pair[0].3 < pair[1].3, "segments not in key order");
                }
            }
            assert!(
                encode_manifest(&info, next_file_id) == data,
                "an accepted manifest is not the canonical encoding of what it says"
            );
        }
        Err(Error::Corruption { offset, .. }) => assert!(
            offset <= data.len() as u64,
            "corruption reported at offset {offset}, past the {} bytes of the file",
            data.len()
        ),
        Err(Error::UnsupportedFormat { found, .. }) => assert_ne!(found, 2),
        Err(other) => panic!("manifest decoding failed with an unexpected error: {other:?}"),
    }
}
