//! The operation trace: every state-changing storage call, in order, with its outcome.
//!
//! Crash points are named by the index of a trace entry ("crash right after operation 17"),
//! so the trace is what a failure report prints to show where the crash happened.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Kinds of state-changing storage calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpClass {
    /// Opening a file with a mode that creates it.
    Create,
    /// A write.
    Write,
    /// A `set_len`, or opening an existing file with `CreateTruncate`.
    SetLen,
    /// A `sync_data` or `sync_all` of a file.
    Sync,
    /// A `sync_dir`.
    SyncDir,
    /// A rename.
    Rename,
    /// An unlink.
    Remove,
}

impl OpClass {
    /// Whether this is an fsync-family call (the cheapest crash points to explore first).
    pub fn is_sync(self) -> bool {
        matches!(self, OpClass::Sync | OpClass::SyncDir)
    }

    /// Parses the lowercase name used on the command line and in artifacts.
    pub fn parse(name: &str) -> Option<OpClass> {
        Some(match name {
            "create" => OpClass::Create,
            "write" => OpClass::Write,
            "set-len" => OpClass::SetLen,
            "sync" => OpClass::Sync,
            "sync-dir" => OpClass::SyncDir,
            "rename" => OpClass::Rename,
            "remove" => OpClass::Remove,
            _ => return None,
        })
    }
}

impl fmt::Display for OpClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OpClass::Create => "create",
            OpClass::Write => "write",
            OpClass::SetLen => "set-len",
            OpClass::Sync => "sync",
            OpClass::SyncDir => "sync-dir",
            OpClass::Rename => "rename",
            OpClass::Remove => "remove",
        };
        f.write_str(name)
    }
}

/// One state-changing storage call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// Position in the trace, from 1.
    pub index: u64,
    /// What kind of call.
    pub class: OpClass,
    /// The file or directory it applied to.
    pub path: String,
    /// Arguments worth printing (offset and length, target name, ...).
    pub detail: String,
    /// For a write: the byte range written.
    #[serde(default)]
    pub range: Option<(u64, u64)>,
    /// The injected error, if the call failed.
    pub error: Option<String>,
    /// What the workload was doing (`open`, `commit 3`, `checkpoint`, ...).
    pub phase: String,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{:<5} {:<9} {:<10} {} {}",
            self.index, self.phase, self.class, self.path, self.detail
        )?;
        if let Some(err) = &self.error {
            write!(f, "  -> FAILED: {err}")?;
        }
        Ok(())
    }
}
