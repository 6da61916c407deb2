//! # callback-data: a minifilter that issues its own I/O
//!
//! In post-create, this sample asks the file system about the file just opened with requests it
//! builds itself: it allocates a `FLT_CALLBACK_DATA` (`FltAllocateCallbackDataEx`), fills its
//! parameter block, sends it down (`FltPerformSynchronousIo`), reuses it for a second question
//! (`FltReuseCallbackData`) and frees it (`FltFreeCallbackData`), then asks once more without
//! waiting (`FltPerformAsynchronousIo`), where the completion routine owns what it frees. It logs
//! the answers and never changes or fails the user's open. It acts only in its demo folder.
//!
//! Read it top-down: `query` is the synchronous cycle, `query_async` and `query_completed` the
//! asynchronous one. Every call with its IRQL and statuses, and why post-create is the place:
//! the README. `cargo xtask demo callback-data` runs it in `fltsim`; on Windows, `fltmc load
//! RsCallbackData`. Each open in the demo folder logs two lines, the second from the completion
//! routine: `rs-callback-data: <path>\readme.txt: size 16, links 1, delete pending no, file id
//! 0x10002`, then `...: async FileStandardInformation: size 16, links 1 (completion routine at
//! DISPATCH_LEVEL)`.
#![cfg_attr(target_os = "windows", no_std)]

use core::{cell::UnsafeCell, ffi::c_void, mem::MaybeUninit, ptr};

use common::{
    NtStatus,
    bindings::{
        DRIVER_OBJECT, EX_RUNDOWN_REF, EX_RUNDOWN_REF_0, ExAcquireRundownProtection,
        ExInitializeRundownProtection, ExReleaseRundownProtection,
        ExWaitForRundownProtectionRelease, FILE_INTERNAL_INFORMATION, FILE_OBJECT,
        FILE_STANDARD_INFORMATION, FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY,
        FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS,
        FileInternalInformation, FileStandardInformation, FltAllocateCallbackDataEx,
        FltPerformAsynchronousIo, FltPerformSynchronousIo, FltReuseCallbackData, IRP_MJ_CREATE,
        IRP_MJ_QUERY_INFORMATION, NTSTATUS, ObDereferenceObjectDeferDelete, ObfReferenceObject,
        PFLT_CONTEXT, PFLT_INSTANCE, STATUS_SUCCESS, UNICODE_STRING,
    },
    callback_data::OwnedCallbackData,
    filter::{FilterSlot, register_and_start},
    irql, layout, log,
    name::CopiedName,
    params,
    pool::{PoolBox, tag},
    registration::{OPERATION_END, OperationTable, Registration, operation},
    scope::{self, SCOPE},
};
use windows_sys::Wdk::Storage::FileSystem::FILE_INFORMATION_CLASS;

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-callback-data";

/// The filter handle, from `FltRegisterFilter` to `FltUnregisterFilter`.
static FILTER: FilterSlot = FilterSlot::new();

/// Only creates, and only after the file system has opened the file.
static OPERATIONS: OperationTable<2> = OperationTable::new([
    operation(IRP_MJ_CREATE, Some(scope::pre_create), Some(post_create)),
    OPERATION_END,
]);

/// The registration Filter Manager reads for as long as the filter is registered.
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .instance_setup(Some(instance_setup))
    .unload(Some(unload));

/// The pool tag of the block each asynchronous query carries (`RsCb` in `!poolused`).
const POOL_TAG: u32 = tag(b"RsCb");

/// Rundown protection for the asynchronous queries in flight: each holds it from before
/// `FltPerformAsynchronousIo` until the end of its completion routine, and unload waits for
/// them all.
struct InFlight(UnsafeCell<EX_RUNDOWN_REF>);

// SAFETY: the `EX_RUNDOWN_REF` is only ever passed to the `Ex*RundownProtection` routines, which
// update it with interlocked operations and are documented for concurrent callers.
unsafe impl Sync for InFlight {}

impl InFlight {
    fn get(&self) -> *mut EX_RUNDOWN_REF {
        self.0.get()
    }
}

/// Initialized by `DriverEntry`, waited for by `unload`.
static IN_FLIGHT: InFlight = InFlight(UnsafeCell::new(EX_RUNDOWN_REF {
    Anonymous: EX_RUNDOWN_REF_0 { Count: 0 },
}));

/// The driver's entry point: register, then start filtering.
///
/// # Safety
/// Called by the I/O manager (or `fltsim`) with a valid driver object and registry path.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    // The demo folder, from the service's `Parameters` key, before filtering starts: the
    // pre-create decides from it, for every open, whether the sample acts (`common::scope`).
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { SCOPE.load(driver, TAG) };
    // Before filtering starts: post-create acquires it from the first open on.
    // SAFETY: nothing uses the rundown reference yet (the filter is not registered).
    unsafe { ExInitializeRundownProtection(IN_FLIGHT.get()) };
    // FltRegisterFilter, then FltStartFiltering, unregistering if starting fails: the
    // passthrough sample makes the three calls itself and explains each (samples/passthrough).
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { register_and_start(driver, &REGISTRATION, &FILTER, TAG) }.0
}

/// `InstanceSetup`: attach to every volume. Filters below us see our queries on each of them.
unsafe extern "system" fn instance_setup(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _volume_device_type: u32,
    _file_system_type: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    STATUS_SUCCESS
}

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): wait for the asynchronous queries still in flight,
/// then unregister, which waits for every open in flight.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    // First the completions: their callback data targets our instances, and their routine is
    // our code. From here on ExAcquireRundownProtection fails, so no new query starts.
    // SAFETY: initialized in DriverEntry; we are at PASSIVE_LEVEL (< DISPATCH_LEVEL required).
    unsafe { ExWaitForRundownProtectionRelease(IN_FLIGHT.get()) };
    FILTER.unregister();
    STATUS_SUCCESS
}

/// Post-create (`PASSIVE_LEVEL`, the opener's thread): ask the file system about the file it
/// just opened, log the answer, and let the open complete whatever happened.
unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    let objects = unsafe { &*objects };
    // A file the file system actually opened: not a failed or reparsed create, a paging file, a
    // volume or a directory, on an instance that is not being torn down (`common::create` says
    // why for each).
    // SAFETY: this post-create's callback data, related objects and flags.
    if !unsafe { common::create::is_opened_file(data, objects, flags) } {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // Post-create is documented to run at PASSIVE_LEVEL; everything below needs <= APC_LEVEL.
    common::paged_code!();
    // The normalized name if Filter Manager can build it, the name as opened otherwise.
    // SAFETY: the create's callback data, valid during post-create (not paging I/O).
    let name = unsafe { CopiedName::query_normalized(data) };
    match query(objects.Instance, objects.FileObject) {
        Ok(facts) => log!(
            "{TAG}: {name}: size {}, links {}, delete pending {}, file id {:#x}",
            facts.size,
            facts.links,
            if facts.delete_pending { "yes" } else { "no" },
            facts.file_id.cast_unsigned()
        ),
        Err(Failed { step, status }) => {
            log!("{TAG}: {name}: {step} failed with {status}; the open goes on");
        }
    }
    // 6. The first question again, asynchronously: the answer is logged by the completion.
    query_async(objects.Instance, objects.FileObject, &name);
    // Fail open: whatever happened above, the user's open completes as the file system left it.
    FLT_POSTOP_FINISHED_PROCESSING
}

/// What the file system said about one file.
struct Facts {
    size: i64,
    links: u32,
    delete_pending: bool,
    file_id: i64,
}

/// Which step failed, and how.
struct Failed {
    step: &'static str,
    status: NtStatus,
}

/// Steps 1 to 5: allocate, query, reuse, query again, free (on every path, when `data` drops).
fn query(instance: PFLT_INSTANCE, file_object: *const FILE_OBJECT) -> Result<Facts, Failed> {
    // Declared before the callback data: the requests point into them. The file system writes
    // them; `MaybeUninit` because `DeletePending` is a BOOLEAN (any byte) that windows-sys types
    // `bool` (0 or 1 only), so we never hold the answer as a `FILE_STANDARD_INFORMATION` value.
    let mut standard = MaybeUninit::<FILE_STANDARD_INFORMATION>::zeroed();
    let mut internal = MaybeUninit::<FILE_INTERNAL_INFORMATION>::zeroed();

    // 1. Allocate, with everything the requests will need, so that memory cannot run out mid-I/O.
    let mut raw = ptr::null_mut();
    // SAFETY: the instance is ours and attached, the file object is open, the out pointer is a
    // local, and we run at PASSIVE_LEVEL (<= APC_LEVEL required).
    let status = NtStatus(unsafe {
        FltAllocateCallbackDataEx(
            instance,
            file_object,
            FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY,
            &raw mut raw,
        )
    });
    status.ok().map_err(|status| Failed {
        step: "FltAllocateCallbackDataEx",
        status,
    })?;
    // SAFETY: the allocation succeeded, so `raw` is non-null callback data that only we free.
    let mut data = unsafe { OwnedCallbackData::from_raw(raw) };

    // 2 and 3. The first question: size, links, delete pending.
    query_information(&mut data, FileStandardInformation, standard.as_mut_ptr()).map_err(
        |status| Failed {
            step: "FileStandardInformation query",
            status,
        },
    )?;

    // 4. Reset the same callback data, then the second question: the file ID.
    // SAFETY: the data is ours and idle (the synchronous request above has completed).
    unsafe { FltReuseCallbackData(data.as_ptr()) };
    query_information(&mut data, FileInternalInformation, internal.as_mut_ptr()).map_err(
        |status| Failed {
            step: "FileInternalInformation query",
            status,
        },
    )?;

    let (standard, internal) = (standard.as_ptr(), internal.as_ptr());
    // SAFETY: only computes the field's address inside the local.
    let delete_pending = unsafe { &raw const (*standard).DeletePending };
    Ok(Facts {
        // SAFETY: both queries succeeded, so the file system filled the buffers; each read
        // touches one field, through a raw pointer to the local.
        size: unsafe { (*standard).EndOfFile },
        // SAFETY: as above.
        links: unsafe { (*standard).NumberOfLinks },
        // SAFETY: as above; the BOOLEAN is read as the byte it is.
        delete_pending: unsafe { layout::boolean(delete_pending) },
        // SAFETY: as above.
        file_id: unsafe { (*internal).IndexNumber },
    })
    // 5. `data` drops here (and on every early return above): FltFreeCallbackData.
}

/// Fills `data` with an `IRP_MJ_QUERY_INFORMATION` for `class` into `buffer`, and sends it to
/// the instances below ours and the file system.
fn query_information<T>(
    data: &mut OwnedCallbackData,
    class: FILE_INFORMATION_CLASS,
    buffer: *mut T,
) -> Result<(), NtStatus> {
    fill_query(data, class, buffer);
    // SAFETY: the data is ours and idle, its parameter block is filled in for this request, and
    // `buffer` (the caller's local) outlives the call, which does not return before the request
    // has completed.
    unsafe { FltPerformSynchronousIo(data.as_ptr()) };
    let (status, _written) = data.io_status();
    status.ok()
}

/// Fills `data`'s parameter block with an `IRP_MJ_QUERY_INFORMATION` for `class` into the
/// `size_of::<T>()` bytes at `buffer`.
fn fill_query<T>(data: &mut OwnedCallbackData, class: FILE_INFORMATION_CLASS, buffer: *mut T) {
    let iopb = data.iopb_mut();
    // The major function is a small number (0x05).
    #[allow(clippy::cast_possible_truncation)]
    let major = IRP_MJ_QUERY_INFORMATION as u8;
    iopb.MajorFunction = major;
    iopb.MinorFunction = 0;
    // The information structures are a few dozen bytes.
    #[allow(clippy::cast_possible_truncation)]
    let length = size_of::<T>() as u32;
    // The C layout (`FileInformationClass` at 8, `InfoBuffer` at 16 on 64-bit), not
    // windows-sys's `Parameters.QueryFileInformation`, which puts them at 4 and 8.
    // SAFETY: IRP_MJ_QUERY_INFORMATION selects this member; callback data from
    // FltAllocateCallbackDataEx (or reset by FltReuseCallbackData) is initialized memory.
    let query = unsafe { params::QueryFileInformation::of_mut(&mut iopb.Parameters) };
    query.Length = length;
    query.FileInformationClass = class;
    query.InfoBuffer = buffer.cast();
}

/// Everything an asynchronous query needs until its completion routine has run, in one block of
/// non-paged pool: the routine runs at `DISPATCH_LEVEL` after `post_create` has returned, so
/// nothing of it may live on the stack or in paged memory.
struct AsyncQuery {
    /// The buffer the file system writes the answer into (never read as a whole: see `query`).
    info: MaybeUninit<FILE_STANDARD_INFORMATION>,
    /// The name for the log line, copied: no name can be queried or released at
    /// `DISPATCH_LEVEL`.
    name: CopiedName,
    /// The file object the request targets, which holds a reference of ours until completion.
    file_object: *const FILE_OBJECT,
}

/// Step 6: the `FileStandardInformation` question through `FltPerformAsynchronousIo`. Either the
/// request is issued and `query_completed` owns everything from then on, or nothing is held and
/// the reason is logged.
fn query_async(instance: PFLT_INSTANCE, file_object: *const FILE_OBJECT, name: &CopiedName) {
    // SAFETY: initialized in DriverEntry; callable at <= DISPATCH_LEVEL.
    if !unsafe { ExAcquireRundownProtection(IN_FLIGHT.get()) } {
        log!("{TAG}: {name}: async query not issued: the filter is unloading; the open goes on");
        return;
    }
    let not_issued = |step: &str, status: NtStatus| {
        log!(
            "{TAG}: {name}: async query not issued: {step} failed with {status}; the open goes on"
        );
        // SAFETY: the rundown reference acquired above, released once on this failure path.
        unsafe { ExReleaseRundownProtection(IN_FLIGHT.get()) };
    };
    let query = AsyncQuery {
        info: MaybeUninit::zeroed(),
        name: *name,
        file_object,
    };
    let query = match PoolBox::new(query, POOL_TAG) {
        Ok(query) => query,
        Err(status) => return not_issued("ExAllocatePool2", status),
    };
    let mut raw = ptr::null_mut();
    // SAFETY: as in `query`: our attached instance, an open file object, a local out pointer,
    // and PASSIVE_LEVEL.
    let status = NtStatus(unsafe {
        FltAllocateCallbackDataEx(
            instance,
            file_object,
            FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY,
            &raw mut raw,
        )
    });
    if let Err(status) = status.ok() {
        // `query` drops here: ExFreePoolWithTag.
        return not_issued("FltAllocateCallbackDataEx", status);
    }
    // SAFETY: the allocation succeeded, so `raw` is non-null callback data that only we free.
    let mut data = unsafe { OwnedCallbackData::from_raw(raw) };

    // Nothing can fail from here on. The file object must outlive the request, which may
    // complete after the user has closed the handle: take a reference for the completion.
    // SAFETY: the file object of a successful create is valid during post-create.
    unsafe { ObfReferenceObject(file_object.cast()) };
    let query = query.into_raw();
    // SAFETY: `query` is the live pool block we just gave up; the field pointer stays valid
    // until the completion routine frees the block, after the request has completed.
    fill_query(&mut data, FileStandardInformation, unsafe {
        (&raw mut (*query).info).cast::<FILE_STANDARD_INFORMATION>()
    });

    // After this call, the completion routine owns the callback data, the pool block, the
    // file-object reference and the rundown reference, WHATEVER the call returns: Filter Manager
    // always calls the routine, even when FltPerformAsynchronousIo fails. Touch none of them
    // here. The return value only says when the routine runs: STATUS_PENDING, later;
    // STATUS_SUCCESS or STATUS_FLT_IO_COMPLETE, already; a failure
    // (STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST, ...), already, with the failure in IoStatus,
    // which the routine logs.
    // SAFETY: the callback data is ours, idle and filled in; the routine matches
    // PFLT_COMPLETED_ASYNC_IO_CALLBACK; the context is the pool block it takes back.
    unsafe { FltPerformAsynchronousIo(data.into_raw(), Some(query_completed), query.cast()) };
}

/// The completion routine of step 6 (`PFLT_COMPLETED_ASYNC_IO_CALLBACK`): called once per
/// `FltPerformAsynchronousIo` call, at `<= DISPATCH_LEVEL`, in an arbitrary thread. Only
/// DISPATCH-safe work here: read `IoStatus`, log (`DbgPrintEx` of a line formatted on the
/// stack), `FltFreeCallbackData`, `ExFreePoolWithTag`, `ObDereferenceObjectDeferDelete`, and last
/// `ExReleaseRundownProtection`.
unsafe extern "system" fn query_completed(data: *const FLT_CALLBACK_DATA, context: PFLT_CONTEXT) {
    // SAFETY: `context` is the block `query_async` gave up with `into_raw` and POOL_TAG; this
    // routine runs once per request, so the block is taken back once.
    let query = unsafe { PoolBox::from_raw(context.cast::<AsyncQuery>(), POOL_TAG) };
    // SAFETY: `data` is the callback data `query_async` allocated and handed over; its request
    // has completed, so it is ours again and idle.
    let data = unsafe { OwnedCallbackData::from_raw(data.cast_mut()) };
    let (status, _written) = data.io_status();
    let level = irql::name(irql::current());
    let info = query.info.as_ptr();
    match status.ok() {
        Ok(()) => log!(
            "{TAG}: {}: async FileStandardInformation: size {}, links {} (completion routine at {level})",
            query.name,
            // SAFETY: the request succeeded, so the file system filled the buffer; one field
            // each, through a raw pointer into our pool block.
            unsafe { (*info).EndOfFile },
            // SAFETY: as above.
            unsafe { (*info).NumberOfLinks }
        ),
        Err(status) => log!(
            "{TAG}: {}: async FileStandardInformation query failed with {status}; the open went on (completion routine at {level})",
            query.name
        ),
    }
    let file_object = query.file_object;
    drop(data); // FltFreeCallbackData
    drop(query); // ExFreePoolWithTag
    // If the user closed the handle meanwhile, this is the file object's last reference, and a
    // plain ObfDereferenceObject would delete it right here, sending IRP_MJ_CLOSE down the stack
    // from inside I/O completion. ObDereferenceObjectDeferDelete (Vista, <= DISPATCH_LEVEL)
    // leaves that deletion to a worker thread, as its documentation advises "when the immediate
    // deletion by the current thread ... might result in a deadlock".
    // SAFETY: the reference `query_async` took for this request, dropped once.
    unsafe { ObDereferenceObjectDeferDelete(file_object.cast()) };
    // Last: once released, unload may go on and unmap this code, so nothing of ours may run
    // after it. Rust cannot promise that: there is no guaranteed tail call, so the function's
    // epilogue (restoring the stack and the saved registers, then returning) runs after
    // ExReleaseRundownProtection returns, at the completion's IRQL (DISPATCH_LEVEL when the I/O
    // completes in a DPC, where the thread cannot be preempted; but the routine may also run at
    // PASSIVE_LEVEL). The unload it races
    // must first wake from ExWaitForRundownProtectionRelease, run FltUnregisterFilter (which
    // tears down every instance) and return before the image is unmapped. A C driver has the
    // same window unless its compiler turns the call into a jump. The documented way to close it
    // is to let the system hold the image: IoQueueWorkItem keeps the driver's device object, and
    // so the driver, referenced until the routine returns (the reason its documentation gives
    // for preferring it to ExQueueWorkItem). A minifilter has no device object of its own, and
    // no Filter Manager routine documents that guarantee, so this sample states the window.
    // SAFETY: the rundown reference `query_async` acquired for this request, released once.
    unsafe { ExReleaseRundownProtection(IN_FLIGHT.get()) };
}
