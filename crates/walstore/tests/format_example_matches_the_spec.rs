//! The example files of docs/FORMAT.md §7 are exactly what the engine writes and reads.

use std::path::Path;
use std::sync::Arc;
use walstore::inspect;
use walstore::storage::{MemoryStorage, Storage};

/// Parses the fenced block tagged `hex NAME` of FORMAT.md into a file image (unlisted bytes are
/// zero).
fn example(name: &str) -> Vec<u8> {
    let doc = include_str!("../../../docs/FORMAT.md");
    let start = doc
        .find(&format!("```hex {name}\n"))
        .expect("example block in FORMAT.md");
    let body = &doc[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect::<Vec<_>>();
    let mut image = Vec::new();
    for line in body {
        let (offset, bytes) = line.split_once("  ").expect("offset and bytes");
        let offset = usize::from_str_radix(offset, 16).expect("hex offset");
        let bytes: Vec<u8> = bytes
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        if image.len() < offset + bytes.len() {
            image.resize(offset + bytes.len(), 0);
        }
        image[offset..offset + bytes.len()].copy_from_slice(&bytes);
    }
    image
}

const SALT: u64 = 0x1122_3344_5566_7788;

#[test]
fn the_example_wal_is_byte_for_byte_what_the_encoder_writes() {
    let wal = example("wal-example");
    let mut expected = inspect::encode_wal_header(0, SALT, 0);
    expected.extend(inspect::encode_transaction(
        SALT,
        1,
        &[(b"k1", Some(b"v1")), (b"k0", None)],
        4096,
    ));
    assert_eq!(wal, expected);
}

#[test]
fn the_example_records_decode_as_the_spec_describes() {
    let wal = example("wal-example");
    assert_eq!(
        inspect::decode_wal_header(&wal).expect("header"),
        (0, SALT, 0)
    );
    assert_eq!(inspect::wal_header_version(&wal).expect("version"), 3);
    let batch = inspect::decode_wal_record(&wal[0x1000..]).expect("batch");
    assert_eq!((batch.kind, batch.txn_id, batch.len), ("batch", 1, 43));
    let ops: Vec<_> = batch
        .ops
        .iter()
        .map(|o| (o.kind, o.offset, o.len, o.key.as_deref(), o.value_len))
        .collect();
    assert_eq!(
        ops,
        [
            ("put", 0x20, 7, Some(&b"k1"[..]), Some(2)),
            ("delete", 0x27, 4, Some(&b"k0"[..]), None)
        ]
    );
    let commit = inspect::decode_wal_record(&wal[0x102b..]).expect("commit");
    assert_eq!(
        (commit.kind, commit.synced_through, commit.len),
        ("commit", Some(4096), 48)
    );
    assert_eq!(wal.len(), 0x105b);
}

#[test]
fn the_version_2_example_is_what_builds_before_batches_wrote_and_still_decodes() {
    let wal = example("wal-example-records");
    let mut expected = inspect::encode_wal_header_version(2, 0, SALT, 0);
    expected.extend(inspect::encode_transaction_records(
        SALT,
        1,
        &[(b"k1", Some(b"v1")), (b"k0", None)],
        4096,
    ));
    assert_eq!(wal, expected);
    assert_eq!(inspect::wal_header_version(&wal).expect("version"), 2);
    let put = inspect::decode_wal_record(&wal[0x1000..]).expect("put");
    assert_eq!((put.kind, put.txn_id, put.len), ("put", 1, 40));
    assert_eq!(put.key.as_deref(), Some(&b"k1"[..]));
    let delete = inspect::decode_wal_record(&wal[0x1028..]).expect("delete");
    assert_eq!(
        (delete.kind, delete.key.as_deref()),
        ("delete", Some(&b"k0"[..]))
    );
    let commit = inspect::decode_wal_record(&wal[0x104a..]).expect("commit");
    assert_eq!(
        (commit.kind, commit.synced_through, commit.len),
        ("commit", Some(4096), 48)
    );
    assert_eq!(wal.len(), 0x107a);
}

#[test]
fn the_example_manifest_decodes_and_the_store_opens() {
    let manifest = example("manifest-example");
    let info = inspect::decode_manifest(&manifest).expect("manifest");
    assert_eq!(
        (info.generation, info.salt, info.base_txn, info.runs.len()),
        (0, SALT, 0, 0)
    );
    let mem = MemoryStorage::new();
    mem.create_dir_all(Path::new("/db")).expect("mkdir");
    mem.write_file_durable(Path::new("/db/MANIFEST"), &manifest);
    mem.write_file_durable(Path::new("/db/wal"), &example("wal-example"));
    let store = walstore::Options::new()
        .storage(Arc::new(mem))
        .auto_checkpoint(false)
        .open("/db")
        .expect("the example store opens");
    let r = store.begin_read().expect("read");
    assert_eq!(r.get(b"k1").expect("get").as_deref(), Some(&b"v1"[..]));
    assert_eq!(r.get(b"k0").expect("get"), None);
    assert_eq!(r.txn_id(), 1);
}

#[test]
fn the_example_snapshot_file_is_what_a_checkpoint_writes_and_decodes_as_described() {
    let example = example("snapshot-example");
    let (entries, deletes) = inspect::decode_snapshot(3, &example).expect("a valid file");
    assert_eq!(
        entries,
        vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]
    );
    assert_eq!(deletes, vec![(b"c".to_vec(), Some(b"d".to_vec()))]);
    let mem = MemoryStorage::new();
    let store = walstore::Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
        .open("/db")
        .expect("open");
    store.update(|tx| tx.put(b"a", b"0")).expect("first run");
    store.checkpoint().expect("checkpoint");
    store
        .update(|tx| {
            tx.delete_range(b"c".to_vec()..b"d".to_vec())?;
            tx.put(b"a", b"1")?;
            tx.delete(b"b")
        })
        .expect("second run");
    store.checkpoint().expect("checkpoint");
    let written = mem
        .read_file(Path::new("/db/snap-0000000000000003.dat"))
        .expect("the second run's file");
    assert_eq!(written, example);
}
