//! [`EngineConfig`]: which engine the harness tests, with which sizes.

use super::api::{guarded, Engine, EngineError, Handle, Promises, StructuralCheck, STORE_DIR};
#[cfg(feature = "walstore-engine")]
use super::walstore::Walstore;
use crate::simfs::SimFs;
use crate::workload::{Dur, EngineSettings};
use ::walstore::storage::Storage;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// How to open the engine under test: which engine, with which sizes.
#[derive(Clone)]
pub struct EngineConfig {
    /// Sizes.
    pub settings: EngineSettings,
    /// The engine.
    pub engine: Arc<dyn Engine>,
}

#[cfg(feature = "walstore-engine")]
impl Default for EngineConfig {
    /// walstore with the default sizes.
    fn default() -> Self {
        EngineConfig::of(Arc::new(Walstore::default()))
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("settings", &self.settings)
            .field("engine", &self.engine.name())
            .finish()
    }
}

impl EngineConfig {
    /// walstore with the given sizes.
    #[cfg(feature = "walstore-engine")]
    pub fn new(settings: EngineSettings) -> Self {
        EngineConfig {
            settings,
            ..EngineConfig::default()
        }
    }

    /// Another engine, with the default sizes.
    pub fn of(engine: Arc<dyn Engine>) -> Self {
        EngineConfig {
            settings: EngineSettings::default(),
            engine,
        }
    }

    /// The same engine with other sizes.
    pub fn with_settings(&self, settings: EngineSettings) -> Self {
        EngineConfig {
            settings,
            engine: Arc::clone(&self.engine),
        }
    }

    /// What the engine promises.
    pub fn promises(&self) -> Promises {
        self.engine.promises()
    }

    /// The engine's structural check, if it has one.
    pub fn structure(&self) -> Option<&dyn StructuralCheck> {
        self.engine.structure()
    }

    /// The durability a commit asked for `dur` runs with: Buffered when the engine promises
    /// no more.
    pub fn promised(&self, dur: Dur) -> Dur {
        match self.promises().durability {
            Dur::Buffered => Dur::Buffered,
            Dur::Immediate => dur,
        }
    }

    /// Whether the file at `path` is the engine's log (never, without a structural check).
    pub fn is_log(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.structure().is_some_and(|s| s.is_log(&name))
    }

    /// Opens the store on `fs`; a panic inside the engine becomes `Err(message)`.
    pub fn open(&self, fs: &SimFs) -> Result<Result<Box<dyn Handle>, EngineError>, String> {
        self.open_on(Arc::new(fs.clone()))
    }

    /// Opens the store on `storage` (a process's view of a simulated file system).
    pub fn open_on(
        &self,
        storage: Arc<dyn Storage>,
    ) -> Result<Result<Box<dyn Handle>, EngineError>, String> {
        guarded(move || {
            self.engine
                .open(storage, Path::new(STORE_DIR), Some(&self.settings))
        })
    }
}
