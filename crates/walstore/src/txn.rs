//! Transactions: [`ReadTxn`] (a consistent snapshot) and [`WriteTxn`] (serialized writer that
//! sees its own writes, commits atomically or rolls back).

use crate::core::{Core, WriterGuard};
use crate::error::{Error, Result};
use crate::format::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::options::Durability;
use crate::snapshot::RangeDelete;
use crate::value::{Bytes, Value};
use crate::version::{prefix_range, Iter, KeyRange, Version};
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
        Ok(Iter::new(&self.version, None, &[], owned_range(&range)))
    }

    /// Key/value pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Iter<'_>> {
        Ok(Iter::new(&self.version, None, &[], prefix_range(prefix)))
    }

    /// The pair with the smallest key, if any.
    pub fn first(&self) -> Result<Option<(Vec<u8>, Value)>> {
        self.range::<&[u8], _>(..)?.next().transpose()
    }

    /// The pair with the largest key, if any.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Value)>> {
        self.range::<&[u8], _>(..)?.rev().next().transpose()
    }

    /// Id of the last transaction this snapshot includes (0 for an empty store).
    pub fn txn_id(&self) -> u64 {
        self.version.last_txn
    }

    /// Whether both snapshots are the same version of the store (nothing committed between).
    pub(crate) fn same_version(&self, other: &ReadTxn) -> bool {
        Arc::ptr_eq(&self.version, &other.version)
            || (self.version.generation, self.version.wal_end)
                == (other.version.generation, other.version.wal_end)
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
    /// Range deletions (sorted, disjoint); they hide the base's keys, and `writes` holds no
    /// key they cover unless it was written after them.
    pub(crate) deletes: Vec<RangeDelete>,
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

/// The range deletion of `range` as a start and an exclusive end (FORMAT.md §4.2): the
/// smallest key is one zero byte, the key after `k` is `k` then a zero byte. `None` when the
/// range is empty.
fn range_delete(range: &crate::version::KeyRange) -> Result<Option<RangeDelete>> {
    let after = |k: &[u8]| {
        let mut next = k.to_vec();
        next.push(0);
        next
    };
    let start = match &range.0 {
        // Keys are never empty: an empty start is the smallest key.
        Bound::Unbounded => vec![0u8],
        Bound::Included(k) if k.is_empty() => vec![0u8],
        Bound::Included(k) => k.clone(),
        Bound::Excluded(k) => after(k),
    };
    let end = match &range.1 {
        Bound::Unbounded => None,
        Bound::Included(k) => Some(after(k)),
        Bound::Excluded(k) => Some(k.clone()),
    };
    for bound in std::iter::once(&start).chain(end.as_ref()) {
        if bound.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidKey {
                reason: format!(
                    "a range deletion bound of {} bytes is longer than the limit of \
                     {MAX_KEY_BYTES} bytes",
                    bound.len()
                ),
            });
        }
    }
    if end.as_ref().is_some_and(|e| e <= &start) {
        return Ok(None);
    }
    Ok(Some(RangeDelete {
        start: Arc::from(start),
        end: end.map(Arc::from),
    }))
}

impl WriteTxn {
    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        match self.writes.get(key) {
            Some(Some(v)) => Ok(Some(Value::heap(Arc::clone(v)))),
            Some(None) => Ok(None),
            None if crate::deletes::covered(&self.deletes, key) => Ok(None),
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

    /// Removes every key in `range` (one record in the log, however many keys it covers;
    /// FORMAT.md §4.2). Bounds longer than [`crate::MAX_KEY_BYTES`] after conversion to a
    /// start and an exclusive end are refused with [`Error::InvalidKey`].
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) -> Result<()> {
        let Some(d) = range_delete(&owned_range(&range))? else {
            return Ok(());
        };
        let d = self.core.opts().faults.range_delete(d);
        let doomed: Vec<Bytes> = self
            .writes
            .range::<[u8], _>(crate::deletes::delete_bounds(&d))
            .map(|(k, _)| Arc::clone(k))
            .collect();
        for k in doomed {
            self.writes.remove(&k[..]);
        }
        self.deletes = crate::deletes::add_deletes(&self.deletes, &[d]);
        Ok(())
    }

    /// Removes every key that starts with `prefix` (one record, like
    /// [`WriteTxn::delete_range`]).
    pub fn delete_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        check_key(prefix)?;
        let (start, end) = prefix_range(prefix);
        self.delete_range((start, end))
    }

    /// Key/value pairs in `range` as this transaction sees them, in key order
    /// ([`Iter::rev`] for the other order).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Iter<'_>> {
        Ok(Iter::new(
            &self.base,
            Some(&self.writes),
            &self.deletes,
            owned_range(&range),
        ))
    }

    /// Key/value pairs whose key starts with `prefix`, as this transaction sees them.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Iter<'_>> {
        Ok(Iter::new(
            &self.base,
            Some(&self.writes),
            &self.deletes,
            prefix_range(prefix),
        ))
    }

    /// Overrides the store's durability for this transaction.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Number of keys written (put or deleted) so far, plus the range deletions.
    pub fn len(&self) -> usize {
        self.writes.len() + self.deletes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.deletes.is_empty()
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
        let deletes = std::mem::take(&mut self.deletes);
        self.core
            .commit(guard, &self.base, writes, deletes, self.durability)
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
