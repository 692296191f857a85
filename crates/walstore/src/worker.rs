//! The background worker: checkpoints when the commit path asks (the log passed the
//! threshold), then merges runs. It sits above both protocols (`checkpoint.rs`, `merge.rs`),
//! which know nothing of each other.

use crate::checkpoint::{fold_head, fold_unlocked, timed};
use crate::core::signal::{SignalShared, Wake};
use crate::core::{retry_while_busy, Core};
use crate::options::LockWait;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Starts the background worker for `core` (at the first checkpoint request, see
/// [`crate::core::signal::CheckpointSignal`]): it checkpoints when asked and then merges
/// runs. It holds only a weak reference to the core and never a `Store`: closing the last
/// handle stops it and waits for the job it is running (a merge gives up early and removes
/// its files), so `close` does its work itself. `None` when no thread could be started.
pub(crate) fn spawn(weak: Weak<Core>, signal: Arc<SignalShared>) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("walstore-checkpoint".into())
        .spawn(move || {
            while signal.wait() == Wake::Checkpoint {
                let Some(core) = weak.upgrade() else {
                    return;
                };
                // A failed background job is retried at the next request; its error (a
                // full disk, say) reaches callers of `checkpoint` or, if it poisoned the
                // store, of every later write.
                job(&core, &signal);
            }
        })
        .ok()
}

/// One wake-up of the worker. Holding the merge lock, it checkpoints in two phases and then
/// merges, checkpointing again between merge steps whenever the commit path asks (a long
/// merge never holds checkpoints back). Without it (another handle merges), it checkpoints
/// holding the writer lock. It waits for the writer lock in short steps and gives up when
/// the store is being closed (a closing thread may hold the lock in an open transaction
/// while it waits for this thread).
fn job(core: &Core, signal: &SignalShared) {
    let stop = || signal.is_stopped();
    // A lock file that is not a regular file was refused at open (`open.rs`); planted since,
    // the worker only checkpoints, and `compact` or `checkpoint` reports it.
    let Ok(Some(merging)) = core.try_merge_lock() else {
        let _ = timed(core, || {
            core.with_writer_patiently(&stop, |g| fold_head(core, g))
        });
        return;
    };
    let short = LockWait::Timeout(Duration::from_millis(20));
    let checkpoint = || {
        let _ = retry_while_busy(&stop, || timed(core, || fold_unlocked(core, short, &stop)));
    };
    checkpoint();
    let mut between = || {
        if signal.take_request() {
            checkpoint();
        }
    };
    let _ = crate::merge::run_holding(core, &merging, false, &stop, &mut between);
}
