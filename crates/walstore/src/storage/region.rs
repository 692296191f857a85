//! Shared regions: a few words of memory that every handle, in every process, that opens one
//! store sees (the commit index of FORMAT.md §8 lives in one). The file system maps a file
//! (`fs.rs`); the in-memory backends share one [`MemRegion`] per path through
//! [`MemRegions`].
//!
//! Invariant: a region is *fresh* (all zero, and `first` is true) for exactly the handle that
//! opens it while no other handle has it open; that handle has it alone until it calls
//! [`SharedRegion::share`], and every other opener waits for that.

use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How many 64-bit words a region holds.
pub const REGION_WORDS: usize = 32;

/// Bytes of a region's file: the words, the wake-up word, padded to one page.
pub const REGION_FILE_BYTES: u64 = 4096;

/// A region of memory shared by every handle of one store, in every process.
pub trait SharedRegion: Send + Sync + Debug {
    /// The region's words ([`REGION_WORDS`] of them).
    fn words(&self) -> &[AtomicU64];

    /// The wake-up word: [`SharedRegion::wake_all`] changes it, [`SharedRegion::wait`]
    /// sleeps while it holds a value.
    fn wake_word(&self) -> &AtomicU32;

    /// Sleeps while the wake-up word equals `seen`, for at most `timeout` (it may also return
    /// early, spuriously).
    fn wait(&self, seen: u32, timeout: Duration);

    /// Changes the wake-up word and wakes every waiter, in every process.
    fn wake_all(&self);

    /// Ends the handle's exclusive use of a fresh region: other openers proceed. A no-op for
    /// a handle that did not open it fresh.
    fn share(&self) -> io::Result<()>;
}

/// A region as opened.
#[derive(Debug)]
pub struct OpenedRegion {
    /// The region.
    pub region: Box<dyn SharedRegion>,
    /// Whether no other handle had it open: its words are all zero, and this handle has it
    /// alone until [`SharedRegion::share`].
    pub fresh: bool,
}

/// Waits until `deadline` (forever with `None`) for `attempt` to return `Some`, retrying
/// every millisecond; `WouldBlock` when the deadline passes.
pub fn retry_until<T>(
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<T> {
    loop {
        if let Some(done) = attempt()? {
            return Ok(done);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another handle is setting up the shared region",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The in-memory regions of one simulated file system, by path. A region lives while a
/// handle has it open; the next open after the last handle closed gets a fresh one (as after
/// every process with the store open exited).
#[derive(Debug, Default, Clone)]
pub struct MemRegions {
    live: Arc<Mutex<HashMap<PathBuf, Weak<MemRegionInner>>>>,
}

impl MemRegions {
    /// Forgets every region (a simulated crash: every process is gone).
    pub fn forget_all(&self) {
        self.live.lock().clear();
    }

    /// Opens the region at `path`, waiting until `deadline` while a fresh one is not shared
    /// yet.
    pub fn open(&self, path: &Path, deadline: Option<Instant>) -> io::Result<OpenedRegion> {
        let existing = {
            let mut live = self.live.lock();
            match live.get(path).and_then(Weak::upgrade) {
                Some(inner) => inner,
                None => {
                    let inner = Arc::new(MemRegionInner::default());
                    live.insert(path.to_path_buf(), Arc::downgrade(&inner));
                    return Ok(OpenedRegion {
                        region: Box::new(MemRegion(inner)),
                        fresh: true,
                    });
                }
            }
        };
        retry_until(deadline, || Ok((*existing.shared.lock()).then_some(())))?;
        Ok(OpenedRegion {
            region: Box::new(MemRegion(existing)),
            fresh: false,
        })
    }
}

#[derive(Debug, Default)]
struct MemRegionInner {
    words: [AtomicU64; REGION_WORDS],
    wake: AtomicU32,
    shared: Mutex<bool>,
    sleepers: Mutex<()>,
    woken: Condvar,
}

/// A handle on an in-memory region.
#[derive(Debug)]
struct MemRegion(Arc<MemRegionInner>);

impl SharedRegion for MemRegion {
    fn words(&self) -> &[AtomicU64] {
        &self.0.words
    }

    fn wake_word(&self) -> &AtomicU32 {
        &self.0.wake
    }

    fn wait(&self, seen: u32, timeout: Duration) {
        let mut g = self.0.sleepers.lock();
        if self.0.wake.load(Ordering::Acquire) == seen {
            self.0.woken.wait_for(&mut g, timeout);
        }
    }

    fn wake_all(&self) {
        let _g = self.0.sleepers.lock();
        self.0.wake.fetch_add(1, Ordering::AcqRel);
        self.0.woken.notify_all();
    }

    fn share(&self) -> io::Result<()> {
        *self.0.shared.lock() = true;
        Ok(())
    }
}
