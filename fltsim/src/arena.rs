//! The memory the model hands to filter code.

use std::collections::HashMap;

/// Allocations the model hands to filter code: stable addresses, freed when the world goes.
#[derive(Default)]
pub(crate) struct Arena {
    blocks: HashMap<usize, std::alloc::Layout>,
}

impl Arena {
    /// `size` bytes aligned to 16, filled with `fill`.
    pub(crate) fn alloc(&mut self, size: usize, fill: u8) -> *mut u8 {
        let layout = std::alloc::Layout::from_size_align(size.max(1), 16)
            .expect("model allocation size overflows");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "host out of memory");
        // SAFETY: `ptr` points to `layout.size()` writable bytes just allocated.
        unsafe { ptr.write_bytes(fill, layout.size()) };
        self.blocks.insert(ptr as usize, layout);
        ptr
    }

    /// Fills a block with `fill` so that use after free reads garbage, as special pool would.
    pub(crate) fn poison(&self, ptr: usize, fill: u8) {
        if let Some(layout) = self.blocks.get(&ptr) {
            // SAFETY: the block is still allocated (blocks live until the arena drops) and
            // `layout.size()` bytes long.
            unsafe { (ptr as *mut u8).write_bytes(fill, layout.size()) };
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for (ptr, layout) in self.blocks.drain() {
            // SAFETY: each block was allocated with exactly this layout and is freed once.
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
    }
}
