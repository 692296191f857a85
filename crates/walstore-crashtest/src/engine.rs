//! How the harness opens the engine on a simulated file system, and reads a whole store.

use crate::oracle::State;
use crate::simfs::SimFs;
use crate::workload::{Dur, EngineSettings};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use walstore::storage::Storage;
use walstore::{Durability, Options, RecoveryMode, Store};

/// The store's directory inside every simulated file system.
pub const STORE_DIR: &str = "/db";

/// A change to the engine's options, applied last (the harness's own tests use it to switch
/// on deliberately broken engine variants).
pub type OptionsHook = Arc<dyn Fn(Options) -> Options + Send + Sync>;

/// How to open the engine under test.
#[derive(Clone, Default)]
pub struct EngineConfig {
    /// Sizes.
    pub settings: EngineSettings,
    /// Applied to the options after the harness's own settings.
    pub hook: Option<OptionsHook>,
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("settings", &self.settings)
            .field("hook", &self.hook.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl EngineConfig {
    /// The real engine with the given sizes.
    pub fn new(settings: EngineSettings) -> Self {
        EngineConfig {
            settings,
            hook: None,
        }
    }

    /// The same engine with other sizes.
    pub fn with_settings(&self, settings: EngineSettings) -> Self {
        EngineConfig {
            settings,
            hook: self.hook.clone(),
        }
    }

    /// Options for a store on `fs`: Immediate, strict recovery, no background checkpoints.
    pub fn options(&self, fs: &SimFs) -> Options {
        let options = Options::new()
            .storage(Arc::new(fs.clone()) as Arc<dyn Storage>)
            .durability(Durability::Immediate)
            .recovery(RecoveryMode::Strict)
            .auto_checkpoint(false)
            .wal_preallocate_bytes(self.settings.wal_preallocate_bytes)
            .segment_size_bytes_target(self.settings.segment_size_bytes_target)
            .sector_size(self.settings.sector_size);
        let options = match self.settings.read_chunk_bytes {
            Some(bytes) => options.read_chunk_bytes(bytes),
            None => options,
        };
        match &self.hook {
            Some(hook) => hook(options),
            None => options,
        }
    }

    /// Opens the store on `fs`; a panic inside the engine becomes `Err(message)`.
    pub fn open(&self, fs: &SimFs) -> Result<walstore::Result<Store>, String> {
        let options = self.options(fs);
        guarded(move || options.open(STORE_DIR))
    }
}

/// Runs `f`, turning a panic into `Err(message)`.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".to_string())
    })
}

/// Every key and value of the store, read in one snapshot.
pub fn read_state(store: &Store) -> walstore::Result<State> {
    let read = store.begin_read()?;
    let mut state = State::new();
    for item in read.range::<&[u8], _>(..)? {
        let (key, value) = item?;
        state.insert(
            String::from_utf8_lossy(&key).into_owned(),
            String::from_utf8_lossy(&value).into_owned(),
        );
    }
    Ok(state)
}

/// The engine's durability level for a workload's.
pub fn durability(d: Dur) -> Durability {
    match d {
        Dur::Immediate => Durability::Immediate,
        Dur::Buffered => Durability::Buffered,
    }
}
