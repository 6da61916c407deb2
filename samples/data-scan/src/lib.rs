//! # data-scan: scan file contents through `FltCreateSectionForDataScan`
//!
//! A small content scanner in the spirit of an antivirus filter. It reads files through a
//! read-only section that Filter Manager creates for it, searches them for the EICAR test string
//! ([`EICAR`]), and denies the open of a file that carries it. It scans:
//! - in **post-create**, a non-directory file opened for read or execute. A hit cancels the open
//!   (`FltCancelFileOpen`) and completes the create with `STATUS_VIRUS_INFECTED`;
//! - in **pre-cleanup**, through a handle that wrote to the file (a stream-handle context
//!   remembers the write). A hit is logged: the file stays, and its next open is denied.
//!
//! ## The calls, and the contract of each
//! - **`FltRegisterForDataScan(Instance)`** in `InstanceSetup` (IRQL `PASSIVE_LEVEL`; the call
//!   allows `<= APC_LEVEL`). It must succeed before any section can be created on the instance.
//!   File systems that cannot scan (a network redirector) return `STATUS_NOT_SUPPORTED`. The
//!   sample then returns `STATUS_FLT_DO_NOT_ATTACH` and logs why: no instance, and that volume's
//!   files open as if the filter were not there.
//! - **`FltAllocateContext(FLT_SECTION_CONTEXT)`** (`<= APC_LEVEL`). The context comes back with
//!   one reference, the *allocation reference*. It is not zeroed, so `ContextRef::allocate` zeroes
//!   it before writing the body. The body holds a notification event and the verdict, so that a
//!   second scanner of the same stream can wait for this one (see below).
//! - **`FltCreateSectionForDataScan(Instance, FileObject, Context, SECTION_MAP_READ | SECTION_QUERY,
//!   &Attributes, NULL, PAGE_READONLY, SEC_COMMIT, 0, &Handle, &Object, &Size)`**. It is callable
//!   at `<= APC_LEVEL`, but call it at `PASSIVE_LEVEL`: post-create and pre-cleanup run there. The
//!   section is read-only, and the attributes say `OBJ_KERNEL_HANDLE`, so the handle lives in the
//!   kernel handle table, not in whatever process opened the file. On success the caller owns the
//!   handle and one reference on the section object, and Filter Manager links the context to the
//!   stream (one more reference) until `FltCloseSectionForDataScan`. The documented failures:
//!   - `STATUS_END_OF_FILE`: an empty file. Nothing to scan, so the file is **clean**;
//!   - `STATUS_FILE_IS_A_DIRECTORY`: a directory opened without `FILE_DIRECTORY_FILE`. **Skipped**;
//!   - `STATUS_FLT_CONTEXT_ALREADY_DEFINED`: this instance already has a section on the stream,
//!     that is, another scan of the same file is in flight. **Wait for it** (below);
//!   - anything else (`STATUS_INSUFFICIENT_RESOURCES`, `STATUS_FILE_LOCK_CONFLICT`,
//!     `STATUS_INVALID_FILE_FOR_SECTION`, `STATUS_PRIVILEGE_NOT_HELD`, `STATUS_INVALID_PARAMETER`
//!     when the instance is not registered for data scan, ...): **fail open**. The open or the
//!     cleanup goes on unscanned, with a log line.
//!
//!   On every failure the context was never linked, so the only thing to undo is the allocation
//!   reference (`FltReleaseContext`). Never `FltCloseSectionForDataScan` a context whose create
//!   failed. Microsoft's avscan leaks the context on this path; here the `ContextRef` drop
//!   releases it on every early return.
//! - **`MmMapViewInSystemSpaceEx(Object, &Base, &Size, &Offset, 0)`** (`<= APC_LEVEL`) maps one
//!   window of the file at a time, never the whole file. The windows are [`WINDOW`] bytes apart
//!   and overlap by `EICAR.len() - 1` bytes, so a signature that straddles a boundary lies whole
//!   inside one window ([`find_signature`] is the same search over a slice). A view is never read
//!   directly: it is the live cache, and touching a page whose paging read fails raises
//!   `STATUS_IN_PAGE_ERROR`, a bugcheck in a driver without SEH. **`MmCopyMemory`** (Windows 8.1,
//!   `<= APC_LEVEL`) copies each window into one non-paged buffer instead, and returns a failed
//!   paging read as a status: the scan is then "not scanned" and the open goes on. The reading is
//!   `common::section::WindowReader`'s. What is scanned is the file size
//!   `FltCreateSectionForDataScan` reported, never the view's size (whole pages; avscan clamps
//!   the same way, "The size here may have truncation").
//!
//! ## Closing: five releases, in avscan's order
//! | step | call | undoes |
//! |---|---|---|
//! | 1 | `MmUnmapViewInSystemSpace(Base)` | the view (`MappedView`'s drop) |
//! | 2 | `ObCloseHandle(Handle, KernelMode)` | the kernel handle the create returned |
//! | 3 | `ObDereferenceObject(Object)` | the reference on the section object the create returned |
//! | 4 | `FltCloseSectionForDataScan(Context)` | the context's link to the stream. Filter Manager stops synchronizing I/O against the section, and the next create on the stream can succeed |
//! | 5 | `FltReleaseContext(Context)` | the allocation reference from `FltAllocateContext` |
//!
//! Steps 2 to 5 are `common::section::DataScanSection`'s drop, which this sample builds from
//! what the create returned. `ObCloseHandle` is an ntoskrnl export: `ZwClose` would import from
//! ntdll.dll, which a driver cannot load.
//!
//! ## Two scans of one stream: wait, never fail the open
//! One section per stream per instance: when two threads open the same file at once, the second
//! create returns `STATUS_FLT_CONTEXT_ALREADY_DEFINED`. This sample **waits** for the scan in
//! flight instead of skipping. Skipping would let the second open of an infected file through
//! while the first is being denied, which is the one thing a scanner must not do. The waiter:
//! 1. releases its own unused context;
//! 2. finds the other scan's context with `FltGetSectionContext` (`<= APC_LEVEL`; every success
//!    adds a reference, dropped with `FltReleaseContext`; `STATUS_NOT_FOUND` means that scan just
//!    finished, so it tries again);
//! 3. waits on the context's event, inside `FsRtlEnterFileSystem` (normal kernel APCs off),
//!    with `FltCancellableWaitForSingleObject(Event, Timeout, Data)` (`PASSIVE_LEVEL` with callback
//!    data), bounded by [`WAIT_SECONDS`]. The scanner sets the event after its section is closed.
//!    Passing the operation's callback data makes the wait end with `STATUS_CANCELLED` when the
//!    user cancels the open (`CancelSynchronousIo`), or `STATUS_THREAD_IS_TERMINATING` when the
//!    thread is killed: the open is then cancelled with that status (`FltCancelFileOpen`), as
//!    avscan does, instead of holding a dying thread for up to 40 s;
//! 4. adopts an *infected* verdict, the safe direction. It adopts a *clean* verdict only from a
//!    scan that **started after this one began**: that scan created its section after this open
//!    reached the file system (or after this handle's last write), so it read everything this scan
//!    would have read. Every scan takes a number from a global counter before it creates its
//!    section, and keeps it in its context; "started after" is "has a larger number than the
//!    counter showed when this scan began". After a clean verdict from an older scan, which may
//!    have read the file before this handle's writes, it scans again itself. At most
//!    [`MAX_ATTEMPTS`] times; after that, or if the wait times out, it fails open with a log line.
//!    (Without the "started after" rule, a few threads opening one file in a loop keep taking the
//!    section from each other, and a scan gives up while nothing is wrong: the multi-threaded
//!    test found exactly that.)
//!
//! The waiter holds no lock, and the scanner waits on nothing but its own page faults, so the
//! wait cannot deadlock. Its reference keeps the context (and the event in it) alive even after
//! the scanner has released its own.
//!
//! ## What it does not do
//! The section lives only while the scan runs. A truncation, purge or non-cached write from
//! another handle *during* that window waits (Filter Manager or the file system pends it) until
//! the scan closes the section, because this sample registers no `SectionNotificationCallback`.
//! The `section-conflict` sample shows how to give the section up for such I/O.
//!
//! ## What you see when it is loaded
//! `fltmc load RsDataScan` attaches to every local volume (altitude 265130, `FSFilter Content
//! Screener`). Set the `Debug Print Filter` value `IHVDRIVER` to `0xF` to see its lines. Then
//! `type eicar.com` fails with "Operation did not complete successfully because the file contains
//! a virus", and the debugger shows:
//!
//! ```text
//! rs-data-scan: \Device\HarddiskVolume3\test\eicar.com: open: INFECTED: EICAR signature at offset 0: open denied with STATUS_VIRUS_INFECTED (0xC0000906)
//! rs-data-scan: \Device\HarddiskVolume3\test\clean.txt: open: clean: 5400 bytes scanned in 1 window(s)
//! ```
//!
//! Network volumes log `not attaching ... STATUS_NOT_SUPPORTED`. `fltmc unload RsDataScan`
//! prints a summary line.
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
