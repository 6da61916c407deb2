//! # data-scan: scan file contents through `FltCreateSectionForDataScan`
//!
//! A small content scanner. It reads a file through a read-only section that Filter Manager
//! creates for it, searches it for the EICAR test string ([`EICAR`]), and denies the open of a
//! file that holds it. It scans in post-create (an open for read or execute: a hit is undone with
//! `FltCancelFileOpen` and fails with `STATUS_VIRUS_INFECTED`) and in pre-cleanup (a handle that
//! wrote: a hit is logged, and the next open is denied). It acts only in its demo folder
//! (`common::scope`). The README has the details: every status, the tests, the benchmark.
//!
//! ## The calls it teaches
//! - **`FltRegisterForDataScan(Instance)`** in `InstanceSetup` (`<= APC_LEVEL`): required before
//!   any section on the instance. On `STATUS_NOT_SUPPORTED` (a network redirector) the sample
//!   returns `STATUS_FLT_DO_NOT_ATTACH`: no instance there.
//! - **`FltAllocateContext(FLT_SECTION_CONTEXT)`** (`<= APC_LEVEL`): one reference, the allocation
//!   reference. The memory is not zeroed.
//! - **`FltCreateSectionForDataScan`** (`<= APC_LEVEL`; called at `PASSIVE_LEVEL`), read-only
//!   (`SECTION_MAP_READ | SECTION_QUERY`, `PAGE_READONLY`, `SEC_COMMIT`) with `OBJ_KERNEL_HANDLE`.
//!   On success the caller owns a kernel handle and a reference on the section object, and the
//!   context is linked to the stream until `FltCloseSectionForDataScan`. `STATUS_END_OF_FILE` (an
//!   empty file) is clean, `STATUS_FILE_IS_A_DIRECTORY` is skipped, any other failure fails open.
//!   A failed create never linked the context: release it, never close it.
//! - **`MmMapViewInSystemSpaceEx`**, **`MmCopyMemory`** (`<= APC_LEVEL`): one [`WINDOW`] at a
//!   time, copied out, then searched ([`find_signature`]). A view is never read directly: a failed
//!   paging read there raises an exception that Rust cannot catch, and `MmCopyMemory` returns it
//!   as a status instead.
//! - **`FltGetSectionContext`** (`<= APC_LEVEL`) when the create says
//!   `STATUS_FLT_CONTEXT_ALREADY_DEFINED` (another scan of the stream is in flight): a success adds
//!   a reference, dropped by `FltReleaseContext`. **`FltCancellableWaitForSingleObject`**
//!   (`PASSIVE_LEVEL` with callback data) then waits for that scan's verdict, for at most
//!   [`WAIT_SECONDS`]; `STATUS_CANCELLED` or `STATUS_THREAD_IS_TERMINATING` cancels the open.
//! - **The close**, in this order, each call undoing one thing: `MmUnmapViewInSystemSpace` (the
//!   view), `ObCloseHandle` (the handle), `ObDereferenceObject` (the object reference),
//!   `FltCloseSectionForDataScan` (the link), `FltReleaseContext` (the allocation reference).
//!
//! ## What you see when it runs
//! `cargo xtask demo data-scan` runs it in `fltsim`; on Windows, `fltmc load RsDataScan`. Opening
//! the EICAR file in the demo folder fails with "the file contains a virus", and the debugger shows
//! `rs-data-scan: <path>\eicar.txt: open: INFECTED: EICAR signature at offset 0: open denied with
//! STATUS_VIRUS_INFECTED (0xC0000906)`; a clean file logs `open: clean: <n> bytes scanned`.
#![cfg_attr(target_os = "windows", no_std)]

use core::{
    ffi::c_void,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};

use common::{
    NtStatus,
    apc::FileSystemRegion,
    bindings::{
        DRIVER_OBJECT, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_WRITE_DATA,
        FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
        FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT,
        FLT_STREAMHANDLE_CONTEXT, FLTFL_POST_OPERATION_DRAINING, FO_VOLUME_OPEN, FltCancelFileOpen,
        FltCancellableWaitForSingleObject, FltCreateSectionForDataScan, FltGetSectionContext,
        FltRegisterForDataScan, IRP_MJ_CLEANUP, IRP_MJ_CREATE, IRP_MJ_WRITE, IRP_PAGING_IO,
        NTSTATUS, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PAGE_READONLY, PFLT_CONTEXT, SEC_COMMIT,
        SECTION_MAP_READ, SECTION_QUERY, SL_OPEN_PAGING_FILE, STATUS_END_OF_FILE,
        STATUS_FILE_IS_A_DIRECTORY, STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_FLT_DO_NOT_ATTACH,
        STATUS_SUCCESS, STATUS_TIMEOUT, STATUS_VIRUS_INFECTED, UNICODE_STRING,
    },
    context::ContextRef,
    event::Event,
    file_object,
    filter::{FilterSlot, register_and_start},
    log,
    name::CopiedName,
    once::InitOnce,
    params,
    pool::tag,
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context_of,
        operation,
    },
    scope::{self, SCOPE},
    section::{DataScanSection, ReadError, WindowReader},
};
use memchr::memmem;
use windows_sys::{
    Wdk::Storage::FileSystem::FILE_DIRECTORY_FILE, Win32::System::Kernel::NotificationEvent,
};

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-data-scan";

/// The EICAR anti-virus test file's 68 bytes: harmless, and detected by every scanner by design.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// The bytes one `memmem` call searches, before the overlap with the next window.
pub const WINDOW: usize = 64 * 1024;

/// How many times one open or cleanup tries to scan when other scans of the stream are in flight.
pub const MAX_ATTEMPTS: u32 = 4;

/// How long a scan waits for another scan of the same stream before it fails open.
pub const WAIT_SECONDS: i64 = 10;

/// The pool tag of both context types (`!poolused` shows `RsDs`).
const POOL_TAG: u32 = tag(b"RsDs");

// ---- the scan itself: a pure function -------------------------------------------------------

/// The offset of the first `needle` in `haystack`, searched in windows of `window` bytes that
/// overlap by `needle.len() - 1`: every match lies whole inside some window, and the windows are
/// searched in order, so this is the leftmost match, as `memmem::find` on the whole would give.
///
/// This is what the driver runs over the mapped view; it is public so that the tests and the
/// bench can call it without the model.
#[must_use]
pub fn find_signature(haystack: &[u8], needle: &[u8], window: usize) -> Option<usize> {
    let finder = memmem::Finder::new(needle);
    let window = window.max(1);
    let overlap = needle.len().saturating_sub(1);
    let mut start: usize = 0;
    loop {
        let end = haystack
            .len()
            .min(start.saturating_add(window).saturating_add(overlap));
        if let Some(at) = finder.find(&haystack[start..end]) {
            return Some(start + at);
        }
        if end == haystack.len() {
            return None;
        }
        start += window;
    }
}

/// How many windows [`find_signature`] searches in a haystack of `len` bytes (at least one).
#[must_use]
pub fn window_count(len: usize, needle_len: usize, window: usize) -> usize {
    let window = window.max(1);
    let overlap = needle_len.saturating_sub(1);
    len.saturating_sub(overlap).div_ceil(window).max(1)
}

// ---- contexts --------------------------------------------------------------------------------

/// The section context: one per scan, linked to the stream while the section exists.
pub struct ScanContext {
    /// Notification event, set once the scan is over and its section closed. A second scanner
    /// of the stream waits on it.
    done: Event,
    /// `PENDING`, then `CLEAN`, `INFECTED` or `NOT_SCANNED`, published before `done` is set.
    verdict: AtomicU32,
    /// The signature's offset when `verdict` is `INFECTED`.
    offset: AtomicU64,
    /// This scan's number from [`SCANS_STARTED`], taken before its section was created.
    started: u64,
}

const PENDING: u32 = 0;
const CLEAN: u32 = 1;
const INFECTED: u32 = 2;
const NOT_SCANNED: u32 = 3;

/// The stream-handle context of a handle opened with write access: did it write?
pub struct HandleState {
    written: AtomicBool,
}

/// What a scan concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Clean,
    Infected(u64),
    /// Not scanned (a directory, or a failure): the operation goes on. Already logged.
    NotScanned,
    /// The wait for another scan was ended by the user cancelling the operation, or by the
    /// thread terminating (the status says which): an open is cancelled with it. Already logged.
    Cancelled(NtStatus),
}

/// When the scan runs, for log lines.
#[derive(Clone, Copy)]
enum When {
    Open,
    Cleanup,
}

impl When {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Cleanup => "cleanup after a write",
        }
    }
}

// ---- registration --------------------------------------------------------------------------

/// The filter handle, from `FltRegisterFilter` to `FltUnregisterFilter`.
static FILTER: FilterSlot = FilterSlot::new();

/// Numbers the scans in the order they start (before their section is created), so that a scan
/// waiting for another can tell whether that one started after it began.
static SCANS_STARTED: AtomicU64 = AtomicU64::new(0);

/// The EICAR searcher, built once in `DriverEntry`, before any callback can run, and only read
/// by the scans. `memmem::Finder::new` picks its algorithm and builds its tables: work, and in an
/// unoptimised x64 build a stack frame of 3,840 bytes, that a scan would otherwise repeat on
/// every open, on the kernel stack that the page faults of the scan then share with the file
/// system and the storage stack.
static SEARCHER: InitOnce<memmem::Finder<'static>> = InitOnce::new();

/// Verdict counters for the unload summary.
static CLEAN_COUNT: AtomicU32 = AtomicU32::new(0);
static INFECTED_COUNT: AtomicU32 = AtomicU32::new(0);
static NOT_SCANNED_COUNT: AtomicU32 = AtomicU32::new(0);

/// One row per context type: the section context and the stream-handle context.
static CONTEXTS: ContextTable<3> = ContextTable::new([
    context_of::<ScanContext>(FLT_SECTION_CONTEXT, POOL_TAG),
    context_of::<HandleState>(FLT_STREAMHANDLE_CONTEXT, POOL_TAG),
    CONTEXT_END,
]);

static OPERATIONS: OperationTable<4> = OperationTable::new([
    // No pre-create: with a NULL pre-operation callback Filter Manager still calls the
    // post-operation one, which is where the file is open and can be inspected.
    operation(IRP_MJ_CREATE, Some(scope::pre_create), Some(post_create)),
    operation(IRP_MJ_WRITE, Some(pre_write), None),
    operation(IRP_MJ_CLEANUP, Some(pre_cleanup), None),
    OPERATION_END,
]);

static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .contexts(&CONTEXTS)
    .operations(&OPERATIONS)
    .instance_setup(Some(instance_setup))
    .unload(Some(unload));

/// The driver's entry point: register, then start filtering.
///
/// # Safety
/// Called by the I/O manager (or `fltsim`) with a valid driver object and registry path.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    // The demo folder, from the service's `Parameters` key, before filtering starts: the
    // pre-create decides from it, for every open, whether the sample acts (`common::scope`).
    // SAFETY: `registry_path` is the one this entry point was called with.
    unsafe { SCOPE.load(registry_path, TAG) };
    // Each load starts from zero. On Windows every load maps a fresh image, so the statics start
    // at zero anyway; the host tests load the same code many times in one process, and the unload
    // summary must speak of this load only.
    for counter in [&CLEAN_COUNT, &INFECTED_COUNT, &NOT_SCANNED_COUNT] {
        counter.store(0, Ordering::Relaxed);
    }
    // Before FltStartFiltering: no callback runs before the searcher is there. (A second load in
    // the same process, as in the host tests, keeps the first one: the same needle.)
    SEARCHER.init(|| memmem::Finder::new(EICAR));
    // FltRegisterFilter, then FltStartFiltering, unregistering if starting fails: the
    // passthrough sample makes the three calls itself and explains each (samples/passthrough).
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { register_and_start(driver, &REGISTRATION, &FILTER, TAG) }.0
}

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): unregister (which waits for every operation in
/// flight and every context reference), then report.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    FILTER.unregister();
    log!(
        "{TAG}: unloaded: {} clean, {} infected, {} not scanned",
        CLEAN_COUNT.load(Ordering::Relaxed),
        INFECTED_COUNT.load(Ordering::Relaxed),
        NOT_SCANNED_COUNT.load(Ordering::Relaxed)
    );
    NtStatus::SUCCESS.0
}

/// `InstanceSetup` (`PASSIVE_LEVEL`): attach only where sections for data scan can be created.
unsafe extern "system" fn instance_setup(
    objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _volume_device_type: u32,
    file_system_type: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    common::paged_code!();
    let fs = common::volume::file_system_name(file_system_type);
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let instance = unsafe { (*objects).Instance };
    // SAFETY: the instance being set up; FltRegisterForDataScan is callable at <= APC_LEVEL.
    let status = NtStatus(unsafe { FltRegisterForDataScan(instance) });
    if status.is_success() {
        log!("{TAG}: attached to volume type {fs} (FltRegisterForDataScan returned {status})");
        return STATUS_SUCCESS;
    }
    log!(
        "{TAG}: not attaching to volume type {fs}: FltRegisterForDataScan returned {status}; its files are not scanned"
    );
    STATUS_FLT_DO_NOT_ATTACH
}

// ---- when to scan --------------------------------------------------------------------------

/// Post-create (`PASSIVE_LEVEL`: Filter Manager guarantees it for creates). Scans a file opened
/// for read or execute, and denies the open on a hit; marks a handle opened for write so that its
/// cleanup scans.
unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid callback data for the callback's duration.
    let io = unsafe { (*data).IoStatus };
    // SAFETY: `Status` is the member a completed create sets.
    let status = unsafe { io.Anonymous.Status };
    // STATUS_SUCCESS exactly: a reparse is a success status but opened nothing. Draining: the
    // instance is going away, leave the open alone.
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 || status != STATUS_SUCCESS {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the parameter block is valid for the callback's duration.
    let iopb = unsafe { common::callback_data::parameters(data) };
    // SAFETY: for IRP_MJ_CREATE the `Create` member of the parameter union is the live one
    // (read with the C layout: see `common::params`).
    let create = unsafe { params::Create::of(&iopb.Parameters) };
    // SAFETY: a create's security context is valid for the create.
    let access = unsafe { (*create.SecurityContext).DesiredAccess };
    // SAFETY: valid related objects, as above.
    let objects = unsafe { &*objects };
    // SAFETY: the file object of the create, valid for the callback.
    let volume_open = unsafe { file_object::flags(objects.FileObject) } & FO_VOLUME_OPEN != 0;
    // Directories have no data; paging files belong to the memory manager (our own page faults
    // would go through them).
    if create.Options & FILE_DIRECTORY_FILE != 0
        || volume_open
        || u32::from(iopb.OperationFlags) & SL_OPEN_PAGING_FILE != 0
    {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    let reads = access & (FILE_READ_DATA | FILE_EXECUTE) != 0;
    let writes = access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0;
    if !reads && !writes {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the callback data of the create in progress.
    let name = unsafe { CopiedName::query(data) };
    let denied = match reads.then(|| scan(data, objects, &name, When::Open)) {
        Some(Verdict::Infected(_)) => Some(STATUS_VIRUS_INFECTED),
        Some(Verdict::Cancelled(status)) => Some(status.0),
        _ => None,
    };
    if let Some(status) = denied {
        // The file system has opened the file: undo that first (FltCancelFileOpen, PASSIVE,
        // post-create only), then fail the create with the status the user sees.
        // SAFETY: the instance and file object of this post-create.
        unsafe { FltCancelFileOpen(objects.Instance, objects.FileObject) };
        // SAFETY: the callback data is ours to complete in the post-create, and valid for the
        // callback's duration; nothing else writes its IoStatus meanwhile.
        let io = unsafe { &mut (*data).IoStatus };
        io.Anonymous.Status = status;
        io.Information = 0;
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    if writes {
        track_writes(objects, &name);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// Gives a handle opened for write a stream-handle context, so its writes can be remembered.
/// Failure only means this handle's cleanup will not scan: logged, and the open goes on.
fn track_writes(objects: &FLT_RELATED_OBJECTS, name: &CopiedName) {
    let state = HandleState {
        written: AtomicBool::new(false),
    };
    let context = match ContextRef::allocate(FILTER.get(), FLT_STREAMHANDLE_CONTEXT, state) {
        Ok(context) => context,
        Err(status) => {
            log!(
                "{TAG}: {name}: writes through this handle are not tracked: FltAllocateContext returned {status}"
            );
            return;
        }
    };
    // FltSetStreamHandleContext: the handle's own copy of the state.
    let status = context.set_on_stream_handle(objects);
    if !status.is_success() {
        log!(
            "{TAG}: {name}: writes through this handle are not tracked: FltSetStreamHandleContext returned {status}"
        );
    }
    // Our allocation reference drops here; on success the handle's link keeps the context until
    // the file object closes.
}

/// The stream-handle context of this handle, if it has one (`FltGetStreamHandleContext`,
/// `<= APC_LEVEL`; a success adds a reference, which the returned value releases).
fn handle_state(objects: &FLT_RELATED_OBJECTS) -> Option<ContextRef<HandleState>> {
    // SAFETY: `HandleState` is the only stream-handle context this driver sets.
    unsafe { ContextRef::of_stream_handle(objects) }
}

/// Pre-write (`<= APC_LEVEL`): remember that this handle wrote. Marked before the write, so a
/// write that then fails costs one extra scan, never a missed one.
unsafe extern "system" fn pre_write(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: valid callback data for the callback's duration.
    let iopb = unsafe { common::callback_data::parameters(data) };
    // Paging writes come from the cache manager or a mapped view, on behalf of writes already seen.
    if iopb.IrpFlags & IRP_PAGING_IO != 0 {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: valid related objects for the callback's duration.
    if let Some(state) = handle_state(unsafe { &*objects }) {
        state.written.store(true, Ordering::Relaxed);
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// Pre-cleanup (`PASSIVE_LEVEL` here: the last user handle of the file object is closing): scan a
/// file this handle wrote to. A hit is logged; the next open will be denied.
unsafe extern "system" fn pre_cleanup(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    let written = handle_state(objects).is_some_and(|state| state.written.load(Ordering::Relaxed));
    if written {
        common::paged_code!();
        // SAFETY: the callback data of the cleanup in progress.
        let name = unsafe { CopiedName::query(data) };
        let _ = scan(data, objects, &name, When::Cleanup);
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

// ---- the scan through a section --------------------------------------------------------------

/// What one attempt at scanning gave.
enum Attempt {
    Done(Verdict),
    /// `STATUS_FLT_CONTEXT_ALREADY_DEFINED`: another scan of the stream is in flight.
    InFlight,
}

/// What waiting for the other scan gave.
enum Waited {
    Infected(u64),
    /// It was clean, and it started after this scan began.
    Clean,
    /// It was clean but older, could not scan, or had already finished: scan again ourselves.
    Retry,
    /// It did not finish within `WAIT_SECONDS`.
    GaveUp,
    /// The wait was cancelled with the operation, or the thread is terminating.
    Cancelled(NtStatus),
}

/// Scans the file behind `objects.FileObject` (`PASSIVE_LEVEL`), waiting for a scan of the same
/// stream already in flight. Logs the verdict with the file's name.
fn scan(
    data: *const FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &CopiedName,
    when: When,
) -> Verdict {
    // A scan numbered above this one started after this point, after the open reached the file
    // system or the handle's last write: its clean verdict covers ours.
    let began = SCANS_STARTED.load(Ordering::SeqCst);
    let verdict = 'attempts: {
        for _ in 0..MAX_ATTEMPTS {
            match scan_once(objects, name, when) {
                Attempt::Done(verdict) => break 'attempts verdict,
                Attempt::InFlight => match wait_for_other_scan(data, objects, name, when, began) {
                    Waited::Infected(offset) => {
                        log!(
                            "{TAG}: {name}: {}: INFECTED: the scan in flight found the EICAR signature at offset {offset}",
                            when.as_str()
                        );
                        break 'attempts Verdict::Infected(offset);
                    }
                    Waited::Clean => {
                        log!(
                            "{TAG}: {name}: {}: clean: the scan in flight, which started after this {} began, found nothing",
                            when.as_str(),
                            when.as_str()
                        );
                        break 'attempts Verdict::Clean;
                    }
                    Waited::Retry => {}
                    Waited::GaveUp => break 'attempts Verdict::NotScanned,
                    Waited::Cancelled(status) => break 'attempts Verdict::Cancelled(status),
                },
            }
        }
        log!(
            "{TAG}: {name}: {}: not scanned: other scans of this stream held its section {MAX_ATTEMPTS} times; the {} goes on",
            when.as_str(),
            when.as_str()
        );
        Verdict::NotScanned
    };
    let counter = match verdict {
        Verdict::Clean => &CLEAN_COUNT,
        Verdict::Infected(offset) => {
            if let When::Open = when {
                log!(
                    "{TAG}: {name}: open: INFECTED: EICAR signature at offset {offset}: open denied with {}",
                    NtStatus(STATUS_VIRUS_INFECTED)
                );
            } else {
                log!(
                    "{TAG}: {name}: cleanup after a write: INFECTED: EICAR signature at offset {offset}: the file stays, its next open will be denied"
                );
            }
            &INFECTED_COUNT
        }
        Verdict::NotScanned | Verdict::Cancelled(_) => &NOT_SCANNED_COUNT,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    verdict
}

/// One attempt: allocate the section context, create the section, map, scan, close.
fn scan_once(objects: &FLT_RELATED_OBJECTS, name: &CopiedName, when: When) -> Attempt {
    let what = when.as_str();
    let body = ScanContext {
        done: Event::new(),
        verdict: AtomicU32::new(PENDING),
        offset: AtomicU64::new(0),
        started: SCANS_STARTED.fetch_add(1, Ordering::SeqCst) + 1,
    };
    // Step 0: the section context, with the allocation reference (zeroed, then written).
    let context = match ContextRef::allocate(FILTER.get(), FLT_SECTION_CONTEXT, body) {
        Ok(context) => context,
        Err(status) => {
            log!(
                "{TAG}: {name}: {what}: not scanned: FltAllocateContext(FLT_SECTION_CONTEXT) returned {status}; the {what} goes on"
            );
            return Attempt::Done(Verdict::NotScanned);
        }
    };
    // The event must work before the create links the context: a waiter can find it right away.
    // SAFETY: the event lives in the context's non-paged pool, which does not move, and nobody
    // else can see the context yet.
    unsafe { context.done.init(NotificationEvent) };
    // InitializeObjectAttributes(&attributes, NULL, OBJ_KERNEL_HANDLE, NULL, NULL).
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let mut handle = core::ptr::null_mut();
    let mut object: *mut c_void = core::ptr::null_mut();
    let mut size: i64 = 0;
    // SAFETY: an instance registered for data scan (else STATUS_INVALID_PARAMETER), the file object
    // of the operation, a fresh FLT_SECTION_CONTEXT, kernel-handle attributes, valid out pointers.
    // PASSIVE_LEVEL (post-create, pre-cleanup).
    let status = NtStatus(unsafe {
        FltCreateSectionForDataScan(
            objects.Instance,
            objects.FileObject,
            context.as_raw(),
            // SECTION_QUERY too: the FltCreateSectionForDataScan page says "Drivers should set
            // this flag".
            SECTION_MAP_READ | SECTION_QUERY,
            &raw const attributes,
            core::ptr::null(),
            PAGE_READONLY,
            SEC_COMMIT,
            0,
            &raw mut handle,
            &raw mut object,
            &raw mut size,
        )
    });
    // On every failure below, `context` drops: FltReleaseContext of the allocation reference,
    // the one release an unlinked context needs.
    match status.0 {
        STATUS_SUCCESS => {}
        STATUS_END_OF_FILE => {
            log!(
                "{TAG}: {name}: {what}: clean: an empty file (FltCreateSectionForDataScan returned {status})"
            );
            return Attempt::Done(Verdict::Clean);
        }
        STATUS_FILE_IS_A_DIRECTORY => {
            log!(
                "{TAG}: {name}: {what}: not scanned: a directory (FltCreateSectionForDataScan returned {status})"
            );
            return Attempt::Done(Verdict::NotScanned);
        }
        STATUS_FLT_CONTEXT_ALREADY_DEFINED => return Attempt::InFlight,
        _ => {
            log!(
                "{TAG}: {name}: {what}: not scanned: FltCreateSectionForDataScan returned {status}; the {what} goes on"
            );
            return Attempt::Done(Verdict::NotScanned);
        }
    }
    // Our own reference, to publish the verdict after the section (and with it the allocation
    // reference) is closed.
    let keep = context.add_ref();
    // SAFETY: the kernel handle and object the create just returned for `context`, released only
    // by this guard (steps 2 to 5 of the close).
    let section = unsafe { DataScanSection::from_created(handle, object, context, size) };
    let verdict = scan_section(&section, name, what);
    // Steps 2 to 5: ObCloseHandle, ObDereferenceObject, FltCloseSectionForDataScan,
    // FltReleaseContext. The status can only say the link was already gone, which nobody but this
    // scan could have done: nothing to act on.
    let _ = section.close();
    publish(&keep, verdict);
    Attempt::Done(verdict)
}

/// Reads the section window by window and searches each window for [`EICAR`]. Each window has
/// its own view (`MmMapViewInSystemSpaceEx` at the window's offset, through `map_view`), is copied
/// into one non-paged buffer with `MmCopyMemory`, and is unmapped before it is searched: no view
/// is ever dereferenced, and none is larger than a window. A failed map or copy (a paging read
/// that failed) means "not scanned", and the operation goes on.
fn scan_section(section: &DataScanSection<ScanContext>, name: &CopiedName, what: &str) -> Verdict {
    // The size FltCreateSectionForDataScan reported, not the view's: views are whole pages, and
    // the bytes past the end of the file are not the file's.
    let size = u64::try_from(section.file_size()).unwrap_or(0);
    let Some(finder) = SEARCHER.get() else {
        // Only if a callback ran before DriverEntry built it, which Filter Manager rules out.
        log!("{TAG}: {name}: {what}: not scanned: no searcher yet; the {what} goes on");
        return Verdict::NotScanned;
    };
    let overlap = EICAR.len() - 1;
    let mut reader = match WindowReader::allocate(WINDOW, overlap, size, POOL_TAG) {
        Ok(reader) => reader,
        Err(status) => {
            log!(
                "{TAG}: {name}: {what}: not scanned: no window buffer (ExAllocatePool2: {status}); the {what} goes on"
            );
            return Verdict::NotScanned;
        }
    };
    loop {
        match reader.next_from_views(|offset, len| section.map_view(offset, len)) {
            Ok(Some((start, window))) => {
                if let Some(at) = finder.find(window) {
                    return Verdict::Infected(start + at as u64);
                }
            }
            Ok(None) => {
                log!(
                    "{TAG}: {name}: {what}: clean: {size} bytes scanned in {} window(s)",
                    window_count(
                        usize::try_from(size).unwrap_or(usize::MAX),
                        EICAR.len(),
                        WINDOW
                    )
                );
                return Verdict::Clean;
            }
            Err(ReadError::Map(status)) => {
                log!(
                    "{TAG}: {name}: {what}: not scanned: MmMapViewInSystemSpaceEx returned {status}; the {what} goes on"
                );
                return Verdict::NotScanned;
            }
            Err(ReadError::Copy { status, offset }) => {
                log!(
                    "{TAG}: {name}: {what}: not scanned: MmCopyMemory returned {status} at offset {offset}; the {what} goes on"
                );
                return Verdict::NotScanned;
            }
        }
    }
}

/// Publishes the verdict in the context and wakes every waiter (`KeSetEvent`, `<= DISPATCH_LEVEL`).
fn publish(context: &ScanContext, verdict: Verdict) {
    let code = match verdict {
        Verdict::Clean => CLEAN,
        Verdict::Infected(offset) => {
            context.offset.store(offset, Ordering::Relaxed);
            INFECTED
        }
        // (A scan that ran never ends cancelled: only a waiter does.)
        Verdict::NotScanned | Verdict::Cancelled(_) => NOT_SCANNED,
    };
    context.verdict.store(code, Ordering::Release);
    // Initialized before the context was linked; it lives as long as our reference.
    context.done.set();
}

/// `STATUS_FLT_CONTEXT_ALREADY_DEFINED`: find the scan in flight and wait for its verdict.
fn wait_for_other_scan(
    data: *const FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &CopiedName,
    when: When,
    began: u64,
) -> Waited {
    let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: the operation's instance and file object (same stream), a valid out pointer.
    let status = NtStatus(unsafe {
        FltGetSectionContext(objects.Instance, objects.FileObject, &raw mut raw)
    });
    if !status.is_success() || raw.is_null() {
        // STATUS_NOT_FOUND: that scan closed its section between our create and this call.
        return Waited::Retry;
    }
    // SAFETY: a successful get returned one reference to one of our section contexts (a
    // `ScanContext`), released when `other` drops.
    let other = unsafe { ContextRef::<ScanContext>::from_raw(raw) };
    log!(
        "{TAG}: {name}: {}: another scan of this file is in flight (FltCreateSectionForDataScan returned {}): waiting for it",
        when.as_str(),
        NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED)
    );
    let timeout: i64 = -WAIT_SECONDS * 10_000_000;
    // FsRtlEnterFileSystem: normal kernel APCs stay off while this thread waits in the I/O path,
    // so it cannot be suspended mid-wait; left when `region` drops, before the callback returns.
    let region = FileSystemRegion::enter();
    // SAFETY: the event in a context we hold a reference on; a bounded kernel-mode wait at
    // PASSIVE_LEVEL, holding no lock, on behalf of this operation's callback data, which stays
    // valid for the whole callback and has no cancel routine of ours.
    let waited = NtStatus(unsafe {
        FltCancellableWaitForSingleObject(
            other.done.as_ptr().cast_const().cast(),
            &raw const timeout,
            data,
        )
    });
    drop(region);
    if waited.0 == STATUS_TIMEOUT {
        log!(
            "{TAG}: {name}: {}: not scanned: the scan in flight did not finish within {WAIT_SECONDS} s ({waited}); the {} goes on",
            when.as_str(),
            when.as_str()
        );
        return Waited::GaveUp;
    }
    // STATUS_CANCELLED or STATUS_THREAD_IS_TERMINATING: NT_SUCCESS is false for both.
    if !waited.is_success() {
        log!(
            "{TAG}: {name}: {}: not scanned: the wait for the scan in flight ended with {waited}; the {} is cancelled with it",
            when.as_str(),
            when.as_str()
        );
        return Waited::Cancelled(waited);
    }
    match other.verdict.load(Ordering::Acquire) {
        INFECTED => Waited::Infected(other.offset.load(Ordering::Relaxed)),
        CLEAN if other.started > began => Waited::Clean,
        _ => Waited::Retry,
    }
}
