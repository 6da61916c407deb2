//! Which completed creates a post-create callback should leave alone.
//!
//! A filter that acts on files in its post-create meets many opens that are not "a user opened
//! a file": [`is_opened_file`] rules those out in the order avscan does, each for a reason:
//!
//! | skipped | why |
//! |---|---|
//! | `FLTFL_POST_OPERATION_DRAINING` | the instance is being torn down: the callback may only clean up |
//! | a failed create, or `STATUS_REPARSE` | nothing was opened. `STATUS_REPARSE` is a *success* code, so `NT_SUCCESS` does not rule it out: the I/O manager reissues the open elsewhere, and the file object was never opened |
//! | `SL_OPEN_PAGING_FILE` | the memory manager pages through it; I/O of ours on it can deadlock paging |
//! | `FO_VOLUME_OPEN` | the volume itself, not a file: no stream, no data |
//! | a prefetch open ([`is_prefetch_open`]) | the prefetcher's open carries a `GUID_ECP_PREFETCH_OPEN` extra create parameter from kernel mode; avscan skips it because "performing IO using a prefetch fileobject could lead to a deadlock" |
//! | a directory (`FltIsDirectory`) | no data to read; asked of the file system, since an open without `FILE_DIRECTORY_FILE` can still open a directory |

use windows_sys::{
    Wdk::Storage::FileSystem::{
        GUID_ECP_PREFETCH_OPEN,
        Minifilters::{
            FLT_CALLBACK_DATA, FLT_RELATED_OBJECTS, FLTFL_POST_OPERATION_DRAINING,
            FltFindExtraCreateParameter, FltGetEcpListFromCallbackData, FltIsDirectory,
            FltIsEcpFromUserMode,
        },
    },
    Win32::Foundation::STATUS_SUCCESS,
};

use crate::{
    NtStatus,
    bindings::{FO_VOLUME_OPEN, SL_OPEN_PAGING_FILE},
    file_object, params,
};

/// Whether a completed create opened a file worth acting on (see the module doc for what is
/// ruled out, and why). IRQL `<= APC_LEVEL` (`FltIsDirectory`); post-create runs at
/// `PASSIVE_LEVEL`.
///
/// # Safety
/// `data`, `objects` and `flags` must be those of a post-create callback, valid for the call.
#[must_use]
pub unsafe fn is_opened_file(
    data: *const FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    flags: u32,
) -> bool {
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        return false;
    }
    // SAFETY: valid callback data for the call (caller).
    let io_status = unsafe { &(*data).IoStatus };
    // SAFETY: `Status` is the member Filter Manager sets when the create completes.
    let status = unsafe { io_status.Anonymous.Status };
    // STATUS_SUCCESS exactly: this also rules out STATUS_REPARSE, a success code.
    if status != STATUS_SUCCESS {
        return false;
    }
    // SAFETY: valid callback data points at its parameter block for the whole callback.
    let iopb = unsafe { crate::callback_data::parameters(data) };
    if u32::from(iopb.OperationFlags) & SL_OPEN_PAGING_FILE != 0 {
        return false;
    }
    // SAFETY: the file object of a successful create is valid while the callback runs.
    if unsafe { file_object::flags(objects.FileObject) } & FO_VOLUME_OPEN != 0 {
        return false;
    }
    // SAFETY: the caller's post-create callback data and objects.
    if unsafe { is_prefetch_open(data, objects) } {
        return false;
    }
    // A BOOLEAN out parameter: a byte, whatever windows-sys's `*mut bool` says.
    let mut is_directory = 0u8;
    // SAFETY: the file object was opened by this create and the instance is the caller's; the
    // out pointer is a local byte.
    let status = unsafe {
        FltIsDirectory(
            objects.FileObject,
            objects.Instance,
            (&raw mut is_directory).cast::<bool>(),
        )
    };
    NtStatus(status).is_success() && is_directory == 0
}

/// `GUID_ECP_PREFETCH_OPEN` in memory: windows-sys gives a `const`, the call takes its address.
static PREFETCH_OPEN: windows_sys::core::GUID = GUID_ECP_PREFETCH_OPEN;

/// Whether a create is the prefetcher's: its extra create parameters hold a
/// `GUID_ECP_PREFETCH_OPEN` that came from kernel mode (one from user mode is not trusted to be
/// the prefetcher's, as avscan decides). `FltGetEcpListFromCallbackData`,
/// `FltFindExtraCreateParameter` and `FltIsEcpFromUserMode` are each `<= APC_LEVEL`. A list
/// that cannot be read counts as no prefetch: the open is then acted on, as before.
///
/// # Safety
/// `data` and `objects` must be those of a create's pre- or post-operation callback.
#[must_use]
pub unsafe fn is_prefetch_open(
    data: *const FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
) -> bool {
    let mut list = core::ptr::null_mut();
    // SAFETY: the filter and the create's callback data (the caller's), a local out pointer.
    let status = unsafe { FltGetEcpListFromCallbackData(objects.Filter, data, &raw mut list) };
    if status != STATUS_SUCCESS || list.is_null() {
        return false;
    }
    let mut context = core::ptr::null_mut();
    // SAFETY: the list just returned for this create, the GUID static, a local out pointer; the
    // size is optional.
    let status = unsafe {
        FltFindExtraCreateParameter(
            objects.Filter,
            list,
            &raw const PREFETCH_OPEN,
            &raw mut context,
            core::ptr::null_mut(),
        )
    };
    // SAFETY: the ECP context just found in this create's list.
    status == STATUS_SUCCESS && !unsafe { FltIsEcpFromUserMode(objects.Filter, context) }
}

/// The access the opener asked for (`Parameters.Create.SecurityContext->DesiredAccess`, read
/// with the C layout). `FILE_OBJECT.ReadAccess` is no substitute: the I/O manager sets it for
/// `FILE_EXECUTE` too, so every image load looks like a read.
///
/// # Safety
/// `data` must be the callback data of a create, valid for the call.
#[must_use]
pub unsafe fn desired_access(data: *const FLT_CALLBACK_DATA) -> u32 {
    // SAFETY: valid callback data points at its parameter block for the whole callback.
    let iopb = unsafe { crate::callback_data::parameters(data) };
    // SAFETY: for IRP_MJ_CREATE the `Create` member of the union is the live one.
    let create = unsafe { params::Create::of(&iopb.Parameters) };
    // SAFETY: a create's security context is valid for the create.
    unsafe { (*create.SecurityContext).DesiredAccess }
}
