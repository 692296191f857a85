//! The commands, one module per group: `edit` (set, del, incr, cas), `txn`, `read` (get,
//! scan, watch), `transfer` (export, import), `maintain` (checkpoint, compact, info, backup),
//! `feed` (changes, apply), `consumers` (consumer, retention) and `inspect` (dump, verify,
//! which read the files without opening the store).
//!
//! Invariant: every store is opened through [`Context`], so `--salvage` is read-only
//! everywhere and reading commands never create a store, nor change what it holds. One thing
//! they may do once their answer is out: fold the log a process left without closing
//! ([`Context::fold_left_log`]), which every later process would otherwise read whole.

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
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
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
    /// A store a reading command found holding a log a process left without closing
    /// ([`Store::holds_unfolded_log`]), to fold when the command is done.
    fold_after: Mutex<Option<PathBuf>>,
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

    /// Opens read-only: this handle never creates nor modifies anything (the command may fold
    /// a log a killed process left once it is done, [`Context::fold_left_log`]).
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
        let fold = !self.salvage && store.is_read_only() && store.holds_unfolded_log();
        let path = store.path().to_path_buf();
        store.close()?;
        if fold {
            *self
                .fold_after
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(path);
        }
        Ok(())
    }

    /// After a reading command that opened a store left without a close (a killed process,
    /// a power cut) and so read its whole log since the last checkpoint into memory: opens it
    /// for writing and closes it again, so that its recovery folds that log into a run
    /// (RECOVERY.md S1, S1a) and the next process reads O(1) of it, where every later
    /// `walstore get` would have read it all again (at 40 MB of log, 0.4 s and 100 MiB
    /// each). Best effort and never waiting: another process holding the writer lock, a
    /// store this user may not write, any error, and the store is left as the command found
    /// it (the next read-write open folds it).
    fn fold_left_log(&self) {
        let path = self
            .fold_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(path) = path {
            let options = self.options.clone().lock_wait(LockWait::NoWait);
            if let Ok(store) = options.open(&path) {
                let _ = store.close();
            }
        }
    }
}

pub(crate) fn execute(cli: &Cli, backend: &Backend) -> Outcome {
    let cx = Context {
        json: cli.json,
        salvage: cli.salvage,
        options: cli.options(backend.options.clone()),
        lock_wait: crate::args::lock_wait(cli.wait),
        storage: backend.storage.as_ref(),
        fold_after: Mutex::new(None),
    };
    let outcome = run_command(&cx, cli);
    cx.fold_left_log();
    outcome
}

fn run_command(cx: &Context<'_>, cli: &Cli) -> Outcome {
    match &cli.command {
        Command::Set { store, pairs } => edit::set(cx, store, pairs),
        Command::Get { store, keys, raw } => read::get(cx, store, keys, *raw),
        Command::Del {
            store,
            keys,
            prefix,
            from,
            to,
        } => match (prefix, from, to) {
            (Some(prefix), _, _) => edit::del_prefix(cx, store, prefix),
            (None, None, None) => edit::del(cx, store, keys),
            (None, from, to) => edit::del_range(cx, store, from.as_deref(), to.as_deref()),
        },
        Command::Incr { store, key, by } => edit::incr(cx, store, key, by.unwrap_or(1)),
        Command::Cas {
            store,
            key,
            expected,
            new,
        } => edit::cas(cx, store, key, expected, new),
        Command::Scan {
            store,
            prefix,
            reverse,
            limit,
            raw,
        } => read::scan(cx, store, prefix.as_deref(), *reverse, *limit, *raw),
        Command::Watch {
            store,
            prefix,
            timeout,
            count,
        } => read::watch(cx, store, prefix.as_deref(), *timeout, *count),
        Command::Txn { store } => txn::txn(cx, store),
        Command::Export { store } => transfer::export(cx, store),
        Command::Import { store } => transfer::import(cx, store),
        Command::Checkpoint { store } => maintain::checkpoint(cx, store),
        Command::Compact { store } => maintain::compact(cx, store),
        Command::Info { store } => maintain::info(cx, store),
        Command::Dump { store } => inspect::dump(cx, store),
        Command::Verify { store } => inspect::verify(cx, store),
        Command::Backup { store, dest } => maintain::backup(cx, store, dest),
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
            feed::changes(cx, store, &spec)
        }
        Command::Apply { store } => feed::apply(cx, store),
        Command::Consumer { store, action } => consumers::consumer(cx, store, action),
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
            consumers::retention(cx, store, args)
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
