//! Tagged pool allocations.
//!
//! `ExAllocatePool2(POOL_FLAG_NON_PAGED, size, tag)` returns zeroed, non-executable, non-paged
//! memory (IRQL `<= DISPATCH_LEVEL`), or NULL. It is freed with `ExFreePoolWithTag` and the same
//! tag. The tag, four characters read backwards in memory, is what `!poolused` and Driver
//! Verifier show for a leak, so each sample uses its own.

use core::{
    ops::{Deref, DerefMut},
    ptr::NonNull,
};

use windows_sys::{
    Wdk::System::SystemServices::{ExAllocatePool2, ExFreePoolWithTag},
    Win32::Foundation::{STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER},
};

use crate::NtStatus;

/// `POOL_FLAG_NON_PAGED` (wdm.h): non-paged, non-executable pool.
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;

/// Builds a pool tag from four ASCII characters, as `'gaT1'` does in C.
#[must_use]
pub const fn tag(name: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*name)
}

/// A `T` in tagged non-paged pool, dropped and freed with `ExFreePoolWithTag` on drop.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    tag: u32,
}

// SAFETY: the allocation is owned uniquely, like a `Box<T>`.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: `&PoolBox<T>` only gives out `&T`.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Allocates non-paged pool with `tag` and moves `value` into it.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when the pool allocation fails;
    /// `STATUS_INVALID_PARAMETER` for a `T` that needs more than 16-byte alignment.
    pub fn new(value: T, tag: u32) -> Result<Self, NtStatus> {
        if core::mem::align_of::<T>() > 16 {
            return Err(NtStatus(STATUS_INVALID_PARAMETER));
        }
        // SAFETY: a plain allocation request; the size is at least 1 so the call is well formed.
        let raw =
            unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<T>().max(1), tag) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(NtStatus(STATUS_INSUFFICIENT_RESOURCES))?;
        // SAFETY: fresh, suitably aligned (pool is 16-byte aligned), large enough memory.
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self { ptr, tag })
    }

    /// Gives up ownership, for handing the block to a callback as its context.
    #[must_use]
    pub fn into_raw(self) -> *mut T {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }

    /// Takes back a block given away with [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` with the same `tag`, and not have been reclaimed before.
    #[must_use]
    pub unsafe fn from_raw(ptr: *mut T, tag: u32) -> Self {
        Self {
            // SAFETY: the caller guarantees `ptr` came from `into_raw`, so it is non-null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            tag,
        }
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the block is live and initialised while we own it.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped exactly once, here.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        // SAFETY: the block came from ExAllocatePool2 with `self.tag` and is freed once.
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast(), self.tag) };
    }
}

/// `len` zeroed bytes of tagged non-paged pool, freed with `ExFreePoolWithTag` on drop: a buffer
/// that may be the target of `MmCopyMemory` ("This buffer must be in nonpageable memory").
pub struct PoolBytes {
    ptr: NonNull<u8>,
    len: usize,
    tag: u32,
}

// SAFETY: the allocation is owned uniquely, like a `Box<[u8]>`.
unsafe impl Send for PoolBytes {}
// SAFETY: `&PoolBytes` only gives out `&[u8]`.
unsafe impl Sync for PoolBytes {}

impl PoolBytes {
    /// Allocates `len` bytes (at least one) of non-paged pool with `tag`. `ExAllocatePool2`
    /// zeroes them.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when the pool allocation fails.
    pub fn zeroed(len: usize, tag: u32) -> Result<Self, NtStatus> {
        // SAFETY: a plain allocation request of at least one byte.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, len.max(1), tag) };
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(NtStatus(STATUS_INSUFFICIENT_RESOURCES))?;
        Ok(Self { ptr, len, tag })
    }
}

impl Deref for PoolBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `len` initialised (zeroed) bytes, live while we own them.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PoolBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only borrow.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PoolBytes {
    fn drop(&mut self) {
        // SAFETY: the block came from ExAllocatePool2 with `self.tag` and is freed once.
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast(), self.tag) };
    }
}
