//! Snapshot files: immutable, checksummed, sorted runs of key/value entries, read through a
//! memory map (FORMAT.md §5).
//!
//! A run's key space is split into contiguous ranges, one snapshot file each. A file's header
//! and range deletions are checked when it is mapped; every other page of a version 3 or 4
//! file is checked by its first read against its CRC in the page table (a CRC per 4 KiB page,
//! FORMAT.md §5.4), so an open costs O(1) of the file and a damaged page is never returned as
//! data. A version
//! 2 file (one CRC over the body) is validated completely when it is mapped. Every offset
//! read from a file is bounds-checked before use.
//!
//! Invariant: a snapshot file is never written after it is renamed to its final name, by any
//! process; replaced files are only unlinked. That is what makes the memory map sound.
//!
//! Version 4 stores an entry's lengths as varints (FORMAT.md §5.5); `layout` holds the one
//! encoder and decoder of entries of every version.
//!
//! Rooms, one file each: `layout` (offsets, sizes, entries, the key prefix, range deletions
//! and their block), `header` (the header's checks), `filter` (the bloom filter), `segment`
//! (an open, validated file) and `writer` (a new file, streamed).

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

    /// [`written`] of keys `key000000` .. `key001999`, each with 40 bytes of value: a file
    /// of about 25 pages.
    fn two_thousand_keys(fs: &MemoryStorage) -> (SegmentMeta, std::path::PathBuf, Vec<u8>) {
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..2000u32)
            .map(|i| (format!("key{i:06}").into_bytes(), vec![b'v'; 40]))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = keys.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        written(fs, &refs)
    }

    /// The file offset of entry `i`'s value.
    fn value_offset(fs: &MemoryStorage, meta: &SegmentMeta, i: usize) -> usize {
        let seg = Segment::open(fs, Path::new("/s"), meta).expect("open");
        let (_, value) = seg.entry(i).expect("entry");
        value.expect("a value").as_ptr() as usize - seg.bytes().as_ptr() as usize
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
        let (meta, path, good) = two_thousand_keys(&fs);
        // A byte of the value of entry 1000 (its page is neither the first nor the index's).
        let at = value_offset(&fs, &meta, 1000);
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

    /// FORMAT.md §5.4: an open does not read the page table (4 bytes per page of the body,
    /// 1 MiB per GiB of runs, which every one-shot process paid); each page is checked
    /// against its entry when first read. A damaged entry is found by the first read of its
    /// page, as damage to the page is, never returned as data, and by `verify` at once.
    #[test]
    fn damage_in_the_page_table_is_reported_by_the_first_read_of_its_page() {
        let fs = MemoryStorage::new();
        let (meta, path, good) = two_thousand_keys(&fs);
        // The page holding entry 1000's value, and that page's CRC in the table.
        let at = value_offset(&fs, &meta, 1000);
        let page = (at - 96) / 4096;
        let crc_at = 96 + body_len(&good) + 4 * page;
        for flip in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[crc_at + usize::from(flip == 0x80) * 3] ^= flip;
            fs.write_file_durable(&path, &bad);
            let seg =
                Segment::open(&fs, Path::new("/s"), &meta).expect("an open reads no page table");
            assert_eq!(
                seg.get(b"key000001").expect("another page"),
                Some(Some(&[b'v'; 40][..]))
            );
            let err = seg
                .get(b"key001000")
                .expect_err("the page whose CRC is damaged");
            match &err {
                Error::Corruption { offset, .. } => {
                    assert_eq!(*offset, (96 + 4096 * page) as u64, "{err}")
                }
                other => panic!("expected corruption, got {other:?}"),
            }
            let fresh = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
            assert!(fresh.verify().expect_err("verify").is_corruption());
        }
        // A table whose every entry matches its page but whose own CRC in the header differs
        // (a writer's bug, not damage: the header's CRC covers the field) is found by verify.
        let mut bad = good.clone();
        bad[64] ^= 0x01;
        crate::format::seal_header(&mut bad, HEADER_CRC_AT);
        fs.write_file_durable(&path, &bad);
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        assert!(seg.get(b"key001000").expect("get").is_some());
        let err = seg.verify().expect_err("verify");
        assert!(err.to_string().contains("page table checksum"), "{err}");
    }

    /// An open of a file without range deletions checks none of its pages: not the first
    /// entry's and not the index's (the first key is compared with the manifest's by
    /// `verify_against`, which `walstore verify` and a salvage open run), so a one-shot
    /// process faults in and hashes nothing of a run file it does not read.
    #[test]
    fn an_open_checks_no_page_and_verify_compares_the_first_key_with_the_manifest() {
        let fs = MemoryStorage::new();
        let (meta, _, good) = two_thousand_keys(&fs);
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        let pages = (good.len() - 96).div_ceil(4096 + 4);
        assert_eq!(seg.unchecked_pages(), pages, "the open checked a page");
        seg.verify_against(&meta).expect("the manifest's first key");
        assert_eq!(seg.unchecked_pages(), 0, "verify checks every page");
        let mut other = meta.clone();
        other.first_key = b"key000001".as_slice().into();
        let seg = Segment::open(&fs, Path::new("/s"), &other).expect("the open does not read it");
        let err = seg.verify_against(&other).expect_err("another first key");
        assert!(err.to_string().contains("first key differs"), "{err}");
        seg.verify().expect("the file itself is whole");
    }

    /// Writes `entries` (sorted; `None`: a tombstone) at format `version` as file 1 of `fs`,
    /// then its metadata and bytes.
    fn written_at(
        fs: &MemoryStorage,
        version: u32,
        entries: &[(&[u8], Option<&[u8]>)],
    ) -> (SegmentMeta, Vec<u8>) {
        fs.create_dir_all(Path::new("/s")).expect("mkdir");
        let mut w = SegmentWriter::create(fs, segment_path(), 1)
            .expect("create")
            .with_version(version);
        for (k, v) in entries {
            w.add(k, *v).expect("add");
        }
        let meta = w.finish(true).expect("finish");
        (meta, fs.read_file(&segment_path()).expect("file"))
    }

    /// Bytes of a paged file's body: from the header to the page table.
    fn body_len(bytes: &[u8]) -> usize {
        let table = bytes[PAGE_TABLE_AT..PAGE_TABLE_AT + 8].try_into();
        u64::from_le_bytes(table.expect("8 bytes")) as usize - 96
    }

    /// Recomputes the page table, its CRC and the header's CRC of a paged file whose body was
    /// edited in place: the file then fails only on what the edit did to its structure.
    fn reseal(bytes: &mut [u8]) {
        let table = 96 + body_len(bytes);
        let crcs: Vec<u8> = bytes[96..table]
            .chunks(4096)
            .flat_map(|p| crate::format::crc32(p).to_le_bytes())
            .collect();
        bytes[table..].copy_from_slice(&crcs);
        let table_crc = crate::format::crc32(&bytes[table..]);
        bytes[64..68].copy_from_slice(&table_crc.to_le_bytes());
        seal_header(&mut bytes[..96], HEADER_CRC_AT);
    }

    /// Entries of every kind a file holds: values, an empty value, tombstones, keys of 1 and
    /// of MAX_KEY_BYTES bytes, and values on each side of a varint width's edge (value
    /// length + 1 is what is stored): 126 and 127 bytes take 1 and 2 varint bytes, 16382 and
    /// 16383 take 2 and 3, 2^21 - 2 and 2^21 - 1 take 3 and 4.
    fn every_kind_of_entry() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), None),
            (b"c".to_vec(), Some(Vec::new())),
            (
                vec![b'd'; crate::format::MAX_KEY_BYTES],
                Some(b"long key".to_vec()),
            ),
            (vec![b'e'; crate::format::MAX_KEY_BYTES], None),
        ];
        for (i, len) in [
            126usize,
            127,
            128,
            16382,
            16383,
            (1 << 21) - 2,
            (1 << 21) - 1,
        ]
        .into_iter()
        .enumerate()
        {
            let value = (0..len).map(|j| (j * 7 + i) as u8).collect();
            entries.push((format!("v{i}").into_bytes(), Some(value)));
        }
        entries
    }

    fn as_refs(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<(&[u8], Option<&[u8]>)> {
        entries
            .iter()
            .map(|(k, v)| (&k[..], v.as_deref()))
            .collect()
    }

    /// Everything a file holds, read back through `entry`, `get` and the filter.
    fn read_back(fs: &MemoryStorage, meta: &SegmentMeta) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let seg = Segment::open(fs, Path::new("/s"), meta).expect("open");
        seg.verify().expect("verify");
        (0..seg.len())
            .map(|i| {
                let (k, v) = seg.entry(i).expect("entry");
                assert_eq!(seg.get(k).expect("get"), Some(v), "get {i}");
                assert!(seg.may_contain_hashed(KeyHash::of(k)).expect("filter"));
                (k.to_vec(), v.map(<[u8]>::to_vec))
            })
            .collect()
    }

    /// Version 4 (FORMAT.md §5.5), what this build writes: every kind of entry reads back,
    /// its lengths are the varints the spec gives, and the file is smaller than version 3's
    /// by exactly the bytes the varints save.
    #[test]
    fn version_4_files_round_trip_every_kind_of_entry() {
        let entries = every_kind_of_entry();
        let fs = MemoryStorage::new();
        let (meta, v4) = written_at(&fs, 4, &as_refs(&entries));
        assert_eq!(v4[8..12], 4u32.to_le_bytes());
        assert_eq!(read_back(&fs, &meta), entries);
        // The first entry, `a` = `1`: key length 1, value length + 1 = 2.
        assert_eq!(v4[96..100], [1, 2, b'a', b'1']);
        // Entries 3 and 4: a 4096-byte key (0x80 0x20), then value 8 + 1 or a tombstone (0).
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        let at = |i: usize| seg.entry_offset(i).expect("offset");
        assert_eq!(v4[at(3)..at(3) + 3], [0x80, 0x20, 9]);
        assert_eq!(v4[at(4)..at(4) + 3], [0x80, 0x20, 0]);
        // 2^21 - 1 bytes of value: 2^21 is 0x80 0x80 0x80 0x01.
        let last = entries.len() - 1;
        assert_eq!(v4[at(last)..at(last) + 5], [2, 0x80, 0x80, 0x80, 0x01]);
        // Each entry's two u32s become one byte per 7 bits of each length.
        let varint_len = |n: usize| (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize;
        let saved: usize = entries
            .iter()
            .map(|(k, v)| {
                8 - varint_len(k.len()) - varint_len(v.as_ref().map_or(0, |v| v.len() + 1))
            })
            .sum();
        let fs3 = MemoryStorage::new();
        let (_, v3) = written_at(&fs3, 3, &as_refs(&entries));
        assert_eq!(body_len(&v3) - body_len(&v4), saved);
    }

    /// Version 3 files (written by builds before version 4: lengths as `u32`s) stay readable,
    /// every kind of entry included, and pass `verify`.
    #[test]
    fn version_3_files_stay_readable() {
        let entries = every_kind_of_entry();
        let fs = MemoryStorage::new();
        let (meta, v3) = written_at(&fs, 3, &as_refs(&entries));
        assert_eq!(v3[8..12], 3u32.to_le_bytes());
        // The first entry as version 3 lays it out: two u32s, key, value.
        assert_eq!(v3[96..106], [1, 0, 0, 0, 1, 0, 0, 0, b'a', b'1']);
        assert_eq!(read_back(&fs, &meta), entries);
    }

    /// Lengths a version 4 decoder refuses, each in an otherwise valid file (its CRCs
    /// recomputed): `Error::Corruption` at the entry from a read and from `verify`, never a
    /// panic or an entry. The first entry is key `abcdefgh`, value `12`: 08 03 abcdefgh 12.
    #[test]
    fn bad_length_varints_are_corruption() {
        let fs = MemoryStorage::new();
        let (meta, good) = written_at(&fs, 4, &[(b"abcdefgh", Some(b"12")), (b"x", None)]);
        assert_eq!(good[96..98], [8, 3]);
        let cases: [(&[u8], &str); 7] = [
            // A key length of 8 in two bytes (a last group of zero).
            (&[0x88, 0x00], "shortest form"),
            // A value length + 1 of 3 in two bytes.
            (&[0x08, 0x83, 0x00], "shortest form"),
            // More than 5 bytes of continuation.
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], "longer than 5 bytes"),
            (&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff], "longer than 5 bytes"),
            // Key lengths 0 and 4097 (0x81 0x20), a value of MAX_VALUE_BYTES + 1.
            (&[0x00], "out of range"),
            (&[0x81, 0x20], "out of range"),
            (&[0x08, 0x82, 0x80, 0x80, 0x20], "out of range"),
        ];
        for (head, detail) in cases {
            let mut bad = good.clone();
            bad[96..96 + head.len()].copy_from_slice(head);
            reseal(&mut bad);
            fs.write_file_durable(&segment_path(), &bad);
            // An open reads no entry; the first read of the entry finds the damage.
            let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
            let err = seg.entry(0).expect_err("the first entry");
            let err2 = crate::inspect::decode_snapshot(1, &bad).expect_err("verify");
            for e in [err, err2] {
                match e {
                    Error::Corruption {
                        offset: 96,
                        detail: d,
                        ..
                    } => {
                        assert!(d.contains(detail), "{head:02x?}: {d}")
                    }
                    other => panic!("{head:02x?}: {other:?}"),
                }
            }
        }
        // The second entry, `x` a tombstone, is 01 00 78 at 108, just before the index at
        // 111. A value that would run into the index, and a value length cut off by it.
        assert_eq!(good[108..111], [1, 0, b'x']);
        for (at, head) in [(96, &[0x08, 0x7f][..]), (108, &[0x01, 0x80, 0x80][..])] {
            let mut bad = good.clone();
            bad[at..at + head.len()].copy_from_slice(head);
            reseal(&mut bad);
            match crate::inspect::decode_snapshot(1, &bad) {
                Err(Error::Corruption { offset, detail, .. }) => {
                    assert_eq!(offset, at as u64, "{head:02x?}: {detail}");
                    assert!(detail.contains("out of bounds"), "{head:02x?}: {detail}");
                }
                other => panic!("{head:02x?}: {other:?}"),
            }
        }
    }

    /// A version 2 file (written before version 3: one CRC over the body, checked with
    /// everything else at open) is still read; a version this build does not know is
    /// `UnsupportedFormat` naming version 4 as the one it writes.
    #[test]
    fn version_2_files_are_read_and_later_versions_refused() {
        let fs = MemoryStorage::new();
        let entries: [(&[u8], Option<&[u8]>); 2] = [(b"k1", Some(b"v1")), (b"k2", Some(b"v2"))];
        let (meta, v3) = written_at(&fs, 3, &entries);
        let path = segment_path();
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
        let (meta, v4) = written_at(&fs, 4, &entries);
        let mut future = v4.clone();
        future[8..12].copy_from_slice(&5u32.to_le_bytes());
        seal_header(&mut future[..96], HEADER_CRC_AT);
        fs.write_file_durable(&path, &future);
        match Segment::open(&fs, Path::new("/s"), &meta) {
            Err(Error::UnsupportedFormat {
                found: 5,
                supported: 4,
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
