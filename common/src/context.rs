//! Filter Manager contexts as typed, reference-owning handles.
//!
//! A context is a block of pool that Filter Manager reference-counts. The rules
//! (`FltAllocateContext`, `FltGet*Context`, `FltReferenceContext`, `FltReleaseContext`):
//! - `FltAllocateContext` returns it with one reference, owned by the caller, and does **not**
//!   zero it;
//! - every successful `FltGet*Context` and every `FltReferenceContext` adds one reference;
//! - each reference is dropped by exactly one `FltReleaseContext` (IRQL `<= DISPATCH_LEVEL`);
//! - when the last reference goes, the context type's cleanup callback runs and the pool is freed.
//!
//! [`ContextRef`] owns exactly one such reference and releases it in `Drop`, so "exactly one
//! release per reference" holds on every path, early returns included.

use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

use windows_sys::{
    Wdk::{
        Foundation::NonPagedPoolNx,
        Storage::FileSystem::Minifilters::{
            FLT_INSTANCE_CONTEXT, FLT_RELATED_OBJECTS, FLT_SET_CONTEXT_KEEP_IF_EXISTS,
            FLT_STREAMHANDLE_CONTEXT, FltAllocateContext, FltGetInstanceContext,
            FltGetSectionContext, FltGetStreamHandleContext, FltReferenceContext,
            FltReleaseContext, FltSetInstanceContext, FltSetStreamHandleContext, PFLT_CONTEXT,
            PFLT_FILTER, PFLT_INSTANCE,
        },
    },
    Win32::Foundation::{STATUS_INVALID_PARAMETER, STATUS_SUCCESS},
};

use crate::NtStatus;

/// The alignment Filter Manager guarantees for context memory (`MEMORY_ALLOCATION_ALIGNMENT`).
pub const CONTEXT_ALIGNMENT: usize = 16;

/// One counted reference to a context whose body is a `T`.
///
/// Dropping it calls `FltReleaseContext`, which is legal at IRQL `<= DISPATCH_LEVEL`.
pub struct ContextRef<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: a context is pool memory shared by every holder of a reference; Filter Manager's
// reference counting is interlocked, so a reference may move to and be used from any thread as
// long as `T` itself may be shared.
unsafe impl<T: Sync> Send for ContextRef<T> {}
// SAFETY: as above; `&ContextRef<T>` only gives out `&T`.
unsafe impl<T: Sync> Sync for ContextRef<T> {}

impl<T> ContextRef<T> {
    /// `FltAllocateContext` from non-paged pool, zeroes the body, then moves `value` into it.
    ///
    /// IRQL `<= APC_LEVEL`. The returned reference is the allocation reference.
    ///
    /// # Errors
    /// `FltAllocateContext`'s status, for example `STATUS_INSUFFICIENT_RESOURCES`; or
    /// `STATUS_INVALID_PARAMETER` if `T` needs more than 16-byte alignment.
    pub fn allocate(filter: PFLT_FILTER, context_type: u32, value: T) -> Result<Self, NtStatus> {
        if core::mem::align_of::<T>() > CONTEXT_ALIGNMENT {
            return Err(NtStatus(STATUS_INVALID_PARAMETER));
        }
        let context_type =
            u16::try_from(context_type).map_err(|_| NtStatus(STATUS_INVALID_PARAMETER))?;
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        // SAFETY: `raw` is a valid out pointer; the size is that of `T`, which the context
        // registration for `context_type` must cover (Filter Manager checks it).
        let status = NtStatus(unsafe {
            FltAllocateContext(
                filter,
                context_type,
                core::mem::size_of::<T>(),
                NonPagedPoolNx,
                &raw mut raw,
            )
        });
        status.ok()?;
        let body = raw.cast::<T>();
        // SAFETY: on success `raw` points to at least `size_of::<T>()` writable bytes, aligned to
        // 16 (checked against `T` above). The memory is uninitialised, so zero it first, as the
        // documentation asks, so padding never leaks old pool contents.
        unsafe { core::ptr::write_bytes(body.cast::<u8>(), 0, core::mem::size_of::<T>()) };
        // SAFETY: same memory; nothing has been dropped into it, so a plain write is right.
        unsafe { body.write(value) };
        // SAFETY: FltAllocateContext succeeded, so `raw` is non-null, and we own its reference.
        Ok(unsafe { Self::from_raw(raw) })
    }

    /// Adopts one reference that the caller owns (from `FltGet*Context`, say).
    ///
    /// # Safety
    /// `raw` must be a non-null context whose body is a `T`, and the caller must own one
    /// reference to it, which this value now releases.
    #[must_use]
    pub unsafe fn from_raw(raw: PFLT_CONTEXT) -> Self {
        Self {
            // SAFETY: the caller guarantees `raw` is non-null.
            ptr: unsafe { NonNull::new_unchecked(raw.cast::<T>()) },
            _owns: PhantomData,
        }
    }

    /// Gives the reference away without releasing it (for example to Filter Manager, or to a
    /// work item that will adopt it with [`from_raw`](Self::from_raw)).
    #[must_use]
    pub fn into_raw(self) -> PFLT_CONTEXT {
        let raw = self.as_raw();
        core::mem::forget(self);
        raw
    }

    /// The context pointer, for passing to Filter Manager. The reference stays owned.
    #[must_use]
    pub fn as_raw(&self) -> PFLT_CONTEXT {
        self.ptr.as_ptr().cast()
    }

    /// `FltSetStreamHandleContext(Instance, FileObject, FLT_SET_CONTEXT_KEEP_IF_EXISTS, self,
    /// NULL)` (`<= APC_LEVEL`): links this context to the handle of `objects.FileObject` until the
    /// file object closes. The link holds a reference of its own; this value keeps its own.
    /// `STATUS_FLT_CONTEXT_ALREADY_DEFINED` if the handle has one already.
    #[must_use]
    pub fn set_on_stream_handle(&self, objects: &FLT_RELATED_OBJECTS) -> NtStatus {
        // SAFETY: the operation's instance and file object, a context we hold a reference on,
        // and no old-context out pointer (Filter Manager releases any it replaces itself).
        NtStatus(unsafe {
            FltSetStreamHandleContext(
                objects.Instance,
                objects.FileObject,
                FLT_SET_CONTEXT_KEEP_IF_EXISTS,
                self.as_raw(),
                core::ptr::null_mut(),
            )
        })
    }

    /// `FltGetStreamHandleContext` (`<= APC_LEVEL`): the context of the handle of
    /// `objects.FileObject`, if it has one. A success adds a reference, which the returned value
    /// releases.
    ///
    /// # Safety
    /// Every stream-handle context the filter sets must have a body of type `T`.
    #[must_use]
    pub unsafe fn of_stream_handle(objects: &FLT_RELATED_OBJECTS) -> Option<Self> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        // SAFETY: the operation's instance and file object, and a valid out pointer.
        let status = unsafe {
            FltGetStreamHandleContext(objects.Instance, objects.FileObject, &raw mut raw)
        };
        // SAFETY: success returned one reference to one of the filter's stream-handle contexts,
        // whose body is a `T` (the caller's guarantee), owned from here on.
        (status == STATUS_SUCCESS && !raw.is_null()).then(|| unsafe { Self::from_raw(raw) })
    }

    /// `FltGetSectionContext` (`<= APC_LEVEL`): the section context linked to the stream of
    /// `objects.FileObject`, if there is one (`STATUS_NOT_FOUND` otherwise). A success adds a
    /// reference, which the returned value releases. section-context makes this call itself and
    /// explains it; data-scan finds a scan in flight with it, and section-conflict's pre-flush a
    /// section to give way with (`handoff::section_of_flush_and_purge`).
    ///
    /// # Safety
    /// Every section context the filter creates sections with must have a body of type `T`.
    #[must_use]
    pub unsafe fn of_section(objects: &FLT_RELATED_OBJECTS) -> Option<Self> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        // SAFETY: the operation's instance and file object, and a valid out pointer.
        let status =
            unsafe { FltGetSectionContext(objects.Instance, objects.FileObject, &raw mut raw) };
        // SAFETY: success returned one reference to one of the filter's section contexts, whose
        // body is a `T` (the caller's guarantee), owned from here on.
        (status == STATUS_SUCCESS && !raw.is_null()).then(|| unsafe { Self::from_raw(raw) })
    }

    /// `FltSetInstanceContext(Instance, FLT_SET_CONTEXT_KEEP_IF_EXISTS, self, NULL)`
    /// (`<= APC_LEVEL`): links this context to `instance` until the instance is torn down. The
    /// link holds a reference of its own; this value keeps its own.
    /// `STATUS_FLT_CONTEXT_ALREADY_DEFINED` if the instance has one already.
    #[must_use]
    pub fn set_on_instance(&self, instance: PFLT_INSTANCE) -> NtStatus {
        // SAFETY: a live instance (the caller is in one of its callbacks), a context we hold a
        // reference on, and no old-context out pointer.
        NtStatus(unsafe {
            FltSetInstanceContext(
                instance,
                FLT_SET_CONTEXT_KEEP_IF_EXISTS,
                self.as_raw(),
                core::ptr::null_mut(),
            )
        })
    }

    /// `FltGetInstanceContext` (`<= APC_LEVEL`): the context of `instance`, if it has one. A
    /// success adds a reference, which the returned value releases.
    ///
    /// # Safety
    /// `instance` is live (the caller is in one of its callbacks), and every instance context
    /// the filter sets has a body of type `T`.
    #[must_use]
    pub unsafe fn of_instance(instance: PFLT_INSTANCE) -> Option<Self> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        // SAFETY: a live instance (the caller's guarantee) and a valid out pointer.
        let status = unsafe { FltGetInstanceContext(instance, &raw mut raw) };
        // SAFETY: success returned one reference to the filter's instance context, whose body
        // is a `T` (the caller's guarantee), owned from here on.
        (status == STATUS_SUCCESS && !raw.is_null()).then(|| unsafe { Self::from_raw(raw) })
    }

    /// A new context holding `value`, linked to the handle of `objects.FileObject`
    /// ([`allocate`](Self::allocate), then [`set_on_stream_handle`](Self::set_on_stream_handle);
    /// `<= APC_LEVEL`). The allocation reference is released before this returns, so the link's
    /// reference is the only one: the context lives until the file object closes.
    ///
    /// # Errors
    /// The call that failed and its status; nothing is linked then.
    pub fn attach_to_stream_handle(
        filter: PFLT_FILTER,
        objects: &FLT_RELATED_OBJECTS,
        value: T,
    ) -> Result<(), Failed> {
        let context =
            Self::allocate(filter, FLT_STREAMHANDLE_CONTEXT, value).map_err(|status| {
                Failed::new("FltAllocateContext(FLT_STREAMHANDLE_CONTEXT)", status)
            })?;
        let status = context.set_on_stream_handle(objects);
        status
            .ok()
            .map_err(|status| Failed::new("FltSetStreamHandleContext", status))
    }

    /// A new context holding `value`, linked to `instance` ([`allocate`](Self::allocate), then
    /// [`set_on_instance`](Self::set_on_instance); `<= APC_LEVEL`). The allocation reference is
    /// released before this returns: the instance's link keeps the context until teardown.
    ///
    /// # Errors
    /// The call that failed and its status; nothing is linked then.
    pub fn attach_to_instance(
        filter: PFLT_FILTER,
        instance: PFLT_INSTANCE,
        value: T,
    ) -> Result<(), Failed> {
        let context = Self::allocate(filter, FLT_INSTANCE_CONTEXT, value)
            .map_err(|status| Failed::new("FltAllocateContext(FLT_INSTANCE_CONTEXT)", status))?;
        let status = context.set_on_instance(instance);
        status
            .ok()
            .map_err(|status| Failed::new("FltSetInstanceContext", status))
    }

    /// Takes a second reference (`FltReferenceContext`), released by the returned value.
    #[must_use]
    pub fn add_ref(&self) -> Self {
        // SAFETY: we hold a reference, so the context is alive; FltReferenceContext adds one.
        unsafe { FltReferenceContext(self.as_raw()) };
        // SAFETY: the reference just taken is owned by the new value.
        unsafe { Self::from_raw(self.as_raw()) }
    }
}

impl<T> Deref for ContextRef<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the reference we own keeps the body alive and initialised (written by
        // `allocate`, or by whoever created the context); contexts are shared, so only `&T`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for ContextRef<T> {
    fn drop(&mut self) {
        // SAFETY: we own exactly one reference, and this is the one release for it.
        unsafe { FltReleaseContext(self.as_raw()) }
    }
}

/// Which call of a two-step attach failed, and its status. Prints as `call: status`, for a log
/// line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    /// The call, for example `FltSetStreamHandleContext`.
    pub call: &'static str,
    /// What it returned.
    pub status: NtStatus,
}

impl Failed {
    /// `call` failed with `status`.
    #[must_use]
    pub const fn new(call: &'static str, status: NtStatus) -> Self {
        Self { call, status }
    }
}

impl core::fmt::Display for Failed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.call, self.status)
    }
}

/// A context cleanup callback (`PFLT_CONTEXT_CLEANUP_CALLBACK`) that drops the `T` in place.
///
/// Filter Manager calls it once, when the last reference is released, at IRQL `<= APC_LEVEL`,
/// before it frees the pool. Put it in the context table row for the type.
///
/// # Safety
/// Only Filter Manager calls this, with a context whose body is an initialised `T`.
pub unsafe extern "system" fn drop_context<T>(context: PFLT_CONTEXT, _context_type: u16) {
    // SAFETY: Filter Manager passes the context whose last reference just went; its body is a
    // `T` written by `ContextRef::allocate`, and nothing uses it after this.
    unsafe { core::ptr::drop_in_place(context.cast::<T>()) }
}
