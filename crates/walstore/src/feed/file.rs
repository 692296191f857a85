//! The `FEED` file (FORMAT.md §10): the change feed's durable state. The retention policy,
//! the named consumers' positions and the list of sealed log segments, replaced atomically
//! like the manifest (written to `FEED.tmp`, synced, renamed, the directory synced) by
//! `feed::apply`, its only writer.
//!
//! Layout: a 32-byte header (the preamble with magic `WSTRFEED`, the body's length and CRC,
//! the header's CRC, four zero bytes), then a MessagePack body (FORMAT.md §10). A file that
//! does not check out is `Error::Corruption` naming it; a file of another format version is
//! `Error::UnsupportedFormat`. The body is at most [`MAX_FEED_BODY_BYTES`]: nothing read from
//! the file sizes an allocation beyond that.

use crate::error::{Error, Result};
use crate::format::{
    check_preamble, crc32, preamble, read_u32, seal_header, PreambleError, FEED_NAME,
    FORMAT_VERSION, PREAMBLE_ALGORITHM_AT, PREAMBLE_BYTES,
};
use crate::storage::{OpenMode, Storage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::Duration;

/// Magic bytes at offset 0 of the `FEED` file.
pub const FEED_MAGIC: [u8; 8] = *b"WSTRFEED";
/// Size of the header.
pub const FEED_HEADER_BYTES: usize = 32;
const BODY_LEN_AT: usize = PREAMBLE_BYTES;
const BODY_CRC_AT: usize = 20;
const HEADER_CRC_AT: usize = 24;
const RESERVED_AT: usize = 28;
const _: () = assert!(BODY_LEN_AT + 4 == BODY_CRC_AT && BODY_CRC_AT + 4 == HEADER_CRC_AT);
const _: () = assert!(HEADER_CRC_AT + 4 == RESERVED_AT && RESERVED_AT + 4 == FEED_HEADER_BYTES);
/// Largest body accepted: thousands of consumers and segments fit.
pub const MAX_FEED_BODY_BYTES: usize = 1 << 20;
/// Most consumers a store registers.
pub const MAX_CONSUMERS: usize = 1024;
/// Longest consumer name, in bytes.
pub const MAX_CONSUMER_NAME_BYTES: usize = 128;
/// Most sealed segments the file lists (a retention bound drops the oldest first).
pub const MAX_SEGMENTS: usize = 4096;

/// How much of the log the store keeps after checkpoints, for the change feed (store-wide,
/// kept in the `FEED` file; GUARANTEES.md "The change feed").
///
/// A sealed segment (the log of one checkpointed generation) is kept while a registered
/// consumer has not acknowledged all of it, or while it is among the newest `keep_bytes` of
/// sealed log; it is dropped, needed or not, once the sealed log exceeds `max_bytes` (oldest
/// first) or it is older than `max_age`. A consumer whose next transaction was dropped gets
/// [`Error::FeedGap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Sealed log kept whether or not a consumer needs it (for point-in-time restores).
    pub keep_bytes: u64,
    /// The most sealed log kept, even for consumers that still need it.
    pub max_bytes: u64,
    /// The oldest sealed segment kept, even for consumers that still need it.
    pub max_age: Duration,
}

impl Default for Retention {
    /// Nothing kept for its own sake; at most 1 GiB and 7 days kept for consumers.
    fn default() -> Retention {
        Retention {
            keep_bytes: 0,
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One sealed log segment: the log of a checkpointed generation, kept as `log-<gen>.seg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The generation whose log it is.
    pub generation: u64,
    /// Its first transaction id.
    pub first_txn: u64,
    /// Its last transaction id.
    pub last_txn: u64,
    /// Its length in bytes (header included).
    pub bytes: u64,
    /// When it was sealed, in seconds since the Unix epoch.
    pub sealed_at: u64,
}

/// What the `FEED` file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    /// The retention policy.
    pub retention: Retention,
    /// Each consumer's name and the last transaction id it acknowledged.
    pub consumers: BTreeMap<String, u64>,
    /// The sealed segments, oldest first, their transactions contiguous.
    pub segments: Vec<Sealed>,
    /// For a replica: the last transaction of the source store's feed applied here
    /// ([`crate::Store::apply_changes`]).
    pub applied: Option<u64>,
}

/// The body as MessagePack sees it: arrays, in this order (FORMAT.md §10).
#[derive(Serialize, Deserialize)]
struct Body {
    retention: (u64, u64, u64),
    consumers: Vec<(String, u64)>,
    segments: Vec<Sealed>,
    applied: Option<u64>,
}

impl FeedState {
    /// The whole file.
    pub fn encode(&self) -> Vec<u8> {
        let body = Body {
            retention: (
                self.retention.keep_bytes,
                self.retention.max_bytes,
                self.retention.max_age.as_secs(),
            ),
            consumers: self
                .consumers
                .iter()
                .map(|(n, t)| (n.clone(), *t))
                .collect(),
            segments: self.segments.clone(),
            applied: self.applied,
        };
        // Encoding plain integers, strings and arrays into a Vec cannot fail.
        let body = rmp_serde::to_vec(&body).unwrap_or_default();
        let mut header = [0u8; FEED_HEADER_BYTES];
        header[..PREAMBLE_BYTES].copy_from_slice(&preamble(&FEED_MAGIC));
        header[BODY_LEN_AT..BODY_CRC_AT].copy_from_slice(&(body.len() as u32).to_le_bytes());
        header[BODY_CRC_AT..HEADER_CRC_AT].copy_from_slice(&crc32(&body).to_le_bytes());
        seal_header(&mut header, HEADER_CRC_AT);
        let mut out = header.to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and checks a whole file; `path` names it in errors.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<FeedState> {
        let body = check_header(bytes).map_err(|problem| match problem {
            Problem::Unsupported(found) => Error::UnsupportedFormat {
                file: path.to_path_buf(),
                found,
                supported: FORMAT_VERSION,
            },
            Problem::Corrupt(at, detail) => Error::corruption(path, at as u64, detail),
        })?;
        let corrupt = |detail: String| Error::corruption(path, FEED_HEADER_BYTES as u64, detail);
        let body: Body = rmp_serde::from_slice(body)
            .map_err(|e| corrupt(format!("feed body does not decode: {e}")))?;
        let state = FeedState {
            retention: Retention {
                keep_bytes: body.retention.0,
                max_bytes: body.retention.1,
                max_age: Duration::from_secs(body.retention.2),
            },
            consumers: body.consumers.iter().cloned().collect(),
            segments: body.segments,
            applied: body.applied,
        };
        if state.consumers.len() != body.consumers.len() {
            return Err(corrupt("a consumer is listed twice".into()));
        }
        state.check().map_err(|d| corrupt(d.into()))?;
        Ok(state)
    }

    /// The rules every state written obeys (FORMAT.md §10).
    pub(crate) fn check(&self) -> std::result::Result<(), &'static str> {
        if self.consumers.len() > MAX_CONSUMERS {
            return Err("more consumers than the limit");
        }
        if self.consumers.keys().any(|n| check_name(n).is_err()) {
            return Err("a consumer name is empty, too long or has control characters");
        }
        if self.segments.len() > MAX_SEGMENTS {
            return Err("more sealed segments than the limit");
        }
        for s in &self.segments {
            if s.first_txn == 0 || s.first_txn > s.last_txn {
                return Err("a sealed segment's transactions are out of order");
            }
        }
        for pair in self.segments.windows(2) {
            if pair[0].generation >= pair[1].generation
                || pair[0].last_txn.checked_add(1) != Some(pair[1].first_txn)
            {
                return Err("sealed segments are not in order or not contiguous");
            }
        }
        Ok(())
    }

    /// Bytes of sealed log kept.
    pub fn retained_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Reads the feed file of the store in `dir`; an absent file is the default state (no
    /// consumer, nothing sealed).
    pub fn read(storage: &dyn Storage, dir: &Path) -> Result<FeedState> {
        let path = dir.join(FEED_NAME);
        let file = match storage.open(&path, OpenMode::ReadOnly) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FeedState::default()),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        if len > (FEED_HEADER_BYTES + MAX_FEED_BODY_BYTES) as u64 {
            return Err(Error::corruption(
                &path,
                0,
                "feed file larger than any valid one",
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        let n = file
            .read_full_at(&mut bytes, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        bytes.truncate(n);
        FeedState::decode(&bytes, &path)
    }
}

/// Whether `name` may name a consumer: 1 to [`MAX_CONSUMER_NAME_BYTES`] bytes, no control
/// characters.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_CONSUMER_NAME_BYTES {
        return Err(format!(
            "a consumer name has 1 to {MAX_CONSUMER_NAME_BYTES} bytes; this one has {}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("a consumer name has no control characters".into());
    }
    Ok(())
}

enum Problem {
    Unsupported(u32),
    Corrupt(usize, &'static str),
}

/// Checks the header and the body's length and CRC; returns the body.
fn check_header(bytes: &[u8]) -> std::result::Result<&[u8], Problem> {
    use Problem::Corrupt;
    let short = Corrupt(bytes.len(), "feed file shorter than its header");
    let header = bytes.get(..FEED_HEADER_BYTES).ok_or(short)?;
    check_preamble(header, &FEED_MAGIC, HEADER_CRC_AT).map_err(|e| match e {
        PreambleError::Short => Corrupt(bytes.len(), "feed file shorter than its header"),
        PreambleError::BadMagic => Corrupt(0, "bad feed file magic"),
        PreambleError::Version(found) => Problem::Unsupported(found),
        PreambleError::Checksum => Corrupt(HEADER_CRC_AT, "feed file header checksum mismatch"),
        PreambleError::Algorithm(_) => Corrupt(PREAMBLE_ALGORITHM_AT, "unknown checksum algorithm"),
    })?;
    if header[RESERVED_AT..].iter().any(|b| *b != 0) {
        return Err(Corrupt(
            RESERVED_AT,
            "non-zero reserved bytes in feed header",
        ));
    }
    let body_len = read_u32(header, BODY_LEN_AT).unwrap_or(0) as usize;
    if body_len > MAX_FEED_BODY_BYTES || bytes.len() != FEED_HEADER_BYTES + body_len {
        return Err(Corrupt(
            BODY_LEN_AT,
            "feed file length differs from its header",
        ));
    }
    let body = &bytes[FEED_HEADER_BYTES..];
    if crc32(body) != read_u32(header, BODY_CRC_AT).unwrap_or(0) {
        return Err(Corrupt(
            FEED_HEADER_BYTES,
            "feed file body checksum mismatch",
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse_segment_name, segment_name, segment_tmp_name};

    fn sample() -> FeedState {
        let mut s = FeedState::default();
        s.consumers.insert("search-index".into(), 41);
        s.consumers.insert("replica".into(), 7);
        s.segments.push(Sealed {
            generation: 3,
            first_txn: 5,
            last_txn: 20,
            bytes: 9000,
            sealed_at: 1_700_000_000,
        });
        s.segments.push(Sealed {
            generation: 4,
            first_txn: 21,
            last_txn: 21,
            bytes: 4200,
            sealed_at: 1_700_000_100,
        });
        s.applied = Some(99);
        s
    }

    #[test]
    fn a_feed_file_round_trips_and_every_flipped_byte_is_refused() {
        let s = sample();
        let bytes = s.encode();
        let path = Path::new("FEED");
        assert_eq!(FeedState::decode(&bytes, path).expect("decodes"), s);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let err = FeedState::decode(&bad, path).expect_err("refused");
            assert!(
                matches!(
                    err,
                    Error::Corruption { .. } | Error::UnsupportedFormat { .. }
                ),
                "byte {i}: {err}"
            );
        }
        assert!(FeedState::decode(&bytes[..bytes.len() - 1], path).is_err());
        assert!(FeedState::decode(&[], path).is_err());
    }

    #[test]
    fn states_that_break_the_rules_are_refused() {
        let mut gap = sample();
        gap.segments[1].first_txn = 23;
        assert!(gap.check().is_err());
        let mut bad_name = sample();
        bad_name.consumers.insert("a\nb".into(), 1);
        assert!(bad_name.check().is_err());
        // Encoded anyway, the decoder refuses it as corruption.
        let err = FeedState::decode(&bad_name.encode(), Path::new("FEED")).expect_err("refused");
        assert!(err.is_corruption(), "{err}");
    }

    #[test]
    fn segment_names_parse_back() {
        assert_eq!(parse_segment_name(&segment_name(0x2a)), Some((0x2a, false)));
        assert_eq!(parse_segment_name(&segment_tmp_name(7)), Some((7, true)));
        assert_eq!(parse_segment_name("log-2a.seg"), None);
        assert_eq!(parse_segment_name("snap-0000000000000001.dat"), None);
    }
}
