//! Offline inspection of a store's files: WAL records, checksums, what recovery would do.
