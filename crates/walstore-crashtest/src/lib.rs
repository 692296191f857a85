//! walstore-crashtest: a crash-recovery harness for walstore (and any engine built on its
//! storage trait).
//!
//! Code map, bottom up:
//! - [`engine`]: the engine under test as a trait ([`engine::Engine`]: open on a `Storage`,
//!   transactions, sync, checkpoint, promises, an optional structural check); walstore is
//!   `engine::Walstore`, its structural check [`engine::WalstoreLayout`] on [`layout`].
//! - [`simfs`]: a simulated file system implementing `walstore::storage::Storage` that keeps
//!   live and durable state apart, records an operation [`trace`], injects I/O errors and
//!   captures crash points.
//! - [`crashgen`]: turns a crash point into post-crash [`image`]s under the fault model's P0
//!   faults (lost, cut, torn, garbage, reordered writes; lost names; silent corruption).
//! - [`workload`]: scripted scenarios and seeded random transaction mixes, as data.
//! - [`oracle`]: the reference model and the invariants; [`driver`] runs a workload and keeps
//!   the model; [`verify`] reopens the engine on an image and checks it; [`reads`] checks
//!   bounded ranges, prefix scans and point gets against a state.
//! - [`explore`]: the strategies (crash points, countdown errors, crashes inside recovery,
//!   swarm); [`artifact`] saves and replays failures, [`minimize`] shrinks them;
//!   [`killtest`] kills real processes on the real file system.
//! - [`program`]: any program: records its file operations in one directory (strace),
//!   replays them into [`simfs`] and runs its checker on every distinct crash image.
//!
//! Invariant: the harness knows the engine only through the [`engine::Engine`] trait; walstore's
//! specifics are `engine::Walstore`, `engine::WalstoreLayout` and [`layout`] (the manifest's
//! list of snapshot files, the snapshot checksums, the fields of each file), behind the
//! structural check hook.
//!
//! ```
//! # #[cfg(feature = "walstore-engine")] {
//! use walstore_crashtest::{engine::EngineConfig, explore, workload::Workload};
//! let workload = Workload::by_name("counter").expect("a scripted workload");
//! let config = explore::ExploreConfig { rounds: 1, ..Default::default() };
//! let outcome = explore::explore(
//!     &workload,
//!     explore::Strategy::SyncPoints,
//!     &EngineConfig::default(),
//!     &config,
//! );
//! assert!(outcome.failure.is_none());
//! assert!(outcome.stats.images_checked > 0);
//! # }
//! ```

pub mod artifact;
pub mod crashgen;
pub mod driver;
pub mod engine;
pub mod explore;
pub mod image;
pub mod killtest;
pub mod layout;
pub mod minimize;
pub mod oracle;
pub mod plan;
pub mod program;
pub mod reads;
pub mod simfs;
pub mod stats;
pub mod trace;
pub mod verify;
pub mod workload;
