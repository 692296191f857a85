//! walstore as an [`Engine`]: Immediate commits, atomic transactions, and
//! [`super::WalstoreLayout`] as its structural check.

use super::api::{Engine, Entries, FeedRecord};
use super::api::{EngineError, ErrorKind, Handle, ReadTxn, StructuralCheck, WriteTxn};
use super::layout_check::WalstoreLayout;
use crate::workload::{Dur, EngineSettings};
use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use walstore::storage::Storage;
use walstore::{Durability, Options, RecoveryMode, Store};

/// A change to the engine's options, applied last (the harness's own tests use it to switch
/// on deliberately broken engine variants).
pub type OptionsHook = Arc<dyn Fn(Options) -> Options + Send + Sync>;

/// walstore, opened with Immediate durability, strict recovery and no background
/// checkpoints, then `hook`.
#[derive(Clone, Default)]
pub struct Walstore {
    /// Applied to the options after the harness's own settings.
    pub hook: Option<OptionsHook>,
}

impl fmt::Debug for Walstore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Walstore")
            .field("hook", &self.hook.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Walstore {
    /// walstore with `hook` applied to its options (a deliberately broken variant).
    pub fn with_hook(hook: OptionsHook) -> Self {
        Walstore { hook: Some(hook) }
    }

    /// Options for a store on `storage`: with `settings`, Immediate, strict recovery, no
    /// background checkpoints and the workload's sizes; without, the engine's defaults.
    pub fn options(&self, storage: Arc<dyn Storage>, settings: Option<&EngineSettings>) -> Options {
        let options = Options::new().storage(storage);
        let options = match settings {
            None => options,
            Some(settings) => {
                let options = options
                    .durability(Durability::Immediate)
                    .recovery(RecoveryMode::Strict)
                    .auto_checkpoint(false)
                    .wal_preallocate_bytes(settings.wal_preallocate_bytes)
                    .segment_size_bytes_target(settings.segment_size_bytes_target)
                    .sector_size(settings.sector_size);
                let options = match settings.read_chunk_bytes {
                    Some(bytes) => options.read_chunk_bytes(bytes),
                    None => options,
                };
                match settings.close_checkpoint_bytes {
                    // Checkpoints at close only: the background one never reaches its
                    // threshold.
                    Some(bytes) => options
                        .auto_checkpoint(true)
                        .wal_size_bytes_checkpoint(1 << 40)
                        .close_checkpoint_bytes(bytes),
                    None => options,
                }
            }
        };
        match &self.hook {
            Some(hook) => hook(options),
            None => options,
        }
    }
}

impl Engine for Walstore {
    fn name(&self) -> String {
        match self.hook {
            Some(_) => "walstore (modified options)".into(),
            None => "walstore".into(),
        }
    }

    fn open(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
        settings: Option<&EngineSettings>,
    ) -> Result<Box<dyn Handle>, EngineError> {
        let store = self.options(storage, settings).open(dir).map_err(error)?;
        if settings.is_some_and(|s| s.feed_consumer)
            && store.consumer(FEED_CONSUMER).map_err(error)?.is_none()
        {
            store
                .register_consumer_at(FEED_CONSUMER, 0)
                .map_err(error)?;
        }
        Ok(Box::new(WalstoreHandle(store)))
    }

    fn structure(&self) -> Option<&dyn StructuralCheck> {
        Some(&WalstoreLayout)
    }
}

/// The engine's error as the harness's.
pub fn error(e: walstore::Error) -> EngineError {
    let kind = match &e {
        walstore::Error::Corruption { file, offset, .. } => ErrorKind::Corruption {
            file: file.clone(),
            offset: *offset,
        },
        walstore::Error::UnsupportedFormat { file, .. } => {
            ErrorKind::UnsupportedFormat { file: file.clone() }
        }
        _ => ErrorKind::Other,
    };
    EngineError {
        kind,
        message: e.to_string(),
    }
}

/// The durability of a commit.
pub fn durability(d: Dur) -> Durability {
    match d {
        Dur::Immediate => Durability::Immediate,
        Dur::Buffered => Durability::Buffered,
    }
}

/// The change feed consumer a workload with `feed_consumer` registers (it never
/// acknowledges, so every checkpoint keeps its log).
pub const FEED_CONSUMER: &str = "crashtest";

/// An open walstore.
#[derive(Debug)]
pub struct WalstoreHandle(pub Store);

/// Strings of the harness's workloads (every key and value it writes is UTF-8).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Every durable record of the feed after the harness consumer's position.
fn read_feed(store: &Store) -> Result<Vec<FeedRecord>, EngineError> {
    let mut changes = store.consumer_changes(FEED_CONSUMER, b"").map_err(error)?;
    let mut out = Vec::new();
    while let Some(r) = changes.try_next().map_err(error)? {
        out.push(FeedRecord {
            range_deletes: r
                .range_deletes
                .into_iter()
                .map(|(lo, hi)| (text(lo), hi.map(text)))
                .collect(),
            writes: r
                .writes
                .into_iter()
                .map(|(k, v)| (text(k), v.map(text)))
                .collect(),
        });
    }
    Ok(out)
}

impl Handle for WalstoreHandle {
    fn begin_write(&self, dur: Dur) -> Result<Box<dyn WriteTxn + '_>, EngineError> {
        let mut tx = self.0.begin_write().map_err(error)?;
        tx.set_durability(durability(dur));
        Ok(Box::new(Write(tx)))
    }

    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, EngineError> {
        Ok(Box::new(Read(self.0.begin_read().map_err(error)?)))
    }

    fn sync(&self) -> Result<(), EngineError> {
        self.0.sync().map_err(error)
    }

    fn checkpoint(&self) -> Result<(), EngineError> {
        self.0.checkpoint().map(|_| ()).map_err(error)
    }

    fn compact(&self) -> Result<(), EngineError> {
        self.0.compact().map(|_| ()).map_err(error)
    }

    fn merge(&self) -> Result<(), EngineError> {
        self.0.merge_by_policy().map(|_| ()).map_err(error)
    }

    fn feed(&self) -> Option<Result<Vec<FeedRecord>, EngineError>> {
        match self.0.consumer(FEED_CONSUMER) {
            Ok(None) => None,
            Ok(Some(_)) => Some(read_feed(&self.0)),
            Err(e) => Some(Err(error(e))),
        }
    }

    fn feed_ack(&self) -> Option<Result<(), EngineError>> {
        let registered = match self.0.consumer(FEED_CONSUMER) {
            Ok(position) => position.is_some(),
            Err(e) => return Some(Err(error(e))),
        };
        registered.then(|| {
            let last = self.0.begin_read().map_err(error)?.txn_id();
            self.0.ack(FEED_CONSUMER, last).map_err(error)
        })
    }
}

struct Write(walstore::WriteTxn);

impl WriteTxn for Write {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.0.get(key).map_err(error)?.map(|v| v[..].to_vec()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        self.0.put(key, value).map_err(error)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), EngineError> {
        self.0.delete(key).map_err(error)
    }

    fn delete_range(&mut self, lo: &[u8], hi: &[u8]) -> Result<(), EngineError> {
        self.0.delete_range(lo..hi).map_err(error)
    }

    fn commit(self: Box<Self>) -> Result<(), EngineError> {
        self.0.commit().map_err(error)
    }

    fn abort(self: Box<Self>) {
        self.0.abort();
    }
}

struct Read(walstore::ReadTxn);

fn collect(iter: walstore::Result<walstore::Iter<'_>>) -> Result<Entries, EngineError> {
    let mut out = Vec::new();
    for item in iter.map_err(error)? {
        let (k, v) = item.map_err(error)?;
        out.push((k, v[..].to_vec()));
    }
    Ok(out)
}

impl ReadTxn for Read {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.0.get(key).map_err(error)?.map(|v| v[..].to_vec()))
    }

    fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries, EngineError> {
        collect(self.0.range::<&[u8], _>((lo, hi)))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, EngineError> {
        collect(self.0.scan_prefix(prefix))
    }

    fn range_rev(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries, EngineError> {
        collect(self.0.range::<&[u8], _>((lo, hi)).map(walstore::Iter::rev))
    }
}
