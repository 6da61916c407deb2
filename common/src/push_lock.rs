//! A Filter Manager push lock (`EX_PUSH_LOCK`) that lives in place, taken through guards.
//!
//! `FltInitializePushLock` once where the lock stays (pool, a context or a static),
//! `FltAcquirePushLockShared` / `FltAcquirePushLockExclusive` and `FltReleasePushLock` around each
//! use (`<= APC_LEVEL`: the acquire pages say a caller must disable normal kernel APCs, which the
//! acquire does itself), and `FltDeletePushLock` once no thread can take it again. [`PushLock`]
//! makes the release a guard's `Drop`, so no path leaves the lock held.

use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering},
};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FltAcquirePushLockExclusive, FltAcquirePushLockShared, FltDeletePushLock,
    FltInitializePushLock, FltReleasePushLock,
};

/// An `EX_PUSH_LOCK` (one pointer-sized word) at a fixed address, and whether
/// `FltInitializePushLock` has run on it.
pub struct PushLock {
    word: UnsafeCell<usize>,
    ready: AtomicBool,
}

// SAFETY: the word is only touched by the FltXxxPushLock routines, which synchronize it
// themselves; `init` and `delete` are the caller's to order (their safety contracts), and
// `ready` is atomic.
unsafe impl Sync for PushLock {}

impl PushLock {
    /// Storage for a push lock, not initialized yet. `const`, for statics.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            word: UnsafeCell::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// `FltInitializePushLock` (`<= DISPATCH_LEVEL`).
    ///
    /// # Safety
    /// Before any thread can take the lock, and the lock does not move from then on.
    pub unsafe fn init(&self) {
        // SAFETY: the caller's guarantee: a fixed address, no user yet.
        unsafe { FltInitializePushLock(self.word.get()) };
        self.ready.store(true, Ordering::Release);
    }

    /// `FltDeletePushLock` (`<= APC_LEVEL`), if [`init`](Self::init) ran; nothing otherwise.
    ///
    /// # Safety
    /// When no thread holds the lock or can take it again.
    pub unsafe fn delete(&self) {
        if self.ready.swap(false, Ordering::AcqRel) {
            // SAFETY: initialized, deleted once (the flag), and unused (the caller's guarantee).
            unsafe { FltDeletePushLock(self.word.get()) };
        }
    }

    /// `FltAcquirePushLockShared`, released when the guard drops. The lock must be initialized.
    pub fn shared(&self) -> Held<'_> {
        // SAFETY: an initialized push lock (every user initializes it before its first taker can
        // run), released by the guard on this thread.
        unsafe { FltAcquirePushLockShared(self.word.get()) };
        Held(self, PhantomData)
    }

    /// `FltAcquirePushLockExclusive`, released when the guard drops. The lock must be initialized.
    pub fn exclusive(&self) -> Held<'_> {
        // SAFETY: as for `shared`.
        unsafe { FltAcquirePushLockExclusive(self.word.get()) };
        Held(self, PhantomData)
    }
}

impl Default for PushLock {
    fn default() -> Self {
        Self::new()
    }
}

/// A push lock held shared or exclusive; `FltReleasePushLock` when it drops. Not `Send`: the
/// thread that acquired the lock releases it.
#[must_use = "the lock is released when the guard drops"]
pub struct Held<'a>(&'a PushLock, PhantomData<*const ()>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: acquired by this thread when the guard was made, released once.
        unsafe { FltReleasePushLock(self.0.word.get()) };
    }
}
