//! The `wal_record` target: WAL header blocks and records, decoded from raw bytes.

use super::common::{bounded, le_u32, le_u64};
use walstore::{inspect, Error, MAX_KEY_BYTES};

/// `wal_record` target: the input is a WAL header block, one record, a run of records, or a
/// whole WAL file.
///
/// - the header decoder accepts only canonical headers (re-encoding gives the same 44 bytes);
/// - every decoded record is consistent with its bytes and re-encodes to exactly them (puts,
///   deletes, and batches whose range deletions come first), is refused when cut by one byte
///   or when one bit of it is flipped;
/// - a batch's writes tile its payload, each spelled with the shortest varints;
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
            let version =
                inspect::wal_header_version(data).expect("a decoded header has a version");
            let encoded = inspect::encode_wal_header_version(version, generation, salt, base_txn);
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
        // A batch lists each write (a `RecordInfo` of 152 bytes, and its key), and a write
        // takes as few as 3 bytes of it: at most about 51 times the input.
        let decoded = bounded("decode_wal_record", rest.len(), 64, 4096, || {
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
            let encoded =
                inspect::encode_transaction_records(salt, info.txn_id, &[(key, value)], 0);
            assert_eq!(
                &encoded[..len],
                &bytes[..len],
                "an accepted record is not the canonical encoding of what it says"
            );
        }
        "batch" => check_batch(bytes, info, salt),
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

/// Bytes of the shortest LEB128 varint of `n`.
fn varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut n = n >> 7;
    while n > 0 {
        len += 1;
        n >>= 7;
    }
    len
}

/// A batch record (FORMAT.md §4.2): its writes tile the payload, each at its canonical length,
/// their keys are the bytes they name, and a batch whose range deletions come first (the order
/// the encoder writes) re-encodes to exactly its bytes.
fn check_batch(bytes: &[u8], info: &inspect::RecordInfo, salt: u64) {
    let len = info.len as usize;
    assert!(!info.ops.is_empty(), "a batch without writes was accepted");
    assert_eq!(
        (info.key.as_ref(), info.value_len, info.synced_through),
        (None, None, None)
    );
    let mut at = 32u64;
    let mut deletes: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    let mut writes: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    let mut deletes_first = true;
    for op in &info.ops {
        assert_eq!(op.offset, at, "batch writes do not tile the payload");
        let start = op.offset as usize;
        let end = start + op.len as usize;
        assert!(end <= len, "a batch write runs past its record");
        let key = op.key.as_deref().expect("every batch write has a key");
        assert!(
            !key.is_empty() && key.len() <= MAX_KEY_BYTES,
            "key length {}",
            key.len()
        );
        let (second, expected_len) = match op.kind {
            "put" => {
                let n = op.value_len.expect("a put has a value") as usize;
                (
                    Some(n),
                    1 + varint_len(key.len()) + varint_len(n) + key.len() + n,
                )
            }
            "delete" => (None, 1 + varint_len(key.len()) + key.len()),
            "delete-range" => {
                let n = op.end.as_ref().map_or(0, Vec::len);
                (
                    Some(n),
                    1 + varint_len(key.len()) + varint_len(n) + key.len() + n,
                )
            }
            other => panic!("batch write of kind {other:?}"),
        };
        assert_eq!(
            op.len as usize, expected_len,
            "a {} not spelled canonically",
            op.kind
        );
        let tail = end - second.unwrap_or(0);
        assert_eq!(&bytes[tail - key.len()..tail], key, "batch key bytes");
        match op.kind {
            "put" => writes.push((key, Some(&bytes[tail..end]))),
            "delete" => writes.push((key, None)),
            _ => {
                deletes_first &= writes.is_empty();
                deletes.push((key, op.end.as_deref()));
            }
        }
        at = end as u64;
    }
    assert_eq!(at as usize, len, "batch writes do not fill the payload");
    if deletes_first && len - 32 <= 256 << 10 {
        let encoded =
            inspect::encode_transaction_with_deletes(salt, info.txn_id, &deletes, &writes, 0);
        assert_eq!(
            &encoded[..len],
            &bytes[..len],
            "an accepted batch is not the canonical encoding of what it says"
        );
    }
}
