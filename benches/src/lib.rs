//! Shared pieces of walstore's benchmarks: the workload data (keys and values derived from an
//! index, so every engine gets the same bytes without holding them in memory), the adapters
//! that drive walstore and its peers through one interface, memory and storage figures from `/proc`,
//! and the report writers (markdown, JSON, SVG) of the `walstore-peers` runner.

pub mod data;
pub mod engines;
pub mod mem;
pub mod report;
pub mod sysio;

/// The error type of the runner: any engine's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with [`BoxError`].
pub type Result<T> = std::result::Result<T, BoxError>;
