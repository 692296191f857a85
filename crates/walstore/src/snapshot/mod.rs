//! Snapshot files: immutable, checksummed, sorted runs of key/value entries, read through a
//! memory map (FORMAT.md §5).
//!
//! The key space is split into contiguous ranges, one snapshot file each; a checkpoint
//! rewrites only the files whose range holds a change. A file is validated completely when it
//! is mapped (header, whole-file CRC, every entry's bounds, strictly increasing keys), so that
//! lookups afterwards only index into proven bounds.
//!
//! Invariant: a snapshot file is never written after it is renamed to its final name, by any
//! process; replaced files are only unlinked. That is what makes the memory map sound.
//!
//! Rooms, one file each: `layout` (offsets, sizes, the key prefix, range deletions and their
//! block), `header` (the header's checks), `filter` (the bloom filter), `segment` (an open,
//! validated file) and `writer` (a new file, streamed).

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
        FILTER_OFFSET_AT, FILTER_PROBES_AT, HEADER_CRC_AT, ID_AT, RESERVED_AT, SHARED_PREFIX_AT,
    };
    use super::*;
    use crate::format::{seal_header, PREAMBLE_ALGORITHM_AT};
    use crate::storage::MemoryStorage;
    use crate::storage::Storage;
    use crate::Error;
    use std::path::Path;

    fn write_segment(fs: &MemoryStorage, entries: &[(&[u8], &[u8])]) -> SegmentMeta {
        fs.create_dir_all(Path::new("/s")).expect("mkdir");
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let mut w = SegmentWriter::create(fs, path, 1).expect("create");
        for (k, v) in entries {
            w.add(k, Some(v)).expect("add");
        }
        w.finish(true).expect("finish")
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
        let may = |k: &[u8]| seg.may_contain_hashed(KeyHash::of(k));
        assert!(may(b"a") && may(b"c") && may(b"e"));
    }

    /// Each damaged header field is reported at its own offset (FORMAT.md §5), also when the
    /// header CRC was recomputed over the damage: non-zero reserved bytes 56..60 were
    /// reported at 52, the shared prefix length's offset.
    #[test]
    fn damaged_header_fields_are_reported_at_their_offsets() {
        let fs = MemoryStorage::new();
        let meta = write_segment(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let good = fs.read_file(&path).expect("file");
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

    #[test]
    fn any_flipped_byte_is_corruption() {
        let fs = MemoryStorage::new();
        let meta = write_segment(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let good = fs.read_file(&path).expect("file");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs.write_file_durable(&path, &bad);
            let err = Segment::open(&fs, Path::new("/s"), &meta).expect_err("must fail");
            assert!(
                err.is_corruption() || matches!(err, Error::UnsupportedFormat { .. }),
                "byte {i}: {err}"
            );
        }
    }
}
