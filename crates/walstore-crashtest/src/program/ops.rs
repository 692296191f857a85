//! The recorded operations of a program: what it did inside the recorded directory and what it
//! printed, in one order. Paths are relative to the directory (`""` is the directory itself).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// A new file (`open` with `O_CREAT` of a missing name, `creat`).
    Create {
        /// The new name.
        path: String,
    },
    /// A size change (`ftruncate`, `truncate`, `O_TRUNC` on an existing file).
    Truncate {
        /// The file.
        path: String,
        /// The new length.
        len: u64,
    },
    /// Bytes written at an offset (`write`, `pwrite`, `writev`, `pwritev`).
    Write {
        /// The file.
        path: String,
        /// Where.
        offset: u64,
        /// What, as lowercase hexadecimal.
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// A rename inside the directory.
    Rename {
        /// Old name.
        from: String,
        /// New name (replaced if it exists).
        to: String,
    },
    /// A hard link inside the directory (`link`, `linkat`): `to` names `from`'s file too.
    Link {
        /// The existing name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A file moved or linked in from outside the directory (or an `O_TMPFILE` file linked
    /// in): a rename onto `path` of a file holding `data`, synced before the move if `synced`.
    MoveIn {
        /// The name inside the directory (replaced if it exists).
        path: String,
        /// The file's bytes.
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
        /// Whether the file was synced after its last change, before the move.
        synced: bool,
    },
    /// An unlink.
    Unlink {
        /// The name.
        path: String,
    },
    /// A new directory.
    Mkdir {
        /// The directory.
        path: String,
    },
    /// `fsync` or `fdatasync` of a file.
    Fsync {
        /// The file.
        path: String,
        /// `fdatasync`.
        data_only: bool,
    },
    /// `fsync` of a directory.
    DirFsync {
        /// The directory.
        path: String,
    },
    /// `sync` or `syncfs`: everything durable.
    SyncAll,
    /// A line the program wrote to its standard output (an acknowledgement).
    Stdout {
        /// The line, without its newline.
        line: String,
    },
}

impl Op {
    /// Whether the operation changes the file system (stdout lines do not).
    pub fn is_fs(&self) -> bool {
        !matches!(self, Op::Stdout { .. })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create { path } => write!(f, "create {path}"),
            Op::Truncate { path, len } => write!(f, "truncate {path} to {len}"),
            Op::Write { path, offset, data } => {
                let shown: String = String::from_utf8_lossy(&data[..data.len().min(40)])
                    .chars()
                    .map(|c| if c.is_control() { '.' } else { c })
                    .collect();
                let more = if data.len() > 40 { "..." } else { "" };
                write!(
                    f,
                    "write {path} [{offset}, {}) \"{shown}{more}\"",
                    offset + data.len() as u64
                )
            }
            Op::Rename { from, to } => write!(f, "rename {from} -> {to}"),
            Op::Link { from, to } => write!(f, "link {from} -> {to}"),
            Op::MoveIn { path, data, synced } => {
                let state = if *synced { "synced" } else { "not synced" };
                write!(f, "move in {path} ({} bytes, {state})", data.len())
            }
            Op::Unlink { path } => write!(f, "unlink {path}"),
            Op::Mkdir { path } => write!(f, "mkdir {path}"),
            Op::Fsync { path, data_only } => {
                let name = if *data_only { "fdatasync" } else { "fsync" };
                write!(f, "{name} {path}")
            }
            Op::DirFsync { path } => {
                let shown = if path.is_empty() { "." } else { path };
                write!(f, "fsync dir {shown}")
            }
            Op::SyncAll => write!(f, "sync"),
            Op::Stdout { line } => write!(f, "stdout \"{line}\""),
        }
    }
}

/// A recorded run: the operations and what the recorder could not model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// Calls inside the directory that were seen but cannot be modelled (a rename of a
    /// directory, a symbolic link, data the recording does not have, ...): such a run is not
    /// judged.
    pub unmodelled: Vec<String>,
    /// Paths outside the directory the program created, changed or removed and left so.
    #[serde(default)]
    pub outside: Vec<String>,
    /// Files of the directory mapped writable and shared (shared memory: bytes written
    /// through the map are not recorded).
    #[serde(default)]
    pub mapped: Vec<String>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = data.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&text[i..i + 2], 16)
                    .map_err(|_| serde::de::Error::custom("not a hex digit"))
            })
            .collect()
    }
}
