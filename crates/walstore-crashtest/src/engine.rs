//! The engine under test, seen through a trait: the harness (the driver, the oracle,
//! [`verify`](crate::verify), [`reads`](crate::reads) and [`killtest`](crate::killtest))
//! knows an engine only as an [`Engine`] that opens a [`Handle`] on a
//! [`Storage`](::walstore::storage::Storage), plus what it [`Promises`] and, optionally, a
//! [`StructuralCheck`] of its files. walstore is one implementation (`Walstore`, in
//! `engine/walstore.rs`, with the default `walstore-engine` feature), whose structural check
//! is [`WalstoreLayout`] (`engine/layout_check.rs`, on [`crate::layout`]);
//! `examples/four_files.rs` is another. The trait and its types are in `engine/api.rs`, which
//! imports none of the implementations.

mod api;
mod config;
mod layout_check;
#[cfg(feature = "walstore-engine")]
mod walstore;

pub use self::api::{
    apply, guarded, read_state, to_state, AtomicityUnit, Engine, EngineError, Entries, ErrorKind,
    FeedRecord, Handle, MapRead, Promises, ReadTxn, StructuralCheck, WriteTxn, STORE_DIR,
};
pub use self::config::EngineConfig;
pub use self::layout_check::WalstoreLayout;
#[cfg(feature = "walstore-engine")]
pub use self::walstore::{OptionsHook, Walstore};
