//! The fuzz corpora and every input the fuzzers ever failed on, replayed under plain
//! `cargo test` through exactly the checks the fuzz targets apply (`fuzz/src/checks/` is
//! compiled into this test), plus the generator of the seed corpora.
//!
//! - `fuzz/corpus/<target>/`: seeds made from real store files written by the engine (valid,
//!   torn, corrupted). Regenerate with `WALSTORE_WRITE_CORPUS=1 cargo test -p walstore --test
//!   fuzz_regressions seed_corpus`.
//! - `fuzz/regressions/<target>/`: inputs that made a target fail once (minimized with
//!   `cargo fuzz tmin`); each must pass now.
//!
//! The allocation bound of the targets is enforced only in the fuzz build (its counting
//! global allocator); here every other check applies.

#[allow(dead_code)]
#[path = "../../../fuzz/src/checks/mod.rs"]
mod checks;

/// No allocation counting in this build (see the module documentation).
mod alloc_probe {
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
        (f(), None)
    }
}

use checks::common::{options, DIR};
use checks::ops::Op;
use checks::recovery::StoreImage;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use walstore::storage::{MemoryStorage, Storage, StorageOp};
use walstore::{Durability, Store};

const TARGETS: [&str; 8] = [
    "wal_record",
    "snapshot",
    "manifest",
    "feedfile",
    "index",
    "logindex",
    "recovery",
    "ops",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn check_for(target: &str) -> fn(&[u8]) {
    match target {
        "wal_record" => checks::wal_record::check,
        "snapshot" => checks::snapshot::check,
        "manifest" => checks::manifest::check,
        "feedfile" => checks::feedfile::check,
        "index" => checks::index::check,
        "logindex" => checks::logindex::check,
        "recovery" => checks::recovery::check,
        "ops" => checks::ops::check,
        other => panic!("no target {other}"),
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every corpus and regression file of `target` through its check; fails naming every
/// file that fails.
fn replay(target: &str) {
    let check = check_for(target);
    let corpus = files_in(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no seed corpus for {target} in fuzz/corpus/{target}"
    );
    let regressions = files_in(&fuzz_dir().join("regressions").join(target));
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let bytes = std::fs::read(path).expect("read corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
}

#[test]
fn wal_record_corpus_and_regressions_pass() {
    replay("wal_record");
}

#[test]
fn snapshot_corpus_and_regressions_pass() {
    replay("snapshot");
}

#[test]
fn manifest_corpus_and_regressions_pass() {
    replay("manifest");
}

#[test]
fn feedfile_corpus_and_regressions_pass() {
    replay("feedfile");
}

#[test]
fn index_corpus_and_regressions_pass() {
    replay("index");
}

#[test]
fn logindex_corpus_and_regressions_pass() {
    replay("logindex");
}

#[test]
fn recovery_corpus_and_regressions_pass() {
    replay("recovery");
}

#[test]
fn ops_corpus_and_regressions_pass() {
    replay("ops");
}

// ---------------------------------------------------------------------------------------------
// The seed corpus generator
// ---------------------------------------------------------------------------------------------

fn open(mem: &MemoryStorage) -> Store {
    options(mem).open(DIR).expect("open")
}

fn commit(store: &Store, writes: &[(&str, Option<&[u8]>)]) {
    store
        .update(|tx| {
            for (key, value) in writes {
                match value {
                    Some(v) => tx.put(key.as_bytes(), v)?,
                    None => tx.delete(key.as_bytes())?,
                }
            }
            Ok::<_, walstore::Error>(())
        })
        .expect("commit");
}

fn value(n: usize, len: usize) -> Vec<u8> {
    let mut v = format!("value-{n}-").into_bytes();
    v.resize(len.max(v.len()), b'v' + (n % 3) as u8);
    v
}

/// A WAL without its trailing zero fill (still a valid WAL: the log ends at end of file).
fn trimmed(wal: &[u8]) -> Vec<u8> {
    let end = wal.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    wal[..end.max(64)].to_vec()
}

fn image_of(mem: &MemoryStorage, salvage: bool) -> StoreImage {
    let mut image = StoreImage::capture(mem, salvage);
    for (name, bytes) in &mut image.files {
        if name == "wal" {
            *bytes = trimmed(bytes);
        }
    }
    image
}

fn file<'a>(image: &'a StoreImage, name: &str) -> &'a [u8] {
    &image
        .files
        .iter()
        .find(|(n, _)| n == name)
        .expect("file in image")
        .1
}

fn with_file(image: &StoreImage, name: &str, bytes: Vec<u8>) -> StoreImage {
    let mut out = image.clone();
    out.files.retain(|(n, _)| n != name);
    out.files.push((name.to_string(), bytes));
    out
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = at.min(out.len() - 1);
    out[at] ^= 0x5a;
    out
}

/// A named store directory image.
type Images = Vec<(String, StoreImage)>;
/// A named seed file of a target.
type Seeds = Vec<(&'static str, String, Vec<u8>)>;

/// The stores the damaged seeds are made from.
struct Bases {
    wal_only: StoreImage,
    checkpointed: StoreImage,
    twice: StoreImage,
}

/// Named seed files for every target, from real stores written by the engine.
fn seed_corpus() -> Seeds {
    let mut images = Images::new();
    let bases = base_images(&mut images);
    crash_images(&mut images);
    torn_images(&bases, &mut images);
    damaged_images(&bases, &mut images);
    let mut out: Seeds = images
        .iter()
        .map(|(name, image)| ("recovery", name.clone(), image.encode()))
        .collect();
    decoder_seeds(&bases, &mut out);
    index_seeds(&mut out);
    logindex_seeds(&mut out);
    feedfile_seeds(&mut out);
    // Operation sequences: transactions, checkpoints, reopens, crashes and faults.
    for (name, ops) in ops_seeds() {
        out.push(("ops", name.into(), Op::encode_all(&ops)));
    }
    out
}

/// A new store, a store with its WAL only, and stores after one and two checkpoints.
fn base_images(images: &mut Images) -> Bases {
    // A new store.
    let mem = MemoryStorage::new();
    drop(open(&mem));
    images.push(("new-store".into(), image_of(&mem, false)));

    // Transactions in the WAL only: puts, a delete, a multi-key transaction.
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("a", Some(b"1"))]);
    commit(&store, &[("b", Some(b"2")), ("c", Some(b"3")), ("a", None)]);
    commit(&store, &[("user/0001", Some(&value(1, 40)))]);
    drop(store);
    let wal_only = image_of(&mem, false);
    images.push(("wal-only".into(), wal_only.clone()));

    // A checkpoint into several snapshot files, then more transactions.
    let mem = MemoryStorage::new();
    let store = open(&mem);
    for i in 0..20 {
        let key = format!("user/{i:04}");
        commit(&store, &[(&key, Some(&value(i, 200)))]);
    }
    commit(&store, &[("zz", Some(b"last")), ("user/0003", None)]);
    store.checkpoint().expect("checkpoint");
    commit(
        &store,
        &[("user/0005", Some(b"after checkpoint")), ("m", Some(b"x"))],
    );
    commit(&store, &[("user/0006", None)]);
    drop(store);
    let checkpointed = image_of(&mem, false);
    images.push(("checkpointed".into(), checkpointed.clone()));
    images.push((
        "checkpointed-salvage".into(),
        StoreImage {
            salvage: true,
            ..checkpointed.clone()
        },
    ));

    // A second checkpoint that rewrites only some snapshot files.
    let mem2 = MemoryStorage::new();
    for (name, bytes) in &checkpointed.files {
        mem2.create_dir_all(Path::new(DIR)).expect("mkdir");
        mem2.write_file_durable(&Path::new(DIR).join(name), bytes);
    }
    let store = open(&mem2);
    commit(&store, &[("user/0020", Some(b"changed"))]);
    store.checkpoint().expect("checkpoint");
    drop(store);
    let twice = image_of(&mem2, false);
    images.push(("checkpointed-twice".into(), twice.clone()));

    Bases {
        wal_only,
        checkpointed,
        twice,
    }
}

/// Stores after crashes: Buffered commits lost, checkpoints interrupted at every step.
fn crash_images(images: &mut Images) {
    // Buffered commits lost at a crash.
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("kept", Some(b"durable"))]);
    let mut tx = store.begin_write().expect("begin");
    tx.set_durability(Durability::Buffered);
    tx.put(b"lost", b"buffered").expect("put");
    tx.commit().expect("commit");
    drop(store);
    mem.crash();
    images.push(("buffered-then-crash".into(), image_of(&mem, false)));

    // Checkpoints interrupted by a failed sync or rename, then a crash: the durable files of
    // every step of a checkpoint.
    for n in [0u64, 1, 2, 3, 5, 8] {
        let mem = MemoryStorage::new();
        let store = open(&mem);
        for i in 0..6 {
            commit(&store, &[(&format!("k{i}"), Some(&value(i, 100)))]);
        }
        mem.fail_after(n, Some(StorageOp::Sync), 5, true);
        let result = store.checkpoint();
        mem.clear_fault();
        drop(store);
        mem.crash();
        let label = if result.is_ok() { "done" } else { "failed" };
        images.push((
            format!("checkpoint-sync-{n}-{label}"),
            image_of(&mem, false),
        ));
    }
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("r", Some(b"1"))]);
    mem.fail_after(0, Some(StorageOp::Rename), 5, true);
    let _ = store.checkpoint();
    drop(store);
    mem.crash();
    images.push(("checkpoint-rename-failed".into(), image_of(&mem, false)));
}

/// Torn tails: the WAL cut inside the last transaction, garbage or zeros after it.
fn torn_images(bases: &Bases, images: &mut Images) {
    let Bases {
        wal_only,
        checkpointed,
        ..
    } = bases;
    // Cut in a header and in a payload.
    let wal = file(checkpointed, "wal").to_vec();
    for cut in [1usize, 17, 40, 60] {
        let torn = wal[..wal.len() - cut].to_vec();
        images.push((
            format!("torn-tail-{cut}"),
            with_file(checkpointed, "wal", torn),
        ));
    }
    // A torn tail with garbage after it, and a zero-filled tail.
    let mut garbage = wal.clone();
    garbage.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    images.push((
        "garbage-tail".into(),
        with_file(checkpointed, "wal", garbage),
    ));
    let mut zeros = file(wal_only, "wal").to_vec();
    zeros.extend([0u8; 512]);
    images.push(("zero-tail".into(), with_file(wal_only, "wal", zeros)));
}

fn snapshot_name_of(image: &StoreImage) -> String {
    image
        .files
        .iter()
        .map(|(n, _)| n.clone())
        .find(|n| n.ends_with(".dat"))
        .expect("a snapshot file")
}

/// Damaged stores.
fn damaged_images(bases: &Bases, images: &mut Images) {
    let Bases {
        wal_only,
        checkpointed,
        ..
    } = bases;
    let wal = file(checkpointed, "wal").to_vec();
    // Corruption: damage in the middle of the log, in the header, in a snapshot file, in the
    // manifest; a missing snapshot file; a missing WAL; a missing manifest.
    let only_wal = file(wal_only, "wal").to_vec();
    images.push((
        "wal-mid-record-flip".into(),
        with_file(wal_only, "wal", flipped(&only_wal, 4096 + 40)),
    ));
    images.push((
        "wal-header-flip".into(),
        with_file(checkpointed, "wal", flipped(&wal, 20)),
    ));
    let snap_name = snapshot_name_of(checkpointed);
    let snap = file(checkpointed, &snap_name).to_vec();
    images.push((
        "snapshot-flip".into(),
        with_file(checkpointed, &snap_name, flipped(&snap, snap.len() / 2)),
    ));
    images.push((
        "snapshot-flip-salvage".into(),
        StoreImage {
            salvage: true,
            ..with_file(checkpointed, &snap_name, flipped(&snap, snap.len() / 2))
        },
    ));
    let manifest = file(checkpointed, "MANIFEST").to_vec();
    images.push((
        "manifest-flip".into(),
        with_file(checkpointed, "MANIFEST", flipped(&manifest, 50)),
    ));
    images.push((
        "manifest-truncated".into(),
        with_file(
            checkpointed,
            "MANIFEST",
            manifest[..manifest.len() - 3].to_vec(),
        ),
    ));
    let mut missing = checkpointed.clone();
    missing.files.retain(|(n, _)| *n != snap_name);
    images.push(("snapshot-missing".into(), missing));
    let mut no_wal = checkpointed.clone();
    no_wal.files.retain(|(n, _)| n != "wal");
    images.push(("wal-missing".into(), no_wal));
    let mut no_manifest = wal_only.clone();
    no_manifest.files.retain(|(n, _)| n != "MANIFEST");
    images.push(("manifest-missing".into(), no_manifest));
}

/// The files of the valid and damaged stores, for the decoders' targets.
fn decoder_seeds(bases: &Bases, out: &mut Seeds) {
    let Bases {
        wal_only,
        checkpointed,
        twice,
    } = bases;
    let wal = file(checkpointed, "wal").to_vec();
    let only_wal = file(wal_only, "wal").to_vec();
    let snap = file(checkpointed, &snapshot_name_of(checkpointed)).to_vec();
    let manifest = file(checkpointed, "MANIFEST").to_vec();
    // The decoders get the files of the valid and damaged stores.
    for (name, image) in [
        ("wal-only", wal_only),
        ("checkpointed", checkpointed),
        ("checkpointed-twice", twice),
    ] {
        for (file_name, bytes) in &image.files {
            let target = match file_name.as_str() {
                "wal" => "wal_record",
                "MANIFEST" => "manifest",
                _ => "snapshot",
            };
            out.push((target, format!("{name}-{file_name}"), bytes.clone()));
        }
    }
    out.push(("wal_record", "records-only".into(), wal[4096..].to_vec()));
    out.push(("wal_record", "header-only".into(), wal[..64].to_vec()));
    // The log a build before batch records wrote (a record per write, header version 2), and
    // a batch of the smallest writes there are (3 bytes each: the most writes per byte).
    let mut records = walstore::inspect::encode_wal_header_version(2, 0, 7, 0);
    records.extend(walstore::inspect::encode_transaction_records(
        7,
        1,
        &[(b"a", Some(b"1")), (b"b", None)],
        4096,
    ));
    out.push(("wal_record", "version-2-records".into(), records));
    let keys: Vec<[u8; 1]> = (0..2000u32).map(|i| [(i % 251) as u8 + 1]).collect();
    let tiny: Vec<(&[u8], Option<&[u8]>)> = keys.iter().map(|k| (&k[..], None)).collect();
    out.push((
        "wal_record",
        "batch-of-tiny-deletes".into(),
        walstore::inspect::encode_transaction(7, 1, &tiny, 4096),
    ));
    out.push((
        "wal_record",
        "mid-record-flip".into(),
        flipped(&only_wal, 4096 + 40)[4096..].to_vec(),
    ));
    out.push(("snapshot", "flip".into(), flipped(&snap, snap.len() / 2)));
    // A file of version 2 (one CRC over the body), which stores written before version 3 hold.
    let id = u64::from_le_bytes(snap[16..24].try_into().expect("8 bytes"));
    let (entries, deletes) =
        walstore::inspect::decode_snapshot(id, &snap).expect("the engine's file decodes");
    let shared = u32::from_le_bytes(snap[68..72].try_into().expect("4 bytes")) as usize;
    out.push((
        "snapshot",
        "version-2".into(),
        checks::snapshot::encode_snapshot(2, id, &entries, &deletes, shared),
    ));
    // Version 3 (lengths as u32s), which stores written before version 4 hold.
    out.push((
        "snapshot",
        "version-3".into(),
        checks::snapshot::encode_snapshot(3, id, &entries, &deletes, shared),
    ));
    // Version 4 with lengths of 1, 2 and 3 varint bytes: a long key, a long value, an empty
    // value, a tombstone (the engine's file above has 1- and 2-byte lengths).
    let varints: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (vec![b'k'; 300], Some(vec![b'v'; 20_000])),
        (b"l".to_vec(), None),
        (b"m".to_vec(), Some(Vec::new())),
    ];
    out.push((
        "snapshot",
        "version-4-varints".into(),
        checks::snapshot::encode_snapshot(4, id, &varints, &[], 0),
    ));
    out.push((
        "snapshot",
        "truncated".into(),
        snap[..snap.len() - 5].to_vec(),
    ));
    out.push(("manifest", "flip".into(), flipped(&manifest, 50)));
    out.push((
        "manifest",
        "truncated".into(),
        manifest[..manifest.len() - 3].to_vec(),
    ));
}

fn txn(writes: &[(u8, Option<u16>)], commit: bool, durability: Durability) -> Op {
    Op::Txn {
        writes: writes.to_vec(),
        commit,
        durability,
    }
}

fn fault(after: u8, only: Option<StorageOp>, errno: i32, persistent: bool) -> Op {
    Op::Fault {
        after,
        only,
        errno,
        persistent,
    }
}

/// Log index files (FORMAT.md §9) as the engine writes them, in the target's input form
/// (header part, then the nodes): after puts and a delete, after a range deletion, after
/// many overwrites of one key.
/// `FEED` files the engine wrote: consumers, sealed segments, a retention policy, a replica's
/// position; and damaged copies.
fn feedfile_seeds(out: &mut Seeds) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = walstore::Options::new()
        .auto_checkpoint(false)
        .open(&dir)
        .expect("open");
    let feed = || std::fs::read(dir.join("FEED")).expect("read FEED");
    store.register_consumer("search-index").expect("register");
    out.push(("feedfile", "one-consumer".into(), feed()));
    for i in 0..3u32 {
        store
            .update(|tx| tx.put(b"k", &i.to_le_bytes()))
            .expect("commit");
        store.checkpoint().expect("checkpoint");
    }
    store.register_consumer("audit").expect("register");
    store
        .set_retention(walstore::Retention {
            keep_bytes: 1 << 20,
            ..Default::default()
        })
        .expect("retention");
    let full = feed();
    out.push(("feedfile", "segments-and-retention".into(), full.clone()));
    out.push((
        "feedfile",
        "flipped-body".into(),
        flipped(&full, full.len() - 5),
    ));
    out.push((
        "feedfile",
        "truncated".into(),
        full[..full.len() - 2].to_vec(),
    ));
    let replica = tmp.path().join("replica");
    let copy = walstore::Store::open(&replica).expect("open replica");
    let records: Vec<_> = std::iter::from_fn({
        let mut changes = store.changes(b"", 0).expect("changes");
        move || changes.try_next().expect("next")
    })
    .collect();
    copy.apply_changes(records).expect("apply");
    let applied = std::fs::read(replica.join("FEED")).expect("read FEED");
    out.push(("feedfile", "replica-position".into(), applied));
}

fn logindex_seeds(out: &mut Seeds) {
    let input_of = |file: &[u8]| {
        let mut input = file[..176.min(file.len())].to_vec();
        let used = u64::from_le_bytes(file[40..48].try_into().expect("alloc word")) as usize;
        input.extend_from_slice(&file[4096..used.min(file.len())]);
        input
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = walstore::Options::new()
        .durability(Durability::Buffered)
        .open(&dir)
        .expect("open");
    let index = || std::fs::read(dir.join("LOGINDEX")).expect("read LOGINDEX");
    store
        .update(|tx| {
            tx.put(b"a", b"1")?;
            tx.put(b"b", b"2")?;
            tx.put(b"c", b"3")
        })
        .expect("commit");
    store.update(|tx| tx.delete(b"b")).expect("commit");
    out.push(("logindex", "puts-and-a-delete".into(), input_of(&index())));
    store
        .update(|tx| {
            tx.delete_range(&b"a"[..]..&b"c"[..])?;
            tx.put(b"a", b"after")
        })
        .expect("commit");
    out.push(("logindex", "range-deletion".into(), input_of(&index())));
    for i in 0..50u32 {
        store
            .update(|tx| tx.put(b"hot", &i.to_le_bytes()))
            .expect("commit");
    }
    let file = index();
    let decoded = walstore::inspect::decode_log_index(&checks::logindex::file_of(&input_of(&file)))
        .expect("the engine's index decodes");
    assert_eq!(
        decoded,
        vec![
            (b"a".to_vec(), Some(b"after".to_vec())),
            (b"b".to_vec(), None),
            (b"c".to_vec(), Some(b"3".to_vec())),
            (b"hot".to_vec(), Some(49u32.to_le_bytes().to_vec())),
        ]
    );
    out.push(("logindex", "overwrites".into(), input_of(&file)));
}

/// The commit index's words (FORMAT.md §8) as a store in use leaves them: new, after
/// `Immediate` and `Buffered` commits, after a checkpoint (a new generation, a non-zero LSN
/// base); plus damaged copies.
fn index_seeds(out: &mut Seeds) {
    use checks::index::input_of;
    use walstore::index::INDEX_WORDS;
    let mem = MemoryStorage::new();
    let store = open(&mem);
    let region = mem
        .open_region(&Path::new(DIR).join("SHM"), None)
        .expect("the in-memory storage has shared memory")
        .region;
    let words = || -> [u64; INDEX_WORDS] {
        std::array::from_fn(|i| region.words()[i].load(std::sync::atomic::Ordering::Acquire))
    };
    let mut states = vec![("new", words())];
    commit(&store, &[("a", Some(b"1")), ("b", Some(&value(2, 300)))]);
    states.push(("immediate", words()));
    store
        .update(|tx| {
            tx.set_durability(Durability::Buffered);
            tx.put(b"c", b"buffered")
        })
        .expect("buffered commit");
    states.push(("buffered", words()));
    store.checkpoint().expect("checkpoint");
    states.push(("checkpointed", words()));
    commit(&store, &[("d", Some(&value(4, 5000)))]);
    states.push(("checkpointed-then-commit", words()));
    drop(store);
    for (name, words) in &states {
        assert!(
            walstore::index::decode(words).is_ok(),
            "index/{name}: the engine left words it refuses"
        );
        out.push(("index", (*name).into(), input_of(words)));
    }
    let (_, last) = states[states.len() - 1];
    let mut changing = last;
    changing[2] |= 1;
    out.push(("index", "changing".into(), input_of(&changing)));
    let mut flipped = last;
    flipped[6] ^= 1 << 12;
    out.push(("index", "flipped-written-end".into(), input_of(&flipped)));
    // Beyond the written end, with a checksum that matches (the input's fix-up byte).
    let mut beyond = input_of(&last);
    beyond[0] = 7;
    beyond[1 + 8 * 11..1 + 8 * 12].copy_from_slice(&u64::MAX.to_le_bytes());
    out.push(("index", "visible-beyond-written".into(), beyond));
}

/// Writes of the first transaction of several seeds.
const SEED_WRITES: &[(u8, Option<u16>)] = &[(1, Some(9)), (2, Some(17)), (5, Some(168)), (3, None)];

/// Operation sequences for the `ops` target, each doing what its name says.
fn ops_seeds() -> Vec<(&'static str, Vec<Op>)> {
    use Durability::{Buffered, Immediate};
    let writes = SEED_WRITES;
    let mut seeds = fault_seeds();
    seeds.extend([
        (
            "txns-checkpoint-crash",
            vec![
                txn(writes, true, Immediate),
                txn(&[(4, Some(1)), (6, Some(240))], true, Immediate),
                Op::Checkpoint,
                txn(&[(1, None), (7, Some(33))], true, Immediate),
                Op::Crash,
                Op::Check,
            ],
        ),
        (
            "buffered-then-crash",
            vec![
                txn(&[(5, Some(9)), (1, None)], true, Immediate),
                txn(&[(6, Some(9))], true, Buffered),
                Op::Crash,
                Op::Check,
            ],
        ),
        (
            "abort-and-reopen",
            vec![
                txn(&[(1, Some(1)), (2, Some(2))], false, Immediate),
                txn(&[(3, Some(3))], true, Immediate),
                Op::Reopen,
                Op::Check,
            ],
        ),
    ]);
    seeds
}

/// Operation sequences with injected I/O faults.
fn fault_seeds() -> Vec<(&'static str, Vec<Op>)> {
    use Durability::Immediate;
    let writes = SEED_WRITES;
    vec![
        (
            "fsync-failure",
            vec![
                txn(writes, true, Immediate),
                fault(0, Some(StorageOp::Sync), 5, false),
                txn(&[(2, Some(4))], true, Immediate),
                Op::Reopen,
                txn(&[(8, Some(3))], true, Immediate),
                Op::Crash,
                Op::Check,
            ],
        ),
        (
            "write-failure-persistent",
            vec![
                txn(writes, true, Immediate),
                fault(0, Some(StorageOp::Write), 28, true),
                txn(&[(2, Some(60))], true, Immediate),
                Op::Check,
                Op::Crash,
                Op::Check,
            ],
        ),
        (
            "checkpoint-faults",
            vec![
                txn(writes, true, Immediate),
                txn(&[(10, Some(168)), (11, Some(168))], true, Immediate),
                fault(2, Some(StorageOp::SyncDir), 5, false),
                Op::Checkpoint,
                Op::Reopen,
                fault(1, Some(StorageOp::Rename), 28, false),
                Op::Checkpoint,
                Op::Crash,
                Op::Check,
            ],
        ),
    ]
}

/// Builds the seed corpus from real stores and checks every file with its target's checks;
/// with `WALSTORE_WRITE_CORPUS=1` also writes it to `fuzz/corpus/<target>/`.
#[test]
fn seed_corpus_is_built_from_engine_files_and_passes_the_checks() {
    let seeds = seed_corpus();
    for target in TARGETS {
        assert!(
            seeds.iter().any(|(t, _, _)| *t == target),
            "no seed for {target}"
        );
    }
    for (target, name, bytes) in &seeds {
        let check = check_for(target);
        if catch_unwind(AssertUnwindSafe(|| check(bytes))).is_err() {
            panic!("seed {target}/{name} fails its target's checks");
        }
    }
    // The inputs decode (with `arbitrary`, as the targets do) to what was encoded: a check of
    // the encoder against the pinned `arbitrary`, so the committed files keep their meaning.
    for (_, name, bytes) in seeds.iter().filter(|(t, _, _)| *t == "recovery") {
        let image = StoreImage::parse(bytes);
        assert!(
            !image.files.is_empty() || name == "empty",
            "recovery/{name} decodes empty"
        );
        assert_eq!(
            image.encode(),
            *bytes,
            "recovery/{name} does not round-trip"
        );
    }
    for (name, ops) in ops_seeds() {
        let decoded = Op::parse_all(&Op::encode_all(&ops));
        assert_eq!(decoded, ops, "ops/{name} does not round-trip");
    }
    if std::env::var_os("WALSTORE_WRITE_CORPUS").is_some() {
        for (target, name, bytes) in &seeds {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Engine bugs the fuzzers found, as direct tests
// ---------------------------------------------------------------------------------------------

/// Found by the `ops` target (fuzz/regressions/ops/fsync-failure-reopen-commit-crash); fixed
/// in 06748ae (open rewrites the unproven tail before its fdatasync).
///
/// An `Immediate` commit whose `fdatasync` fails (the kernel drops the dirty pages, fault F11)
/// is reported failed and poisons the handle: correct. The process then reopens the store
/// without a power cut: the page cache still holds the failed transaction, so recovery
/// accepts it and readers see it. Before the fix, open's own `fdatasync` succeeded without
/// writing those pages (they were marked clean); a new commit was acknowledged, and a power
/// cut then lost the failed transaction's bytes and, with them, every later acknowledged one.
#[test]
fn commit_acknowledged_after_reopening_from_an_fsync_failure_survives_a_crash() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    mem.fail_after(0, Some(StorageOp::Sync), 5, false);
    let failed = store.update(|tx| tx.put(b"first", b"fsync failed"));
    assert!(
        failed.is_err(),
        "the commit whose fdatasync failed returned Ok"
    );
    drop(store);
    mem.clear_fault();

    let store = open(&mem);
    let seen = store
        .begin_read()
        .expect("read")
        .get(b"first")
        .expect("get");
    store
        .update(|tx| tx.put(b"second", b"acknowledged"))
        .expect("commit after reopening");
    drop(store);
    mem.crash();

    let store = options(&mem).open(DIR).expect("open after the crash");
    let read = store.begin_read().expect("read");
    assert!(
        read.get(b"second").expect("get").is_some(),
        "an acknowledged Immediate commit was lost at a crash (the reopened store had shown \
         the failed commit: {})",
        seen.is_some()
    );
    assert_eq!(
        read.get(b"first").expect("get").is_some(),
        seen.is_some(),
        "a transaction readers had seen after recovery changed at the next crash"
    );
}

/// Found while reducing the failure above (fuzz/regressions/recovery/); fixed in 06748ae (a
/// full load under the lock classifies every kind of stop). Before the fix, a zeroed stretch
/// of the log (a zeroed sector, fault F13) followed by intact commits whose watermarks prove
/// it had been synced was dropped silently: `inspect::dump_wal` called it corruption, and so
/// did the unlocked first pass of open; but open then retried under the writer lock, where
/// `settle_tail` classified only `Stop::Damaged` stops, not a `Stop::Clean` (zero-filled) one,
/// so the store opened with every transaction from the zeroed record on dropped, and the next
/// commit overwrote them.
#[test]
fn zeroed_synced_records_followed_by_durable_commits_are_reported_not_truncated() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("a", Some(b"1"))]);
    commit(&store, &[("b", Some(b"2"))]);
    commit(&store, &[("c", Some(b"3"))]);
    drop(store);
    let wal_path = Path::new(DIR).join("wal");
    let mut wal = mem.read_file(&wal_path).expect("wal");
    wal[4096..4096 + 32].fill(0);
    mem.write_file_durable(&wal_path, &wal);
    let verdict = walstore::inspect::dump_wal(&mem, Path::new(DIR))
        .expect("dump")
        .verdict;
    assert!(
        matches!(verdict, walstore::inspect::TailVerdict::Corruption { .. }),
        "inspect does not see the damage: {verdict:?}"
    );
    match options(&mem).open(DIR) {
        Err(e) => assert!(e.is_corruption(), "open failed with {e:?}"),
        Ok(store) => {
            let keys = checks::common::read_state(&store).expect("read").1.len();
            panic!("open succeeded with {keys} keys: two durable commits were dropped silently");
        }
    }
}

/// Found by `prop_operations` (failed_writes_are_atomic_and_poison_the_handle, shrunk) and
/// kept as fuzz/regressions/ops/checkpoint-dir-sync-failure-reopen-write-crash.
///
/// A checkpoint renames the new MANIFEST into place, then its directory sync fails: the
/// checkpoint reports the error and poisons the handle, and the rename is not durable. The
/// process reopens without a power cut and sees the new MANIFEST with the WAL header still at
/// the old generation (an interrupted checkpoint); the first write transaction's locked
/// reload resets the WAL header to the new generation and syncs it, without making the
/// MANIFEST's rename durable first. A power cut then brings back the old MANIFEST next to a
/// WAL of a newer generation, and the store no longer opens ("WAL generation is newer than
/// the MANIFEST"): fault-model invariants 8 and 10.
#[test]
fn wal_moves_to_a_new_generation_only_after_its_manifest_rename_is_durable() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("k", Some(b"v"))]);
    // Let the checkpoint's first directory sync (the snapshot files) pass; fail the second
    // (the MANIFEST rename).
    mem.fail_after(1, Some(StorageOp::SyncDir), 5, false);
    let checkpoint = store.checkpoint();
    mem.clear_fault();
    assert!(
        checkpoint.is_err(),
        "the checkpoint's directory sync did not fail"
    );
    drop(store);

    let store = open(&mem);
    let tx = store.begin_write().expect("begin_write after reopening");
    tx.abort();
    drop(store);
    mem.crash();

    let store = options(&mem)
        .open(DIR)
        .unwrap_or_else(|e| panic!("the store does not open after the crash: {e}"));
    let value = store.begin_read().expect("read").get(b"k").expect("get");
    assert_eq!(value.map(|v| v.to_vec()), Some(b"v".to_vec()));
}

/// Found by `prop_operations` (failed_writes_are_atomic_and_poison_the_handle, shrunk; the
/// case is kept in prop_operations.proptest-regressions), generalized to every sync and
/// directory sync a checkpoint makes.
///
/// Before e499d3c, a checkpoint whose final WAL-header `fdatasync` failed left the new header
/// in pages the kernel marked clean; a reopen without a power cut read it, open's sync did
/// not write it, the next commit went to the new generation, and a power cut brought back
/// the old header next to records of the new salt ("WAL header damaged": unopenable).
#[test]
fn a_checkpoint_failing_at_any_sync_then_reopen_commit_crash_keeps_every_commit() {
    for kind in [StorageOp::Sync, StorageOp::SyncDir] {
        for n in 0..8 {
            let mem = MemoryStorage::new();
            let store = open(&mem);
            commit(&store, &[("a", Some(b"1")), ("b", Some(&value(1, 700)))]);
            mem.fail_after(n, Some(kind), 5, false);
            let checkpoint = store.checkpoint();
            let fired = mem.clear_fault();
            assert_eq!(
                checkpoint.is_err(),
                fired,
                "{kind:?} #{n}: checkpoint returned {checkpoint:?}"
            );
            drop(store);

            let store = open(&mem);
            commit(&store, &[("c", Some(b"after reopening"))]);
            drop(store);
            mem.crash();

            let store = options(&mem).open(DIR).unwrap_or_else(|e| {
                panic!("{kind:?} #{n}: the store does not open after the crash: {e}")
            });
            let (_, state) = checks::common::read_state(&store).expect("read");
            let keys: Vec<&[u8]> = state.keys().map(|k| &k[..]).collect();
            assert_eq!(keys, [&b"a"[..], b"b", b"c"], "{kind:?} #{n}");
        }
    }
}

/// Found by the `manifest` target (fuzz/regressions/manifest/nonzero-reserved-header-bytes).
///
/// FORMAT.md §6 says bytes 28..32 of the manifest header and the 4 bytes after the segment
/// count are zero. The decoder checked neither, and bytes 28..32 are covered by no checksum:
/// damage there went unnoticed (the snapshot decoder does refuse non-zero reserved bytes).
#[test]
fn manifest_with_nonzero_reserved_bytes_is_refused() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("a", Some(b"1"))]);
    store.checkpoint().expect("checkpoint");
    drop(store);
    let manifest = mem
        .read_file(&Path::new(DIR).join("MANIFEST"))
        .expect("manifest");
    assert!(walstore::inspect::decode_manifest(&manifest).is_ok());

    let mut header = manifest.clone();
    header[29] = 0x32;
    let decoded = walstore::inspect::decode_manifest(&header);
    assert!(
        matches!(decoded, Err(walstore::Error::Corruption { .. })),
        "non-zero header bytes 28..32 accepted: {decoded:?}"
    );

    // The reserved word of the body, with both checksums made to match.
    let mut body = manifest.clone();
    body[32 + 36] = 1;
    let body_crc = checks::common::crc32(&body[32..]);
    body[20..24].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = checks::common::crc32(&body[..24]);
    body[24..28].copy_from_slice(&header_crc.to_le_bytes());
    let decoded = walstore::inspect::decode_manifest(&body);
    assert!(
        matches!(decoded, Err(walstore::Error::Corruption { .. })),
        "non-zero reserved body word accepted: {decoded:?}"
    );
}

/// Found by the `recovery` target
/// (fuzz/regressions/recovery/damaged-header-and-first-record-of-generation-0).
///
/// A WAL whose header block is damaged and whose first record is damaged too (two damaged
/// sectors, fault F13), with intact later records of the manifest's generation. Open takes
/// the damaged header for a checkpoint interrupted before its WAL reset, because the check
/// for records of the manifest's salt (`has_record_of`) looks only at the first record slot;
/// so the first open silently drops every transaction and, under the writer lock, rewrites
/// the header (modifying a damaged store in strict mode). The second open then finds the
/// later records behind the fresh header and reports corruption: recovery's verdict is not
/// stable (fault-model invariants 6 and 7).
#[test]
fn damaged_wal_header_with_later_records_of_its_generation_is_corruption() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("a", Some(b"1"))]);
    commit(&store, &[("b", Some(b"2"))]);
    commit(&store, &[("c", Some(b"3"))]);
    drop(store);
    let wal_path = Path::new(DIR).join("wal");
    let mut wal = mem.read_file(&wal_path).expect("wal");
    wal[20] ^= 0x01;
    wal[4096..4096 + 32].fill(0);
    mem.write_file_durable(&wal_path, &wal);

    let first = options(&mem)
        .open(DIR)
        .map(|s| checks::common::read_state(&s).map(|x| x.1.len()));
    assert_eq!(
        mem.read_file(&wal_path).expect("wal"),
        wal,
        "a strict open modified a damaged WAL (it returned {first:?})"
    );
    assert!(
        matches!(first, Err(walstore::Error::Corruption { .. })),
        "open of a WAL with a damaged header and durable records returned {first:?}"
    );
}

/// A `Storage` that remembers the largest buffer the engine asked any read to fill: the
/// engine reads into buffers it allocates, so this bounds its allocations by what it reads.
#[derive(Debug)]
struct ReadSizes {
    inner: MemoryStorage,
    largest: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug)]
struct ReadSizesFile {
    inner: Box<dyn walstore::storage::StorageFile>,
    largest: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl walstore::storage::StorageFile for ReadSizesFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.largest
            .fetch_max(buf.len(), std::sync::atomic::Ordering::Relaxed);
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn map(&self) -> std::io::Result<std::sync::Arc<dyn walstore::storage::Mapping>> {
        self.inner.map()
    }
}

impl Storage for ReadSizes {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(
        &self,
        path: &Path,
        mode: walstore::storage::OpenMode,
    ) -> std::io::Result<Box<dyn walstore::storage::StorageFile>> {
        Ok(Box::new(ReadSizesFile {
            inner: self.inner.open(path, mode)?,
            largest: std::sync::Arc::clone(&self.largest),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn open_lock(&self, path: &Path) -> std::io::Result<Box<dyn walstore::storage::StorageLock>> {
        self.inner.open_lock(path)
    }
}

/// Found by the `recovery` target's allocation bound
/// (fuzz/regressions/recovery/declared-record-length-sizes-a-64mib-read-buffer).
///
/// A torn tail whose garbage header declares a huge length (fault F5) made opening a 10 KB
/// WAL allocate and zero a 64 MiB read buffer: the scans of open and of every catch-up pass
/// `u64::MAX` as the file length, and `ChunkReader::get` sized its buffer by the length the
/// record declared. A read-only handle, which never repairs the tail, paid it again at
/// every `begin_read`.
#[test]
fn a_declared_record_length_does_not_size_reads_beyond_the_file() {
    let mem = MemoryStorage::new();
    let store = open(&mem);
    commit(&store, &[("a", Some(b"1"))]);
    let end = store.info().expect("info").wal_bytes as usize + 4096;
    drop(store);
    let wal_path = Path::new(DIR).join("wal");
    let mut wal = mem.read_file(&wal_path).expect("wal");
    // A torn record header after the last commit: this generation's salt, kind 0, length
    // 4294965021.
    let (_, salt, _) = walstore::inspect::decode_wal_header(&wal).expect("header");
    wal[end..end + 32].copy_from_slice(&[0xab; 32]);
    wal[end + 4..end + 8].copy_from_slice(&4_294_965_021u32.to_le_bytes());
    wal[end + 16..end + 24].copy_from_slice(&salt.to_le_bytes());
    mem.write_file_durable(&wal_path, &wal);

    let largest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let storage = ReadSizes {
        inner: mem.clone(),
        largest: std::sync::Arc::clone(&largest),
    };
    let read_only = walstore::Options::new()
        .storage(std::sync::Arc::new(storage))
        .auto_checkpoint(false)
        .read_only(true)
        .open(DIR)
        .expect("open read-only");
    for _ in 0..3 {
        let read = read_only.begin_read().expect("read");
        assert_eq!(
            read.get(b"a").expect("get").map(|v| v.to_vec()),
            Some(b"1".to_vec())
        );
    }
    let largest = largest.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        largest <= 2 * wal.len().max(1 << 20),
        "a read buffer of {largest} bytes for a WAL of {} bytes",
        wal.len()
    );
}
