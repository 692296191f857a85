//! A checkpoint's run write held open for another thread: when armed, the next write to a
//! snapshot file (a file named `snap-*`: the first write of a checkpoint's run) waits until
//! the harness releases it, so another thread or handle commits while the checkpoint is
//! writing its run without the writer lock (walstore's two-phase checkpoint, phase 1). The
//! schedule is decided by the harness, not by timing: the committing thread starts only once
//! the write is held, and the write goes on only once that thread's commit returned (or
//! after [`WAIT`], if it never does).

use parking_lot::{Condvar, Mutex};
use std::time::Duration;

/// Longest a held write waits for the release (a committer that hangs must not hang the run).
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Off,
    /// The next snapshot write will be held.
    Armed,
    /// A snapshot write waits for the release.
    Held,
}

/// The gate (one per simulated file system).
#[derive(Debug, Default)]
pub(super) struct RunGate {
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl RunGate {
    pub(super) fn arm(&self) {
        *self.phase.lock() = Phase::Armed;
        self.changed.notify_all();
    }

    /// Ends the schedule (a write still held goes on; a waiting thread starts).
    pub(super) fn disarm(&self) {
        *self.phase.lock() = Phase::Off;
        self.changed.notify_all();
    }

    /// Called by every write to a snapshot file: the armed one waits here for the release.
    pub(super) fn hold(&self) {
        let mut phase = self.phase.lock();
        if *phase != Phase::Armed {
            return;
        }
        *phase = Phase::Held;
        self.changed.notify_all();
        let _ = self
            .changed
            .wait_while_for(&mut phase, |p| *p == Phase::Held, WAIT);
        *phase = Phase::Off;
        self.changed.notify_all();
    }

    /// The other thread waits here until the write is held (`true`) or the gate was
    /// disarmed (`false`: the checkpoint ended without writing a run).
    pub(super) fn wait_held(&self) -> bool {
        let mut phase = self.phase.lock();
        self.changed.wait_while(&mut phase, |p| *p == Phase::Armed);
        *phase == Phase::Held
    }
}
