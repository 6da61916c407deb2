//! Which handles wrote: a stream-handle context set on handles opened for write and marked by
//! every non-paging write through them, so that the handle's cleanup knows whether to act.
//!
//! data-scan uses it to scan again when a handle that wrote closes. The calls behind it are
//! `FltAllocateContext(FLT_STREAMHANDLE_CONTEXT)`, `FltSetStreamHandleContext` and
//! `FltGetStreamHandleContext` (all `<= APC_LEVEL`), through [`ContextRef`].

use core::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_RELATED_OBJECTS, FLT_STREAMHANDLE_CONTEXT, PFLT_FILTER,
};

use crate::{NtStatus, bindings::IRP_PAGING_IO, context::ContextRef};

/// The stream-handle context: did this handle write? A filter that uses this module registers it
/// as its only stream-handle context type (`context_of::<WriteMark>(FLT_STREAMHANDLE_CONTEXT,
/// tag)`).
pub struct WriteMark {
    written: AtomicBool,
}

/// Gives the handle of `objects.FileObject` a [`WriteMark`]. The link keeps the context until
/// the file object closes; the allocation reference is dropped before this returns.
///
/// # Errors
/// The call that failed and its status: `FltAllocateContext` or `FltSetStreamHandleContext`.
pub fn track(
    filter: PFLT_FILTER,
    objects: &FLT_RELATED_OBJECTS,
) -> Result<(), (&'static str, NtStatus)> {
    let mark = WriteMark {
        written: AtomicBool::new(false),
    };
    let context = ContextRef::allocate(filter, FLT_STREAMHANDLE_CONTEXT, mark)
        .map_err(|status| ("FltAllocateContext", status))?;
    let status = context.set_on_stream_handle(objects);
    if status.is_success() {
        Ok(())
    } else {
        Err(("FltSetStreamHandleContext", status))
    }
}

/// Whether the handle of `objects.FileObject` has a [`WriteMark`] and wrote.
#[must_use]
pub fn wrote(objects: &FLT_RELATED_OBJECTS) -> bool {
    // SAFETY: `WriteMark` is the only stream-handle context type of a filter using this module.
    let mark = unsafe { ContextRef::<WriteMark>::of_stream_handle(objects) };
    mark.is_some_and(|mark| mark.written.load(Ordering::Relaxed))
}

/// A pre-write callback (`<= APC_LEVEL`) that marks the handle's [`WriteMark`], if it has one.
/// Marked before the write, so a write that then fails costs one extra scan, never a missed one.
/// Paging writes are left alone: they come from the cache manager or a mapped view, on behalf of
/// writes already seen.
///
/// # Safety
/// Called by Filter Manager as a pre-operation callback for `IRP_MJ_WRITE`.
pub unsafe extern "system" fn pre_write(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut core::ffi::c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: valid callback data for the callback's duration.
    let iopb = unsafe { crate::callback_data::parameters(data) };
    if iopb.IrpFlags & IRP_PAGING_IO == 0 {
        // SAFETY: valid related objects for the callback's duration.
        let objects = unsafe { &*objects };
        // SAFETY: `WriteMark` is the only stream-handle context type of a filter using this.
        if let Some(mark) = unsafe { ContextRef::<WriteMark>::of_stream_handle(objects) } {
            mark.written.store(true, Ordering::Relaxed);
        }
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}
