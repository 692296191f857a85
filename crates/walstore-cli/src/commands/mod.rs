//! The commands, one module per group: `edit` (set, del, incr, cas), `txn`, `read` (get,
//! scan, watch), `transfer` (export, import), `maintain` (checkpoint, compact, info, backup),
//! `feed` (changes, apply), `consumers` (consumer, retention) and `inspect` (dump, verify,
//! which read the files without opening the store).
//!
//! Invariant: every store is opened through [`Context`], so `--salvage` is read-only
//! everywhere and reading commands never create or modify a store.

mod consumers;
mod edit;
mod feed;
mod inspect;
mod maintain;
mod read;
mod transfer;
mod txn;

use crate::args::{Cli, Command};
use crate::exit::Failure;
use crate::output::Outcome;
use crate::Backend;
use std::io::BufRead;
use std::path::Path;
use walstore::storage::Storage;
use walstore::{LockWait, Options, Store};

/// What every command needs besides its own arguments.
pub(crate) struct Context<'a> {
    /// `--json`.
    pub(crate) json: bool,
    salvage: bool,
    options: Options,
    /// `--wait`, for commands that retry by themselves (`compact`).
    pub(crate) lock_wait: LockWait,
    pub(crate) storage: &'a dyn Storage,
}

impl Context<'_> {
    /// Opens for writing (creating the store if needed); refuses `--salvage`.
    pub(crate) fn open_writable(&self, store: &Path) -> Result<Store, Failure> {
        self.open_writable_with(store, |options| options)
    }

    /// [`Context::open_writable`] with `adjust` applied to the options.
    pub(crate) fn open_writable_with(
        &self,
        store: &Path,
        adjust: impl FnOnce(Options) -> Options,
    ) -> Result<Store, Failure> {
        if self.salvage {
            return Err(Failure::usage(
                "--salvage opens the store read-only: it works with get, scan, export, info and backup",
            ));
        }
        Ok(adjust(self.options.clone()).open(store)?)
    }

    /// Opens read-only: never creates, never modifies.
    pub(crate) fn open_readable(&self, store: &Path) -> Result<Store, Failure> {
        Ok(self.options.clone().read_only(true).open(store)?)
    }

    /// Opens read-only, or `None` where no store exists yet: a path that does not exist or an
    /// empty directory (a store before its first write). Anything else that is not a store
    /// is still an error.
    pub(crate) fn open_if_exists(&self, store: &Path) -> Result<Option<Store>, Failure> {
        match self.options.clone().read_only(true).open(store) {
            Ok(opened) => Ok(Some(opened)),
            Err(walstore::Error::NotAStore { .. }) if self.no_store_yet(store) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn no_store_yet(&self, store: &Path) -> bool {
        match self.storage.exists(store) {
            Ok(false) => true,
            Ok(true) => self
                .storage
                .list_dir(store)
                .is_ok_and(|names| names.is_empty()),
            Err(_) => false,
        }
    }

    /// Closes `store` and reports a failed close: the last sync of a `--durability buffered`
    /// write happens here, so a command prints its result only after this succeeded.
    pub(crate) fn close(&self, store: Store) -> Result<(), Failure> {
        Ok(store.close()?)
    }
}

pub(crate) fn execute(cli: &Cli, backend: &Backend) -> Outcome {
    let cx = Context {
        json: cli.json,
        salvage: cli.salvage,
        options: cli.options(backend.options.clone()),
        lock_wait: crate::args::lock_wait(cli.wait),
        storage: backend.storage.as_ref(),
    };
    match &cli.command {
        Command::Set { store, pairs } => edit::set(&cx, store, pairs),
        Command::Get { store, keys, raw } => read::get(&cx, store, keys, *raw),
        Command::Del {
            store,
            keys,
            prefix,
            from,
            to,
        } => match (prefix, from, to) {
            (Some(prefix), _, _) => edit::del_prefix(&cx, store, prefix),
            (None, None, None) => edit::del(&cx, store, keys),
            (None, from, to) => edit::del_range(&cx, store, from.as_deref(), to.as_deref()),
        },
        Command::Incr { store, key, by } => edit::incr(&cx, store, key, by.unwrap_or(1)),
        Command::Cas {
            store,
            key,
            expected,
            new,
        } => edit::cas(&cx, store, key, expected, new),
        Command::Scan {
            store,
            prefix,
            reverse,
            limit,
            raw,
        } => read::scan(&cx, store, prefix.as_deref(), *reverse, *limit, *raw),
        Command::Watch {
            store,
            prefix,
            timeout,
            count,
        } => read::watch(&cx, store, prefix.as_deref(), *timeout, *count),
        Command::Txn { store } => txn::txn(&cx, store),
        Command::Export { store } => transfer::export(&cx, store),
        Command::Import { store } => transfer::import(&cx, store),
        Command::Checkpoint { store } => maintain::checkpoint(&cx, store),
        Command::Compact { store } => maintain::compact(&cx, store),
        Command::Info { store } => maintain::info(&cx, store),
        Command::Dump { store } => inspect::dump(&cx, store),
        Command::Verify { store } => inspect::verify(&cx, store),
        Command::Backup { store, dest } => maintain::backup(&cx, store, dest),
        Command::Changes {
            store,
            prefix,
            since,
            consumer,
            until,
            follow,
            ack,
        } => {
            let spec = feed::ChangesSpec {
                prefix: prefix.as_ref(),
                since: *since,
                consumer: consumer.as_deref(),
                until: *until,
                follow: *follow,
                ack: *ack,
            };
            feed::changes(&cx, store, &spec)
        }
        Command::Apply { store } => feed::apply(&cx, store),
        Command::Consumer { store, action } => consumers::consumer(&cx, store, action),
        Command::Retention {
            store,
            keep_bytes,
            max_bytes,
            max_age_secs,
        } => {
            let args = consumers::RetentionArgs {
                keep_bytes: *keep_bytes,
                max_bytes: *max_bytes,
                max_age_secs: *max_age_secs,
            };
            consumers::retention(&cx, store, args)
        }
    }
}

/// Calls `each` with the line number and text of every non-blank line of stdin.
pub(crate) fn read_stdin_lines(
    mut each: impl FnMut(usize, &str) -> Result<(), Failure>,
) -> Result<(), Failure> {
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line =
            line.map_err(|e| Failure::usage(format!("stdin line {}: cannot read: {e}", i + 1)))?;
        if !line.trim().is_empty() {
            each(i + 1, &line)?;
        }
    }
    Ok(())
}
