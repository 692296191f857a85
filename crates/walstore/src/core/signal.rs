//! [`CheckpointSignal`]: how the commit path asks the background worker for a checkpoint,
//! how the worker waits for it, and how closing stops it.

use parking_lot::{Condvar, Mutex};
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Starts the background checkpointer at the first request, wakes it and stops it.
///
/// The thread starts lazily: a handle that never fills the log past the checkpoint
/// threshold never has one. Short-lived processes save the thread, and a process that forks
/// with a store open (Python programs do) has no thread of ours that a child could inherit
/// in the middle of taking a lock.
#[derive(Default)]
pub(crate) struct CheckpointSignal {
    shared: Arc<SignalShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Starts the thread, until it is started (set by [`Self::arm`]).
    armed: Mutex<Option<Starter>>,
}

/// Starts the background thread (`None` when the system refuses one).
pub(crate) type Starter = Box<dyn Fn() -> Option<JoinHandle<()>> + Send + Sync>;

/// The part of [`CheckpointSignal`] the background thread holds (it holds no `Core`
/// while it waits).
#[derive(Debug, Default)]
pub(crate) struct SignalShared {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SignalState {
    requested: bool,
    stopped: bool,
    running: bool,
}

/// What the background thread is told when it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Checkpoint,
    Stop,
}

impl fmt::Debug for CheckpointSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSignal")
            .field("shared", &self.shared)
            .field("started", &self.thread.lock().is_some())
            .field("armed", &self.armed.lock().is_some())
            .finish()
    }
}

impl CheckpointSignal {
    /// What the background thread waits on.
    pub(crate) fn shared(&self) -> Arc<SignalShared> {
        Arc::clone(&self.shared)
    }

    /// Lets the first [`Self::request`] start the background thread with `start`.
    pub(crate) fn arm(&self, start: Starter) {
        *self.armed.lock() = Some(start);
    }

    /// Asks the background thread for a checkpoint, starting it if it is armed and not
    /// started yet. Without [`Self::arm`] (automatic checkpoints off) this does nothing.
    pub(crate) fn request(&self) {
        {
            let mut s = self.shared.state.lock();
            if s.stopped {
                return;
            }
            if s.running {
                s.requested = true;
                self.shared.changed.notify_one();
                return;
            }
        }
        // Lock order: thread, armed, state. `stop` takes state, then thread: it either
        // finds the thread started here or is seen (as `stopped`) before one is started.
        let mut thread = self.thread.lock();
        let Some(start) = self.armed.lock().take() else {
            return; // not armed, or another request started the thread
        };
        {
            let mut s = self.shared.state.lock();
            if s.stopped {
                return;
            }
            s.requested = true;
            s.running = true;
        }
        match start() {
            Some(started) => *thread = Some(started),
            None => {
                // No thread (resource limits): the next request tries again.
                self.shared.state.lock().running = false;
                *self.armed.lock() = Some(start);
            }
        }
    }

    /// Stops the background thread and waits until it has finished a checkpoint it is running.
    pub(crate) fn stop(&self) {
        self.shared.state.lock().stopped = true;
        self.shared.changed.notify_all();
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl SignalShared {
    /// Blocks the background thread until a request or a stop.
    pub(crate) fn wait(&self) -> Wake {
        let mut s = self.state.lock();
        while !s.requested && !s.stopped {
            self.changed.wait(&mut s);
        }
        if s.stopped {
            return Wake::Stop;
        }
        s.requested = false;
        Wake::Checkpoint
    }

    /// Takes a pending request without waiting (the worker checks between merge steps).
    pub(crate) fn take_request(&self) -> bool {
        std::mem::take(&mut self.state.lock().requested)
    }

    /// Whether a stop was asked for (the background thread gives up waiting for the lock).
    pub(crate) fn is_stopped(&self) -> bool {
        self.state.lock().stopped
    }
}
