//! Change notification: [`Watch`] yields the committed changes under a key prefix, made by
//! any handle in any process, waking on the commit index's change counter (a futex on the
//! shared region: no polling) rather than by reading the files in a loop.
//!
//! A wake-up compares the previous view with the new one under the prefix, so one [`Change`]
//! is reported per key that differs: several commits between two looks that change one key
//! report its latest value once, and a key changed and changed back reports nothing. The cost
//! of a look is a walk of the prefix's keys in both views (a config prefix: microseconds; a
//! prefix of millions of keys: seconds, see docs/GUARANTEES.md).

use crate::core::Core;
use crate::error::Result;
use crate::txn::ReadTxn;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One key's change, as [`Watch`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key (it starts with the watched prefix).
    pub key: Vec<u8>,
    /// Its new value; `None` when it was deleted.
    pub value: Option<Vec<u8>>,
    /// The last transaction of the view the change was seen in.
    pub txn_id: u64,
}

/// The changes under a prefix after the moment [`crate::Store::watch`] was called. Iterating
/// blocks until the next change; [`Watch::next_timeout`] waits at most a given time. A watch
/// holds the store's shared state: it keeps working after the `Store` it came from is closed
/// (the close then does its work when the watch is dropped too).
pub struct Watch {
    core: Arc<Core>,
    prefix: Vec<u8>,
    last: ReadTxn,
    ready: VecDeque<Change>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .field("txn_id", &self.last.txn_id())
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl Watch {
    pub(crate) fn new(core: Arc<Core>, prefix: &[u8], start: ReadTxn) -> Watch {
        Watch {
            core,
            prefix: prefix.to_vec(),
            last: start,
            ready: VecDeque::new(),
        }
    }

    /// The watched prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The next change, waiting up to `timeout` for one; `Ok(None)` if none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Change>> {
        // A watch inherited across fork() reports nothing, not even what it had queued.
        self.core.check_usable(false)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(Some(change));
            }
            let seen = self.core.change_counter();
            self.look()?;
            if !self.ready.is_empty() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.core.wait_change(seen, left);
        }
    }

    /// The next change if one is there now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Change>> {
        self.next_timeout(Duration::ZERO)
    }

    /// Takes the newest view and queues what differs under the prefix from the last one.
    fn look(&mut self) -> Result<()> {
        self.core.check_usable(false)?;
        let now = ReadTxn::new(crate::catchup::readers_view(&self.core)?);
        if now.same_version(&self.last) {
            return Ok(());
        }
        let txn_id = now.txn_id();
        let mut old = self.last.scan_prefix(&self.prefix)?;
        let mut new = now.scan_prefix(&self.prefix)?;
        let (mut a, mut b) = (old.next().transpose()?, new.next().transpose()?);
        loop {
            let order = match (&a, &b) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            match order {
                std::cmp::Ordering::Less => {
                    if let Some((key, _)) = a.take() {
                        self.ready.push_back(Change {
                            key,
                            value: None,
                            txn_id,
                        });
                    }
                    a = old.next().transpose()?;
                }
                std::cmp::Ordering::Greater => {
                    if let Some((key, value)) = b.take() {
                        self.ready.push_back(Change {
                            key,
                            value: Some(value.to_vec()),
                            txn_id,
                        });
                    }
                    b = new.next().transpose()?;
                }
                std::cmp::Ordering::Equal => {
                    if let (Some((_, before)), Some((key, after))) = (a.take(), b.take()) {
                        if *before != *after {
                            self.ready.push_back(Change {
                                key,
                                value: Some(after.to_vec()),
                                txn_id,
                            });
                        }
                    }
                    a = old.next().transpose()?;
                    b = new.next().transpose()?;
                }
            }
        }
        drop(old);
        drop(new);
        self.last = now;
        Ok(())
    }
}

impl Iterator for Watch {
    type Item = Result<Change>;

    /// Blocks until the next change.
    fn next(&mut self) -> Option<Result<Change>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(change)) => return Some(Ok(change)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
