//! The memory quota (`quotas.max_memory_bytes`): live bytes the accounting allocator
//! (annex-alloc) charged to the extension and that are not freed yet.

use std::sync::atomic::{AtomicU64, Ordering};

use annex_alloc::Owner;

const NONE: u64 = u64::MAX;

/// One extension's memory quota and what it did.
#[derive(Debug)]
pub(crate) struct MemoryQuota {
    max: AtomicU64,
    /// Requests refused because the extension was over its quota.
    pub(crate) refused: AtomicU64,
}

impl Default for MemoryQuota {
    fn default() -> Self {
        Self { max: AtomicU64::new(NONE), refused: AtomicU64::new(0) }
    }
}

impl MemoryQuota {
    pub(crate) fn set(&self, max: Option<u64>) {
        self.max.store(max.unwrap_or(NONE), Ordering::Relaxed);
    }

    /// `(live, limit)` when `owner` holds more than its quota.
    #[inline]
    pub(crate) fn over(&self, owner: Owner) -> Option<(u64, u64)> {
        let max = self.max.load(Ordering::Relaxed);
        if max == NONE {
            return None;
        }
        let live = annex_alloc::live_bytes(owner);
        (live > max).then_some((live, max))
    }
}
