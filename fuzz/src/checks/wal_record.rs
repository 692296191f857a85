//! The `wal_record` target: WAL header blocks and records, decoded from raw bytes.

use super::common::{bounded, le_u32, le_u64};
use walstore::{inspect, Error, MAX_KEY_BYTES};

/// `wal_record` target: the input is a WAL header block, one record, a run of records, or a
/// whole WAL file.
///
/// - the header decoder accepts only canonical headers (re-encoding gives the same 44 bytes);
/// - every decoded record is consistent with its bytes and re-encodes to exactly them (puts
///   and deletes), is refused when cut by one byte or when one bit of it is flipped;
/// - decoding allocates at most a small multiple of the input.
pub fn check(data: &[u8]) {
    let header = bounded("decode_wal_header", data.len(), 2, 4096, || {
        inspect::decode_wal_header(data)
    });
    match header {
        Ok((generation, salt, base_txn)) => {
            assert!(
                data.len() >= 44,
                "a header was decoded from {} bytes",
                data.len()
            );
            let encoded = inspect::encode_wal_header(generation, salt, base_txn);
            assert_eq!(
                &encoded[..44],
                &data[..44],
                "an accepted WAL header is not the canonical encoding of what it says"
            );
            let mut flipped = data[..44].to_vec();
            flipped[(salt as usize) % 44] ^= 0x10;
            assert!(
                inspect::decode_wal_header(&flipped).is_err(),
                "a WAL header with a flipped bit was accepted"
            );
        }
        Err(e) => assert!(
            matches!(
                e,
                Error::Corruption { .. } | Error::UnsupportedFormat { .. }
            ) && !e.to_string().is_empty(),
            "a refused WAL header is not a typed format error with a message: {e:?}"
        ),
    }
    walk_records(data, 0);
    if data.len() > 4096 {
        walk_records(data, 4096);
    }
}

fn walk_records(data: &[u8], start: usize) {
    let mut pos = start;
    let mut count = 0;
    while pos < data.len() && count < 4096 {
        let rest = &data[pos..];
        let decoded = bounded("decode_wal_record", rest.len(), 2, 4096, || {
            inspect::decode_wal_record(rest)
        });
        match decoded {
            Ok(info) => {
                check_record(rest, &info);
                pos += info.len as usize;
                count += 1;
            }
            Err(e) => {
                assert!(
                    e.is_corruption() && !e.to_string().is_empty(),
                    "a refused WAL record is not a corruption error with a message: {e:?}"
                );
                break;
            }
        }
    }
}

fn check_record(bytes: &[u8], info: &inspect::RecordInfo) {
    let len = info.len as usize;
    assert!(
        (32..=bytes.len()).contains(&len),
        "record length {len} outside 32..={}",
        bytes.len()
    );
    assert_eq!(info.offset, 0);
    assert!(!info.committed, "a lone record cannot be known committed");
    assert_eq!(le_u64(bytes, 24), Some(info.txn_id), "transaction id field");
    let salt = le_u64(bytes, 16).unwrap_or(0);
    match info.kind {
        "put" | "delete" => {
            let key = info.key.as_deref().expect("puts and deletes carry a key");
            assert!(
                !key.is_empty() && key.len() <= MAX_KEY_BYTES,
                "key length {}",
                key.len()
            );
            assert_eq!(info.synced_through, None);
            let value = if info.kind == "put" {
                let value_len = info.value_len.expect("a put has a value") as usize;
                assert_eq!(len, 36 + key.len() + value_len, "put length");
                assert_eq!(le_u32(bytes, 32), Some(key.len() as u32), "put key length");
                assert_eq!(&bytes[36..36 + key.len()], key, "put key bytes");
                Some(&bytes[36 + key.len()..len])
            } else {
                assert_eq!(info.value_len, None);
                assert_eq!(len, 32 + key.len(), "delete length");
                assert_eq!(&bytes[32..len], key, "delete key bytes");
                None
            };
            let encoded = inspect::encode_transaction(salt, info.txn_id, &[(key, value)], 0);
            assert_eq!(
                &encoded[..len],
                &bytes[..len],
                "an accepted record is not the canonical encoding of what it says"
            );
        }
        "commit" | "clean" => {
            assert_eq!(len, 48, "commit record length");
            assert_eq!(
                info.kind == "clean",
                le_u32(bytes, 32) == Some(0),
                "a commit record is a clean marker exactly when its record count is 0"
            );
            assert_eq!(info.key, None);
            assert_eq!(info.value_len, None);
            assert_eq!(info.synced_through, le_u64(bytes, 40), "watermark field");
        }
        other => panic!("unknown record kind {other:?} reported"),
    }
    assert!(
        inspect::decode_wal_record(&bytes[..len - 1]).is_err(),
        "a record cut by one byte still decodes"
    );
    for at in [0, 4, 8, 16, 24, len / 2, len - 1] {
        let mut flipped = bytes[..len].to_vec();
        flipped[at] ^= 1 << (at % 8);
        assert!(
            inspect::decode_wal_record(&flipped).is_err(),
            "a record with bit {} of byte {at} flipped still decodes",
            at % 8
        );
    }
}
