//! [`InitOnce`]: a value built once, in `DriverEntry`, and only read afterwards.
//!
//! Some values are costly to build but never change, such as a searcher for a fixed signature
//! (`memchr::memmem::Finder` builds its tables in `Finder::new`, with a large stack frame in an
//! unoptimised build). Building one inside an I/O callback costs that work and that stack on
//! every operation, on a kernel stack the I/O path shares with the file system and the storage
//! stack. `DriverEntry` builds it once instead, before `FltStartFiltering` lets any callback run,
//! and the callbacks read it.
//!
//! No lock and no `static mut`: one atomic state. [`InitOnce::init`] claims the slot
//! (`EMPTY` to `BUILDING`), writes the value and publishes it (`READY`, release); [`InitOnce::get`]
//! reads it only after seeing `READY` (acquire). A second `init` (a driver loaded again in the
//! same process, as the host tests do) leaves the first value in place. Nothing waits: a reader
//! that runs before the value is ready gets `None`, and the caller fails open. In a driver that
//! cannot happen, since the callbacks start after `DriverEntry` has built the value.
//!
//! The value is never dropped: it lives in a `static`, as long as the driver image.

use core::{
    cell::UnsafeCell,
    mem::MaybeUninit,
    sync::atomic::{AtomicU8, Ordering},
};

const EMPTY: u8 = 0;
const BUILDING: u8 = 1;
const READY: u8 = 2;

/// A value written once and read many times, from any thread.
pub struct InitOnce<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the one caller that moved the state from EMPTY to
// BUILDING, and read only after READY is published with release ordering and seen with acquire
// ordering; after that it is only shared (`&T`), so `T: Sync` is what sharing it needs, and
// `T: Send` because the thread that built it may differ from the ones that read (or drop) it.
unsafe impl<T: Send + Sync> Sync for InitOnce<T> {}

impl<T> InitOnce<T> {
    /// An empty slot, for a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Builds the value with `build` if no one has yet. Returns whether this call built it.
    pub fn init(&self, build: impl FnOnce() -> T) -> bool {
        if self
            .state
            .compare_exchange(EMPTY, BUILDING, Ordering::Acquire, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let value = build();
        let slot: *mut MaybeUninit<T> = self.value.get();
        // SAFETY: the CAS above made this call the only writer, and no reader looks before READY.
        unsafe { slot.write(MaybeUninit::new(value)) };
        self.state.store(READY, Ordering::Release);
        true
    }

    /// The value, once built.
    #[must_use]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        let slot: *const MaybeUninit<T> = self.value.get();
        // SAFETY: READY is stored only after the value was written, and never changes again; no
        // one writes the slot after that, so a shared reference for `&self`'s lifetime is sound.
        let slot = unsafe { &*slot };
        // SAFETY: the slot was initialised before READY was published (above).
        Some(unsafe { slot.assume_init_ref() })
    }
}

impl<T> Default for InitOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::InitOnce;

    #[test]
    fn empty_until_built_then_the_first_value_stays() {
        let slot = InitOnce::new();
        assert_eq!(slot.get(), None);
        assert!(slot.init(|| 7));
        assert_eq!(slot.get(), Some(&7));
        assert!(!slot.init(|| 8), "a second init must not build");
        assert_eq!(slot.get(), Some(&7));
    }

    #[test]
    fn one_of_many_racing_threads_builds() {
        let slot = InitOnce::<usize>::new();
        let shared = &slot;
        let built = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|n| scope.spawn(move || (n, shared.init(|| n))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|(_, built)| *built)
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        });
        assert_eq!(built.len(), 1, "{built:?}");
        assert_eq!(slot.get(), Some(&built[0]));
    }
}
