//! # data-scan: scan file contents through `FltCreateSectionForDataScan`
//!
//! A small content scanner. It asks Filter Manager for a read-only section of a file, copies the
//! file out of it one window at a time, searches each window for the EICAR test string
//! ([`EICAR`]) and closes the section. A hit at open (post-create, read or execute access) undoes
//! the open with `FltCancelFileOpen` and fails it with `STATUS_VIRUS_INFECTED`; a hit when a handle
//! that wrote closes (pre-cleanup) is logged, and the next open is denied. It acts only in its demo
//! folder (`common::scope`) and fails open: a file it cannot scan opens.
//!
//! Read it top-down: registration, `FltRegisterForDataScan` in `instance_setup`, the callbacks,
//! then the lesson in `scan_once` and `copy_window`: the create, the views, and the close in its
//! documented order, each call raw at its call site. A second scan of a stream meets
//! `STATUS_FLT_CONTEXT_ALREADY_DEFINED` and waits for the first one's verdict
//! (`wait_for_other_scan`). Why the close goes in that order: `docs/sections.md`. Every call with
//! its IRQL and statuses, the demo, the tests and the benchmark: the README.
#![cfg_attr(target_os = "windows", no_std)]

use core::{
    ffi::c_void,
    fmt::Arguments,
    ptr,
    sync::atomic::{AtomicU64, Ordering},
};

use common::{
    KERNEL_MODE, NtStatus,
    bindings::{
        DRIVER_OBJECT, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_WRITE_DATA,
        FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
        FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT,
        FLT_STREAMHANDLE_CONTEXT, FltCancelFileOpen, FltCloseSectionForDataScan,
        FltCreateSectionForDataScan, FltRegisterForDataScan, FltReleaseContext, IRP_MJ_CLEANUP,
        IRP_MJ_CREATE, IRP_MJ_WRITE, MM_COPY_MEMORY_VIRTUAL,
        MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS, MmCopyMemory, MmMapViewInSystemSpaceEx,
        MmUnmapViewInSystemSpace, NTSTATUS, ObCloseHandle, ObfDereferenceObject, PAGE_READONLY,
        SEC_COMMIT, SECTION_MAP_READ, SECTION_QUERY, STATUS_END_OF_FILE,
        STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_FLT_DO_NOT_ATTACH, STATUS_SUCCESS,
        STATUS_TIMEOUT, STATUS_VIRUS_INFECTED, UNICODE_STRING,
    },
    context::ContextRef,
    filter::{FilterSlot, register_and_start},
    log,
    name::CopiedName,
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context_of,
        operation,
    },
    scope,
    section::{ReadError, WindowReader, view_start, virtual_address},
    verdict::{ScanState, Verdict, VerdictCounts},
    writes::{self, WriteMark},
};
use memchr::memmem;

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-data-scan";

/// The EICAR anti-virus test file: harmless, and detected by every scanner by design.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// The bytes one search covers, before the overlap with the next window.
pub const WINDOW: usize = 64 * 1024;

/// How many times one open or cleanup tries to scan when other scans of the stream are in flight.
pub const MAX_ATTEMPTS: u32 = 4;

/// How long a scan waits for another scan of the same stream before it fails open.
pub const WAIT_SECONDS: i64 = 10;

/// The pool tag of both context types and of the window buffer (`!poolused` shows `RsDs`).
const POOL_TAG: u32 = common::pool::tag(b"RsDs");

/// When a scan runs, as the log lines say it.
const OPEN: &str = "open";
const CLEANUP: &str = "cleanup after a write";

// ---- registration --------------------------------------------------------------------------

/// The filter handle, from `FltRegisterFilter` to `FltUnregisterFilter`.
static FILTER: FilterSlot = FilterSlot::new();

/// Numbers the scans in the order they start (before their section is created), so that a scan
/// waiting for another can tell whether that one started after it began.
static SCANS_STARTED: AtomicU64 = AtomicU64::new(0);

/// The EICAR searcher, built once in `DriverEntry` before any callback can run, and only read by
/// the scans: `memmem::Finder::new` picks its algorithm and builds its tables, work (and stack)
/// that every open would otherwise repeat on the kernel stack its page faults share.
static SEARCHER: common::once::InitOnce<memmem::Finder<'static>> = common::once::InitOnce::new();

/// The verdicts of this load, for the unload summary.
static COUNTS: VerdictCounts = VerdictCounts::new();

/// The section context holds the scan's verdict for a second scan of the stream to wait on; the
/// stream-handle context marks the handles that wrote.
static CONTEXTS: ContextTable<3> = ContextTable::new([
    context_of::<ScanState>(FLT_SECTION_CONTEXT, POOL_TAG),
    context_of::<WriteMark>(FLT_STREAMHANDLE_CONTEXT, POOL_TAG),
    CONTEXT_END,
]);

static OPERATIONS: OperationTable<4> = OperationTable::new([
    // The pre-create only decides the scope; the file is open, and can be read, in post-create.
    operation(IRP_MJ_CREATE, Some(scope::pre_create), Some(post_create)),
    operation(IRP_MJ_WRITE, Some(writes::pre_write), None),
    operation(IRP_MJ_CLEANUP, Some(pre_cleanup), None),
    OPERATION_END,
]);

static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .contexts(&CONTEXTS)
    .operations(&OPERATIONS)
    .instance_setup(Some(instance_setup))
    .unload(Some(unload));

/// The driver's entry point: read the demo folder, build the searcher, register, start.
///
/// # Safety
/// Called by the I/O manager (or `fltsim`) with a valid driver object and registry path.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    // The demo folder, from the service's `Parameters` key, before filtering starts.
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { scope::SCOPE.load(driver, TAG) };
    // The summary speaks of this load only (the host tests load one image many times).
    COUNTS.reset();
    // Before FltStartFiltering, so that no callback runs without it.
    SEARCHER.init(|| memmem::Finder::new(EICAR));
    // FltRegisterFilter, then FltStartFiltering, unregistering if starting fails (passthrough
    // makes the three calls itself).
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { register_and_start(driver, &REGISTRATION, &FILTER, TAG) }.0
}

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): unregister (which waits for every operation in
/// flight and every context reference), then report.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    FILTER.unregister();
    log!("{TAG}: unloaded: {COUNTS}");
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
    // STATUS_NOT_SUPPORTED (a network redirector, say): no instance, so no sections and no scans.
    log!(
        "{TAG}: not attaching to volume type {fs}: FltRegisterForDataScan returned {status}; its files are not scanned"
    );
    STATUS_FLT_DO_NOT_ATTACH
}

// ---- when to scan --------------------------------------------------------------------------

/// Post-create (`PASSIVE_LEVEL` for creates). Scans a file opened for read or execute and denies
/// the open on a hit; marks a handle opened for write so that its cleanup scans.
unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    // SAFETY: the callback data of a create.
    let access = unsafe { common::create::desired_access(data) };
    let reads = access & (FILE_READ_DATA | FILE_EXECUTE) != 0;
    let writes = access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0;
    // Only an open for data, of a file this create opened: not a failed or reparsed create, a
    // paging file, a volume or a directory (`common::create` says why each is left alone).
    // SAFETY: this post-create's own callback data, related objects and flags.
    if !(reads || writes) || !unsafe { common::create::is_opened_file(data, objects, flags) } {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the callback data of the create in progress.
    let name = unsafe { CopiedName::query(data) };
    let denied = match reads.then(|| scan(data, objects, &name, OPEN)) {
        Some(Verdict::Infected(_)) => Some(STATUS_VIRUS_INFECTED),
        Some(Verdict::Cancelled(status)) => Some(status.0),
        _ => None,
    };
    if let Some(status) = denied {
        // The file system has opened the file: undo that first (FltCancelFileOpen, PASSIVE,
        // post-create only), then fail the create with the status the user sees.
        // SAFETY: the instance and file object of this post-create.
        unsafe { FltCancelFileOpen(objects.Instance, objects.FileObject) };
        // SAFETY: the callback data is ours to complete in the post-create; nothing else writes
        // its IoStatus meanwhile.
        let io = unsafe { &mut (*data).IoStatus };
        io.Anonymous.Status = status;
        io.Information = 0;
    } else if writes && let Err((call, status)) = writes::track(FILTER.get(), objects) {
        // Only this handle's cleanup will not scan: the open goes on.
        log!("{TAG}: {name}: writes through this handle are not tracked: {call} returned {status}");
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// Pre-cleanup (`PASSIVE_LEVEL` here: the last user handle of the file object is closing): scan a
/// file this handle wrote to (`writes::pre_write` marked it). A hit is logged; the next open will
/// be denied.
unsafe extern "system" fn pre_cleanup(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    if writes::wrote(objects) {
        common::paged_code!();
        // SAFETY: the callback data of the cleanup in progress.
        let name = unsafe { CopiedName::query(data) };
        let _ = scan(data, objects, &name, CLEANUP);
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

// ---- the scan through a section --------------------------------------------------------------

/// Scans the file behind `objects.FileObject` (`PASSIVE_LEVEL`), waiting for a scan of the same
/// stream already in flight; logs and counts the verdict.
fn scan(
    data: *const FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &CopiedName,
    what: &str,
) -> Verdict {
    // A scan numbered above this one started after this point, after the open reached the file
    // system or the handle's last write: its clean verdict covers ours.
    let began = SCANS_STARTED.load(Ordering::SeqCst);
    // `None` from both: another scan held the section, and its verdict cannot speak for ours.
    let verdict = (0..MAX_ATTEMPTS)
        .find_map(|_| {
            scan_once(objects, name, what)
                .or_else(|| wait_for_other_scan(data, objects, name, what, began))
        })
        .unwrap_or_else(|| gave_up(name, what));
    if let Verdict::Infected(offset) = verdict {
        let then = if what == OPEN { DENIED } else { STAYS };
        log!("{TAG}: {name}: {what}: INFECTED: EICAR signature at offset {offset}: {then}");
    }
    COUNTS.add(verdict);
    verdict
}

/// What follows a hit, at open (the status `post_create` sets, as `NtStatus` prints it) and at
/// cleanup.
const DENIED: &str = "open denied with STATUS_VIRUS_INFECTED (0xC0000906)";
const STAYS: &str = "the file stays, its next open will be denied";

/// Logs that other scans kept the section every time: not scanned, the operation goes on.
fn gave_up(name: &CopiedName, what: &str) -> Verdict {
    let why = format_args!("other scans of this stream held its section {MAX_ATTEMPTS} times");
    not_scanned(name, what, why)
}

/// Logs that `call` failed with `status`: not scanned, the operation goes on.
fn failed(name: &CopiedName, what: &str, call: &str, status: NtStatus) -> Verdict {
    not_scanned(name, what, format_args!("{call} returned {status}"))
}

/// Logs why the file was not scanned; the operation goes on.
fn not_scanned(name: &CopiedName, what: &str, why: Arguments<'_>) -> Verdict {
    log!("{TAG}: {name}: {what}: not scanned: {why}; the {what} goes on");
    Verdict::NotScanned
}

/// One attempt: allocate the section context, create the section, read it, close it. `None`:
/// another scan of the stream holds its section (`STATUS_FLT_CONTEXT_ALREADY_DEFINED`).
fn scan_once(objects: &FLT_RELATED_OBJECTS, name: &CopiedName, what: &str) -> Option<Verdict> {
    let state = ScanState::new(SCANS_STARTED.fetch_add(1, Ordering::SeqCst) + 1);
    // FltAllocateContext(FLT_SECTION_CONTEXT): the allocation reference (zeroed, then written).
    let context = match ContextRef::allocate(FILTER.get(), FLT_SECTION_CONTEXT, state) {
        Ok(context) => context,
        Err(status) => return Some(failed(name, what, "FltAllocateContext", status)),
    };
    // A waiter can find the context as soon as the create links it: its event must work before.
    // SAFETY: the context's non-paged pool does not move, and nobody else can see it yet.
    unsafe { context.init() };
    let attributes = common::object::kernel_handle_attributes();
    let (mut handle, mut object, mut size) = (ptr::null_mut(), ptr::null_mut::<c_void>(), 0i64);
    // SAFETY: an instance registered for data scan, the file object of the operation, a fresh
    // FLT_SECTION_CONTEXT, kernel-handle attributes, valid out pointers; PASSIVE_LEVEL.
    let status = NtStatus(unsafe {
        FltCreateSectionForDataScan(
            objects.Instance,
            objects.FileObject,
            context.as_raw(),
            // SECTION_QUERY too: the page says "Drivers should set this flag".
            SECTION_MAP_READ | SECTION_QUERY,
            &raw const attributes,
            ptr::null(),
            PAGE_READONLY,
            SEC_COMMIT,
            0,
            &raw mut handle,
            &raw mut object,
            &raw mut size,
        )
    });
    // A failed create linked nothing: `context` drops, FltReleaseContext, the one release needed.
    match status.0 {
        STATUS_SUCCESS => {}
        STATUS_FLT_CONTEXT_ALREADY_DEFINED => return None,
        STATUS_END_OF_FILE => {
            log!(
                "{TAG}: {name}: {what}: clean: an empty file (FltCreateSectionForDataScan returned {status})"
            );
            return Some(Verdict::Clean);
        }
        // STATUS_FILE_IS_A_DIRECTORY, STATUS_FILE_LOCK_CONFLICT, ...: fail open.
        _ => return Some(failed(name, what, "FltCreateSectionForDataScan", status)),
    }
    // Our own reference (FltReferenceContext): the verdict is published after the close.
    let keep = context.add_ref();
    let verdict = scan_section(object, size, name, what);
    // The close, in the documented order (docs/sections.md); `copy_window` unmapped every view.
    // SAFETY: the kernel handle the create returned, closed once, at PASSIVE_LEVEL.
    unsafe { ObCloseHandle(handle, KERNEL_MODE) };
    // SAFETY: the object reference the create returned, dropped once.
    unsafe { ObfDereferenceObject(object) };
    // SAFETY: the context this section was created with. The status can only say the link was
    // already gone, which nothing but this scan could have done: nothing to act on.
    let _ = unsafe { FltCloseSectionForDataScan(context.as_raw()) };
    // SAFETY: the allocation reference, released once here (`into_raw`: the guard will not).
    unsafe { FltReleaseContext(context.into_raw()) };
    keep.publish(verdict);
    Some(verdict)
}

/// Searches the first `size` bytes of the section (the size the create reported: views are whole
/// pages, the bytes past the end of the file are not the file's) for [`EICAR`], one window at a
/// time. Consecutive windows share `EICAR.len() - 1` bytes (`common::section::WindowReader`), so
/// a signature across a boundary lies whole in one window. A failed read is "not scanned".
fn scan_section(object: *mut c_void, size: i64, name: &CopiedName, what: &str) -> Verdict {
    let size = u64::try_from(size).unwrap_or(0);
    let Some(finder) = SEARCHER.get() else {
        // Only if a callback ran before DriverEntry built it, which Filter Manager rules out.
        return not_scanned(name, what, format_args!("no searcher yet"));
    };
    let mut reader = match WindowReader::allocate(WINDOW, EICAR.len() - 1, size, POOL_TAG) {
        Ok(reader) => reader,
        Err(status) => return failed(name, what, "ExAllocatePool2 (the window buffer)", status),
    };
    let found = reader.search(|at, t| copy_window(object, at, t), |w| finder.find(w));
    match found {
        Ok((Some(offset), _)) => Verdict::Infected(offset),
        Ok((None, windows)) => {
            log!("{TAG}: {name}: {what}: clean: {size} bytes scanned in {windows} window(s)");
            Verdict::Clean
        }
        Err(error) => not_scanned(name, what, format_args!("{error}")),
    }
}

/// Fills `target` (the reader's non-paged buffer) with the section's bytes from `offset`, through
/// a view of their own: map, copy, unmap. The view is never read directly: `MmCopyMemory` turns a
/// failed paging read into a status (docs/sections.md).
fn copy_window(object: *mut c_void, offset: u64, target: &mut [u8]) -> Result<(), ReadError> {
    // A view starts at a multiple of the allocation granularity: map from there, skip the rest.
    let (mut start, skip) = view_start(offset);
    let (mut base, mut size) = (ptr::null_mut::<c_void>(), skip + target.len());
    let flags = MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS as usize;
    // SAFETY: the section object the create returned, referenced until the close; valid in/out
    // pointers; `<= APC_LEVEL`. The flag makes a failed paging read on the view an exception,
    // which MmCopyMemory returns as a status.
    let status = NtStatus(unsafe {
        MmMapViewInSystemSpaceEx(object, &raw mut base, &raw mut size, &raw mut start, flags)
    });
    status.ok().map_err(ReadError::Map)?;
    let source = virtual_address(base.cast::<u8>().wrapping_add(skip).cast());
    let (to, len, mut copied) = (target.as_mut_ptr().cast_const().cast(), target.len(), 0);
    // SAFETY: the source lies inside the view just mapped (`skip + len` bytes from `base`), the
    // target is `len` bytes of non-paged pool (`WindowReader::allocate`), the count a valid out
    // pointer; `<= APC_LEVEL`.
    let copy =
        NtStatus(unsafe { MmCopyMemory(to, source, len, MM_COPY_MEMORY_VIRTUAL, &raw mut copied) });
    // The first step of the close: every view goes before the section it maps.
    // SAFETY: the address MmMapViewInSystemSpaceEx returned, unmapped once.
    unsafe { MmUnmapViewInSystemSpace(base) };
    let offset = offset + copied as u64;
    copy.ok()
        .map_err(|status| ReadError::Copy { status, offset })
}

/// `STATUS_FLT_CONTEXT_ALREADY_DEFINED`: find the scan in flight and wait for its verdict.
/// `None`: scan again (it had finished, or its verdict does not cover ours).
fn wait_for_other_scan(
    data: *const FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &CopiedName,
    what: &str,
    began: u64,
) -> Option<Verdict> {
    // FltGetSectionContext (section-context teaches it). `None`, STATUS_NOT_FOUND: that scan
    // closed its section between our create and this call.
    // SAFETY: `ScanState` is the only section context type of this driver.
    let other = unsafe { ContextRef::<ScanState>::of_section(objects) }?;
    let held = NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED);
    log!(
        "{TAG}: {name}: {what}: another scan of this file is in flight (FltCreateSectionForDataScan returned {held}): waiting for it"
    );
    // SAFETY: the callback data of the operation in progress, at PASSIVE_LEVEL; the other scan
    // initialized the event before its create linked the context.
    match unsafe { other.wait(data, WAIT_SECONDS) } {
        Ok(Verdict::Infected(offset)) => {
            log!(
                "{TAG}: {name}: {what}: INFECTED: the scan in flight found the EICAR signature at offset {offset}"
            );
            Some(Verdict::Infected(offset))
        }
        Ok(Verdict::Clean) if other.started() > began => {
            log!(
                "{TAG}: {name}: {what}: clean: the scan in flight, which started after this {what} began, found nothing"
            );
            Some(Verdict::Clean)
        }
        // Clean but older than this scan, or not scanned: scan again ourselves.
        Ok(_) => None,
        Err(waited) if waited.0 == STATUS_TIMEOUT => {
            let why = format_args!(
                "the scan in flight did not finish within {WAIT_SECONDS} s ({waited})"
            );
            Some(not_scanned(name, what, why))
        }
        // STATUS_CANCELLED or STATUS_THREAD_IS_TERMINATING.
        Err(waited) => {
            log!(
                "{TAG}: {name}: {what}: not scanned: the wait for the scan in flight ended with {waited}; the {what} is cancelled with it"
            );
            Some(Verdict::Cancelled(waited))
        }
    }
}
