//! A sync in progress, held open for another thread: when armed, the next `sync_data` of the
//! WAL that covers a WAL write issued since arming takes note of the writes it covers (those
//! issued before it began), lets a waiting thread run until that thread issues a write to the
//! WAL, and only then completes, making durable only what it covered. A sync of older writes
//! only (the engine syncing, under its writer lock, what an open rewrote, before the first
//! commit record) is not held: the other thread could not write until it ends. The write issued meanwhile stays unsynced, as on a real
//! disk where `fdatasync` covers the pages dirty when it started. The schedule is decided by
//! the harness, not by timing: the waiting thread starts only once the sync has begun, and
//! the sync ends only once the thread has written (or after [`WAIT`], if it never does).

use parking_lot::{Condvar, Mutex};
use std::time::Duration;

/// Longest a held sync waits for the other thread's write (a thread that never writes, for
/// example because its commit failed, must not hang the run).
const WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Off,
    /// Armed, and no WAL write issued since: a sync now covers only older writes and is not
    /// held.
    Armed,
    /// Armed, and a WAL write was issued since: the next WAL sync will be held.
    Primed,
    /// A WAL sync began and waits for the other thread's write.
    Held,
    /// The other thread wrote (or the sync gave up waiting): the sync completes.
    Released,
}

/// The gate (one per simulated file system).
#[derive(Debug, Default)]
pub(super) struct SyncGate {
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl SyncGate {
    pub(super) fn arm(&self) {
        *self.phase.lock() = Phase::Armed;
        self.changed.notify_all();
    }

    pub(super) fn disarm(&self) {
        *self.phase.lock() = Phase::Off;
        self.changed.notify_all();
    }

    /// Called by a WAL sync as it begins: whether it is the held one.
    pub(super) fn take_hold(&self) -> bool {
        let mut phase = self.phase.lock();
        if *phase != Phase::Primed {
            return false;
        }
        *phase = Phase::Held;
        self.changed.notify_all();
        true
    }

    /// The held sync waits here for the other thread's write.
    pub(super) fn wait_release(&self) {
        let mut phase = self.phase.lock();
        if *phase == Phase::Held {
            let _ = self
                .changed
                .wait_while_for(&mut phase, |p| *p == Phase::Held, WAIT);
        }
        *phase = Phase::Off;
        self.changed.notify_all();
    }

    /// Whether a sync is held now.
    pub(super) fn is_held(&self) -> bool {
        *self.phase.lock() == Phase::Held
    }

    /// Releases a held sync without a write (the other thread's call returned without one).
    pub(super) fn release(&self) {
        let mut phase = self.phase.lock();
        if *phase == Phase::Held {
            *phase = Phase::Released;
            self.changed.notify_all();
        }
    }

    /// Called by every WAL write: releases a held sync, or primes an armed gate.
    pub(super) fn note_write(&self) {
        let mut phase = self.phase.lock();
        match *phase {
            Phase::Held => {
                *phase = Phase::Released;
                self.changed.notify_all();
            }
            Phase::Armed => *phase = Phase::Primed,
            _ => {}
        }
    }

    /// The other thread waits here until the held sync began (or the gate was disarmed: the
    /// first thread finished without a WAL sync).
    pub(super) fn wait_held(&self) {
        let mut phase = self.phase.lock();
        self.changed
            .wait_while(&mut phase, |p| matches!(p, Phase::Armed | Phase::Primed));
    }
}
