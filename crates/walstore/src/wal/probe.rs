//! Bounded reads of the log: the chunk reader, the one probe of an offset (declared length ->
//! bounded read -> validating decode), and the search for a generation's records that the
//! scan, the look past the end, the catch-up and `inspect` share.

use super::record::{
    self, DecodeError, Record, MAX_RECORD_PAYLOAD_BYTES, RECORD_HEADER_BYTES, SALT_FIELD_OFFSET,
};
use super::WAL_HEADER_BYTES;
use crate::error::{Error, Result};
use crate::format::{read_u32, read_u64};
use crate::options::{Options, CHUNK_BYTES};
use crate::storage::StorageFile;
use std::io;
use std::path::Path;

/// Bytes of the first read of a scan.
const FIRST_CHUNK_BYTES: usize = 4096;

/// Reads a file through a buffer of whole chunks, never allocating more than the largest
/// valid record beyond the chunk size, whatever lengths the bytes declare.
///
/// The first read is small (a catch-up that finds nothing new costs one 4 KiB read); each
/// further read doubles, up to [`CHUNK_BYTES`], so long scans run at full speed.
pub(crate) struct ChunkReader<'f> {
    file: &'f dyn StorageFile,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
    cfg: ReadConfig,
}

/// How the WAL is read: the read chunk (`Options::read_chunk_bytes`) and the broken-engine
/// flags that change reading (`faults.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ReadConfig {
    /// Largest read at a time.
    pub chunk_bytes: usize,
    /// Deliberately broken variants (all off outside the harness's tests).
    pub faults: crate::faults::EngineFaults,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            chunk_bytes: CHUNK_BYTES,
            faults: crate::faults::EngineFaults::default(),
        }
    }
}

impl ReadConfig {
    /// The read configuration of a store's options.
    pub(crate) fn of(opts: &Options) -> Self {
        ReadConfig {
            chunk_bytes: opts.read_chunk_bytes,
            faults: opts.faults,
        }
    }
}

impl<'f> ChunkReader<'f> {
    pub(crate) fn new(file: &'f dyn StorageFile, file_len: u64, cfg: ReadConfig) -> Self {
        ChunkReader {
            file,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
            chunk: FIRST_CHUNK_BYTES.min(cfg.chunk_bytes),
            cfg,
        }
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    pub(crate) fn get(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let want_end = offset.saturating_add(len as u64).min(self.file_len);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset < self.buf_start || want_end > buf_end {
            let chunk = self.chunk;
            let read_len = (self.file_len.saturating_sub(offset)).min(len.max(chunk) as u64);
            self.chunk = (self.chunk * 2).min(self.cfg.chunk_bytes);
            // Grow the buffer only as the file proves it has the bytes: a scan does not know
            // the file's length (it passes u64::MAX), and a length declared by damaged or
            // stale bytes must not size an allocation (found by the recovery fuzz target), nor
            // make a one-shot read zero half a megabyte it then finds absent (a stale header
            // past the end of a reset log declared 555 KB: 40% of a `walstore get`'s page
            // faults). So without a known length the first read is a chunk, and each further
            // one doubles.
            let read_len = read_len as usize;
            let first = if self.file_len == u64::MAX {
                chunk
            } else {
                read_len
            };
            let mut step = first.min(read_len).min(self.cfg.chunk_bytes);
            self.buf.clear();
            loop {
                let filled = self.buf.len();
                let target = (filled + step).min(read_len);
                self.buf.resize(target, 0);
                let n = self
                    .file
                    .read_full_at(&mut self.buf[filled..], offset + filled as u64)?;
                self.buf.truncate(filled + n);
                if filled + n < target || self.buf.len() >= read_len {
                    break;
                }
                step = step.saturating_mul(2);
            }
            self.buf_start = offset;
        }
        let start = (offset - self.buf_start) as usize;
        let end = ((want_end.max(offset) - self.buf_start) as usize).min(self.buf.len());
        Ok(&self.buf[start.min(end)..end])
    }
}

/// What lies at one offset of the log: the one record probe that the scan, the look past the
/// end, the catch-up and the search for a generation's records share (declared length ->
/// bounded read -> validating decode).
#[derive(Debug)]
pub(crate) enum Probe<'a> {
    /// Fewer bytes than a record header before the end of the file (`zero`: all of them zero).
    Short { zero: bool },
    /// A zero record header: preallocated space.
    Zero,
    /// A valid record (of any generation: the caller checks its salt).
    Record(Record<'a>),
    /// Bytes that do not decode as a record. `salt` is the header's salt field;
    /// `declared_end` where the record would end if its declared length were right.
    Invalid {
        salt: u64,
        declared_end: Option<u64>,
        error: DecodeError,
    },
}

/// Reads and decodes the record at `at`. Reads at most the declared length (bounded by the
/// largest valid record), never more than the file holds.
pub(crate) fn probe<'r>(reader: &'r mut ChunkReader<'_>, at: u64) -> io::Result<Probe<'r>> {
    let header = reader.get(at, RECORD_HEADER_BYTES)?;
    if header.len() < RECORD_HEADER_BYTES {
        return Ok(Probe::Short {
            zero: header.iter().all(|b| *b == 0),
        });
    }
    if header.iter().all(|b| *b == 0) {
        return Ok(Probe::Zero);
    }
    let salt = read_u64(header, SALT_FIELD_OFFSET).unwrap_or(0);
    let declared = read_u32(header, 4).unwrap_or(0) as usize;
    let declared_end = (declared <= MAX_RECORD_PAYLOAD_BYTES)
        .then(|| at + (RECORD_HEADER_BYTES + declared) as u64);
    let total = RECORD_HEADER_BYTES + declared.min(MAX_RECORD_PAYLOAD_BYTES + 1);
    let skips_kind = reader.cfg.faults.record_crc_skips_kind();
    let bytes = reader.get(at, total)?;
    Ok(match record::decode_with(bytes, skips_kind) {
        Ok(rec) => Probe::Record(rec),
        Err(DecodeError::Zero) => Probe::Zero,
        Err(error) => Probe::Invalid {
            salt,
            declared_end,
            error,
        },
    })
}

/// Probes every offset at or after `first` whose salt field holds `salt` (a record of that
/// generation, intact or not, or bytes that happen to look like one), in file order, until
/// `visit` returns `false`. The file is searched chunk by chunk; consecutive chunks overlap
/// by a record header, so no salt field is split unseen.
pub(crate) fn search_records_of(
    file: &dyn StorageFile,
    limit: u64,
    salt: u64,
    first: u64,
    cfg: ReadConfig,
    mut visit: impl FnMut(u64, Probe<'_>) -> bool,
) -> io::Result<()> {
    let finder = SaltFinder::new(salt);
    let mut reader = ChunkReader::new(file, limit, cfg);
    let overlap = RECORD_HEADER_BYTES as u64;
    let mut chunk_start = first;
    while chunk_start < limit {
        let chunk = reader.get(chunk_start, cfg.chunk_bytes)?.to_vec();
        for at in finder.find_iter(&chunk) {
            let salt_pos = chunk_start + at as u64;
            let Some(rec_start) = salt_pos.checked_sub(SALT_FIELD_OFFSET as u64) else {
                continue;
            };
            if rec_start < first {
                continue;
            }
            if !visit(rec_start, probe(&mut reader, rec_start)?) {
                return Ok(());
            }
        }
        if chunk.len() as u64 <= overlap {
            break;
        }
        chunk_start += chunk.len() as u64 - overlap;
    }
    Ok(())
}

/// Finds a generation's salt (8 bytes) in a chunk of the log. On x86-64 with the SSE2
/// search of `memchr`, which every x86-64 processor runs: `memchr`'s general searcher would
/// first ask which newer instructions the processor has, and Rust's feature detection runs
/// every `cpuid` leaf it knows, 60-65 µs of a one-shot process in a virtual machine
/// (`checksum.rs`), where an open alone of a cleanly closed store searches the 64 KiB past the
/// end of its log twice (RECOVERY.md L6).
struct SaltFinder {
    #[cfg(target_arch = "x86_64")]
    salt: [u8; 8],
    #[cfg(target_arch = "x86_64")]
    sse2: Option<memchr::arch::x86_64::sse2::packedpair::Finder>,
    #[cfg(not(target_arch = "x86_64"))]
    any: memchr::memmem::Finder<'static>,
}

impl SaltFinder {
    fn new(salt: u64) -> Self {
        let salt = salt.to_le_bytes();
        SaltFinder {
            #[cfg(target_arch = "x86_64")]
            salt,
            #[cfg(target_arch = "x86_64")]
            sse2: memchr::arch::x86_64::sse2::packedpair::Finder::new(&salt),
            #[cfg(not(target_arch = "x86_64"))]
            any: memchr::memmem::Finder::new(&salt).into_owned(),
        }
    }

    /// Where the salt starts first in `hay`.
    #[cfg(target_arch = "x86_64")]
    fn find(&self, hay: &[u8]) -> Option<usize> {
        match &self.sse2 {
            Some(sse2) if hay.len() >= sse2.min_haystack_len() => sse2.find(hay, &self.salt),
            // Shorter than the vector search takes (a few dozen bytes).
            _ => hay.windows(self.salt.len()).position(|w| w == self.salt),
        }
    }

    /// Where the salt starts first in `hay`.
    #[cfg(not(target_arch = "x86_64"))]
    fn find(&self, hay: &[u8]) -> Option<usize> {
        self.any.find(hay)
    }

    /// Every offset in `hay` where the salt starts, in order (overlapping ones too).
    fn find_iter<'h>(&'h self, hay: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
        let mut from = 0;
        std::iter::from_fn(move || {
            let at = from + self.find(hay.get(from..)?)?;
            from = at + 1;
            Some(at)
        })
    }
}

/// Whether an intact record of generation `salt` lies anywhere after the header of `wal`
/// (the file at `path`, named in errors): what tells RECOVERY.md H3 from H2, found with the
/// same search recovery uses. Records of a generation are written only after its header is
/// durable, so one proves the header had been; the whole log is searched because the first
/// record may be damaged as well (found by the recovery fuzz target).
pub(crate) fn has_record_of(
    wal: &dyn StorageFile,
    path: &Path,
    salt: u64,
    cfg: ReadConfig,
) -> Result<bool> {
    let len = wal.len().map_err(|e| Error::io("stat", path, e))?;
    let mut found = false;
    search_records_of(wal, len, salt, WAL_HEADER_BYTES, cfg, |_, probe| {
        found = matches!(probe, Probe::Record(rec) if rec.salt == salt);
        !found
    })
    .map_err(|e| Error::io("read", path, e))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, OpenMode, Storage};
    use std::path::Path;

    #[test]
    fn the_salt_search_finds_every_occurrence_a_plain_search_finds() {
        let salt: u64 = 0x0707_0700_0707_0707;
        let needle = salt.to_le_bytes();
        let finder = SaltFinder::new(salt);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in (0..80usize).chain([500, 4096, 65_536]) {
            // Bytes of 0 and 7 only, so that the salt occurs often, overlapping itself too.
            let hay: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x.is_multiple_of(5) {
                        0
                    } else {
                        7
                    }
                })
                .collect();
            let plain: Vec<usize> = (0..len.saturating_sub(7))
                .filter(|&i| hay[i..i + 8] == needle)
                .collect();
            let found: Vec<usize> = finder.find_iter(&hay).collect();
            assert_eq!(found, plain, "length {len}");
        }
    }

    /// A scan does not know the file's length: a length declared by stale bytes past the
    /// end of a log must not make it allocate (and zero) that much before the file proves
    /// it holds it (a 555 KB declaration cost a one-shot `walstore get` 40% of its page
    /// faults).
    #[test]
    fn a_read_of_unknown_length_grows_its_buffer_only_as_the_file_proves_bytes() {
        let storage = MemoryStorage::new();
        storage.create_dir_all(Path::new("/d")).expect("mkdir");
        let file = storage
            .open(Path::new("/d/wal"), OpenMode::Create)
            .expect("create");
        file.write_all_at(&[7u8; 65_536], 0).expect("write");
        let mut reader = ChunkReader::new(file.as_ref(), u64::MAX, ReadConfig::default());
        let got = reader.get(0, 555_211).expect("read").len();
        assert_eq!(got, 65_536);
        assert!(
            reader.buf.capacity() <= 2 * 65_536,
            "a read of 64 KiB allocated {} bytes",
            reader.buf.capacity()
        );
        // A file that has the bytes is read whole.
        let big = vec![9u8; 3 << 20];
        file.write_all_at(&big, 0).expect("write");
        let mut reader = ChunkReader::new(file.as_ref(), u64::MAX, ReadConfig::default());
        assert_eq!(reader.get(100, 555_211).expect("read").len(), 555_211);
        assert!(reader
            .get(100, 555_211)
            .expect("read")
            .iter()
            .all(|b| *b == 9));
    }
}
