//! An accounting global allocator: every allocation is charged to an *owner* (the extension
//! whose code is being polled on this thread, or the host), and credited back to the same owner
//! when it is freed, whichever thread or owner frees it.
//!
//! * The current owner is a `const`-initialised thread-local `Cell<u16>` (0 = the host): setting
//!   it costs one thread-local write, reading it neither allocates nor initialises lazily.
//! * Each allocation carries a small header in front of it with its owner, so a response body an
//!   extension allocated and the host frees is credited to the extension, and `realloc` keeps the
//!   original owner (it adjusts that owner by the size difference).
//! * Live bytes are kept in a static array of atomics, one per owner id. The host (owner 0) is not
//!   counted: its allocations pay the header but no shared atomic.
//!
//! Use it as the binary's allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: annex_alloc::Accounting = annex_alloc::Accounting;
//! ```
//!
//! Without it (a binary with the system allocator) nothing is charged: [`installed`] is `false`
//! and [`live_bytes`] stays 0.
//!
//! Cost per allocation: a thread-local read, one bound check, the 8-byte header (the alignment
//! for alignments above 8) and, when an extension owns it, one relaxed atomic add; per free, a
//! header read and (for an extension's block) one relaxed atomic subtract.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// Owner ids there are slots for: 1..`OWNERS` are extensions, 0 the host.
pub const OWNERS: usize = 1 << 16;

/// Live bytes per owner (signed: a slot reused after wrap-around may be credited bytes charged
/// before; [`live_bytes`] clamps at 0).
static LIVE: [AtomicI64; OWNERS] = [const { AtomicI64::new(0) }; OWNERS];
/// The owner [`installed`] allocates as; never handed out by [`Owner::next`].
const PROBE: u16 = (OWNERS - 1) as u16;
static NEXT: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static CURRENT: Cell<u16> = const { Cell::new(0) };
}

/// Who allocations made now are charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(u16);

impl Owner {
    /// The host: allocations outside extension code. Not counted.
    pub const HOST: Owner = Owner(0);

    /// A fresh owner id (one per extension, assigned at registration). Ids wrap around after
    /// 65 534 owners in one process (only test processes get there), skipping the host's 0.
    pub fn next() -> Owner {
        loop {
            let id = NEXT.fetch_add(1, Ordering::Relaxed) % OWNERS as u32;
            if id != 0 && id != u32::from(PROBE) {
                // Reused after wrap-around: start from zero.
                LIVE[id as usize].store(0, Ordering::Relaxed);
                return Owner(id as u16);
            }
        }
    }

    /// The id (0 = host).
    pub fn id(self) -> u16 {
        self.0
    }

    /// Whether this is the host.
    pub fn is_host(self) -> bool {
        self.0 == 0
    }
}

/// The owner allocations on this thread are charged to now.
#[inline]
pub fn current() -> Owner {
    Owner(CURRENT.try_with(Cell::get).unwrap_or(0))
}

/// Makes `owner` the current owner until the guard drops, which restores the previous one (so
/// scopes nest: a hook of extension B polled inside extension A's request is charged to B).
#[inline]
pub fn enter(owner: Owner) -> OwnerScope {
    let previous = CURRENT.try_with(|c| c.replace(owner.0)).unwrap_or(0);
    OwnerScope { previous }
}

/// Runs `f` with `owner` current.
#[inline]
pub fn with_owner<R>(owner: Owner, f: impl FnOnce() -> R) -> R {
    let _scope = enter(owner);
    f()
}

/// Restores the previous owner on drop.
#[derive(Debug)]
#[must_use = "the owner is restored when the scope drops"]
pub struct OwnerScope {
    previous: u16,
}

impl Drop for OwnerScope {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}

/// Bytes allocated while `owner` was current and not freed yet (0 for the host, and 0 when the
/// accounting allocator is not the global allocator).
pub fn live_bytes(owner: Owner) -> u64 {
    if owner.is_host() {
        return 0;
    }
    u64::try_from(LIVE[owner.0 as usize].load(Ordering::Relaxed)).unwrap_or(0)
}

/// Whether [`Accounting`] is the global allocator: a probe allocation made as a reserved owner
/// is charged to it. (A probe rather than a flag set on every allocation: the hot path stays
/// free of it.)
pub fn installed() -> bool {
    let probe = Owner(PROBE);
    let before = LIVE[PROBE as usize].load(Ordering::Relaxed);
    let boxed = with_owner(probe, || std::hint::black_box(Box::new([0u8; 64])));
    let charged = LIVE[PROBE as usize].load(Ordering::Relaxed) > before;
    drop(boxed);
    charged
}

/// The accounting allocator over [`System`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Accounting;

/// Bytes in front of an allocation of alignment `align`: room for the owner, and a multiple of
/// `align` so the caller's pointer keeps its alignment. 8 for the common alignments (≤ 8): the
/// smallest step, so most blocks stay in malloc's size class or the next one.
#[inline]
const fn header(align: usize) -> usize {
    if align > 8 { align } else { 8 }
}

/// Whether `size` bytes after a header of `head` bytes, rounded up to `align`, stay within
/// `isize::MAX` (what a `Layout` requires).
#[inline]
const fn fits(size: usize, head: usize, align: usize) -> bool {
    size <= isize::MAX as usize - head - align
}

#[inline]
fn charge(owner: u16, bytes: usize) {
    if owner != 0 {
        LIVE[owner as usize].fetch_add(bytes as i64, Ordering::Relaxed);
    }
}

#[inline]
fn credit(owner: u16, bytes: usize) {
    if owner != 0 {
        LIVE[owner as usize].fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

#[allow(unsafe_code)]
impl Accounting {
    /// The layout asked of the system: the header plus `size`, aligned to at least 8 (so the
    /// owner field in front of the caller's pointer is aligned); `None` when it would not fit.
    #[inline]
    fn outer(layout: Layout) -> Option<(Layout, usize)> {
        let head = header(layout.align());
        let align = layout.align().max(8);
        if !fits(layout.size(), head, align) {
            return None;
        }
        // SAFETY: `align` is a power of two (the larger of two), and `size + head` rounded up
        // to it does not exceed `isize::MAX` (checked just above).
        Some((unsafe { Layout::from_size_align_unchecked(layout.size() + head, align) }, head))
    }

    /// Writes the owner in front of the caller's pointer; returns that pointer.
    ///
    /// # Safety
    /// `base` is a live allocation of the outer layout, with `head` header bytes.
    #[inline]
    unsafe fn finish(base: *mut u8, head: usize, owner: u16) -> *mut u8 {
        // SAFETY: `head` ≤ the outer size, so `base + head` is inside (or one past) the
        // allocation; the 2 bytes before it are inside the header (head ≥ 8).
        unsafe {
            let ptr = base.add(head);
            ptr.sub(2).cast::<u16>().write_unaligned(owner);
            ptr
        }
    }

    /// The owner stored in front of `ptr` and the system's pointer.
    ///
    /// # Safety
    /// `ptr` was returned by this allocator for `layout`.
    #[inline]
    unsafe fn open(ptr: *mut u8, layout: Layout) -> (*mut u8, u16) {
        let head = header(layout.align());
        // SAFETY: `ptr` is `base + head` of an allocation this allocator made (see `finish`).
        unsafe { (ptr.sub(head), ptr.sub(2).cast::<u16>().read_unaligned()) }
    }
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with a layout that is the caller's plus a header
// (same or larger alignment), hands out a pointer `header` bytes into that block (aligned as
// asked: the header is a multiple of the alignment), and gives `System` back exactly the block
// and outer layout it returned. The size passed to `System` is never zero (header ≥ 8).
unsafe impl GlobalAlloc for Accounting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, head)) = Self::outer(layout) else { return std::ptr::null_mut() };
        // SAFETY: `outer` has a non-zero size.
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let owner = current().0;
        charge(owner, layout.size());
        // SAFETY: `base` is a live block of `outer`.
        unsafe { Self::finish(base, head, owner) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((outer, head)) = Self::outer(layout) else { return std::ptr::null_mut() };
        // SAFETY: `outer` has a non-zero size.
        let base = unsafe { System.alloc_zeroed(outer) };
        if base.is_null() {
            return base;
        }
        let owner = current().0;
        charge(owner, layout.size());
        // SAFETY: `base` is a live block of `outer`.
        unsafe { Self::finish(base, head, owner) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        let (base, owner) = unsafe { Self::open(ptr, layout) };
        credit(owner, layout.size());
        if let Some((outer, _)) = Self::outer(layout) {
            // SAFETY: `base` was returned by `System` for `outer` (computed the same way).
            unsafe { System.dealloc(base, outer) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some((old_outer, head)) = Self::outer(layout) else { return std::ptr::null_mut() };
        if !fits(new_size, head, old_outer.align()) {
            return std::ptr::null_mut();
        }
        let new_outer = new_size + head;
        // SAFETY: `ptr` came from this allocator with `layout`.
        let (base, owner) = unsafe { Self::open(ptr, layout) };
        // SAFETY: `base` is a block of `old_outer` from `System`; `new_outer` is non-zero and,
        // rounded up to the alignment, does not overflow (checked above). The header moves
        // with the block, so the owner stays.
        let moved = unsafe { System.realloc(base, old_outer, new_outer) };
        if moved.is_null() {
            return moved;
        }
        if new_size >= layout.size() {
            charge(owner, new_size - layout.size());
        } else {
            credit(owner, layout.size() - new_size);
        }
        // SAFETY: `moved + head` is inside the new block of `new_outer` bytes.
        unsafe { moved.add(head) }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    fn fresh() -> Owner {
        Owner::next()
    }

    #[test]
    fn alignments_are_kept_and_bytes_charged_and_credited() {
        let a = Accounting;
        let owner = fresh();
        for shift in 0..=12 {
            let align = 1usize << shift;
            for size in [1, 7, 16, 100, 4096, 10_000] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                let ptr = with_owner(owner, || unsafe { a.alloc(layout) });
                assert!(!ptr.is_null());
                assert_eq!(ptr as usize % align, 0, "align {align}");
                // The whole block is usable.
                unsafe { ptr.write_bytes(0xAB, size) };
                assert_eq!(live_bytes(owner), size as u64);
                // Freed by the host: credited to the owner all the same.
                unsafe { a.dealloc(ptr, layout) };
                assert_eq!(live_bytes(owner), 0);
            }
        }
    }

    #[test]
    fn zeroed_allocations_are_zero() {
        let a = Accounting;
        let owner = fresh();
        let layout = Layout::from_size_align(333, 64).expect("layout");
        let ptr = with_owner(owner, || unsafe { a.alloc_zeroed(layout) });
        assert_eq!(ptr as usize % 64, 0);
        let bytes = unsafe { std::slice::from_raw_parts(ptr, 333) };
        assert!(bytes.iter().all(|b| *b == 0));
        assert_eq!(live_bytes(owner), 333);
        unsafe { a.dealloc(ptr, layout) };
        assert_eq!(live_bytes(owner), 0);
    }

    #[test]
    fn realloc_keeps_the_original_owner_and_the_contents() {
        let a = Accounting;
        let (owner, other) = (fresh(), fresh());
        for align in [1, 8, 16, 32, 4096] {
            let layout = Layout::from_size_align(64, align).expect("layout");
            let ptr = with_owner(owner, || unsafe { a.alloc(layout) });
            for i in 0..64 {
                unsafe { ptr.add(i).write(i as u8) };
            }
            // Grown while another owner is current: still the first owner's.
            let grown = with_owner(other, || unsafe { a.realloc(ptr, layout, 10_000) });
            assert!(!grown.is_null());
            assert_eq!(grown as usize % align, 0);
            assert_eq!(live_bytes(owner), 10_000);
            assert_eq!(live_bytes(other), 0);
            for i in 0..64 {
                assert_eq!(unsafe { grown.add(i).read() }, i as u8);
            }
            let big = Layout::from_size_align(10_000, align).expect("layout");
            let shrunk = unsafe { a.realloc(grown, big, 10) };
            assert_eq!(live_bytes(owner), 10);
            for i in 0..10 {
                assert_eq!(unsafe { shrunk.add(i).read() }, i as u8);
            }
            unsafe { a.dealloc(shrunk, Layout::from_size_align(10, align).expect("layout")) };
            assert_eq!(live_bytes(owner), 0);
        }
    }

    #[test]
    fn scopes_nest_and_restore() {
        let (a, b) = (fresh(), fresh());
        assert_eq!(current(), Owner::HOST);
        {
            let _outer = enter(a);
            assert_eq!(current(), a);
            with_owner(b, || assert_eq!(current(), b));
            assert_eq!(current(), a);
        }
        assert_eq!(current(), Owner::HOST);
    }

    #[test]
    fn the_host_is_not_counted_and_overflow_is_refused() {
        let a = Accounting;
        let layout = Layout::from_size_align(128, 8).expect("layout");
        let ptr = unsafe { a.alloc(layout) };
        assert_eq!(live_bytes(Owner::HOST), 0);
        unsafe { a.dealloc(ptr, layout) };
        let huge = Layout::from_size_align(isize::MAX as usize - 8, 8).expect("layout");
        assert!(unsafe { a.alloc(huge) }.is_null());
        let small = Layout::from_size_align(8, 8).expect("layout");
        let ptr = unsafe { a.alloc(small) };
        assert!(unsafe { a.realloc(ptr, small, isize::MAX as usize) }.is_null());
        unsafe { a.dealloc(ptr, small) };
    }

    #[test]
    fn the_unit_tests_run_on_the_system_allocator() {
        // This crate's test binary does not install `Accounting`: the probe sees no charge.
        assert!(!installed());
    }

    #[test]
    fn owner_ids_are_distinct_and_never_the_host() {
        let ids: std::collections::HashSet<_> = (0..100).map(|_| Owner::next()).collect();
        assert_eq!(ids.len(), 100);
        assert!(!ids.contains(&Owner::HOST));
    }
}
