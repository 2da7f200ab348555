//! An accounting global allocator: every allocation is charged to an *owner* (the extension
//! whose code is being polled on this thread, or the host), and credited back to the same owner
//! when it is freed, whichever thread or owner frees it.
//!
//! * The current owner is a `const`-initialised thread-local `Cell<u16>` (0 = the host): setting
//!   it costs one thread-local write, reading it neither allocates nor initialises lazily.
//! * **Large blocks are counted exactly, small ones are sampled.** An extension's block of at
//!   least [`sample_bytes`] (4 KiB) is *tagged* and charged its size. Smaller blocks are sampled
//!   the way heap profilers sample (tcmalloc, jemalloc): sample points fall on the stream of
//!   small bytes an extension allocates, an exponentially distributed [`sample_bytes`] apart on
//!   average (a Poisson process), and a block that a point falls in is tagged and charged
//!   [`sample_bytes`] per point. The expected charge of every block is its size, so
//!   [`live_bytes`] is an unbiased estimate whose error shrinks with the live set: the standard
//!   deviation is √(sample_bytes × small live bytes) — ±290 KiB (1.4 %) on 20 MiB of small
//!   blocks, ±2 MiB (0.2 %) on 1 GiB — and large blocks are exact. A block keeps its charge until
//!   it is freed, so freeing everything an extension allocated brings it back to exactly 0.
//! * A tagged block of alignment ≤ 8 (nearly all of them) carries its owner and charge in the
//!   8 bytes in front of it and is handed out 8 bytes past a multiple of 16; every other block
//!   of alignment ≤ 8 — the host's and an extension's unsampled small ones — is asked of the
//!   system as it is, aligned to 16, and carries nothing. So at free time the address alone
//!   tells a tagged block (`ptr % 16 == 8`) from the rest, and only a tagged block pays for its
//!   owner: a response body an extension allocated and the host frees is credited to the
//!   extension.
//! * Growing a block with `realloc` is allocating the new bytes: while an extension is current,
//!   they are counted (exactly once the block is large, sampled while it is small) and charged
//!   to the block's owner, or, for an untagged block, to the current extension (which then owns
//!   it). The host growing an untagged block charges no one.
//! * A block of alignment above 8 (hash tables are 16) carries its owner in 2 bytes right after
//!   it, whoever owns it (2 bytes usually fit in the slack malloc rounds the block up to), and
//!   an extension's is charged exactly.
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
//! Cost (bench/alloc_cost.sh measures it per request): the host's allocation pays a
//! thread-local read and two compares in front of `malloc`, its free a test of the address and
//! of the alignment; an extension's small unsampled allocation pays a thread-local countdown
//! more. A tagged block pays an out-of-line call, 8 bytes of memory and one relaxed atomic add
//! when allocated, and one atomic subtract when freed; a sample point costs a logarithm more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Owner ids there are slots for: 1..`OWNERS` are extensions, 0 the host.
pub const OWNERS: usize = 1 << 16;

/// The mean distance between sample points on an extension's small allocations (and the size
/// from which blocks are counted exactly), unless [`set_sample_bytes`] says otherwise.
pub const DEFAULT_SAMPLE_BYTES: usize = 4096;

/// Live bytes per owner (signed: a slot reused after wrap-around may be credited bytes charged
/// before; [`live_bytes`] clamps at 0).
static LIVE: [AtomicI64; OWNERS] = [const { AtomicI64::new(0) }; OWNERS];
/// The owner [`installed`] allocates as; never handed out by [`Owner::next`].
const PROBE: u16 = (OWNERS - 1) as u16;
static NEXT: AtomicU32 = AtomicU32::new(1);
/// See [`sample_bytes`].
static SAMPLE: AtomicUsize = AtomicUsize::new(DEFAULT_SAMPLE_BYTES);
/// Distinguishes the sampling seeds of threads.
static SEEDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CURRENT: Cell<u16> = const { Cell::new(0) };
    /// Bytes of extensions this thread may allocate before the next *boundary*: a sample point,
    /// or a step towards one. Never more than [`sample_bytes`], so a large block always reaches
    /// the slow path with one compare (0 before the thread's first draw).
    static COUNTDOWN: Cell<i64> = const { Cell::new(0) };
    /// How far the next sample point lies beyond the boundary (≥ 0; 0: the boundary is one).
    static CARRY: Cell<i64> = const { Cell::new(0) };
    /// The thread's sampling generator (xorshift64*; 0 until seeded).
    static RNG: Cell<u64> = const { Cell::new(0) };
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

/// Bytes allocated while `owner` was current and not freed yet: exact for blocks of at least
/// [`sample_bytes`], an unbiased sampled estimate for smaller ones (see the crate's docs). 0 for
/// the host, and 0 when the accounting allocator is not the global allocator.
pub fn live_bytes(owner: Owner) -> u64 {
    if owner.is_host() {
        return 0;
    }
    u64::try_from(LIVE[owner.0 as usize].load(Ordering::Relaxed)).unwrap_or(0)
}

/// The mean distance in bytes between sample points on an extension's small blocks, and the
/// size from which a block is counted exactly ([`DEFAULT_SAMPLE_BYTES`] unless set).
#[inline]
pub fn sample_bytes() -> usize {
    SAMPLE.load(Ordering::Relaxed)
}

/// Sets [`sample_bytes`] for the whole process (at least 1; 1 counts every block exactly, at
/// the cost of tagging every block an extension allocates). Blocks allocated before keep what
/// they were charged; a thread that allocated for extensions before moves to the new size from
/// its next sample point (set it at start-up).
pub fn set_sample_bytes(bytes: usize) {
    SAMPLE.store(bytes.clamp(1, 1 << 40), Ordering::Relaxed);
}

/// Whether [`Accounting`] is the global allocator: a probe allocation made as a reserved owner
/// is charged to it. (A probe rather than a flag set on every allocation: the hot path stays
/// free of it.) The probe is large, so it is counted exactly.
pub fn installed() -> bool {
    let probe = Owner(PROBE);
    let before = LIVE[PROBE as usize].load(Ordering::Relaxed);
    let block = with_owner(probe, || std::hint::black_box(Vec::<u8>::with_capacity(sample_bytes())));
    let charged = LIVE[PROBE as usize].load(Ordering::Relaxed) > before;
    drop(block);
    charged
}

/// The accounting allocator over [`System`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Accounting;

/// Alignment every block of alignment ≤ 8 is asked of the system with: untagged blocks start
/// at a multiple of 16, a tagged block is handed out 8 bytes into its own (after its word), so
/// bit 3 of the address tells the one from the other at free time.
const BASE_ALIGN: usize = 16;
/// The word in front of a tagged block, and the offset that tags it.
const TAG: usize = 8;
/// The largest alignment the tag scheme serves; above it every block carries its owner after it.
const TAGGED_MAX_ALIGN: usize = 8;
/// A tagged block's word: the owner in the low 16 bits, the bytes it is charged above.
const OWNER_BITS: u32 = 16;
/// The most a tagged block can be charged (what fits above the owner); larger blocks (over
/// 128 TiB) are refused.
const MAX_CHARGED: u64 = 1 << 47;

/// Whether `size` bytes after `head` bytes, rounded up to `align`, stay within `isize::MAX`
/// (what a `Layout` requires).
#[inline]
const fn fits(size: usize, head: usize, align: usize) -> bool {
    size <= isize::MAX as usize - head - align
}

/// Whether `ptr`, a block of any alignment from this allocator, is tagged (of alignment ≤ 8,
/// with its owner in front): every other block starts at a multiple of 16, a tagged one 8 past
/// it.
#[inline]
fn tagged(ptr: *mut u8) -> bool {
    ptr.addr() & TAG != 0
}

#[inline]
fn charge(owner: u16, bytes: u64) {
    if owner != 0 {
        LIVE[owner as usize].fetch_add(bytes as i64, Ordering::Relaxed);
    }
}

#[inline]
fn credit(owner: u16, bytes: u64) {
    if owner != 0 {
        LIVE[owner as usize].fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

/// The word of a tagged block.
#[inline]
fn word(owner: u16, charged: u64) -> u64 {
    (charged << OWNER_BITS) | u64::from(owner)
}

/// The owner and charge in a tagged block's word.
#[inline]
fn unword(word: u64) -> (u16, u64) {
    (word as u16, word >> OWNER_BITS)
}

/// The layout an untagged block of `size` bytes (alignment ≤ 8) is asked of the system with:
/// aligned to 16, so its address is never tagged, and at least 16 bytes, so `System` serves it
/// with `malloc` rather than its aligned path (malloc's smallest block is larger anyway).
#[inline]
#[allow(unsafe_code)]
fn plain_layout(size: usize) -> Option<Layout> {
    if !fits(size, 0, BASE_ALIGN) {
        return None;
    }
    // SAFETY: 16 is a power of two; `size` rounded up to it fits (checked above).
    Some(unsafe { Layout::from_size_align_unchecked(size.max(BASE_ALIGN), BASE_ALIGN) })
}

/// [`plain_layout`] for a block that was allocated with it (so it fits): the check is left to
/// the optimiser to drop.
///
/// # Safety
/// `plain_layout(size)` is `Some`.
#[inline]
#[allow(unsafe_code)]
unsafe fn plain_layout_unchecked(size: usize) -> Layout {
    // SAFETY: the caller's contract.
    unsafe { plain_layout(size).unwrap_unchecked() }
}

/// The layout a tagged block of `size` bytes (alignment ≤ 8) is asked of the system with: the
/// word, then the block, aligned to 16.
#[inline]
#[allow(unsafe_code)]
fn tagged_layout(size: usize) -> Option<Layout> {
    if !fits(size, TAG, BASE_ALIGN) {
        return None;
    }
    // SAFETY: 16 is a power of two; `size + 8` rounded up to it fits (checked above).
    Some(unsafe { Layout::from_size_align_unchecked((size + TAG).max(BASE_ALIGN), BASE_ALIGN) })
}

/// [`tagged_layout`] for a block that was allocated with it (so it fits): the check is left to
/// the optimiser to drop.
///
/// # Safety
/// `tagged_layout(size)` is `Some`.
#[inline]
#[allow(unsafe_code)]
unsafe fn tagged_layout_unchecked(size: usize) -> Layout {
    // SAFETY: the caller's contract.
    unsafe { tagged_layout(size).unwrap_unchecked() }
}

/// Bytes after a block of alignment > 8: its owner.
const TRAILER: usize = 2;

/// The layout a block of alignment `align` > 8 is asked of the system with: the block, then
/// its owner (2 bytes).
#[inline]
#[allow(unsafe_code)]
fn trailed_layout(size: usize, align: usize) -> Option<Layout> {
    if !fits(size, TRAILER, align) {
        return None;
    }
    // SAFETY: `align` is a power of two (a `Layout`'s); `size + 2` rounded up to it fits.
    Some(unsafe { Layout::from_size_align_unchecked(size + TRAILER, align) })
}

/// The next distance to a sample point: exponential with mean `mean` bytes (at least 1).
#[cold]
fn draw(mean: usize) -> i64 {
    let mut x = RNG.try_with(Cell::get).unwrap_or(0);
    if x == 0 {
        // splitmix64 of a per-thread count and this thread's address space position.
        let mut z = SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            ^ (RNG.try_with(|c| std::ptr::from_ref(c).addr()).unwrap_or(0) as u64);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = (z ^ (z >> 31)) | 1;
    }
    // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    let _ = RNG.try_with(|c| c.set(x));
    let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
    // Uniform in (0, 1], so the logarithm is finite.
    let u = (bits as f64 + 1.0) / (1u64 << 53) as f64;
    (-u.ln() * mean as f64) as i64 + 1
}

/// Counts the sample points among the small bytes that took this thread's countdown to
/// `countdown` (≤ 0), and moves it past them; the slow path of [`small`]. Sample points lie an
/// exponential draw apart (mean `mean`); the countdown reaches them in steps of at most `mean`.
#[cold]
#[inline(never)]
fn points(countdown: i64, mean: usize) -> u64 {
    let step = i64::try_from(mean).unwrap_or(i64::MAX);
    let (mut c, mut carry) = (countdown, CARRY.try_with(Cell::get).unwrap_or(0));
    let mut hits = 0;
    while c <= 0 {
        if carry == 0 {
            // The thread's first small bytes start its first gap; any later boundary with
            // nothing beyond it is a sample point.
            if RNG.try_with(Cell::get).unwrap_or(1) != 0 {
                hits += 1;
            }
            carry = draw(mean);
        }
        let next = carry.min(step);
        carry -= next;
        c += next;
    }
    let _ = COUNTDOWN.try_with(|cell| cell.set(c));
    let _ = CARRY.try_with(|cell| cell.set(carry));
    hits
}

/// Moves this thread's countdown by `bytes` small bytes of an extension: the number of sample
/// points that fell in them (usually 0).
#[inline]
fn small(bytes: usize) -> u64 {
    let c = COUNTDOWN.try_with(Cell::get).unwrap_or(1).wrapping_sub(bytes as i64);
    if c > 0 {
        let _ = COUNTDOWN.try_with(|cell| cell.set(c));
        return 0;
    }
    points(c, sample_bytes())
}

/// The allocation paths. The host's blocks and an extension's unsampled small ones take the
/// inlined fast path of each method, with no stack frame; tagged blocks (an extension's large
/// or sampled ones), blocks of alignment above 8, and growing an untagged block while an
/// extension is current take the out-of-line ones.
#[allow(unsafe_code)]
impl Accounting {
    /// `alloc` (`ZEROED` false) and `alloc_zeroed`: the host's block, or an extension's small
    /// unsampled one, inline with no stack frame; the rest out of line.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(always)]
    unsafe fn allocate<const ZEROED: bool>(layout: Layout) -> *mut u8 {
        let owner = current().0;
        let size = layout.size();
        if layout.align() > TAGGED_MAX_ALIGN {
            // SAFETY: `layout` has a non-zero size (the caller's contract).
            return unsafe { Self::allocate_trailed::<ZEROED>(layout, owner) };
        }
        if owner != 0 {
            // The countdown is at most the sample size: a large block always reaches the slow
            // path here.
            let c = COUNTDOWN.try_with(Cell::get).unwrap_or(1).wrapping_sub(size as i64);
            if c <= 0 {
                // SAFETY: as above.
                return unsafe { Self::allocate_sampled::<ZEROED>(size, owner, c) };
            }
            let _ = COUNTDOWN.try_with(|cell| cell.set(c));
        }
        plain_layout(size).map_or(std::ptr::null_mut(), |l| {
            // SAFETY: a non-zero layout (`plain_layout` only grows it).
            unsafe { if ZEROED { System.alloc_zeroed(l) } else { System.alloc(l) } }
        })
    }

    /// Allocates a tagged block of `size` bytes (alignment ≤ 8) owned by `owner` (≠ 0),
    /// charged `charged`.
    ///
    /// # Safety
    /// `size` is non-zero.
    #[inline(never)]
    unsafe fn allocate_tagged<const ZEROED: bool>(size: usize, owner: u16, charged: u64) -> *mut u8 {
        let Some(outer) = tagged_layout(size).filter(|_| charged < MAX_CHARGED) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` is non-zero (at least 16 bytes).
        let base = unsafe { if ZEROED { System.alloc_zeroed(outer) } else { System.alloc(outer) } };
        if base.is_null() {
            return base;
        }
        charge(owner, charged);
        // SAFETY: `base` is a live block of `outer` (≥ size + 8 bytes, 16-aligned): the word is
        // its first 8 bytes, the caller's block starts after them (8-aligned, and 8 past a
        // multiple of 16: tagged). Written after zeroing, outside the caller's block.
        unsafe {
            base.cast::<u64>().write(word(owner, charged));
            base.add(TAG)
        }
    }

    /// Allocates an extension's block that took the countdown to `countdown` (≤ 0): a large
    /// one tagged and charged its size (the countdown untouched: large blocks are not
    /// sampled), a small one with sample points in it tagged and charged [`sample_bytes`] per
    /// point, else an untagged one.
    ///
    /// # Safety
    /// `size` is non-zero.
    #[inline(never)]
    unsafe fn allocate_sampled<const ZEROED: bool>(size: usize, owner: u16, countdown: i64) -> *mut u8 {
        let mean = sample_bytes();
        if size >= mean {
            // SAFETY: `size` is non-zero.
            return unsafe { Self::allocate_tagged::<ZEROED>(size, owner, size as u64) };
        }
        let hits = points(countdown, mean);
        if hits == 0 {
            // Only a step towards the next point (or the thread's first draw) fell in it.
            return plain_layout(size).map_or(std::ptr::null_mut(), |l| {
                // SAFETY: a non-zero layout.
                unsafe { if ZEROED { System.alloc_zeroed(l) } else { System.alloc(l) } }
            });
        }
        // SAFETY: `size` is non-zero.
        unsafe { Self::allocate_tagged::<ZEROED>(size, owner, hits * mean as u64) }
    }

    /// Allocates a block of alignment > 8 for `owner` (the host's too), its owner after it; an
    /// extension's is charged exactly.
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline(never)]
    unsafe fn allocate_trailed<const ZEROED: bool>(layout: Layout, owner: u16) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let Some(outer) = trailed_layout(size, align) else { return std::ptr::null_mut() };
        // SAFETY: `outer` is non-zero (size + 2).
        let ptr = unsafe { if ZEROED { System.alloc_zeroed(outer) } else { System.alloc(outer) } };
        if ptr.is_null() {
            return ptr;
        }
        charge(owner, size as u64);
        // SAFETY: `ptr` is a live block of `outer`: its last 2 bytes are past the caller's.
        unsafe { ptr.add(size).cast::<u16>().write_unaligned(owner) };
        ptr
    }

    /// Frees a block of alignment > 8, crediting its owner.
    ///
    /// # Safety
    /// `ptr` came from this allocator with `layout`, of alignment > 8.
    #[inline(never)]
    unsafe fn free_trailed(ptr: *mut u8, layout: Layout) {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: the owner is the 2 bytes after the caller's block, inside the system's.
        let owner = unsafe { ptr.add(size).cast::<u16>().read_unaligned() };
        credit(owner, size as u64);
        if let Some(outer) = trailed_layout(size, align) {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, outer) }
        }
    }

    /// What a block of `new_size` bytes that was charged `charged` for `size` bytes is charged
    /// after a `realloc`: its size once it is large (or was: a large block's charge is its
    /// size), else its charge plus the sample points in the bytes it grew by.
    #[inline]
    fn recharge(size: usize, new_size: usize, charged: u64) -> u64 {
        let mean = sample_bytes();
        if new_size >= mean || charged == size as u64 {
            new_size as u64
        } else if new_size > size {
            charged + small(new_size - size) * mean as u64
        } else {
            charged
        }
    }

    /// Resizes a tagged block, an untagged one while an extension is current, or a block of
    /// alignment > 8 (see the crate's docs for who is charged what).
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`]; the block is not an untagged one of alignment ≤ 8 resized
    /// while the host is current.
    #[inline(never)]
    unsafe fn realloc_slow(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let size = layout.size();
        if layout.align() > TAGGED_MAX_ALIGN {
            let align = layout.align();
            let (Some(outer), Some(grown)) = (trailed_layout(size, align), trailed_layout(new_size, align))
            else {
                return std::ptr::null_mut();
            };
            // SAFETY: the owner is the 2 bytes after the caller's block.
            let owner = unsafe { ptr.add(size).cast::<u16>().read_unaligned() };
            // SAFETY: `ptr` came from `System` with `outer`; `grown` is non-zero and fits.
            let moved = unsafe { System.realloc(ptr, outer, grown.size()) };
            if moved.is_null() {
                return moved;
            }
            credit(owner, size as u64);
            charge(owner, new_size as u64);
            // SAFETY: the new block holds new_size + 2 bytes: the owner goes after the caller's.
            unsafe { moved.add(new_size).cast::<u16>().write_unaligned(owner) };
            return moved;
        }
        if tagged(ptr) {
            let (Some(outer), Some(grown)) = (tagged_layout(size), tagged_layout(new_size)) else {
                return std::ptr::null_mut();
            };
            // SAFETY: a tagged block's system block starts 8 bytes before it, with its word.
            let (base, (owner, charged)) = unsafe {
                let base = ptr.sub(TAG);
                (base, unword(base.cast::<u64>().read()))
            };
            // SAFETY: `base` came from `System` with `outer`; the new block is 16-aligned, so
            // `moved + 8` is tagged again.
            let moved = unsafe { System.realloc(base, outer, grown.size()) };
            if moved.is_null() {
                return moved;
            }
            let now = Self::recharge(size, new_size, charged);
            credit(owner, charged);
            charge(owner, now);
            // SAFETY: the word is the first 8 bytes of the new block; the caller's follow.
            return unsafe {
                moved.cast::<u64>().write(word(owner, now));
                moved.add(TAG)
            };
        }
        // An untagged block grown while an extension is current: the new bytes are the
        // extension's. Unless they make it large or hold a sample point, it stays untagged.
        let (Some(outer), Some(grown)) = (plain_layout(size), plain_layout(new_size)) else {
            return std::ptr::null_mut();
        };
        let owner = current().0;
        let mean = sample_bytes();
        let charged = if new_size <= size {
            0
        } else if new_size >= mean {
            new_size as u64
        } else {
            small(new_size - size) * mean as u64
        };
        if charged == 0 {
            // SAFETY: `ptr` came from `System` with `outer`; `System` keeps the alignment of
            // 16, so the block stays untagged.
            return unsafe { System.realloc(ptr, outer, grown.size()) };
        }
        // SAFETY: `new_size` is non-zero (it grew).
        let moved = unsafe { Self::allocate_tagged::<false>(new_size, owner, charged) };
        if !moved.is_null() {
            // SAFETY: both blocks are live and distinct; the old one holds `size` bytes, fewer
            // than the new; it came from `System` with `outer`.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, moved, size);
                System.dealloc(ptr, outer);
            }
        }
        moved
    }
}

#[allow(unsafe_code)]
// SAFETY: a block of alignment ≤ 8 is untagged (asked of `System` as it is, aligned to 16, at
// least 16 bytes) or tagged (asked with a word in front, handed out 8 bytes in); its address
// tells which, because `System` honours the alignment of 16. A block of larger alignment
// starts where `System` put it (a multiple of 16) and has its owner after it. Every method
// gives `System` back exactly the block and the layout it got from it, computed from the
// caller's layout the same way; none asks `System` for zero bytes.
unsafe impl GlobalAlloc for Accounting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { Self::allocate::<false>(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { Self::allocate::<true>(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size();
        if tagged(ptr) {
            // SAFETY: a tagged block (alignment ≤ 8) has its word in the 8 bytes before it, at
            // the start of the system's block, which came from `System` with
            // `tagged_layout(size)` (it fitted, or there would be no block).
            unsafe {
                let base = ptr.sub(TAG);
                let (owner, charged) = unword(base.cast::<u64>().read());
                LIVE[owner as usize].fetch_sub(charged as i64, Ordering::Relaxed);
                return System.dealloc(base, tagged_layout_unchecked(size));
            }
        }
        if layout.align() > TAGGED_MAX_ALIGN {
            // SAFETY: `ptr` came from this allocator with `layout`, of alignment > 8.
            return unsafe { Self::free_trailed(ptr, layout) };
        }
        // SAFETY: an untagged block of alignment ≤ 8 came from `System` with `plain_layout(size)`
        // (which fitted, or there would be no block).
        unsafe { System.dealloc(ptr, plain_layout_unchecked(size)) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !tagged(ptr) && layout.align() <= TAGGED_MAX_ALIGN && current().is_host() {
            // The host resizing an untagged block: no one is charged.
            let Some(grown) = plain_layout(new_size) else { return std::ptr::null_mut() };
            // SAFETY: `ptr` came from `System` with `plain_layout(size)`; `grown.size()` is
            // non-zero and fits at alignment 16. `System` keeps the alignment, so the block
            // stays untagged.
            return unsafe { System.realloc(ptr, plain_layout_unchecked(layout.size()), grown.size()) };
        }
        // SAFETY: the caller's contract; not the fast path's case.
        unsafe { Self::realloc_slow(ptr, layout, new_size) }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// The sample size is process-wide: tests that set it take turns.
    static SAMPLING: Mutex<()> = Mutex::new(());

    /// Every block an extension allocates counted exactly (sample size 1).
    fn exact() -> MutexGuard<'static, ()> {
        let guard = SAMPLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set_sample_bytes(1);
        guard
    }

    /// The default sampling.
    fn sampled() -> MutexGuard<'static, ()> {
        let guard = SAMPLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set_sample_bytes(DEFAULT_SAMPLE_BYTES);
        guard
    }

    fn fresh() -> Owner {
        Owner::next()
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    #[test]
    fn alignments_are_kept_and_bytes_charged_and_credited() {
        let _exact = exact();
        let a = Accounting;
        let owner = fresh();
        for shift in 0..=12 {
            let align = 1usize << shift;
            for size in [1, 7, 16, 100, 4096, 10_000] {
                let layout = layout(size, align);
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
        let _exact = exact();
        let a = Accounting;
        let owner = fresh();
        for (size, align) in [(333, 64), (333, 8), (5, 1)] {
            let layout = layout(size, align);
            let ptr = with_owner(owner, || unsafe { a.alloc_zeroed(layout) });
            assert_eq!(ptr as usize % align, 0);
            let bytes = unsafe { std::slice::from_raw_parts(ptr, size) };
            assert!(bytes.iter().all(|b| *b == 0));
            assert_eq!(live_bytes(owner), size as u64);
            unsafe { a.dealloc(ptr, layout) };
            assert_eq!(live_bytes(owner), 0);
        }
    }

    #[test]
    fn realloc_keeps_the_original_owner_and_the_contents() {
        let _exact = exact();
        let a = Accounting;
        let (owner, other) = (fresh(), fresh());
        for align in [1, 8, 16, 32, 4096] {
            let ptr = with_owner(owner, || unsafe { a.alloc(layout(64, align)) });
            for i in 0..64 {
                unsafe { ptr.add(i).write(i as u8) };
            }
            // Grown while another owner is current: still the first owner's.
            let grown = with_owner(other, || unsafe { a.realloc(ptr, layout(64, align), 10_000) });
            assert!(!grown.is_null());
            assert_eq!(grown as usize % align, 0);
            assert_eq!(live_bytes(owner), 10_000);
            assert_eq!(live_bytes(other), 0);
            for i in 0..64 {
                assert_eq!(unsafe { grown.add(i).read() }, i as u8);
            }
            let shrunk = unsafe { a.realloc(grown, layout(10_000, align), 10) };
            assert_eq!(live_bytes(owner), 10);
            for i in 0..10 {
                assert_eq!(unsafe { shrunk.add(i).read() }, i as u8);
            }
            unsafe { a.dealloc(shrunk, layout(10, align)) };
            assert_eq!(live_bytes(owner), 0);
        }
    }

    #[test]
    fn an_extensions_block_is_told_from_the_hosts_by_its_address() {
        let _exact = exact();
        let a = Accounting;
        let owner = fresh();
        for size in [1, 8, 15, 16, 24, 100, 4096] {
            for align in [1, 2, 4, 8] {
                let layout = layout(size, align);
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
    fn a_block_grown_by_an_extension_is_charged_to_it_and_one_grown_by_the_host_to_no_one() {
        let _exact = exact();
        let a = Accounting;
        let owner = fresh();
        let ptr = unsafe { a.alloc_zeroed(layout(10, 1)) };
        unsafe { ptr.write_bytes(7, 10) };
        // The host grows its own block: untagged, no one charged.
        let ptr = unsafe { a.realloc(ptr, layout(10, 1), 20) };
        assert!(!tagged(ptr));
        assert_eq!(live_bytes(owner), 0);
        // The extension grows it: its bytes now, the contents kept.
        let grown = with_owner(owner, || unsafe { a.realloc(ptr, layout(20, 1), 100_000) });
        assert!(!grown.is_null() && tagged(grown));
        assert_eq!(live_bytes(owner), 100_000);
        assert!(unsafe { std::slice::from_raw_parts(grown, 10) }.iter().all(|b| *b == 7));
        // Shrunk by the host: still the extension's, charged what is left; freed: nothing.
        let shrunk = unsafe { a.realloc(grown, layout(100_000, 1), 3) };
        assert_eq!(live_bytes(owner), 3);
        assert_eq!(unsafe { shrunk.read() }, 7);
        unsafe { a.dealloc(shrunk, layout(3, 1)) };
        assert_eq!(live_bytes(owner), 0);
    }

    #[test]
    fn small_blocks_are_sampled_without_bias_and_freeing_them_all_gives_zero() {
        let _sampled = sampled();
        let a = Accounting;
        let owner = fresh();
        // 200 000 blocks of 48 bytes (9.6 MB): about 2 300 sample points; the estimate's
        // standard deviation is √(4096 × 9.6 MB) ≈ 2 %.
        let (count, size) = (200_000, 48);
        let blocks: Vec<*mut u8> =
            with_owner(owner, || (0..count).map(|_| unsafe { a.alloc(layout(size, 8)) }).collect());
        let tagged_blocks = blocks.iter().filter(|p| tagged(**p)).count();
        let truth = (count * size) as f64;
        let estimate = live_bytes(owner) as f64;
        assert!((estimate - truth).abs() < truth * 0.1, "estimate {estimate} of {truth}");
        // Only the sampled blocks carry a word: about 1 in 85.
        assert!((1_000..5_000).contains(&tagged_blocks), "{tagged_blocks} tagged");
        for p in blocks {
            unsafe { a.dealloc(p, layout(size, 8)) };
        }
        assert_eq!(live_bytes(owner), 0);
    }

    #[test]
    fn small_blocks_grown_and_shrunk_stay_unbiased_and_freeing_them_gives_zero() {
        let _sampled = sampled();
        let a = Accounting;
        let owner = fresh();
        // 100 000 blocks of 32 bytes grown to 96, then shrunk to 64: the growth is sampled as
        // new bytes (tagged blocks keep their charge and gain the points in their growth,
        // untagged ones may become tagged), the shrink keeps every charge.
        let (count, small, grown, shrunk) = (100_000, 32, 96, 64);
        let blocks: Vec<*mut u8> = with_owner(owner, || {
            (0..count)
                .map(|_| unsafe { a.alloc(layout(small, 8)) })
                .map(|p| unsafe { a.realloc(p, layout(small, 8), grown) })
                .collect()
        });
        assert!(blocks.iter().all(|p| !p.is_null()));
        let truth = (count * grown) as f64;
        let estimate = live_bytes(owner) as f64;
        assert!((estimate - truth).abs() < truth * 0.1, "estimate {estimate} of {truth}");
        let blocks: Vec<*mut u8> =
            blocks.into_iter().map(|p| unsafe { a.realloc(p, layout(grown, 8), shrunk) }).collect();
        assert_eq!(live_bytes(owner) as f64, estimate, "a shrink keeps the charges");
        for p in blocks {
            unsafe { a.dealloc(p, layout(shrunk, 8)) };
        }
        assert_eq!(live_bytes(owner), 0);
    }

    #[test]
    fn large_blocks_are_exact_while_small_ones_are_sampled() {
        let _sampled = sampled();
        let a = Accounting;
        let owner = fresh();
        let big = with_owner(owner, || unsafe { a.alloc(layout(1 << 20, 8)) });
        assert!(tagged(big));
        assert_eq!(live_bytes(owner), 1 << 20);
        // A small block grown past the sample size by its extension is counted exactly.
        let small = with_owner(owner, || unsafe { a.alloc(layout(16, 8)) });
        let before = live_bytes(owner);
        let grown = with_owner(owner, || unsafe { a.realloc(small, layout(16, 8), 50_000) });
        assert!(tagged(grown));
        assert_eq!(live_bytes(owner), (1 << 20) + 50_000, "was {before}");
        unsafe { a.dealloc(grown, layout(50_000, 8)) };
        unsafe { a.dealloc(big, layout(1 << 20, 8)) };
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
        let _exact = exact();
        let a = Accounting;
        let ptr = unsafe { a.alloc(layout(128, 8)) };
        assert_eq!(live_bytes(Owner::HOST), 0);
        unsafe { a.dealloc(ptr, layout(128, 8)) };
        let huge = layout(isize::MAX as usize - 8, 8);
        assert!(unsafe { a.alloc(huge) }.is_null());
        assert!(with_owner(fresh(), || unsafe { a.alloc(huge) }).is_null());
        let ptr = unsafe { a.alloc(layout(8, 8)) };
        assert!(unsafe { a.realloc(ptr, layout(8, 8), isize::MAX as usize) }.is_null());
        unsafe { a.dealloc(ptr, layout(8, 8)) };
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
