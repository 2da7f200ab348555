//! An accounting global allocator: every allocation is charged to an *owner* (the extension
//! whose code is being polled on this thread, or the host), and credited back to the same owner
//! when it is freed, whichever thread or owner frees it.
//!
//! * The current owner is a `const`-initialised thread-local `Cell<u16>` (0 = the host): setting
//!   it costs one thread-local write, reading it neither allocates nor initialises lazily.
//! * An extension's block of alignment ≤ 8 (nearly all of them) carries its owner in the 8 bytes
//!   in front of it, and is handed out 8 bytes past a multiple of 16; the host's blocks are asked
//!   of the system aligned to 16 and carry nothing. So at free time the address alone tells an
//!   extension's block (`ptr % 16 == 8`) from the host's, and only an extension's pays for its
//!   owner: a response body an extension allocated and the host frees is credited to the
//!   extension, and `realloc` keeps the original owner (who is charged the size difference).
//! * A block of alignment above 8 (rare: cache-padded structures) carries a header of its
//!   alignment, the owner in its last two bytes, whoever owns it.
//! * Live bytes are kept in a static array of atomics, one per owner id. The host (owner 0) is not
//!   counted.
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
//! Cost: the host's allocation pays a thread-local read and two compares in front of `malloc`,
//! its free a compare of the alignment and of the address; an extension's allocation pays 8 bytes
//! more of memory, an out-of-line call, the owner write and one relaxed atomic add, its free the
//! owner read and one relaxed atomic subtract (bench/alloc_cost.sh measures it per request).

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

/// Alignment every block of alignment ≤ 8 is asked of the system with: the host's blocks start
/// at a multiple of 16, an extension's block is handed out 8 bytes into its own (after the
/// owner), so `ptr % 16 == 8` tells the one from the other at free time.
const BASE_ALIGN: usize = 16;
/// The owner word in front of an extension's block of alignment ≤ 8, and the offset that tags it.
const TAG: usize = 8;
/// The largest alignment the tag scheme serves; above it every block carries a header.
const TAGGED_MAX_ALIGN: usize = 8;

/// Whether `size` bytes after `head` bytes, rounded up to `align`, stay within `isize::MAX`
/// (what a `Layout` requires).
#[inline]
const fn fits(size: usize, head: usize, align: usize) -> bool {
    size <= isize::MAX as usize - head - align
}

/// Whether `ptr`, a block of any alignment from this allocator, is an extension's tagged block
/// (of alignment ≤ 8): every other block starts at a multiple of 16, a tagged one 8 past it, so
/// bit 3 of the address tells.
#[inline]
fn tagged(ptr: *mut u8) -> bool {
    ptr.addr() & TAG != 0
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

/// The layout a block of `size` bytes of the host's (alignment ≤ 8) is asked of the system with:
/// aligned to 16, so its address is never tagged, and at least 16 bytes, so `System` serves it
/// with `malloc` rather than its aligned path (malloc's smallest block is larger anyway).
#[inline]
#[allow(unsafe_code)]
fn host_layout(size: usize) -> Option<Layout> {
    if !fits(size, 0, BASE_ALIGN) {
        return None;
    }
    // SAFETY: 16 is a power of two; `size` rounded up to it fits (checked above).
    Some(unsafe { Layout::from_size_align_unchecked(size.max(BASE_ALIGN), BASE_ALIGN) })
}

/// The layout an extension's block of `size` bytes (alignment ≤ 8) is asked of the system with:
/// the owner word, then the block, aligned to 16.
#[inline]
#[allow(unsafe_code)]
fn owned_layout(size: usize) -> Option<Layout> {
    if !fits(size, TAG, BASE_ALIGN) {
        return None;
    }
    // SAFETY: 16 is a power of two; `size + 8` rounded up to it fits (checked above).
    Some(unsafe { Layout::from_size_align_unchecked((size + TAG).max(BASE_ALIGN), BASE_ALIGN) })
}

/// The layout a block of alignment `align` > 8 is asked of the system with: a header of `align`
/// bytes (the owner in its last two) in front of the block. Rare (cache-padded structures), so
/// these carry a header whoever owns them.
#[inline]
#[allow(unsafe_code)]
fn headed_layout(size: usize, align: usize) -> Option<Layout> {
    if !fits(size, align, align) {
        return None;
    }
    // SAFETY: `align` is a power of two (a `Layout`'s); `size + align` rounded up to it fits.
    Some(unsafe { Layout::from_size_align_unchecked(size + align, align) })
}

/// [`host_layout`] for a block that was allocated with it (so it fits).
///
/// # Safety
/// `host_layout(size)` is `Some`.
#[inline]
#[allow(unsafe_code)]
unsafe fn host_layout_unchecked(size: usize) -> Layout {
    // SAFETY: 16 is a power of two; `size` rounded up to it fits (the caller's contract).
    unsafe { Layout::from_size_align_unchecked(size.max(BASE_ALIGN), BASE_ALIGN) }
}

/// [`owned_layout`] for a block that was allocated with it (so it fits).
///
/// # Safety
/// `owned_layout(size)` is `Some`.
#[inline]
#[allow(unsafe_code)]
unsafe fn owned_layout_unchecked(size: usize) -> Layout {
    // SAFETY: 16 is a power of two; `size + 8` rounded up to it fits (the caller's contract).
    unsafe { Layout::from_size_align_unchecked((size + TAG).max(BASE_ALIGN), BASE_ALIGN) }
}

/// The paths past the host's own blocks of alignment ≤ 8, which each method serves inline with
/// an owner or tag check in front of `System` and no stack frame. An extension's block takes
/// one out-of-line call ([`Accounting::allocate_tagged`]); blocks of alignment above 8 are rare
/// and take the cold `*_headed` functions.
#[allow(unsafe_code)]
impl Accounting {
    /// Allocates an extension's block of alignment ≤ 8: the owner word, then the caller's
    /// block, charged to `owner` (≠ 0).
    ///
    /// # Safety
    /// `size` is non-zero.
    #[inline(never)]
    unsafe fn allocate_tagged<const ZEROED: bool>(size: usize, owner: u16) -> *mut u8 {
        let Some(outer) = owned_layout(size) else { return std::ptr::null_mut() };
        // SAFETY: `outer` is non-zero (at least 16 bytes).
        let base = unsafe { if ZEROED { System.alloc_zeroed(outer) } else { System.alloc(outer) } };
        if base.is_null() {
            return base;
        }
        LIVE[owner as usize].fetch_add(size as i64, Ordering::Relaxed);
        // SAFETY: `base` is a live block of `outer` (≥ size + 8 bytes, 16-aligned): the owner
        // word is its first 8 bytes, the caller's block starts after them (8-aligned, and 8
        // past a multiple of 16: tagged). Written after zeroing, outside the caller's block.
        unsafe {
            base.cast::<u64>().write(u64::from(owner));
            base.add(TAG)
        }
    }

    /// Allocates a block of alignment > 8 for `owner` (the host's too): a header of the
    /// alignment in front, the owner in its last two bytes.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[cold]
    #[inline(never)]
    unsafe fn allocate_headed<const ZEROED: bool>(layout: Layout, owner: u16) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let Some(outer) = headed_layout(size, align) else { return std::ptr::null_mut() };
        // SAFETY: `outer` is non-zero (size + align).
        let base = unsafe { if ZEROED { System.alloc_zeroed(outer) } else { System.alloc(outer) } };
        if base.is_null() {
            return base;
        }
        charge(owner, size);
        // SAFETY: `base` is a live block of `outer` (size + align bytes, aligned to `align`):
        // the caller's block starts `align` bytes in (so it is aligned), and the 2 bytes before
        // it are inside the header (align ≥ 16).
        unsafe {
            let ptr = base.add(align);
            ptr.sub(2).cast::<u16>().write_unaligned(owner);
            ptr
        }
    }

    /// Frees a block of alignment > 8, crediting its owner.
    ///
    /// # Safety
    /// `ptr` came from this allocator with `layout`, of alignment > 8.
    #[cold]
    #[inline(never)]
    unsafe fn free_headed(ptr: *mut u8, layout: Layout) {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: a block of alignment > 8 starts `align` bytes into the system's block, the
        // owner in the 2 bytes before it.
        let (base, owner) = unsafe { (ptr.sub(align), ptr.sub(2).cast::<u16>().read_unaligned()) };
        credit(owner, size);
        if let Some(outer) = headed_layout(size, align) {
            // SAFETY: `base` came from `System` with this layout.
            unsafe { System.dealloc(base, outer) }
        }
    }

    /// Resizes an extension's block (tagged) or a block of alignment > 8; it keeps its owner,
    /// who is charged or credited the difference.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`], and `ptr` is tagged or of alignment > 8.
    #[inline(never)]
    unsafe fn realloc_owned(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let size = layout.size();
        if layout.align() <= TAGGED_MAX_ALIGN {
            let (Some(outer), Some(grown)) = (owned_layout(size), owned_layout(new_size)) else {
                return std::ptr::null_mut();
            };
            // SAFETY: a tagged block is an extension's, its system block 8 bytes before it.
            let base = unsafe { ptr.sub(TAG) };
            // SAFETY: `base` came from `System` with `outer`; the owner word moves with the
            // block, and the new block is 16-aligned, so `moved + 8` is tagged again.
            let moved = unsafe { System.realloc(base, outer, grown.size()) };
            if moved.is_null() {
                return moved;
            }
            // SAFETY: the owner word was copied with the block.
            let owner = unsafe { moved.cast::<u64>().read() } as u16;
            resize(owner, size, new_size);
            // SAFETY: inside the new block of ≥ new_size + 8 bytes.
            return unsafe { moved.add(TAG) };
        }
        let align = layout.align();
        let (Some(outer), Some(grown)) = (headed_layout(size, align), headed_layout(new_size, align)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: the block starts `align` bytes into the system's, the owner just before it.
        let (base, owner) = unsafe { (ptr.sub(align), ptr.sub(2).cast::<u16>().read_unaligned()) };
        // SAFETY: `base` came from `System` with `outer`; the header moves with the block.
        let moved = unsafe { System.realloc(base, outer, grown.size()) };
        if moved.is_null() {
            return moved;
        }
        resize(owner, size, new_size);
        // SAFETY: inside the new block of new_size + align bytes.
        unsafe { moved.add(align) }
    }
}

#[allow(unsafe_code)]
// SAFETY: a block of alignment ≤ 8 is the host's (asked of `System` as it is, aligned to 16, at
// least 16 bytes) or an extension's (asked with an owner word in front, handed out 8 bytes in);
// its address tells which, because `System` honours the alignment of 16. A block of larger
// alignment carries a header of that alignment (so it, too, starts at a multiple of 16). Every
// method gives `System` back exactly the block and the layout it got from it, computed from
// the caller's layout the same way; none asks `System` for zero bytes.
unsafe impl GlobalAlloc for Accounting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let owner = current().0;
        if layout.align() > TAGGED_MAX_ALIGN {
            // SAFETY: `layout` has a non-zero size (the caller's contract).
            return unsafe { Self::allocate_headed::<false>(layout, owner) };
        }
        if owner != 0 {
            // SAFETY: as above.
            return unsafe { Self::allocate_tagged::<false>(layout.size(), owner) };
        }
        // SAFETY: a non-zero layout (`host_layout` only grows it).
        host_layout(layout.size()).map_or(std::ptr::null_mut(), |l| unsafe { System.alloc(l) })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let owner = current().0;
        if layout.align() > TAGGED_MAX_ALIGN {
            // SAFETY: `layout` has a non-zero size (the caller's contract).
            return unsafe { Self::allocate_headed::<true>(layout, owner) };
        }
        if owner != 0 {
            // SAFETY: as above.
            return unsafe { Self::allocate_tagged::<true>(layout.size(), owner) };
        }
        // SAFETY: a non-zero layout (`host_layout` only grows it).
        host_layout(layout.size()).map_or(std::ptr::null_mut(), |l| unsafe { System.alloc_zeroed(l) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size();
        if tagged(ptr) {
            // SAFETY: a tagged block is an extension's of alignment ≤ 8: its owner word (≠ 0)
            // is the 8 bytes before it, at the start of the system's block, which came from
            // `System` with `owned_layout(size)` (it fitted, or there would be no block).
            unsafe {
                let base = ptr.sub(TAG);
                let owner = base.cast::<u64>().read() as u16;
                LIVE[owner as usize].fetch_sub(size as i64, Ordering::Relaxed);
                return System.dealloc(base, owned_layout_unchecked(size));
            }
        }
        if layout.align() > TAGGED_MAX_ALIGN {
            // SAFETY: `ptr` came from this allocator with `layout`, of alignment > 8.
            return unsafe { Self::free_headed(ptr, layout) };
        }
        // SAFETY: an untagged block of alignment ≤ 8 is the host's, from `System` with
        // `host_layout(size)` (which fitted, or there would be no block).
        unsafe { System.dealloc(ptr, host_layout_unchecked(size)) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !tagged(ptr) && layout.align() <= TAGGED_MAX_ALIGN {
            // The host's block stays the host's, whoever grows it.
            let Some(grown) = host_layout(new_size) else { return std::ptr::null_mut() };
            // SAFETY: `ptr` came from `System` with `host_layout(size)`; `grown.size()` is
            // non-zero and fits at alignment 16. `System` keeps the alignment, so the block
            // stays untagged.
            return unsafe { System.realloc(ptr, host_layout_unchecked(layout.size()), grown.size()) };
        }
        // SAFETY: the caller's contract; tagged or aligned above 8.
        unsafe { Self::realloc_owned(ptr, layout, new_size) }
    }
}

/// Charges or credits `owner` for a block resized from `old` to `new` bytes.
#[inline]
fn resize(owner: u16, old: usize, new: usize) {
    if new >= old {
        charge(owner, new - old);
    } else {
        credit(owner, old - new);
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
    fn an_extensions_block_is_told_from_the_hosts_by_its_address() {
        let a = Accounting;
        let owner = fresh();
        for size in [1, 8, 15, 16, 24, 100, 4096] {
            for align in [1, 2, 4, 8] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                let host = unsafe { a.alloc(layout) };
                let ext = with_owner(owner, || unsafe { a.alloc(layout) });
                assert!(!tagged(host) && tagged(ext), "size {size} align {align}");
                assert_eq!(live_bytes(owner), size as u64);
                // Each is given back whoever is current when it is freed.
                with_owner(owner, || unsafe { a.dealloc(host, layout) });
                assert_eq!(live_bytes(owner), size as u64);
                unsafe { a.dealloc(ext, layout) };
                assert_eq!(live_bytes(owner), 0);
            }
        }
    }

    #[test]
    fn the_hosts_block_grown_by_an_extension_stays_the_hosts() {
        let a = Accounting;
        let owner = fresh();
        let layout = Layout::from_size_align(10, 1).expect("layout");
        let ptr = unsafe { a.alloc_zeroed(layout) };
        unsafe { ptr.write_bytes(7, 10) };
        let grown = with_owner(owner, || unsafe { a.realloc(ptr, layout, 100_000) });
        assert!(!grown.is_null() && !tagged(grown));
        assert_eq!(live_bytes(owner), 0);
        assert!(unsafe { std::slice::from_raw_parts(grown, 10) }.iter().all(|b| *b == 7));
        let shrunk = unsafe { a.realloc(grown, Layout::from_size_align(100_000, 1).expect("layout"), 3) };
        assert!(!tagged(shrunk));
        assert_eq!(unsafe { shrunk.read() }, 7);
        unsafe { a.dealloc(shrunk, Layout::from_size_align(3, 1).expect("layout")) };
        assert_eq!(live_bytes(owner), 0);
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
