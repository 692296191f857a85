//! Telling a forked child from the process that opened a store, without a system call: a
//! `pthread_atfork` child handler bumps a process-wide epoch, so a handle compares the epoch it
//! was opened in with the current one (one atomic load) instead of calling `getpid` on every
//! transaction.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

/// How many times this process's ancestry forked since it started (0 in the original process;
/// a child starts with its parent's count plus one).
static EPOCH: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();
/// Whether the handler is registered; if not, [`epoch`] falls back to the process id.
static REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_child() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// The fork epoch of this process: equal in a process and the handles it opened, different
/// in a forked child. The first call registers the handler.
pub(crate) fn epoch() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: `in_child` is an `extern "C"` function that only touches an atomic, which is
        // async-signal-safe and valid in a child forked from a multi-threaded process.
        let registered = unsafe { libc::pthread_atfork(None, None, Some(in_child)) } == 0;
        REGISTERED.store(registered, Ordering::Relaxed);
    });
    if REGISTERED.load(Ordering::Relaxed) {
        EPOCH.load(Ordering::Relaxed)
    } else {
        // No handler (ENOMEM at registration): the process id, a system call each time.
        (1 << 63) | u64::from(std::process::id())
    }
}
