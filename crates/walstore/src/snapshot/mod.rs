//! Snapshot files: immutable, checksummed, sorted runs of key/value entries, read through a
//! memory map (FORMAT.md §5).
//!
//! A run's key space is split into contiguous ranges, one snapshot file each. A file's header,
//! page table and range deletions are checked when it is mapped; every other page of a
//! version 3 file is checked by its first read (a CRC per 4 KiB page, FORMAT.md §5.4), so an
//! open costs O(1) of the file and a damaged page is never returned as data. A version 2
//! file (one CRC over the body) is validated completely when it is mapped. Every offset read
//! from a file is bounds-checked before use.
//!
//! Invariant: a snapshot file is never written after it is renamed to its final name, by any
//! process; replaced files are only unlinked. That is what makes the memory map sound.
//!
//! Rooms, one file each: `layout` (offsets, sizes, the key prefix, range deletions and their
//! block), `header` (the header's checks), `filter` (the bloom filter), `segment` (an open,
//! validated file) and `writer` (a new file, streamed).

mod fences;
mod filter;
mod header;
mod layout;
mod segment;
mod writer;

pub use filter::KeyHash;
pub use layout::{key_prefix, RangeDelete, SegmentMeta};
pub use segment::Segment;
pub use writer::SegmentWriter;

#[cfg(test)]
mod tests {
    use super::layout::{
        FILTER_OFFSET_AT, FILTER_PROBES_AT, HEADER_CRC_AT, ID_AT, PAGE_TABLE_AT, RESERVED_AT,
        SHARED_PREFIX_AT,
    };
    use super::*;
    use crate::format::{seal_header, PREAMBLE_ALGORITHM_AT};
    use crate::storage::MemoryStorage;
    use crate::storage::Storage;
    use crate::Error;
    use std::path::Path;

    /// The path of the file `write_segment` writes.
    fn segment_path() -> std::path::PathBuf {
        Path::new("/s").join(crate::format::snapshot_name(1))
    }

    fn write_segment(fs: &MemoryStorage, entries: &[(&[u8], &[u8])]) -> SegmentMeta {
        fs.create_dir_all(Path::new("/s")).expect("mkdir");
        let mut w = SegmentWriter::create(fs, segment_path(), 1).expect("create");
        for (k, v) in entries {
            w.add(k, Some(v)).expect("add");
        }
        w.finish(true).expect("finish")
    }

    /// [`write_segment`], then the file's path and bytes.
    fn written(
        fs: &MemoryStorage,
        entries: &[(&[u8], &[u8])],
    ) -> (SegmentMeta, std::path::PathBuf, Vec<u8>) {
        let meta = write_segment(fs, entries);
        let path = segment_path();
        let bytes = fs.read_file(&path).expect("file");
        (meta, path, bytes)
    }

    #[test]
    fn written_segment_reads_back_and_searches() {
        let fs = MemoryStorage::new();
        let meta = write_segment(&fs, &[(b"a", b"1"), (b"c", b"3"), (b"e", b"")]);
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        assert_eq!(seg.len(), 3);
        assert_eq!(seg.get(b"c").expect("get"), Some(Some(&b"3"[..])));
        assert_eq!(seg.get(b"e").expect("get"), Some(Some(&b""[..])));
        assert_eq!(seg.get(b"d").expect("get"), None);
        assert_eq!(seg.get(b"f").expect("get"), None);
        assert_eq!(seg.lower_bound(b"b", false).expect("lb"), 1);
        assert_eq!(seg.lower_bound(b"c", true).expect("lb"), 2);
        assert_eq!(seg.entry(2).expect("entry"), (&b"e"[..], Some(&b""[..])));
        let may = |k: &[u8]| seg.may_contain_hashed(KeyHash::of(k)).expect("filter");
        assert!(may(b"a") && may(b"c") && may(b"e"));
    }

    /// Each damaged header field is reported at its own offset (FORMAT.md §5), also when the
    /// header CRC was recomputed over the damage: non-zero reserved bytes 56..60 were
    /// reported at 52, the shared prefix length's offset.
    #[test]
    fn damaged_header_fields_are_reported_at_their_offsets() {
        let fs = MemoryStorage::new();
        let (meta, path, good) = written(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let cases: [(usize, u8, u64); 5] = [
            (RESERVED_AT + 3, 1, RESERVED_AT as u64),
            (SHARED_PREFIX_AT + 2, 1, SHARED_PREFIX_AT as u64),
            (FILTER_PROBES_AT, 0, FILTER_OFFSET_AT as u64),
            (PREAMBLE_ALGORITHM_AT, 2, 12),
            (ID_AT, 7, 16),
        ];
        for (at, value, reported) in cases {
            let mut bad = good.clone();
            bad[at] = value;
            seal_header(&mut bad, HEADER_CRC_AT);
            fs.write_file_durable(&path, &bad);
            match Segment::open(&fs, Path::new("/s"), &meta) {
                Err(Error::Corruption { offset, detail, .. }) => {
                    assert_eq!(offset, reported, "byte {at} = {value}: {detail}")
                }
                other => panic!("byte {at} = {value}: {other:?}"),
            }
        }
    }

    /// Version 3 (FORMAT.md §5.4): an open reads O(1) of the file, so damage to a page it did
    /// not read is found by the first read of that page, never returned as data, and by
    /// `verify` at once.
    #[test]
    fn damage_in_a_page_is_reported_by_its_first_read() {
        let fs = MemoryStorage::new();
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..2000u32)
            .map(|i| (format!("key{i:06}").into_bytes(), vec![b'v'; 40]))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = keys.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let (meta, path, good) = written(&fs, &refs);
        // A byte of the value of entry 1000 (its page is neither the first nor the index's).
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        let (_, value) = seg.entry(1000).expect("entry");
        let at = value.expect("a value").as_ptr() as usize - seg.bytes().as_ptr() as usize;
        drop(seg);
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs.write_file_durable(&path, &bad);
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open reads O(1) of the file");
        assert_eq!(
            seg.get(b"key000001").expect("another page"),
            Some(Some(&[b'v'; 40][..]))
        );
        let err = seg.get(b"key001000").expect_err("the damaged page");
        assert!(err.is_corruption(), "{err}");
        let err = seg.entry(1000).expect_err("the damaged page, again");
        assert!(err.is_corruption(), "{err}");
        let fresh = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        assert!(fresh.verify().expect_err("verify").is_corruption());
        fs.write_file_durable(&path, &good);
        let fresh = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        let pages = (good.len() - 96).div_ceil(4096 + 4);
        assert!(
            fresh.unchecked_pages() + 4 >= pages,
            "an open checks a few pages: {} of {pages} left",
            fresh.unchecked_pages()
        );
        fresh.verify().expect("an intact file verifies");
        assert_eq!(fresh.unchecked_pages(), 0, "verify checks every page once");
        assert_eq!(
            fresh.get(b"key001000").expect("get"),
            Some(Some(&[b'v'; 40][..]))
        );
    }

    /// A version 2 file (written before version 3: one CRC over the body, checked with
    /// everything else at open) is still read; a version this build does not know is
    /// `UnsupportedFormat` naming version 3 as the one it writes.
    #[test]
    fn version_2_files_are_read_and_later_versions_refused() {
        let fs = MemoryStorage::new();
        let (meta, path, v3) = written(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let table = usize::try_from(u64::from_le_bytes(
            v3[PAGE_TABLE_AT..PAGE_TABLE_AT + 8]
                .try_into()
                .expect("8 bytes"),
        ))
        .expect("offset");
        let mut v2 = v3[..table].to_vec();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        let len = v2.len() as u64;
        v2[56..64].copy_from_slice(&len.to_le_bytes());
        let body_crc = crate::format::crc32(&v2[96..]);
        v2[64..68].copy_from_slice(&body_crc.to_le_bytes());
        v2[RESERVED_AT..HEADER_CRC_AT].fill(0);
        seal_header(&mut v2[..96], HEADER_CRC_AT);
        fs.write_file_durable(&path, &v2);
        let meta2 = SegmentMeta {
            file_len: len,
            ..meta.clone()
        };
        let seg = Segment::open(&fs, Path::new("/s"), &meta2).expect("a version 2 file opens");
        assert_eq!(seg.get(b"k2").expect("get"), Some(Some(&b"v2"[..])));
        seg.verify().expect("verify");
        let mut bad = v2.clone();
        bad[100] ^= 1;
        fs.write_file_durable(&path, &bad);
        let err = Segment::open(&fs, Path::new("/s"), &meta2).expect_err("checked at open");
        assert!(err.is_corruption(), "{err}");
        let mut future = v3.clone();
        future[8..12].copy_from_slice(&4u32.to_le_bytes());
        fs.write_file_durable(&path, &future);
        match Segment::open(&fs, Path::new("/s"), &meta) {
            Err(Error::UnsupportedFormat {
                found: 4,
                supported: 3,
                ..
            }) => {}
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
    }

    #[test]
    fn any_flipped_byte_is_corruption() {
        let fs = MemoryStorage::new();
        let (meta, path, good) = written(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs.write_file_durable(&path, &bad);
            let err = Segment::open(&fs, Path::new("/s"), &meta)
                .and_then(|seg| seg.verify())
                .expect_err("must fail");
            assert!(
                err.is_corruption() || matches!(err, Error::UnsupportedFormat { .. }),
                "byte {i}: {err}"
            );
        }
    }
}
