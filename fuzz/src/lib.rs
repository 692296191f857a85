//! Shared code of the walstore fuzz targets: the checks (also replayed by
//! `crates/walstore/tests/fuzz_regressions.rs`) and an allocation-counting global allocator
//! that lets every target bound the memory a decoder or a recovery may take.

pub mod checks;

/// Counts live heap bytes (the targets are single-threaded: one global counter suffices).
pub mod alloc_probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// The system allocator, counting.
    pub struct Counting;

    // SAFETY: every method hands the request unchanged to `System`, which upholds the
    // `GlobalAlloc` contract; the counting around it only touches atomics and never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: our caller upholds `alloc`'s contract for `layout` (non-zero size), which
            // is all `System.alloc` asks.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`: the caller's `layout` meets `alloc_zeroed`'s contract.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` was allocated by this allocator with `layout` (the caller's
            // contract), and this allocator allocates only through `System`.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`, and
            // the caller guarantees `new_size` is valid for `layout`'s alignment: `realloc`'s
            // contract, passed on unchanged.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
                grew(new_size);
            }
            p
        }
    }

    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f`; returns its result and the most bytes it had allocated at once.
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let out = f();
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        (out, Some(peak))
    }
}
