//! Transactions: [`ReadTxn`] (a consistent snapshot) and [`WriteTxn`] (serialized writer that
//! sees its own writes, commits atomically or rolls back).

use crate::core::{Core, WriterGuard};
use crate::error::{Error, Result};
use crate::format::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::options::Durability;
use crate::version::{prefix_range, Bytes, Iter, KeyRange, Value, Version};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

fn owned_range<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> KeyRange {
    let own = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

fn decode_as<T: DeserializeOwned>(value: Option<Value>) -> Result<Option<T>> {
    value.map(|v| crate::typed::decode(&v)).transpose()
}

/// A read-only view of the store as of the moment it began: every transaction committed
/// before (by any process) and nothing after. Never blocks writers and is never blocked.
pub struct ReadTxn {
    version: Arc<Version>,
}

impl fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTxn")
            .field("last_txn", &self.version.last_txn)
            .finish()
    }
}

impl ReadTxn {
    pub(crate) fn new(version: Arc<Version>) -> Self {
        ReadTxn { version }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.version.get(key)
    }

    /// Decodes the typed value of `key` into a `T`, strictly: [`Error::TypeMismatch`] if it is
    /// not one (see [`crate::typed`]).
    pub fn get_as<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        decode_as(self.get(key)?)
    }

    /// Key/value pairs in `range`, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Iter<'_>> {
        Ok(Iter::new(&self.version, None, owned_range(&range)))
    }

    /// Key/value pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Iter<'_>> {
        Ok(Iter::new(&self.version, None, prefix_range(prefix)))
    }

    /// Id of the last transaction this snapshot includes (0 for an empty store).
    pub fn txn_id(&self) -> u64 {
        self.version.last_txn
    }
}

/// The one write transaction of the store (across threads and processes) at this moment.
///
/// Reads see the newest committed state plus this transaction's own writes. `commit` makes
/// all writes visible and durable at once; dropping it or calling `abort` discards them.
pub struct WriteTxn {
    pub(crate) core: Arc<Core>,
    pub(crate) guard: Option<WriterGuard>,
    pub(crate) base: Arc<Version>,
    pub(crate) writes: BTreeMap<Bytes, Option<Bytes>>,
    pub(crate) durability: Durability,
}

impl fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTxn")
            .field("base_txn", &self.base.last_txn)
            .field("writes", &self.writes.len())
            .field("durability", &self.durability)
            .finish()
    }
}

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            reason: "keys must not be empty".into(),
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey {
            reason: format!(
                "key of {} bytes is longer than the limit of {MAX_KEY_BYTES} bytes",
                key.len()
            ),
        });
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

impl WriteTxn {
    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        match self.writes.get(key) {
            Some(Some(v)) => Ok(Some(Value::heap(Arc::clone(v)))),
            Some(None) => Ok(None),
            None => self.base.get(key),
        }
    }

    /// Decodes the typed value of `key` into a `T`, strictly: [`Error::TypeMismatch`] if it is
    /// not one (see [`crate::typed`]).
    pub fn get_as<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        decode_as(self.get(key)?)
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.writes.insert(Arc::from(key), Some(Arc::from(value)));
        Ok(())
    }

    /// Sets `key` to `value` as a typed value: MessagePack, structs as maps with field names
    /// (see [`crate::typed`]).
    pub fn put_as<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<()> {
        self.put(key, &crate::typed::encode(value)?)
    }

    /// Removes `key` (no error if absent).
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.writes.insert(Arc::from(key), None);
        Ok(())
    }

    /// Key/value pairs in `range` as this transaction sees them, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Iter<'_>> {
        Ok(Iter::new(
            &self.base,
            Some(&self.writes),
            owned_range(&range),
        ))
    }

    /// Key/value pairs whose key starts with `prefix`, as this transaction sees them.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Iter<'_>> {
        Ok(Iter::new(
            &self.base,
            Some(&self.writes),
            prefix_range(prefix),
        ))
    }

    /// Overrides the store's durability for this transaction.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Number of keys written (put or deleted) so far.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Commits every write atomically. On `Ok`, the transaction is visible to every later
    /// reader in any process and as durable as its [`Durability`] promises. On `Err`, it is
    /// not acknowledged: after an I/O error it may or may not survive a crash (the store is
    /// then poisoned and must be reopened).
    pub fn commit(mut self) -> Result<()> {
        // Invariant: a write transaction holds the writer lock from `begin_write` to here.
        let guard = self
            .guard
            .take()
            .expect("a WriteTxn holds the writer guard until it ends");
        let writes = std::mem::take(&mut self.writes);
        self.core.commit(guard, &self.base, writes, self.durability)
    }

    /// Discards every write (the same as dropping the transaction).
    pub fn abort(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if let Some(guard) = self.guard.take() {
            self.core.release_writer(guard);
        }
    }
}

impl Drop for WriteTxn {
    fn drop(&mut self) {
        self.release();
    }
}
