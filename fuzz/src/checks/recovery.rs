//! The `recovery` target: a whole store directory image, opened, reopened, written,
//! checkpointed and crashed.

use super::common::{assert_refusal, bounded, must_read, options, read_state, State, DIR};
use super::input::{Blob, Encoder};
use arbitrary::Arbitrary;
use std::path::Path;
use walstore::inspect;
use walstore::storage::{MemoryStorage, Storage};
use walstore::{Error, RecoveryMode, Store};

/// The input of the `recovery` target: the files of a store directory, and whether to open it
/// in salvage mode first.
#[derive(Arbitrary, Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInput {
    pub salvage: bool,
    pub files: Vec<ImageFile>,
}

/// One file of a store directory image.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub name: FileName,
    pub bytes: Blob,
}

/// The names a store directory image can hold (snapshot ids up to 255).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    Manifest,
    Wal,
    Snapshot(u8),
    SnapshotTmp(u8),
}

impl FileName {
    const COUNT: usize = 4;

    fn name(self) -> String {
        match self {
            FileName::Manifest => "MANIFEST".into(),
            FileName::Wal => "wal".into(),
            FileName::Snapshot(id) => format!("snap-{id:016x}.dat"),
            FileName::SnapshotTmp(id) => format!("snap-{id:016x}.tmp"),
        }
    }

    /// The image name of a store file, if an image can hold it (not `MANIFEST.tmp`, nor
    /// snapshot ids above 255).
    fn of(name: &str) -> Option<FileName> {
        let snapshot = |suffix: &str| {
            name.strip_prefix("snap-")
                .and_then(|n| n.strip_suffix(suffix))
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .and_then(|id| u8::try_from(id).ok())
        };
        match name {
            "MANIFEST" => Some(FileName::Manifest),
            "wal" => Some(FileName::Wal),
            _ => snapshot(".dat")
                .map(FileName::Snapshot)
                .or_else(|| snapshot(".tmp").map(FileName::SnapshotTmp)),
        }
    }

    fn encode(self, e: &mut Encoder) {
        match self {
            FileName::Manifest => e.variant(0, Self::COUNT),
            FileName::Wal => e.variant(1, Self::COUNT),
            FileName::Snapshot(id) => e.variant(2, Self::COUNT).u8(id),
            FileName::SnapshotTmp(id) => e.variant(3, Self::COUNT).u8(id),
        };
    }
}

/// Most files an image holds (more are ignored).
const IMAGE_FILES_MAX: usize = 16;

/// A store directory image: its files by name (a later file of the same name replaces an
/// earlier one), and whether to open it in salvage mode first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreImage {
    pub salvage: bool,
    pub files: Vec<(String, Vec<u8>)>,
}

impl StoreImage {
    /// The image a `recovery` input describes.
    pub fn parse(data: &[u8]) -> StoreImage {
        let input: RecoveryInput = super::input::decode(data);
        let mut image = StoreImage {
            salvage: input.salvage,
            files: Vec::new(),
        };
        for file in input.files.into_iter().take(IMAGE_FILES_MAX) {
            let name = file.name.name();
            image.files.retain(|(n, _)| *n != name);
            image.files.push((name, file.bytes.0));
        }
        image
    }

    /// The `recovery` input of this image (files an image cannot hold are left out; files
    /// are cut at 64 KiB).
    pub fn encode(&self) -> Vec<u8> {
        let files: Vec<(FileName, &[u8])> = self
            .files
            .iter()
            .filter_map(|(name, bytes)| FileName::of(name).map(|n| (n, &bytes[..])))
            .collect();
        let mut e = Encoder::new();
        e.bool(self.salvage).list(&files, |e, (name, bytes)| {
            name.encode(e);
            e.blob(bytes);
        });
        e.finish()
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
    pub fn capture(mem: &MemoryStorage, salvage: bool) -> StoreImage {
        let mut names = mem.list_dir(Path::new(DIR)).expect("list");
        names.sort();
        let files = names
            .into_iter()
            .filter(|n| n != "LOCK")
            .filter_map(|n| mem.read_file(&Path::new(DIR).join(&n)).map(|b| (n, b)))
            .collect();
        StoreImage { salvage, files }
    }
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
///   salvage mode (`salvage`) likewise, and then it is read-only, changes no byte, and agrees
///   with a strict open that succeeds;
/// - an opened store reads fully and consistently, or a read fails on a damaged page of a
///   snapshot file (checked at its first read, RECOVERY.md O7a); reopening shows the same
///   transaction id and state (recovery's decisions are stable);
/// - a write succeeds; a checkpoint succeeds; after a simulated power cut the store opens
///   again with exactly the first state plus that write (a valid history), and every file it
///   references checks out with no orphan left;
/// - memory stays bounded by a small multiple of the image.
pub fn check(data: &[u8]) {
    let image = StoreImage::parse(data);
    bounded("recovery", data.len(), 64, 8 << 20, || {
        recover_image(&image)
    });
}

fn recover_image(image: &StoreImage) {
    let mem = image.materialize();
    let salvaged = if image.salvage {
        open_salvage(image, &mem)
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
    let first = match read_state(&store) {
        Ok(first) => first,
        Err(e) => {
            assert_damaged_page(image, &e);
            return;
        }
    };
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
    write_checkpoint_crash(&mem, store, first);
}

/// An open reads a snapshot file's header, page table and range deletions, and checks each
/// other page at its first read (RECOVERY.md O7a, FORMAT.md §5.4): a store with a damaged page
/// opens, and the read that meets the page fails. That failure must be `Corruption` naming a
/// snapshot file of the image whose bytes do not verify, never anything else.
fn assert_damaged_page(image: &StoreImage, e: &Error) {
    let Error::Corruption { file, .. } = e else {
        panic!("first open: the state of an open store is unreadable: {e}");
    };
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let id = name
        .strip_prefix("snap-")
        .and_then(|rest| rest.strip_suffix(".dat"))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("first open: a read failed on {name}, not a snapshot file: {e}"));
    let bytes = image
        .files
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("first open: {name} is not in the image: {e}"));
    assert!(
        inspect::decode_snapshot(id, bytes).is_err(),
        "first open: a read reported {name} damaged, but its bytes verify: {e}"
    );
}

/// Opens the image in salvage mode: read-only, changes no byte. Returns what it reads.
fn open_salvage(image: &StoreImage, mem: &MemoryStorage) -> Option<(u64, State)> {
    match options(mem).recovery(RecoveryMode::Salvage).open(DIR) {
        Ok(store) => {
            assert!(store.is_read_only(), "salvage mode opened writable");
            let state = must_read(&store, "salvage");
            let write = store.update(|tx| tx.put(b"k", b"v"));
            assert!(
                matches!(write, Err(Error::ReadOnly)),
                "a write in salvage mode returned {write:?}"
            );
            drop(store);
            let after = StoreImage::capture(mem, image.salvage);
            let before = StoreImage::capture(&image.materialize(), image.salvage);
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
}

/// After recovery showed `first`: a write and a checkpoint succeed, and after a power cut
/// the store shows exactly `first` plus the write, with every file checking out.
fn write_checkpoint_crash(mem: &MemoryStorage, store: Store, first: (u64, State)) {
    let probe: &[u8] = b"\xff\xfefuzz-probe";
    store
        .update(|tx| tx.put(probe, b"written after recovery"))
        .unwrap_or_else(|e| panic!("a write after recovery failed: {e}"));
    let mut expected = first.1;
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
    let store = options(mem).open(DIR).unwrap_or_else(|e| {
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
    let report = inspect::verify(mem, Path::new(DIR), |_, _| {})
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
