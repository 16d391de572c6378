//! The global allocator: mimalloc, plus a count of live heap bytes for
//! INFO memory (`used_memory`). Counting must not make threads share a
//! cache line on every allocation, so each thread adds to its own padded
//! slot and a reader sums the slots.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use mimalloc::MiMalloc;

const SLOTS: usize = 64;

#[repr(align(128))]
struct Slot(AtomicIsize);

static COUNTERS: [Slot; SLOTS] = [const { Slot(AtomicIsize::new(0)) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn slot() -> &'static AtomicIsize {
    let i = MY_SLOT
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS);
            }
            s.get()
        })
        // During thread teardown the thread-local is gone; use slot 0.
        .unwrap_or(0);
    &COUNTERS[i].0
}

pub struct CountingAlloc;

// SAFETY: every method forwards to MiMalloc with the caller's arguments
// unchanged, so MiMalloc's guarantees hold; the counting touches only
// atomics and a const-initialized thread-local (which does not allocate).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            slot().fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) };
        slot().fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            slot().fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            slot().fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

/// Live heap bytes allocated through Rust's allocator.
pub fn used_memory() -> u64 {
    let sum: isize = COUNTERS.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
    sum.max(0) as u64
}

extern "C" {
    /// mimalloc's own API (linked in by libmimalloc-sys).
    fn mi_collect(force: bool);
}

/// Returns the memory this thread's heap has freed to the system now,
/// rather than keeping it cached (mimalloc purges freed memory only on
/// later allocator activity of the thread, which an idle worker may never
/// have). Walks the thread's heap: for rare use, after big frees.
pub fn collect() {
    // SAFETY: mi_collect takes no pointers; it only acts on the calling
    // thread's heap and mimalloc's arenas, which mimalloc synchronizes.
    unsafe { mi_collect(true) }
}
