//! The manifest: which snapshot files and which WAL generation are current (FORMAT.md §6).
//!
//! It is replaced atomically (`runs::write_manifest`, the only writer): written to
//! `MANIFEST.tmp`, synced, renamed over `MANIFEST`, and the directory synced. Readers in any
//! process therefore see the old or the new manifest, never a mix.

use crate::error::{Error, Result};
use crate::format::{
    check_preamble, crc32, preamble, read_u32, seal_header, Cursor, PreambleError, FORMAT_VERSION,
    MANIFEST_NAME, MAX_KEY_BYTES, PREAMBLE_ALGORITHM_AT, PREAMBLE_BYTES,
};
use crate::snapshot::SegmentMeta;
use crate::storage::{OpenMode, Storage};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Magic bytes at offset 0 of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"WSTORMAN";
/// Size of the manifest header.
pub const MANIFEST_HEADER_BYTES: usize = 32;
/// Header fields after the preamble (FORMAT.md §6).
const BODY_LEN_AT: usize = PREAMBLE_BYTES;
/// CRC-32 of the body.
const BODY_CRC_AT: usize = 20;
/// The header's CRC, over the bytes before it.
const HEADER_CRC_AT: usize = 24;
/// Four zero bytes.
const RESERVED_AT: usize = 28;
const _: () = assert!(BODY_CRC_AT == BODY_LEN_AT + 4 && HEADER_CRC_AT == BODY_CRC_AT + 4);
const _: () = assert!(RESERVED_AT == HEADER_CRC_AT + 4);
const _: () = assert!(MANIFEST_HEADER_BYTES == RESERVED_AT + 4);
/// Offset in the body of the reserved word after the snapshot file count.
const BODY_RESERVED_AT: usize = 36;
/// Fewest bytes one snapshot file entry of the body takes (an empty first key is refused).
const SEGMENT_ENTRY_MIN_BYTES: usize = 8 + 8 + 8 + 4 + 1;
/// Largest manifest body accepted (a million snapshot files with long first keys fit).
pub const MAX_MANIFEST_BODY_BYTES: usize = 256 << 20;

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Checkpoint generation; also the generation of the WAL records that follow it.
    pub generation: u64,
    /// Salt of the current WAL generation.
    pub salt: u64,
    /// Last transaction id folded into the snapshot files.
    pub base_txn: u64,
    /// Next snapshot file id to use (ids are never reused).
    pub next_file_id: u64,
    /// The sorted runs, newest first. Each run is a list of snapshot files in key order; file
    /// `i` of a run holds its keys from its first key up to the next file's first key.
    pub runs: Vec<Vec<SegmentMeta>>,
}

impl Manifest {
    /// What the WAL header of this manifest's generation must say (RECOVERY.md H1).
    pub(crate) fn expected(&self) -> crate::cases::Expected {
        crate::cases::Expected {
            generation: self.generation,
            salt: self.salt,
            base_txn: self.base_txn,
        }
    }

    /// The WAL header of this manifest's generation (FORMAT.md §3): the manifest holds
    /// everything the header says.
    pub(crate) fn wal_header(&self) -> crate::wal::WalHeader {
        crate::wal::WalHeader::new(self.generation, self.salt, self.base_txn)
    }

    /// Every snapshot file the manifest names, newest run first.
    pub fn files(&self) -> impl Iterator<Item = &SegmentMeta> {
        self.runs.iter().flatten()
    }

    /// Serializes the manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.generation.to_le_bytes());
        body.extend_from_slice(&self.salt.to_le_bytes());
        body.extend_from_slice(&self.base_txn.to_le_bytes());
        body.extend_from_slice(&self.next_file_id.to_le_bytes());
        body.extend_from_slice(&(self.runs.len() as u32).to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for run in &self.runs {
            body.extend_from_slice(&(run.len() as u32).to_le_bytes());
            body.extend_from_slice(&0u32.to_le_bytes());
            for seg in run {
                body.extend_from_slice(&seg.file_id.to_le_bytes());
                body.extend_from_slice(&seg.file_len.to_le_bytes());
                body.extend_from_slice(&seg.entry_count.to_le_bytes());
                body.extend_from_slice(&(seg.first_key.len() as u32).to_le_bytes());
                body.extend_from_slice(&seg.first_key);
            }
        }
        let mut header = [0u8; MANIFEST_HEADER_BYTES];
        header[..PREAMBLE_BYTES].copy_from_slice(&preamble(&MANIFEST_MAGIC));
        header[BODY_LEN_AT..BODY_CRC_AT].copy_from_slice(&(body.len() as u32).to_le_bytes());
        header[BODY_CRC_AT..HEADER_CRC_AT].copy_from_slice(&crc32(&body).to_le_bytes());
        seal_header(&mut header, HEADER_CRC_AT);
        let mut out = Vec::with_capacity(MANIFEST_HEADER_BYTES + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and validates a manifest; `path` names it in errors.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let corrupt = |offset: usize, detail: &str| Error::corruption(path, offset as u64, detail);
        let body = match check_header(bytes) {
            Ok(body) => body,
            Err(HeaderProblem::Unsupported(found)) => {
                return Err(Error::UnsupportedFormat {
                    file: path.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Err(HeaderProblem::Corrupt(offset, detail)) => return Err(corrupt(offset, detail)),
        };
        decode_body(body).map_err(|(at, detail)| corrupt(MANIFEST_HEADER_BYTES + at, detail))
    }

    /// Reads the manifest of the store in `dir`; `Ok(None)` if there is none.
    pub fn read(storage: &dyn Storage, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_NAME);
        let file = match storage.open(&path, OpenMode::ReadOnly) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        if len > (MANIFEST_HEADER_BYTES + MAX_MANIFEST_BODY_BYTES) as u64 {
            return Err(Error::corruption(
                &path,
                0,
                "manifest larger than any valid manifest",
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        let n = file
            .read_full_at(&mut bytes, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        bytes.truncate(n);
        Manifest::decode(&bytes, &path).map(Some)
    }
}

/// Why a manifest header was refused: another format version, or damage at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderProblem {
    Unsupported(u32),
    Corrupt(usize, &'static str),
}

/// Checks the manifest header and the body's length and CRC; returns the body.
fn check_header(bytes: &[u8]) -> std::result::Result<&[u8], HeaderProblem> {
    use HeaderProblem::Corrupt;
    let header = bytes
        .get(..MANIFEST_HEADER_BYTES)
        .ok_or(Corrupt(bytes.len(), "manifest shorter than its header"))?;
    check_preamble(header, &MANIFEST_MAGIC, HEADER_CRC_AT).map_err(|e| match e {
        PreambleError::Short => Corrupt(bytes.len(), "manifest shorter than its header"),
        PreambleError::BadMagic => Corrupt(0, "bad manifest magic"),
        PreambleError::Version(found) => HeaderProblem::Unsupported(found),
        PreambleError::Checksum => Corrupt(HEADER_CRC_AT, "manifest header checksum mismatch"),
        PreambleError::Algorithm(_) => Corrupt(PREAMBLE_ALGORITHM_AT, "unknown checksum algorithm"),
    })?;
    // Not covered by the header CRC: checked on its own.
    if header[RESERVED_AT..MANIFEST_HEADER_BYTES]
        .iter()
        .any(|b| *b != 0)
    {
        return Err(Corrupt(
            RESERVED_AT,
            "non-zero reserved bytes in manifest header",
        ));
    }
    let body_len = read_u32(header, BODY_LEN_AT).unwrap_or(0) as usize;
    if body_len > MAX_MANIFEST_BODY_BYTES || bytes.len() != MANIFEST_HEADER_BYTES + body_len {
        return Err(Corrupt(
            BODY_LEN_AT,
            "manifest length differs from its header",
        ));
    }
    let body = &bytes[MANIFEST_HEADER_BYTES..];
    if crc32(body) != read_u32(header, BODY_CRC_AT).unwrap_or(0) {
        return Err(Corrupt(
            MANIFEST_HEADER_BYTES,
            "manifest body checksum mismatch",
        ));
    }
    Ok(body)
}

/// Damage in the manifest body: offset within the body, and what failed.
type BodyError = (usize, &'static str);

/// Decodes a manifest body whose CRC matched (FORMAT.md §6).
fn decode_body(body: &[u8]) -> std::result::Result<Manifest, BodyError> {
    let mut c = Cursor::new(body);
    let generation = body_u64(&mut c)?;
    let salt = body_u64(&mut c)?;
    let base_txn = body_u64(&mut c)?;
    let next_file_id = body_u64(&mut c)?;
    let run_count = body_u32(&mut c)? as usize;
    if body_u32(&mut c)? != 0 {
        return Err((BODY_RESERVED_AT, "non-zero reserved bytes in manifest body"));
    }
    // Bound the count by the body before allocating anything for it.
    if run_count > c.remaining() / (RUN_HEADER_BYTES + SEGMENT_ENTRY_MIN_BYTES) {
        return Err((BODY_RESERVED_AT - 4, "run count exceeds the manifest"));
    }
    let mut runs: Vec<Vec<SegmentMeta>> = Vec::with_capacity(run_count);
    for _ in 0..run_count {
        runs.push(decode_run(&mut c, next_file_id)?);
    }
    if c.remaining() != 0 {
        return Err((c.position(), "trailing bytes in manifest"));
    }
    Ok(Manifest {
        generation,
        salt,
        base_txn,
        next_file_id,
        runs,
    })
}

/// Bytes before a run's file entries: the file count and four zero bytes.
const RUN_HEADER_BYTES: usize = 8;

/// Decodes one run: its file count, then its files in key order.
fn decode_run(
    c: &mut Cursor<'_>,
    next_file_id: u64,
) -> std::result::Result<Vec<SegmentMeta>, BodyError> {
    let at = c.position();
    let count = body_u32(c)? as usize;
    if body_u32(c)? != 0 {
        return Err((at + 4, "non-zero reserved bytes in manifest run"));
    }
    if count == 0 || count > c.remaining() / SEGMENT_ENTRY_MIN_BYTES {
        return Err((at, "run file count out of range"));
    }
    let mut segments: Vec<SegmentMeta> = Vec::with_capacity(count);
    for _ in 0..count {
        let at = c.position();
        let seg = decode_segment(c, next_file_id)?;
        if segments
            .last()
            .is_some_and(|prev| prev.first_key >= seg.first_key)
        {
            return Err((at, "segments are not in key order"));
        }
        segments.push(seg);
    }
    Ok(segments)
}

/// Decodes one snapshot file entry of the body.
fn decode_segment(
    c: &mut Cursor<'_>,
    next_file_id: u64,
) -> std::result::Result<SegmentMeta, BodyError> {
    let at = c.position();
    let file_id = body_u64(c)?;
    let file_len = body_u64(c)?;
    let entry_count = body_u64(c)?;
    let key_len = body_u32(c)? as usize;
    if key_len == 0 || key_len > MAX_KEY_BYTES {
        return Err((at, "segment first key length out of range"));
    }
    let key = c.take(key_len).ok_or((c.position(), CUT_SHORT))?;
    if file_id >= next_file_id {
        return Err((at, "segment file id out of range"));
    }
    Ok(SegmentMeta {
        file_id,
        file_len,
        entry_count,
        first_key: Arc::from(key),
    })
}

const CUT_SHORT: &str = "manifest body cut short";

fn body_u64(c: &mut Cursor<'_>) -> std::result::Result<u64, BodyError> {
    let at = c.position();
    c.u64().ok_or((at, CUT_SHORT))
}

fn body_u32(c: &mut Cursor<'_>) -> std::result::Result<u32, BodyError> {
    let at = c.position();
    c.u32().ok_or((at, CUT_SHORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 2,
            salt: 99,
            base_txn: 40,
            next_file_id: 5,
            runs: vec![
                vec![SegmentMeta {
                    file_id: 2,
                    file_len: 120,
                    entry_count: 0,
                    first_key: Arc::from(&b"c"[..]),
                }],
                vec![
                    SegmentMeta {
                        file_id: 3,
                        file_len: 100,
                        entry_count: 2,
                        first_key: Arc::from(&b"a"[..]),
                    },
                    SegmentMeta {
                        file_id: 4,
                        file_len: 90,
                        entry_count: 1,
                        first_key: Arc::from(&b"m"[..]),
                    },
                ],
            ],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(
            Manifest::decode(&m.encode(), Path::new("M")).expect("decode"),
            m
        );
    }

    #[test]
    fn truncation_at_every_length_is_an_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Manifest::decode(&bytes[..len], Path::new("M")).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn future_version_is_unsupported_format() {
        let mut bytes = sample().encode();
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        let err = Manifest::decode(&bytes, Path::new("M")).expect_err("must fail");
        assert!(
            matches!(
                err,
                Error::UnsupportedFormat {
                    found: 3,
                    supported: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}
