//! What must hold for every input of every fuzz target.
//!
//! This file is compiled twice: as module `checks` of the fuzz crate (`fuzz/src/lib.rs`), and
//! through `#[path]` as a module of `crates/walstore/tests/fuzz_regressions.rs`. So every
//! corpus file and every input the fuzzer ever failed on replays under plain `cargo test`
//! through exactly the checks the fuzzer applied. It uses `walstore` and `std` only.
//!
//! The `recovery` and `ops` inputs are interpreted by the small decoders below (not by the
//! `arbitrary` crate) so that the same bytes mean the same thing in both builds.
//!
//! Every check panics with a message when an invariant fails: that is how libFuzzer and the
//! test harness notice. The including crate provides `crate::alloc_probe::peak_during`, which
//! measures the bytes allocated while a closure runs (the fuzz crate counts them with its
//! global allocator; the test build returns `None` and skips the bound).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use walstore::inspect;
use walstore::storage::{MemoryStorage, Storage, StorageOp};
use walstore::{Durability, Error, Options, RecoveryMode, Store, MAX_KEY_BYTES};

/// A key/value state, as the reference model and as read back from a store.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// The store directory on the in-memory file system.
pub const DIR: &str = "/db";

/// Runs `f` and fails if it allocated more than `factor * input + slack` bytes at its peak.
fn bounded<T>(what: &str, input: usize, factor: usize, slack: usize, f: impl FnOnce() -> T) -> T {
    let (out, peak) = crate::alloc_probe::peak_during(f);
    if let Some(peak) = peak {
        let limit = factor * input + slack;
        assert!(
            peak <= limit,
            "{what}: allocated {peak} bytes at peak for {input} bytes of input (limit {limit})"
        );
    }
    out
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

pub fn crc32(bytes: &[u8]) -> u32 {
    // CRC-32/IEEE (FORMAT.md §1), bitwise: independent of the engine's implementation.
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

// ---------------------------------------------------------------------------------------------
// WAL records and header
// ---------------------------------------------------------------------------------------------

/// `wal_record` target: the input is a WAL header block, one record, a run of records, or a
/// whole WAL file.
///
/// - the header decoder accepts only canonical headers (re-encoding gives the same 44 bytes);
/// - every decoded record is consistent with its bytes and re-encodes to exactly them (puts
///   and deletes), is refused when cut by one byte or when one bit of it is flipped;
/// - decoding allocates at most a small multiple of the input.
pub fn check_wal_bytes(data: &[u8]) {
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
        Err(msg) => assert!(!msg.is_empty(), "empty error message"),
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
            Err(msg) => {
                assert!(!msg.is_empty(), "empty error message");
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

// ---------------------------------------------------------------------------------------------
// Snapshot files
// ---------------------------------------------------------------------------------------------

/// Encodes a snapshot file as FORMAT.md §5 describes it (independently of the engine).
pub fn encode_snapshot(id: u64, entries: &[(Vec<u8>, Vec<u8>)], shared: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut offsets = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        offsets.push(64 + body.len());
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        body.extend_from_slice(key);
        body.extend_from_slice(value);
    }
    let index_offset = 64 + body.len();
    for ((key, _), offset) in entries.iter().zip(offsets) {
        let mut prefix = [0u8; 8];
        let rest = key.get(shared..).unwrap_or(&[]);
        let n = rest.len().min(8);
        prefix[..n].copy_from_slice(&rest[..n]);
        body.extend_from_slice(&prefix);
        body.extend_from_slice(&(offset as u32).to_le_bytes());
    }
    let file_len = 64 + body.len();
    let mut out = Vec::with_capacity(file_len);
    out.extend_from_slice(b"WSTORSNP");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&(index_offset as u64).to_le_bytes());
    out.extend_from_slice(&(file_len as u64).to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&(shared as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let header_crc = crc32(&out[..60]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// `snapshot` target: the input is a snapshot file, decoded under the id its header names.
///
/// - Ok or `Corruption` (with an offset inside the file) or `UnsupportedFormat`, nothing else;
/// - an accepted file has at least one entry, keys in range and strictly increasing, every
///   key starting with the shared prefix, and is exactly the canonical encoding of its entries
///   (so no byte of it escapes validation); the same bytes under another id are refused;
/// - decoding allocates at most a small multiple of the input.
pub fn check_snapshot(data: &[u8]) {
    let id = le_u64(data, 16).unwrap_or(0);
    let decoded = bounded("decode_snapshot", data.len(), 8, 1 << 16, || {
        inspect::decode_snapshot(id, data)
    });
    match decoded {
        Ok(entries) => {
            assert!(!entries.is_empty(), "a snapshot file without entries");
            for pair in entries.windows(2) {
                assert!(pair[0].0 < pair[1].0, "keys not strictly increasing");
            }
            let shared = le_u32(data, 52).expect("an accepted file has a header") as usize;
            for (key, _) in &entries {
                assert!(
                    !key.is_empty() && key.len() <= MAX_KEY_BYTES,
                    "key length {}",
                    key.len()
                );
                assert!(
                    key.len() >= shared && key[..shared] == entries[0].0[..shared],
                    "a key does not start with the shared prefix"
                );
            }
            assert!(
                encode_snapshot(id, &entries, shared) == data,
                "an accepted snapshot file is not the canonical encoding of its entries"
            );
            let other = inspect::decode_snapshot(id ^ 1, data);
            assert!(
                matches!(other, Err(Error::Corruption { .. })),
                "a snapshot file was accepted under another id: {other:?}"
            );
        }
        Err(Error::Corruption { offset, .. }) => assert!(
            offset <= data.len() as u64,
            "corruption reported at offset {offset}, past the {} bytes of the file",
            data.len()
        ),
        Err(Error::UnsupportedFormat { found, .. }) => assert_ne!(found, 1),
        Err(other) => panic!("snapshot decoding failed with an unexpected error: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------------------------

/// Encodes a manifest as FORMAT.md §6 describes it (independently of the engine).
pub fn encode_manifest(info: &inspect::ManifestInfo, next_file_id: u64) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [info.generation, info.salt, info.base_txn, next_file_id] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&(info.segments.len() as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    for (file_id, file_len, entry_count, first_key) in &info.segments {
        body.extend_from_slice(&file_id.to_le_bytes());
        body.extend_from_slice(&file_len.to_le_bytes());
        body.extend_from_slice(&entry_count.to_le_bytes());
        body.extend_from_slice(&(first_key.len() as u32).to_le_bytes());
        body.extend_from_slice(first_key);
    }
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(b"WSTORMAN");
    out.extend_from_slice(&1u32.to_le_bytes());
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
/// - an accepted manifest names snapshot files with ids below its next id, at least one entry
///   each, first keys in range and strictly increasing, and is exactly the canonical encoding
///   of what it says;
/// - decoding allocates at most a small multiple of the input.
pub fn check_manifest(data: &[u8]) {
    let decoded = bounded("decode_manifest", data.len(), 8, 1 << 16, || {
        inspect::decode_manifest(data)
    });
    match decoded {
        Ok(info) => {
            let next_file_id = le_u64(data, 32 + 24).expect("an accepted manifest has a body");
            for (file_id, _, entry_count, first_key) in &info.segments {
                assert!(*file_id < next_file_id, "file id {file_id} >= next id");
                assert!(*entry_count > 0, "segment without entries");
                assert!(!first_key.is_empty() && first_key.len() <= MAX_KEY_BYTES);
            }
            for pair in info.segments.windows(2) {
                assert!(pair[0].3 < pair[1].3, "segments not in key order");
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
        Err(Error::UnsupportedFormat { found, .. }) => assert_ne!(found, 1),
        Err(other) => panic!("manifest decoding failed with an unexpected error: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A whole store directory
// ---------------------------------------------------------------------------------------------

/// A store directory image: a flags byte, then files, each a tag byte, for snapshot files an
/// id byte, a little-endian `u16` length and that many bytes (fewer at the end of the input).
/// Tags (mod 4): 0 `MANIFEST`, 1 `wal`, 2 `snap-<id>.dat`, 3 `snap-<id>.tmp`.
/// Flag bit 0: also open in salvage mode first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreImage {
    pub flags: u8,
    pub files: Vec<(String, Vec<u8>)>,
}

impl StoreImage {
    pub fn parse(data: &[u8]) -> StoreImage {
        let mut r = Reader::new(data);
        let mut image = StoreImage {
            flags: r.u8(),
            files: Vec::new(),
        };
        while !r.is_empty() && image.files.len() < 16 {
            let name = match r.u8() % 4 {
                0 => "MANIFEST".to_string(),
                1 => "wal".to_string(),
                2 => format!("snap-{:016x}.dat", r.u8()),
                _ => format!("snap-{:016x}.tmp", r.u8()),
            };
            let len = usize::from(r.u16());
            let bytes = r.take(len).to_vec();
            image.files.retain(|(n, _)| *n != name);
            image.files.push((name, bytes));
        }
        image
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for (name, bytes) in &self.files {
            let snapshot = |suffix: &str| {
                name.strip_prefix("snap-")
                    .and_then(|n| n.strip_suffix(suffix))
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                    .and_then(|id| u8::try_from(id).ok())
            };
            let (tag, id) = match name.as_str() {
                "MANIFEST" => (0u8, None),
                "wal" => (1, None),
                _ => match (snapshot(".dat"), snapshot(".tmp")) {
                    (Some(id), _) => (2, Some(id)),
                    (None, Some(id)) => (3, Some(id)),
                    // Not expressible in an image (MANIFEST.tmp, snapshot ids above 255).
                    (None, None) => continue,
                },
            };
            out.push(tag);
            out.extend(id);
            let len = bytes.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&bytes[..len]);
        }
        out
    }

    /// Writes the files durably into a fresh in-memory file system.
    pub fn materialize(&self) -> MemoryStorage {
        let mem = MemoryStorage::new();
        mem.create_dir_all(Path::new(DIR)).expect("mkdir");
        for (name, bytes) in &self.files {
            mem.write_file_durable(&Path::new(DIR).join(name), bytes);
        }
        mem
    }

    /// The files of the store in `DIR` of `mem` (not the lock file).
    pub fn capture(mem: &MemoryStorage, flags: u8) -> StoreImage {
        let mut names = mem.list_dir(Path::new(DIR)).expect("list");
        names.sort();
        let files = names
            .into_iter()
            .filter(|n| n != "LOCK")
            .filter_map(|n| mem.read_file(&Path::new(DIR).join(&n)).map(|b| (n, b)))
            .collect();
        StoreImage { flags, files }
    }
}

/// Options every check opens with: in memory, no background thread, small files.
pub fn options(mem: &MemoryStorage) -> Options {
    Options::new()
        .storage(Arc::new(mem.clone()))
        .auto_checkpoint(false)
        .wal_preallocate_bytes(4096)
        .segment_size_bytes_target(4096)
}

/// Everything a store shows, checked for internal consistency: the range scan is in strictly
/// increasing key order and agrees with point lookups.
pub fn read_state(store: &Store) -> walstore::Result<(u64, State)> {
    let read = store.begin_read()?;
    let mut state = State::new();
    for item in read.range::<&[u8], _>(..)? {
        let (key, value) = item?;
        if let Some((last, _)) = state.last_key_value() {
            assert!(
                *last < key,
                "range scan not in strictly increasing key order"
            );
        }
        state.insert(key, value.to_vec());
    }
    for (key, value) in &state {
        let got = read.get(key)?.map(|v| v.to_vec());
        assert_eq!(
            got.as_ref(),
            Some(value),
            "point lookup disagrees with the scan"
        );
    }
    Ok((read.txn_id(), state))
}

fn must_read(store: &Store, when: &str) -> (u64, State) {
    read_state(store)
        .unwrap_or_else(|e| panic!("{when}: the state of an open store is unreadable: {e}"))
}

/// Errors an open of arbitrary bytes may end with: the bytes are refused, never an I/O error
/// (the in-memory file system has no faults here) or a panic.
fn assert_refusal(e: &Error, when: &str) {
    assert!(
        matches!(
            e,
            Error::Corruption { .. } | Error::UnsupportedFormat { .. } | Error::NotAStore { .. }
        ),
        "{when}: open failed with {e:?}, which is not a refusal of damaged files"
    );
}

/// Damage that `inspect::dump_wal` proves (a later intact commit vouches that the damaged
/// bytes had been synced) in the WAL generation the manifest names: recovery must report it,
/// never truncate it away silently (fault-model invariant 7).
fn wal_damage_proven(mem: &MemoryStorage) -> Option<String> {
    let manifest = mem.read_file(Path::new("/db/MANIFEST"))?;
    let manifest = inspect::decode_manifest(&manifest).ok()?;
    let dump = inspect::dump_wal(mem, Path::new(DIR)).ok()?;
    match dump.verdict {
        inspect::TailVerdict::Corruption { offset, detail }
            if dump.generation == manifest.generation && dump.salt == manifest.salt =>
        {
            Some(format!("at offset {offset}: {detail}"))
        }
        _ => None,
    }
}

/// `recovery` target: a whole store directory image.
///
/// - Opening returns Ok or refuses the files (`Corruption`, `UnsupportedFormat`, `NotAStore`),
///   and refuses them when the WAL holds damage a later commit proves was durable;
///   salvage mode (flag bit 0) likewise, and then it is read-only, changes no byte, and agrees
///   with a strict open that succeeds;
/// - an opened store reads fully and consistently; reopening shows the same transaction id
///   and state (recovery's decisions are stable);
/// - a write succeeds; a checkpoint succeeds; after a simulated power cut the store opens
///   again with exactly the first state plus that write (a valid history), and every file it
///   references checks out with no orphan left;
/// - memory stays bounded by a small multiple of the image.
pub fn check_recovery(data: &[u8]) {
    let image = StoreImage::parse(data);
    bounded("recovery", data.len(), 64, 8 << 20, || {
        recover_image(&image)
    });
}

fn recover_image(image: &StoreImage) {
    let mem = image.materialize();
    let salvaged = if image.flags & 1 != 0 {
        match options(&mem).recovery(RecoveryMode::Salvage).open(DIR) {
            Ok(store) => {
                assert!(store.is_read_only(), "salvage mode opened writable");
                let state = must_read(&store, "salvage");
                let write = store.update(|tx| tx.put(b"k", b"v"));
                assert!(
                    matches!(write, Err(Error::ReadOnly)),
                    "a write in salvage mode returned {write:?}"
                );
                drop(store);
                let after = StoreImage::capture(&mem, image.flags);
                let before = StoreImage::capture(&image.materialize(), image.flags);
                assert!(after == before, "salvage mode modified the files");
                Some(state)
            }
            Err(e) => {
                assert!(
                    !matches!(e, Error::Io { .. }),
                    "salvage open failed with an I/O error: {e:?}"
                );
                None
            }
        }
    } else {
        None
    };
    let proven_damage = wal_damage_proven(&mem);
    let store = match options(&mem).open(DIR) {
        Ok(store) => store,
        Err(e) => {
            assert_refusal(&e, "first open");
            return;
        }
    };
    if let Some(detail) = proven_damage {
        panic!("the WAL holds damage to bytes proven durable ({detail}), yet open succeeded");
    }
    let first = must_read(&store, "first open");
    if let Some(salvaged) = salvaged {
        assert!(
            salvaged == first,
            "salvage mode read txn {} ({} keys), a strict open txn {} ({} keys)",
            salvaged.0,
            salvaged.1.len(),
            first.0,
            first.1.len()
        );
    }
    drop(store);
    let store = options(&mem)
        .open(DIR)
        .unwrap_or_else(|e| panic!("a store that opened does not open again: {e}"));
    let again = must_read(&store, "second open");
    assert!(
        again == first,
        "reopening changed the state: txn {} -> {}",
        first.0,
        again.0
    );

    let probe: &[u8] = b"\xff\xfefuzz-probe";
    store
        .update(|tx| tx.put(probe, b"written after recovery"))
        .unwrap_or_else(|e| panic!("a write after recovery failed: {e}"));
    let mut expected = first.1.clone();
    expected.insert(probe.to_vec(), b"written after recovery".to_vec());
    let expected = (first.0 + 1, expected);
    assert!(
        must_read(&store, "after the write") == expected,
        "the write is not visible"
    );
    store
        .checkpoint()
        .unwrap_or_else(|e| panic!("a checkpoint after recovery failed: {e}"));
    assert!(
        must_read(&store, "after the checkpoint") == expected,
        "checkpoint changed the state"
    );
    drop(store);
    mem.crash();
    let store = options(&mem).open(DIR).unwrap_or_else(|e| {
        panic!("the store does not open after a write, a checkpoint and a crash: {e}")
    });
    let last = must_read(&store, "after the crash");
    assert!(
        last == expected,
        "after a crash: txn {} with {} keys, expected txn {} with {} keys",
        last.0,
        last.1.len(),
        expected.0,
        expected.1.len()
    );
    let report = inspect::verify(&mem, Path::new(DIR), |_, _| {})
        .unwrap_or_else(|e| panic!("verify failed after recovery: {e}"));
    for file in &report.files {
        assert!(
            file.problem.is_none(),
            "after a checkpoint and reopen, {} has a problem: {:?}",
            file.name,
            file.problem
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Operation sequences against a reference model
// ---------------------------------------------------------------------------------------------

/// Reads an input as a stream of small numbers; past its end every read is zero.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = end;
        &self.data[start..end]
    }
}

/// One step of an operation sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A write transaction: writes (key number, value length or `None` to delete), then
    /// commit (or abort when `commit` is false).
    Txn {
        writes: Vec<(u8, Option<u16>)>,
        commit: bool,
        durability: Durability,
    },
    /// `Store::checkpoint`.
    Checkpoint,
    /// Drop the store and open it again (a process exit: nothing written is lost).
    Reopen,
    /// Drop the store, lose everything not synced, open again.
    Crash,
    /// Arm a fault: the mutating call after `after` more (of kind `only`) fails with
    /// `errno`, and every later one too if `persistent`.
    Fault {
        after: u8,
        only: Option<StorageOp>,
        errno: i32,
        persistent: bool,
    },
    /// Compare the store's state with the model.
    Check,
}

impl Op {
    /// Decodes up to 48 operations.
    pub fn parse_all(data: &[u8]) -> Vec<Op> {
        let mut r = Reader::new(data);
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < 48 {
            let op = match r.u8() % 10 {
                0..=3 => {
                    let flags = r.u8();
                    let n = usize::from(flags & 7) + 1;
                    let writes = (0..n)
                        .map(|_| {
                            let key = r.u8();
                            let len = r.u8();
                            // One in eight writes is a delete; some values are long enough to
                            // cross the 4 KiB blocks and split snapshot files.
                            let value = match len % 8 {
                                0 => None,
                                7 => Some(u16::from(len) * 24),
                                _ => Some(u16::from(len) % 64),
                            };
                            (key % 24, value)
                        })
                        .collect();
                    Op::Txn {
                        writes,
                        commit: flags & 0x30 != 0x30,
                        durability: if flags & 0x40 != 0 {
                            Durability::Buffered
                        } else {
                            Durability::Immediate
                        },
                    }
                }
                4 => Op::Checkpoint,
                5 => Op::Reopen,
                6 => Op::Crash,
                7 => {
                    let after = r.u8() % 24;
                    let kind = r.u8();
                    let only = match kind % 8 {
                        0 => None,
                        1 | 2 => Some(StorageOp::Sync),
                        3 => Some(StorageOp::Write),
                        4 => Some(StorageOp::SetLen),
                        5 => Some(StorageOp::Create),
                        6 => Some(StorageOp::Rename),
                        _ => Some(StorageOp::SyncDir),
                    };
                    Op::Fault {
                        after,
                        only,
                        errno: if kind & 0x10 != 0 { 28 } else { 5 },
                        persistent: kind & 0x20 != 0,
                    }
                }
                _ => Op::Check,
            };
            ops.push(op);
        }
        ops
    }
}

fn key_of(n: u8) -> Vec<u8> {
    // Keys share a long prefix (exercises the snapshot shared prefix) except a few.
    if n % 6 == 5 {
        vec![b'z', n]
    } else {
        format!("user/{n:04}").into_bytes()
    }
}

fn value_of(txn: u64, i: usize, len: u16) -> Vec<u8> {
    let mut v = format!("{txn}.{i};").into_bytes();
    v.resize(usize::from(len).max(v.len()), b'.');
    v
}

/// The reference model of an operation sequence and the live store it is checked against.
struct OpsRun {
    mem: MemoryStorage,
    store: Option<Store>,
    /// States the store went through since recovery last decided, oldest first; the last one
    /// is what the store shows.
    history: Vec<State>,
    /// Index into `history` of the oldest state a crash may go back to (everything up to it
    /// was acknowledged durable).
    durable: usize,
    /// The state with a commit that failed after its bytes may have been written: the store
    /// may recover it or not, atomically.
    indeterminate: Option<State>,
    /// Whether the handle must refuse writes with `Error::Poisoned`.
    poisoned: bool,
    fault_armed: bool,
    txns: u64,
}

impl OpsRun {
    fn current(&self) -> &State {
        self.history.last().expect("history is never empty")
    }

    fn open(&mut self, when: &str) {
        let store = match options(&self.mem).open(DIR) {
            Ok(store) => store,
            Err(e) if self.fault_armed => {
                assert!(
                    matches!(e, Error::Io { .. }),
                    "{when}: open under an injected fault failed with {e:?}"
                );
                self.mem.clear_fault();
                self.fault_armed = false;
                options(&self.mem)
                    .open(DIR)
                    .unwrap_or_else(|e| panic!("{when}: open after the fault was cleared: {e}"))
            }
            Err(e) => panic!("{when}: open failed: {e}"),
        };
        let (_, state) = must_read(&store, when);
        let allowed: Vec<&State> = self.history[self.durable..]
            .iter()
            .chain(self.indeterminate.as_ref())
            .collect();
        assert!(
            allowed.contains(&&state),
            "{when}: recovered {} keys, which is none of the {} states a valid history allows \
             (the newest has {} keys)",
            state.len(),
            allowed.len(),
            self.current().len()
        );
        self.history = vec![state];
        self.durable = 0;
        self.indeterminate = None;
        self.poisoned = false;
        self.store = Some(store);
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("the store is open")
    }

    fn txn(&mut self, writes: &[(u8, Option<u16>)], commit: bool, durability: Durability) {
        self.txns += 1;
        let n = self.txns;
        let mut tx = match self.store().begin_write() {
            Ok(tx) => tx,
            Err(Error::Poisoned { .. }) => {
                assert!(
                    self.poisoned || self.store().is_poisoned(),
                    "begin_write returned Poisoned on a handle that is not"
                );
                self.poisoned = true;
                return;
            }
            Err(e) => {
                assert!(
                    !self.poisoned,
                    "begin_write on a poisoned handle returned {e:?}, not Poisoned"
                );
                assert!(
                    self.fault_armed && matches!(e, Error::Io { .. }),
                    "begin_write failed: {e:?}"
                );
                self.poisoned = true;
                assert!(
                    self.store().is_poisoned(),
                    "an I/O error did not poison the handle"
                );
                return;
            }
        };
        assert!(!self.poisoned, "begin_write succeeded on a poisoned handle");
        tx.set_durability(durability);
        let mut next = self.current().clone();
        for (i, (key, value)) in writes.iter().enumerate() {
            let key = key_of(*key);
            match value {
                Some(len) => {
                    let value = value_of(n, i, *len);
                    tx.put(&key, &value).expect("valid put");
                    next.insert(key, value);
                }
                None => {
                    tx.delete(&key).expect("valid delete");
                    next.remove(&key);
                }
            }
        }
        if !commit {
            tx.abort();
            return;
        }
        match tx.commit() {
            Ok(()) => {
                self.history.push(next);
                if durability == Durability::Immediate {
                    self.durable = self.history.len() - 1;
                }
            }
            Err(Error::Io { .. }) if self.fault_armed => {
                assert!(
                    self.store().is_poisoned(),
                    "a commit that failed with an I/O error did not poison the handle"
                );
                self.poisoned = true;
                self.indeterminate = Some(next);
                let again = self.store().update(|tx| tx.put(b"after-failure", b"x"));
                assert!(
                    matches!(again, Err(Error::Poisoned { .. })),
                    "a commit after a failed one returned {again:?}, not Poisoned"
                );
            }
            Err(e) => panic!("commit failed: {e:?}"),
        }
    }

    fn check_visible(&self, when: &str) {
        let (_, state) = must_read(self.store(), when);
        let ok = state == *self.current() || self.indeterminate.as_ref() == Some(&state);
        assert!(
            ok,
            "{when}: the store shows {} keys, the model {}",
            state.len(),
            self.current().len()
        );
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Txn {
                writes,
                commit,
                durability,
            } => self.txn(writes, *commit, *durability),
            Op::Checkpoint => match self.store().checkpoint() {
                Ok(_) => {
                    assert!(
                        !self.poisoned,
                        "a checkpoint succeeded on a poisoned handle"
                    );
                    // A checkpoint makes everything committed durable.
                    if self.indeterminate.is_none() {
                        self.durable = self.history.len() - 1;
                    }
                }
                Err(Error::Poisoned { .. }) => {
                    assert!(
                        self.store().is_poisoned(),
                        "Poisoned from an unpoisoned handle"
                    );
                    self.poisoned = true;
                }
                Err(e) => {
                    assert!(
                        self.fault_armed && matches!(e, Error::Io { .. }),
                        "checkpoint failed: {e:?}"
                    );
                    self.poisoned |= self.store().is_poisoned();
                }
            },
            Op::Reopen => {
                self.store = None;
                // Without a crash every byte written survives: only the newest state (or the
                // failed commit, which may have reached the file) is allowed.
                self.durable = self.history.len() - 1;
                self.open("reopen");
            }
            Op::Crash => {
                self.store = None;
                self.mem.crash();
                self.fault_armed = false;
                self.open("reopen after a crash");
            }
            Op::Fault {
                after,
                only,
                errno,
                persistent,
            } => {
                self.mem
                    .fail_after(u64::from(*after), *only, *errno, *persistent);
                self.fault_armed = true;
            }
            Op::Check => self.check_visible("check"),
        }
        if self.poisoned {
            let write = self.store().update(|tx| tx.put(b"poison-probe", b"x"));
            assert!(
                matches!(write, Err(Error::Poisoned { .. })),
                "a write on a poisoned handle returned {write:?}"
            );
        }
    }
}

/// `ops` target: an operation sequence (transactions, aborts, checkpoints, reopens, crashes,
/// injected I/O faults) against a `BTreeMap` model.
///
/// - every committed `Immediate` transaction survives a crash; a reopen without a crash keeps
///   everything; recovered states are exactly states of the model's history (prefix
///   consistency, atomicity, no phantoms from aborted transactions);
/// - a commit that fails with an I/O error poisons the handle (every later write returns
///   `Poisoned`) and is recovered all or nothing;
/// - a fresh open after every fault is cleared succeeds.
pub fn check_ops(data: &[u8]) {
    let ops = Op::parse_all(data);
    run_ops(&ops);
}

/// Runs `ops` against a fresh in-memory store and the model.
pub fn run_ops(ops: &[Op]) {
    let mem = MemoryStorage::new();
    let store = options(&mem).open(DIR).expect("create a store");
    let mut run = OpsRun {
        mem,
        store: Some(store),
        history: vec![State::new()],
        durable: 0,
        indeterminate: None,
        poisoned: false,
        fault_armed: false,
        txns: 0,
    };
    for op in ops {
        run.step(op);
    }
    // The end of every sequence: clear faults, crash, recover, check, write, crash, check.
    run.mem.clear_fault();
    run.fault_armed = false;
    run.store = None;
    run.mem.crash();
    run.open("final crash");
    run.txn(&[(1, Some(3)), (2, None)], true, Durability::Immediate);
    run.check_visible("final write");
    run.store = None;
    run.mem.crash();
    run.open("final crash after a write");
}
