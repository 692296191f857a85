//! A small engine that is not walstore, tested through the harness's `Engine` trait: the
//! save of seed 000 (an agent's `ContextManager.save()` writing `messages.json`,
//! `metadata.json`, `state.json` and `global.json` one after another, each rewritten in
//! place) written in Rust against the `Storage` trait.
//!
//! ```text
//! cargo run -p walstore-crashtest --example four_files
//! ```
//!
//! It runs the harness on three variants (as seed 000 saves: in place, no fsync; the same
//! with an fsync of each file and of the directory; and the fix, one file replaced by a
//! rename) on the `context-save` workload (four keys changed together,
//! four times), with a crash after every file operation, once per image recipe of the fault
//! model, and prints the first invariant each recipe breaks. The engine promises what its
//! authors assume (the trait's default promises): a save is all or nothing and, once
//! `save()` returned, survives a crash. Its `load()` reads a file that does not parse as
//! empty (a `try`/`except` around `json.load`), so a half-written file shows as what it
//! is, part of a save, rather than as a store that does not open.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walstore::storage::{OpenMode, Storage};
use walstore_crashtest::crashgen::Variant;
use walstore_crashtest::engine::{
    Engine, EngineConfig, EngineError, Handle, MapRead, ReadTxn, WriteTxn,
};
use walstore_crashtest::explore::{explore, ExploreConfig, Strategy};
use walstore_crashtest::oracle::Violation;
use walstore_crashtest::workload::{Dur, EngineSettings, Workload};

/// The four files, in the order a save writes them.
pub const FILES: [&str; 4] = ["messages", "metadata", "state", "global"];

/// The file a key lives in: its own for the four context keys, else by a byte sum.
fn file_of(key: &[u8]) -> usize {
    FILES
        .iter()
        .position(|f| f.as_bytes() == key)
        .unwrap_or_else(|| key.iter().map(|b| usize::from(*b)).sum::<usize>() % FILES.len())
}

/// How a save writes the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveMode {
    /// Seed 000: each file truncated and rewritten in place, no fsync.
    #[default]
    InPlace,
    /// The same, with an fsync of each file after writing it and of the directory after
    /// the save.
    InPlaceSynced,
    /// The fix: the four parts in one file written under a temporary name, fsynced,
    /// renamed over the old one, then the directory fsynced.
    Replace,
}

/// The engine: the whole state in memory, saved as JSON files.
#[derive(Debug, Clone, Copy, Default)]
pub struct FourFiles {
    /// How a save writes.
    pub mode: SaveMode,
}

/// The file of [`SaveMode::Replace`], and its temporary name.
const ONE_FILE: &str = "context.json";
const ONE_FILE_TMP: &str = "context.json.tmp";

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

impl Engine for FourFiles {
    fn name(&self) -> String {
        match self.mode {
            SaveMode::InPlace => "four files rewritten in place (seed 000)",
            SaveMode::InPlaceSynced => {
                "four files rewritten in place, each fsynced, then the directory"
            }
            SaveMode::Replace => "one file: temporary, fsync, rename, directory fsync",
        }
        .into()
    }

    fn open(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
        _settings: Option<&EngineSettings>,
    ) -> Result<Box<dyn Handle>, EngineError> {
        storage.create_dir_all(dir)?;
        let mut map = Map::new();
        let names: Vec<String> = match self.mode {
            SaveMode::Replace => vec![ONE_FILE.into()],
            _ => FILES.iter().map(|name| format!("{name}.json")).collect(),
        };
        for name in names {
            let path = dir.join(name);
            if !storage.exists(&path)? {
                continue;
            }
            let file = storage.open(&path, OpenMode::ReadOnly)?;
            let mut bytes = vec![0u8; usize::try_from(file.len()?).map_err(EngineError::other)?];
            file.read_full_at(&mut bytes, 0)?;
            // A file that does not parse (cut by a crash) reads as empty.
            let object: BTreeMap<String, String> =
                serde_json::from_slice(&bytes).unwrap_or_default();
            map.extend(
                object
                    .into_iter()
                    .map(|(k, v)| (k.into_bytes(), v.into_bytes())),
            );
        }
        Ok(Box::new(Context {
            storage,
            dir: dir.to_path_buf(),
            mode: self.mode,
            map: parking_lot::Mutex::new(map),
        }))
    }
}

/// An open context: the state, and where to save it.
struct Context {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    mode: SaveMode,
    map: parking_lot::Mutex<Map>,
}

impl Context {
    /// `ContextManager.save()`: each file truncated and rewritten, one after another (or,
    /// in [`SaveMode::Replace`], one file replaced atomically).
    fn save(&self, map: &Map) -> Result<(), EngineError> {
        let json = |part: Option<usize>| {
            let object: BTreeMap<String, String> = map
                .iter()
                .filter(|(k, _)| part.is_none_or(|i| file_of(k) == i))
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect();
            serde_json::to_vec(&object).map_err(EngineError::other)
        };
        if self.mode == SaveMode::Replace {
            let tmp = self.dir.join(ONE_FILE_TMP);
            let file = self.storage.open(&tmp, OpenMode::CreateTruncate)?;
            file.write_all_at(&json(None)?, 0)?;
            file.sync_all()?;
            self.storage.rename(&tmp, &self.dir.join(ONE_FILE))?;
            return Ok(self.storage.sync_dir(&self.dir)?);
        }
        let synced = self.mode == SaveMode::InPlaceSynced;
        for (i, name) in FILES.iter().enumerate() {
            let path = self.dir.join(format!("{name}.json"));
            let file = self.storage.open(&path, OpenMode::CreateTruncate)?;
            file.write_all_at(&json(Some(i))?, 0)?;
            if synced {
                file.sync_all()?;
            }
        }
        if synced {
            // The names of files the first save created.
            self.storage.sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Handle for Context {
    fn begin_write(&self, _durability: Dur) -> Result<Box<dyn WriteTxn + '_>, EngineError> {
        let base = self.map.lock().clone();
        Ok(Box::new(Save {
            context: self,
            base,
        }))
    }

    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, EngineError> {
        Ok(Box::new(MapRead(self.map.lock().clone())))
    }

    /// Every save already wrote everything it had to the files.
    fn sync(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// A transaction: changes to a copy of the state, saved on commit.
struct Save<'a> {
    context: &'a Context,
    base: Map,
}

impl WriteTxn for Save<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.base.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        self.base.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), EngineError> {
        self.base.remove(key);
        Ok(())
    }

    fn delete_range(&mut self, lo: &[u8], hi: &[u8]) -> Result<(), EngineError> {
        self.base
            .retain(|k, _| k.as_slice() < lo || k.as_slice() >= hi);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), EngineError> {
        let mut map = self.context.map.lock();
        self.context.save(&self.base)?;
        *map = self.base;
        Ok(())
    }

    fn abort(self: Box<Self>) {}
}

/// What one image recipe found.
#[derive(Debug)]
pub struct Finding {
    /// The recipe.
    pub recipe: Variant,
    /// Distinct crash images checked.
    pub images: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
}

/// The recipes that apply to any engine's files (the others aim at walstore's log, manifest
/// and snapshot files).
pub const RECIPES: [Variant; 8] = Variant::GENERIC;

/// Runs the harness on `engine`: the `context-save` workload, a crash after every
/// operation, each recipe on its own.
pub fn findings(engine: Arc<dyn Engine>) -> Vec<Finding> {
    let engine = EngineConfig::of(engine);
    let Some(workload) = Workload::by_name("context-save") else {
        return Vec::new();
    };
    RECIPES
        .iter()
        .map(|&recipe| {
            let config = ExploreConfig {
                rounds: 1,
                variants: vec![recipe],
                recovery_every: 0,
                ..ExploreConfig::default()
            };
            let outcome = explore(&workload, Strategy::EveryOp, &engine, &config);
            Finding {
                recipe,
                images: outcome.stats.images_checked,
                violation: outcome.failure.map(|f| f.violation),
            }
        })
        .collect()
}

fn main() {
    let modes = [
        SaveMode::InPlace,
        SaveMode::InPlaceSynced,
        SaveMode::Replace,
    ];
    for engine in modes.map(|mode| FourFiles { mode }) {
        println!(
            "== {}: context-save, a crash after every operation",
            engine.name()
        );
        let mut broken = BTreeSet::new();
        for f in findings(Arc::new(engine)) {
            let head = format!("{:<15} {:>4} images", format!("{:?}", f.recipe), f.images);
            match f.violation {
                None => println!("{head}  no violation"),
                Some(v) => {
                    println!(
                        "{head}  invariant {} ({}): {}",
                        v.invariant.number(),
                        v.invariant.name(),
                        v.detail
                    );
                    broken.insert(v.invariant);
                }
            }
        }
        let names: Vec<String> = broken
            .iter()
            .map(|i| format!("{} {}", i.number(), i.name()))
            .collect();
        if names.is_empty() {
            println!("invariants broken: none");
        } else {
            println!("invariants broken: {}", names.join(", "));
        }
    }
}
