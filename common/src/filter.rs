//! The filter handle: registered in `DriverEntry`, unregistered at unload.
//!
//! `FltRegisterFilter` returns the `PFLT_FILTER` that every later call needs
//! (`FltAllocateContext`, work items, `FltUnregisterFilter`). The handle has to outlive
//! `DriverEntry`, so it lives in a [`FilterSlot`] static; until filtering has started it is held by
//! a [`RegisteredFilter`] guard, so that a failure in `DriverEntry` unregisters it.
//!
//! The lesson itself, the three calls in their documented order with the failure path, is in the
//! `passthrough` sample (`samples/passthrough/src/lib.rs`), which makes them without this module.
//! The other samples use this module so that their own code is about the API they teach.

use core::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use windows_sys::Wdk::{
    Foundation::DRIVER_OBJECT,
    Storage::FileSystem::Minifilters::{
        FltObjectDereference, FltObjectReference, FltRegisterFilter, FltStartFiltering,
        FltUnregisterFilter, PFLT_FILTER, PFLT_INSTANCE,
    },
};

use crate::{NtStatus, log, registration::Registration};

/// Where the filter handle lives between `DriverEntry` and the unload callback.
pub struct FilterSlot {
    handle: AtomicIsize,
    /// Set by the first [`unregister`](Self::unregister), so that `FltUnregisterFilter` is
    /// called at most once while the handle itself stays readable.
    unregistering: AtomicBool,
}

impl FilterSlot {
    /// An empty slot, for a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            handle: AtomicIsize::new(0),
            unregistering: AtomicBool::new(false),
        }
    }

    /// The filter handle: valid from `FltStartFiltering` until `FltUnregisterFilter` has
    /// returned (so in every callback, work item and completion), 0 before and after.
    #[must_use]
    pub fn get(&self) -> PFLT_FILTER {
        self.handle.load(Ordering::Acquire)
    }

    /// `FltUnregisterFilter`, at most once. Call it from the filter unload callback, at
    /// `PASSIVE_LEVEL`. It tears down every instance and waits for every outstanding reference
    /// and queued work item, so a leaked context reference makes it wait forever.
    ///
    /// The handle is cleared only *after* `FltUnregisterFilter` returns: while it waits, the
    /// callbacks already running go on, and they still need the handle (`FltAllocateContext`'s
    /// Filter "is required and cannot be NULL"). Once it has returned, none of them is left.
    pub fn unregister(&self) {
        if self.unregistering.swap(true, Ordering::AcqRel) {
            return;
        }
        let filter = self.handle.load(Ordering::Acquire);
        if filter != 0 {
            // SAFETY: `filter` came from FltRegisterFilter, and the `unregistering` swap makes
            // this the only call.
            unsafe { FltUnregisterFilter(filter) };
        }
        self.handle.store(0, Ordering::Release);
    }
}

impl Default for FilterSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// A registered filter that has not started filtering yet; dropping it unregisters it.
pub struct RegisteredFilter(PFLT_FILTER);

impl RegisteredFilter {
    /// `FltRegisterFilter(driver, registration, &filter)`, IRQL `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `FltRegisterFilter`'s status (for example `STATUS_INVALID_PARAMETER` for a malformed
    /// registration, or `STATUS_FLT_NOT_INITIALIZED` when Filter Manager is not running).
    ///
    /// # Safety
    /// `driver` must be the driver object passed to `DriverEntry`.
    pub unsafe fn register(
        driver: *const DRIVER_OBJECT,
        registration: &'static Registration,
    ) -> Result<Self, NtStatus> {
        let mut filter: PFLT_FILTER = 0;
        // SAFETY: `driver` is valid (caller), the registration is 'static and well formed (built
        // by `Registration`), and `filter` is a valid out pointer.
        NtStatus(unsafe { FltRegisterFilter(driver, registration.as_ptr(), &raw mut filter) })
            .ok()?;
        Ok(Self(filter))
    }

    /// The handle, for calls made before filtering starts.
    #[must_use]
    pub fn handle(&self) -> PFLT_FILTER {
        self.0
    }

    /// Publishes the handle in `slot`, then `FltStartFiltering`. Instance setup callbacks can run
    /// before it returns, which is why the handle is published first. On failure the handle is
    /// taken back and unregistered.
    ///
    /// # Errors
    /// `FltStartFiltering`'s status.
    pub fn start_filtering(self, slot: &FilterSlot) -> Result<(), NtStatus> {
        // A new registration re-arms the slot. On Windows every load maps a fresh image with
        // fresh statics; the host tests load the same code many times in one process.
        slot.unregistering.store(false, Ordering::Release);
        slot.handle.store(self.0, Ordering::Release);
        // SAFETY: the handle came from FltRegisterFilter and has not been unregistered.
        let status = NtStatus(unsafe { FltStartFiltering(self.0) });
        if status.is_success() {
            core::mem::forget(self);
        } else {
            // Unregister first (dropping the guard), clear after: instance setup callbacks may
            // still be using the handle until FltUnregisterFilter returns.
            drop(self);
            slot.handle.store(0, Ordering::Release);
        }
        status.ok()
    }
}

impl Drop for RegisteredFilter {
    fn drop(&mut self) {
        // SAFETY: the handle is registered and owned by this guard alone.
        unsafe { FltUnregisterFilter(self.0) }
    }
}

/// The usual body of `DriverEntry`: `FltRegisterFilter`, then `FltStartFiltering`, publishing the
/// handle in `slot`. A failure is logged as `"{tag}: FltRegisterFilter failed: STATUS_..."` and
/// returned; if starting fails, the filter is unregistered first. IRQL `PASSIVE_LEVEL`.
///
/// # Safety
/// `driver` must be the driver object passed to `DriverEntry`.
#[must_use]
pub unsafe fn register_and_start(
    driver: *const DRIVER_OBJECT,
    registration: &'static Registration,
    slot: &FilterSlot,
    tag: &str,
) -> NtStatus {
    // SAFETY: the caller passes DriverEntry's driver object.
    let filter = match unsafe { RegisteredFilter::register(driver, registration) } {
        Ok(filter) => filter,
        Err(status) => {
            log!("{tag}: FltRegisterFilter failed: {status}");
            return status;
        }
    };
    // On failure the guard unregisters the filter before the error is returned.
    match filter.start_filtering(slot) {
        Ok(()) => NtStatus::SUCCESS,
        Err(status) => {
            log!("{tag}: FltStartFiltering failed: {status}");
            status
        }
    }
}

/// `DriverEntry` and the `FilterUnloadCallback` of a sample that acts in its demo folder, for
/// the samples whose lesson is elsewhere. The passthrough sample writes both out and explains
/// each call (`samples/passthrough/src/lib.rs`).
///
/// `driver_entry!(REGISTRATION, FILTER, TAG)` defines:
/// - `DriverEntry` (`PASSIVE_LEVEL`): reads the demo folder from the service's `Parameters` key
///   ([`crate::scope::SCOPE`], before filtering starts, since pre-create decides from it), then
///   `FltRegisterFilter` and `FltStartFiltering` ([`register_and_start`]), unregistering if
///   starting fails. It returns the status the driver's load fails with, or success.
/// - `unload` (`PASSIVE_LEVEL`), for `Registration::unload`: `FltUnregisterFilter`
///   ([`FilterSlot::unregister`]), which tears every instance down and waits for every reference
///   before it returns. It always returns `STATUS_SUCCESS`.
///
/// `driver_entry!(REGISTRATION, FILTER, TAG, worker: WORKER, routine, unloaded: report)` is the
/// same for a sample with a thread of its own ([`crate::worker::Worker`], section-conflict):
/// `DriverEntry` starts the thread (`routine`) before it registers, since callbacks queue work
/// for it as soon as filtering starts, and stops it if registering or starting fails; `unload`
/// stops the thread, then unregisters, then deletes the queue's lock and calls `report()` (the
/// unload's summary line).
#[macro_export]
macro_rules! driver_entry {
    ($registration:expr, $filter:expr, $tag:expr) => {
        /// The driver's entry point: read the demo folder, register, then start filtering
        /// (`common::driver_entry!`).
        ///
        /// # Safety
        /// Called by the I/O manager (or `fltsim`) with a valid driver object and registry path.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::bindings::DRIVER_OBJECT,
            _registry_path: *const $crate::bindings::UNICODE_STRING,
        ) -> $crate::bindings::NTSTATUS {
            // SAFETY: `driver` is the driver object this entry point was called with.
            unsafe { $crate::scope::SCOPE.load(driver, $tag) };
            // SAFETY: `driver` is the driver object this entry point was called with.
            unsafe { $crate::filter::register_and_start(driver, &$registration, &$filter, $tag) }.0
        }

        /// `FilterUnloadCallback` (`PASSIVE_LEVEL`): `FltUnregisterFilter`
        /// (`common::driver_entry!`).
        unsafe extern "system" fn unload(_flags: u32) -> $crate::bindings::NTSTATUS {
            $crate::paged_code!();
            $filter.unregister();
            $crate::bindings::STATUS_SUCCESS
        }
    };
    ($registration:expr, $filter:expr, $tag:expr, worker: $worker:expr, $routine:expr,
     unloaded: $report:expr) => {
        /// The driver's entry point: read the demo folder, start the worker thread, register,
        /// then start filtering (`common::driver_entry!`).
        ///
        /// # Safety
        /// Called by the I/O manager (or `fltsim`) with a valid driver object and registry path.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::bindings::DRIVER_OBJECT,
            _registry_path: *const $crate::bindings::UNICODE_STRING,
        ) -> $crate::bindings::NTSTATUS {
            // SAFETY: `driver` is the driver object this entry point was called with.
            unsafe { $crate::scope::SCOPE.load(driver, $tag) };
            if let Err(status) = $worker.start($routine) {
                $crate::log!("{}: the worker thread could not start: {status}", $tag);
                return status.0;
            }
            // SAFETY: `driver` is the driver object this entry point was called with.
            let status = unsafe {
                $crate::filter::register_and_start(driver, &$registration, &$filter, $tag)
            };
            if !status.is_success() {
                $worker.stop();
                // SAFETY: filtering never started: no callback can reach the queue.
                unsafe { $worker.delete() };
            }
            status.0
        }

        /// `FilterUnloadCallback` (`PASSIVE_LEVEL`): stop the worker thread, then
        /// `FltUnregisterFilter`, then report (`common::driver_entry!`).
        unsafe extern "system" fn unload(_flags: u32) -> $crate::bindings::NTSTATUS {
            $crate::paged_code!();
            // The work in progress ends at its next step and what is queued at once; a callback
            // still in flight finds the queue closed.
            $worker.stop();
            // Waits for the callbacks in flight, tears every instance down, waits for every
            // reference.
            $filter.unregister();
            // SAFETY: no callback is left that could reach the queue.
            unsafe { $worker.delete() };
            $report();
            $crate::bindings::STATUS_SUCCESS
        }
    };
}

/// A rundown reference on an instance (`FltObjectReference`, `<= DISPATCH_LEVEL`), dropped with
/// `FltObjectDereference`. The page: it "prevents the object from being freed"; the instance's
/// teardown waits for it. section-conflict's scans hold one each, because the scan thread closes
/// a section outside any callback of its instance.
pub struct InstanceRef(PFLT_INSTANCE);

impl InstanceRef {
    /// `FltObjectReference(instance)`.
    ///
    /// # Errors
    /// `STATUS_FLT_DELETING_OBJECT` once the instance's teardown has begun.
    pub fn new(instance: PFLT_INSTANCE) -> Result<Self, NtStatus> {
        // SAFETY: an instance Filter Manager passed to the callback in progress (valid for the
        // call); the reference taken here keeps it valid afterwards.
        NtStatus(unsafe { FltObjectReference(instance as *mut core::ffi::c_void) }).ok()?;
        Ok(Self(instance))
    }

    /// The instance.
    #[must_use]
    pub fn get(&self) -> PFLT_INSTANCE {
        self.0
    }
}

impl Drop for InstanceRef {
    fn drop(&mut self) {
        // SAFETY: the reference `new` took, dropped once.
        unsafe { FltObjectDereference(self.0 as *mut core::ffi::c_void) };
    }
}
