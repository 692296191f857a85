//! Offline inspection of a store's files, without opening it: every WAL record with its
//! offset and transaction, every checksum of every file, and what recovery would do.
//!
//! These functions only read. They take the same [`Storage`](crate::storage::Storage) the
//! store uses, so they work on the simulated file systems too. The `decode_*` functions check
//! raw bytes of one file, for tools and fuzzers. Every function returns the crate's
//! [`Error`](crate::Error).
//!
//! Rooms, one file each: `codec` (raw bytes of one file, decoded and encoded), `dump` (the
//! WAL record by record, and its end), `verify` (every file's checksums and the WAL's verdict
//! against the manifest).

mod codec;
mod dump;
mod verify;

pub use codec::{
    decode_log_index, decode_manifest, decode_snapshot, decode_wal_header, decode_wal_record,
    encode_transaction, encode_transaction_records, encode_transaction_with_deletes,
    encode_wal_header, encode_wal_header_version, wal_header_version, FileInfo, ManifestInfo,
    RangeDeletion, RecordInfo, SnapshotEntry,
};
pub use dump::{dump_wal, TailVerdict, WalDump};
pub use verify::{verify, FileCheck, Problem, VerifyReport};
