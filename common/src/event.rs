//! A kernel event (`KEVENT`) that lives in place: in pool, in a context, or in a static.
//!
//! The samples use events as plumbing around the API they teach: "the scan is over", "the
//! section is closed", "there is work". [`Event`] gives that plumbing one shape: initialize once
//! where it will stay (`KeInitializeEvent`), set (`KeSetEvent`), wait with or without a bound
//! (`KeWaitForSingleObject`), or hand the `KEVENT` to a wait this module does not wrap
//! ([`Event::as_ptr`], for `FltCancellableWaitForSingleObject`).

use core::{
    cell::UnsafeCell,
    sync::atomic::{AtomicBool, Ordering},
};

use windows_sys::{
    Wdk::{
        Foundation::KEVENT,
        System::SystemServices::{Executive, KeInitializeEvent, KeSetEvent, KeWaitForSingleObject},
    },
    Win32::{Foundation::STATUS_SUCCESS, System::Kernel::EVENT_TYPE},
};

use crate::KERNEL_MODE;

/// A `KEVENT` and whether `KeInitializeEvent` has run on it.
pub struct Event {
    event: UnsafeCell<KEVENT>,
    ready: AtomicBool,
}

// SAFETY: the KEVENT is touched only through KeInitializeEvent (once, before `ready` is set and
// before any other thread can reach it; see `init`), KeSetEvent and the kernel's waits, which
// synchronize it themselves.
unsafe impl Sync for Event {}

impl Event {
    /// An event not initialized yet: zeroed storage for `KeInitializeEvent`. `const`, for statics.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            // SAFETY: all-zero bytes are a valid KEVENT value (integers and raw pointers only);
            // it is only storage until `init`.
            event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            ready: AtomicBool::new(false),
        }
    }

    /// `KeInitializeEvent(Event, kind, FALSE)` (`<= DISPATCH_LEVEL`): `NotificationEvent` stays
    /// set until reset, `SynchronizationEvent` satisfies one wait per set.
    ///
    /// # Safety
    /// Called once, before any other thread can reach the event, and the event does not move
    /// from then on (it lives in pool, a context or a static): the kernel links waiters to it by
    /// address.
    pub unsafe fn init(&self, kind: EVENT_TYPE) {
        // SAFETY: the caller guarantees exclusive access and a fixed address; not signaled.
        unsafe { KeInitializeEvent(self.event.get(), kind, false) };
        self.ready.store(true, Ordering::Release);
    }

    /// `KeSetEvent(Event, 0, FALSE)` (`<= DISPATCH_LEVEL`). Nothing on an event never
    /// initialized.
    pub fn set(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: initialized in place (`init`), and it does not move.
            unsafe { KeSetEvent(self.event.get(), 0, false) };
        }
    }

    /// Waits for the event (`KeWaitForSingleObject`, kernel mode, not alertable): at most
    /// `timeout_ms` milliseconds, or without a bound for `None`. Call it at `PASSIVE_LEVEL` (or
    /// `APC_LEVEL`) holding no lock the setter needs. `true` once the event is set, `false` on a
    /// time-out (and at once on an event never initialized).
    #[must_use]
    pub fn wait(&self, timeout_ms: Option<i64>) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        // Relative time, in 100 ns units.
        let timeout = timeout_ms.map(|ms| -ms.saturating_mul(10_000));
        let timeout_ptr = timeout
            .as_ref()
            .map_or(core::ptr::null(), core::ptr::from_ref);
        // SAFETY: an initialized event that does not move; a valid or null timeout pointer.
        let waited = unsafe {
            KeWaitForSingleObject(
                self.event.get().cast_const().cast(),
                Executive,
                KERNEL_MODE,
                false,
                timeout_ptr,
            )
        };
        waited == STATUS_SUCCESS
    }

    /// The `KEVENT`, for a wait this type does not wrap (`FltCancellableWaitForSingleObject`).
    /// Valid once [`init`](Self::init) has run, for as long as the event lives.
    #[must_use]
    pub fn as_ptr(&self) -> *mut KEVENT {
        self.event.get()
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}
