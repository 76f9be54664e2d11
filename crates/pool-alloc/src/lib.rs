//! The gateway's global allocator: [`mimalloc`] for everything, except blocks of
//! [`DIRECT_BYTES`] or more (whole request bodies, upstream answers read whole), which are mapped
//! straight from the kernel and unmapped when freed.
//!
//! Why: mimalloc keeps freed memory in its arenas and gives it back only after a delay, and only
//! when the thread that freed it allocates or frees again. After a burst of large bodies the
//! gateway's worker threads go idle, so the hundreds of MiB the burst took stayed resident for
//! ever (measured: 279 MiB ten seconds after three bursts of 16 × 30 MiB, idle 18 MiB). Purging
//! at once (`MIMALLOC_PURGE_DELAY=0`) fixes that but costs every small allocation a system call
//! and about a third of the maximum request rate. Large blocks are few (one per large body) and
//! copying them costs far more than one `mmap`, so they go to the kernel and back directly.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

use mimalloc::MiMalloc;

/// Blocks at least this large are mapped directly.
pub const DIRECT_BYTES: usize = 1 << 20;

/// Alignment every mapping has (the smallest page size of the targets we build for).
const PAGE: usize = 4096;

/// See the crate documentation.
pub struct PoolAllocator;

fn direct(size: usize, align: usize) -> bool {
    size >= DIRECT_BYTES && align <= PAGE
}

/// A fresh private anonymous mapping of `size` bytes (zeroed by the kernel), or null.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory; failure is reported as MAP_FAILED, turned into null for the caller.
    let at = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if at == libc::MAP_FAILED { ptr::null_mut() } else { at.cast() }
}

// SAFETY: every block is handed out by exactly one of the two allocators and returned to the
// one that made it: the choice depends only on the layout, which Rust passes unchanged to
// `dealloc` and `realloc`. Mappings are page-aligned, which covers every alignment up to PAGE.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if direct(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: the caller's contract (a non-zero size) is passed on unchanged.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if direct(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: as in `alloc`.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if direct(layout.size(), layout.align()) {
            // SAFETY: `block` is a mapping of exactly `layout.size()` bytes made by `map`.
            unsafe { libc::munmap(block.cast(), layout.size()) };
            return;
        }
        // SAFETY: `block` came from mimalloc with this layout.
        unsafe { MiMalloc.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was, will) = (direct(layout.size(), layout.align()), direct(new_size, layout.align()));
        if !was && !will {
            // SAFETY: the caller's contract is passed on unchanged to the allocator that made it.
            return unsafe { MiMalloc.realloc(block, layout, new_size) };
        }
        if was && will {
            // SAFETY: `block` is a mapping of `layout.size()` bytes; the kernel moves or grows it
            // and keeps its contents, or fails and leaves it untouched.
            let moved = unsafe { libc::mremap(block.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
            return if moved == libc::MAP_FAILED { ptr::null_mut() } else { moved.cast() };
        }
        // Across the threshold: a new block from the other allocator, the bytes copied over.
        // SAFETY: the new layout has the old alignment and a non-zero size (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let fresh = unsafe { self.alloc(new_layout) };
        if !fresh.is_null() {
            // SAFETY: both blocks are valid for the smaller size and cannot overlap (distinct
            // live allocations); the old one is freed with its own layout.
            unsafe {
                ptr::copy_nonoverlapping(block, fresh, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_blocks_allocate_grow_shrink_and_free_across_the_threshold() {
        let mut bytes: Vec<u8> = Vec::with_capacity(16);
        for round in 0..3 {
            bytes.extend(std::iter::repeat_n(7u8, DIRECT_BYTES * 2));
            assert!(bytes.iter().all(|&b| b == 7), "round {round}: contents survive growth");
            bytes.truncate(100);
            bytes.shrink_to_fit();
            assert_eq!(bytes, vec![7u8; 100], "and shrinking below the threshold");
        }
        let zeroed = vec![0u8; DIRECT_BYTES * 3];
        assert!(zeroed.iter().all(|&b| b == 0));
        let aligned = Layout::from_size_align(DIRECT_BYTES, 8192).unwrap_or_else(|_| Layout::new::<u8>());
        // SAFETY: a non-zero size; the block is freed with the same layout.
        unsafe {
            let block = PoolAllocator.alloc(aligned);
            assert!(!block.is_null() && (block as usize).is_multiple_of(8192), "a large alignment goes to mimalloc");
            PoolAllocator.dealloc(block, aligned);
        }
    }

    #[global_allocator]
    static TESTED: PoolAllocator = PoolAllocator;
}
