//! The writer's searches of the list without the map: nodes read with `pread` into a private
//! copy, for a process that has not mapped the list's pages (ARCHITECTURE.md, "The log
//! index").
//!
//! Through the map, each node a search reads on a page this process has not touched maps the
//! 64 KiB around it (the kernel's fault-around), and nodes lie in log order while keys come at
//! random: the one merge of the recent chain a one-shot writer may make (128 searches) mapped
//! most of a 48 MiB index (51 MiB of peak RSS against 5 at an empty log). Read this way, a
//! search costs a `pread` per node it has not read before, and the process maps only the
//! pages it writes (the links it changes).
//!
//! Invariant: only the writer (the holder of the writer lock) searches this way, and only it
//! changes links, so a copy stays true for as long as the writer holds the lock, except for
//! the links it changes itself: it forgets those nodes ([`ColdReader::forget`]), to read them
//! again. A reader lives for one hold of the lock (one [`super::LogIndex::add_txn`]).

use super::layout::{load_next, next_slot, ENTRY_FIXED, HEADER_BYTES, MAX_HEIGHT};
use super::{descend, Damaged, ListNodes, LogIndex};
use crate::format::MAX_KEY_BYTES;
use std::collections::HashMap;

/// Bytes read at once for a node: its fixed part, a tower of 4 levels and a 64-byte key.
const FIRST_READ: usize = 128;

/// What a search needs of a node: its key, its stamp and its next pointers.
#[derive(Debug)]
struct Node {
    stamp: u64,
    key: Box<[u8]>,
    next: Box<[u32]>,
}

/// The writer's copies of the nodes it has read during one hold of the lock.
#[derive(Debug)]
pub(super) struct ColdReader<'a> {
    index: &'a LogIndex,
    nodes: HashMap<usize, Node>,
}

impl<'a> ColdReader<'a> {
    pub(super) fn new(index: &'a LogIndex) -> ColdReader<'a> {
        ColdReader {
            index,
            nodes: HashMap::new(),
        }
    }

    /// Where `(key, limit)` goes in the list (as [`LogIndex::find`]): the last node before it
    /// at each level in `prev`, and the first entry at or after it, with its stamp, if it
    /// holds `key`.
    pub(super) fn find(
        &mut self,
        key: &[u8],
        limit: u64,
        prev: &mut [usize; MAX_HEIGHT],
    ) -> Result<Option<(usize, u64)>, Damaged> {
        let Some(at) = descend(self.index, self, key, limit, Some(prev))? else {
            return Ok(None);
        };
        let (k, stamp) = self.key_stamp(at)?;
        Ok((k == key).then_some((at, stamp)))
    }

    /// Drops the copy of the node at `at` (the writer changed its links).
    pub(super) fn forget(&mut self, at: usize) {
        self.nodes.remove(&at);
    }

    /// The node at `at`, read if it was not.
    fn node(&mut self, at: usize) -> Result<&Node, Damaged> {
        if !self.nodes.contains_key(&at) {
            let node = self.read(at)?;
            self.nodes.insert(at, node);
        }
        self.nodes.get(&at).ok_or(Damaged)
    }

    /// Reads the node at `at`: one `pread`, two for a tall node or a long key. Malformed (a
    /// height or key length out of range, or past the end of the file): damage.
    fn read(&self, at: usize) -> Result<Node, Damaged> {
        if at < HEADER_BYTES || !at.is_multiple_of(8) {
            return Err(Damaged);
        }
        let bytes = self.index.bytes();
        let mut head = [0u8; FIRST_READ];
        let first = if bytes.read_into(at, &mut head) {
            FIRST_READ
        } else if bytes.read_into(at, &mut head[..ENTRY_FIXED]) {
            ENTRY_FIXED
        } else {
            return Err(Damaged);
        };
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let stamp = u64::from_le_bytes(head[0..8].try_into().map_err(|_| Damaged)?);
        let key_len = word(8) as usize;
        let height = word(16) as usize;
        if !(1..=MAX_HEIGHT).contains(&height) || key_len > MAX_KEY_BYTES {
            return Err(Damaged);
        }
        let len = ENTRY_FIXED + 4 * height + key_len;
        let mut whole;
        let node: &[u8] = if len <= first {
            &head[..len]
        } else {
            whole = vec![0u8; len];
            if !bytes.read_into(at, &mut whole) {
                return Err(Damaged);
            }
            &whole
        };
        let next = node[ENTRY_FIXED..ENTRY_FIXED + 4 * height]
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        Ok(Node {
            stamp,
            key: node[ENTRY_FIXED + 4 * height..].into(),
            next,
        })
    }
}

impl ListNodes for ColdReader<'_> {
    /// The `level` next pointer of the node at `at` (`at == 0`: the head, in the header page,
    /// which every handle has mapped), as this writer last read or left it.
    fn next(&mut self, at: usize, level: usize) -> Result<usize, Damaged> {
        if at == 0 {
            return Ok(load_next(next_slot(self.index.bytes(), 0, level)));
        }
        let node = self.node(at)?;
        Ok(node.next.get(level).map_or(0, |&n| n as usize))
    }

    fn key_stamp(&mut self, at: usize) -> Result<(&[u8], u64), Damaged> {
        let node = self.node(at)?;
        Ok((&node.key, node.stamp))
    }
}
