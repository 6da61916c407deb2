//! # section-context: find the section you created earlier with `FltGetSectionContext`
//!
//! An open for reading that denies write sharing gets a read-only data-scan section on its
//! stream, kept while such opens last. Later reads, query-information requests and cleanups on
//! the stream find that section again with `FltGetSectionContext`, update the counters in its
//! context and release the context. The last holder's cleanup closes the section. It acts only in
//! its demo folder (`common::scope`). The README has the details: who closes, the races, deletes.
//!
//! ## The calls it teaches
//! - **`FltRegisterForDataScan(Instance)`** in `InstanceSetup` (`<= APC_LEVEL`). On
//!   `STATUS_NOT_SUPPORTED` (a network share) this sample attaches anyway, to show what the lookup
//!   answers there; a production filter returns `STATUS_FLT_DO_NOT_ATTACH`.
//! - **`FltAllocateContext(FLT_SECTION_CONTEXT)`** (`<= APC_LEVEL`): one reference, not zeroed.
//! - **`FltCreateSectionForDataScan`** (`<= APC_LEVEL`; called at `PASSIVE_LEVEL` in post-create),
//!   read-only, `OBJ_KERNEL_HANDLE`. Success links the context to the stream (one more reference)
//!   and gives the caller a handle and an object reference. One section per stream per instance:
//!   `STATUS_FLT_CONTEXT_ALREADY_DEFINED` means another open made it first, so join that one.
//!   `STATUS_END_OF_FILE`: an empty file. A failed create is released, never closed.
//! - **`FltGetSectionContext(Instance, FileObject, &Context)`** (`<= APC_LEVEL`):
//!   - `STATUS_SUCCESS`: `Context` carries a new reference; exactly one `FltReleaseContext` drops
//!     it (`common::context::ContextRef`, on every path);
//!   - `STATUS_NOT_FOUND`: no section for this stream on this instance; `Context` is NULL and
//!     there is nothing to release;
//!   - `STATUS_NOT_SUPPORTED`: the volume has no section contexts; logged once per instance.
//! - **The close**: `ObCloseHandle` (`PASSIVE_LEVEL`), `ObDereferenceObject`,
//!   `FltCloseSectionForDataScan` (`<= APC_LEVEL`), then `FltReleaseContext` of the allocation
//!   reference. Afterwards the lookup answers `STATUS_NOT_FOUND`. The last cleanup,
//!   `SectionNotificationCallback` and `InstanceTeardownStart` may each want to close: whoever
//!   takes the section out of its slot with an interlocked exchange closes it, once.
//!
//! The reference count is what makes the lookup safe: a reader that got the context just before
//! another thread closed the section still holds valid memory, freed by its own release.
//!
//! ## What you see when it runs
//! `cargo xtask demo section-context` runs it in `fltsim`; on Windows, `fltmc load
//! RsSectionContext`. Open a file in the demo folder with `FileShare.Read`, read it and close it:
//! `rs-section-context: <path>\section.txt: section created (FltCreateSectionForDataScan), ...`,
//! then `read: section found (FltGetSectionContext), read 1, ...` and `last cleanup: section
//! closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released`.
#![cfg_attr(target_os = "windows", no_std)]

use core::{
    ffi::c_void,
    sync::atomic::{
        AtomicBool, AtomicI64, AtomicIsize, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    },
};

use common::{
    NtStatus,
    bindings::{
        DRIVER_OBJECT, FILE_OBJECT, FILE_READ_DATA, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE,
        FLT_INSTANCE_CONTEXT, FLT_POSTOP_CALLBACK_STATUS, FLT_POSTOP_FINISHED_PROCESSING,
        FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_REGISTRATION_VERSION_0203,
        FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT, FLT_SET_CONTEXT_KEEP_IF_EXISTS,
        FLT_STREAMHANDLE_CONTEXT, FltCreateSectionForDataScan, FltGetInstanceContext,
        FltGetRequestorProcessId, FltGetSectionContext, FltRegisterForDataScan,
        FltSetInstanceContext, IRP_MJ_CLEANUP, IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS,
        IRP_MJ_QUERY_INFORMATION, IRP_MJ_READ, IRP_MN_FLUSH_AND_PURGE, IRP_PAGING_IO, NTSTATUS,
        OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PAGE_READONLY, PFLT_CONTEXT, PFLT_INSTANCE,
        SEC_COMMIT, SECTION_MAP_READ, SECTION_QUERY, STATUS_FLT_CONTEXT_ALREADY_DEFINED,
        STATUS_NOT_FOUND, STATUS_NOT_SUPPORTED, STATUS_SUCCESS, UNICODE_STRING,
    },
    context::ContextRef,
    event::Event,
    file_object,
    filter::{FilterSlot, register_and_start},
    log,
    name::CopiedName,
    pool::tag,
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context_of,
        operation,
    },
    scope::{self, SCOPE},
    section::DataScanSection,
};
use windows_sys::Win32::System::Kernel::NotificationEvent;

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-section-context";

/// The pool tag of both context types (`!poolused` shows `RsSc`).
const POOL_TAG: u32 = tag(b"RsSc");

/// How many sections one instance keeps open at a time. A holder that finds every slot taken
/// goes without a section (logged): fail open.
const SLOTS: usize = 64;

/// `StreamSection::slot` before the section is in the instance's table.
const NO_SLOT: usize = usize::MAX;

/// How long a `SectionNotificationCallback` that lost the close to another party waits for that
/// party's close, in milliseconds. A close takes microseconds; the bound is there because the
/// conflicting I/O waits for the callback, and a callback must never hold it without one.
pub const CLOSE_WAIT_MS: i64 = 100;

// ---- the two contexts ---------------------------------------------------------------------------

/// The instance context: the open sections of this volume, and what was already logged.
pub struct InstanceState {
    /// Each non-zero slot holds a section context pointer *and its allocation reference*: the
    /// right to close that section. Taken out with an interlocked exchange, so one party closes.
    sections: [AtomicUsize; SLOTS],
    /// Set by `InstanceTeardownStart`: a section published after this is closed by its creator.
    tearing_down: AtomicBool,
    /// `FltGetSectionContext` said `STATUS_NOT_SUPPORTED` here once already.
    not_supported_logged: AtomicBool,
}

/// The section context: one per stream with an open section on this instance.
pub struct StreamSection {
    /// Which section of the driver's life this is ([`SECTIONS_CREATED`]): a handle's mark names
    /// the one it holds, so that its cleanup never leaves a newer section of the same stream.
    generation: u64,
    /// Keeps the instance context (and its slot table) alive for as long as this context lives;
    /// released by the cleanup callback.
    instance: ContextRef<InstanceState>,
    /// The file, as `FltGetFileNameInformation` named it in post-create.
    name: Name,
    /// The requestor's process ID at the create that caused the section
    /// (`FltGetRequestorProcessId`: the process the requesting thread was attached to).
    process: u32,
    /// The file size `FltCreateSectionForDataScan` reported.
    size_at_open: AtomicI64,
    /// The section handle and object, stored before the context is published in a slot.
    handle: AtomicIsize,
    object: AtomicUsize,
    /// Index in `InstanceState::sections`, or `NO_SLOT`.
    slot: AtomicUsize,
    /// A closer came before the creator published the section: the creator closes it.
    close_requested: AtomicBool,
    /// `FltCreateSectionForDataScan` has returned and `handle` and `object` are stored: from
    /// here on the creator publishes the section, and closes it at once if a close was asked for.
    created: AtomicBool,
    /// Notification event, set by whoever closes the section, after `FltCloseSectionForDataScan`.
    /// A `SectionNotificationCallback` that lost the close to another party waits for it.
    closed: Event,
    /// The opens that hold the section (read-only, no write sharing). 0 once it is closing.
    holders: AtomicU32,
    /// What later operations report.
    reads: AtomicU32,
    queries: AtomicU32,
}

impl StreamSection {
    /// Tells a waiting notification that the section is closed (`KeSetEvent`, `<= DISPATCH_LEVEL`).
    fn signal_closed(&self) {
        self.closed.set();
    }

    /// Waits at most [`CLOSE_WAIT_MS`] for the close another party is making (`PASSIVE_LEVEL`
    /// here, holding no lock); `false` if it is not done by then.
    fn wait_closed(&self) -> bool {
        self.closed.wait(Some(CLOSE_WAIT_MS))
    }

    /// One more holder, unless the section is already closing (the count reached zero).
    fn join(&self) -> Option<u32> {
        self.holders
            .try_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h > 0).then(|| h + 1)
            })
            .ok()
            .map(|h| h + 1)
    }

    /// One holder fewer; `true` for the one that takes the count to zero.
    fn leave(&self) -> bool {
        self.holders
            .try_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1))
            == Ok(1)
    }
}

/// Numbers the sections this driver creates, from 1. A section can close while its holders are
/// still open (no free slot, or a conflict), and the next holder of the stream then creates a new
/// one: the number tells the two apart, where the context's address could repeat.
static SECTIONS_CREATED: AtomicU64 = AtomicU64::new(0);

/// The stream-handle context of every handle post-create looked at (an in-scope open of a
/// file): later operations on a handle without one return at once, with no name query and no
/// line, which is what keeps out-of-scope I/O free. `holds` names the section the handle holds
/// (its [`StreamSection::generation`]), so that its cleanup leaves that section and no other: the
/// create's desired access, which decided it, is gone by then, and the file object cannot tell
/// `FILE_READ_DATA` from `FILE_EXECUTE` (`ReadAccess` is set for both).
pub struct HandleMark {
    holds: Option<u64>,
}

/// Marks this handle (`FltAllocateContext`, `FltSetStreamHandleContext`, both `<= APC_LEVEL`).
/// `false` if it cannot be marked: a holder then leaves the section at once, since the handle's
/// cleanup would not know to, and the handle's later operations go unreported.
fn mark_handle(objects: &FLT_RELATED_OBJECTS, name: &Name, holds: Option<u64>) -> bool {
    let mark = match ContextRef::allocate(
        FILTER.get(),
        FLT_STREAMHANDLE_CONTEXT,
        HandleMark { holds },
    ) {
        Ok(mark) => mark,
        Err(status) => {
            log!(
                "{TAG}: {name}: FltAllocateContext(FLT_STREAMHANDLE_CONTEXT): {status}: this open is not tracked"
            );
            return false;
        }
    };
    // FltSetStreamHandleContext. Our allocation reference drops with `mark`; on success the
    // handle's link keeps the context until the file object closes.
    let status = mark.set_on_stream_handle(objects);
    if !status.is_success() {
        log!("{TAG}: {name}: FltSetStreamHandleContext: {status}: this open is not tracked");
    }
    status.is_success()
}

/// This handle's [`HandleMark`], if post-create gave it one (`FltGetStreamHandleContext`,
/// `<= APC_LEVEL`; a success adds a reference, which the returned value releases).
fn handle_mark(objects: &FLT_RELATED_OBJECTS) -> Option<ContextRef<HandleMark>> {
    // SAFETY: `HandleMark` is the only stream-handle context this driver sets.
    unsafe { ContextRef::of_stream_handle(objects) }
}

/// The name of the file an operation targets, copied (onto the stack, or into a context), or why
/// there is none: `common`'s `CopiedName`, which queries it with `FltGetFileNameInformation`
/// (`<= APC_LEVEL`, never for paging I/O) and releases it at once.
type Name = CopiedName;

/// The name for the operation whose callback data is `data`. Every caller passes its own
/// callback's data, which is what `CopiedName::query` requires.
fn name_of(data: *mut FLT_CALLBACK_DATA) -> Name {
    // SAFETY: `data` is the callback data of the operation in progress (see above).
    unsafe { CopiedName::query(data) }
}

// ---- registration ------------------------------------------------------------------------------

/// The filter handle, from `FltRegisterFilter` to `FltUnregisterFilter`.
static FILTER: FilterSlot = FilterSlot::new();

static CONTEXTS: ContextTable<4> = ContextTable::new([
    context_of::<InstanceState>(FLT_INSTANCE_CONTEXT, POOL_TAG),
    context_of::<StreamSection>(FLT_SECTION_CONTEXT, POOL_TAG),
    context_of::<HandleMark>(FLT_STREAMHANDLE_CONTEXT, POOL_TAG),
    CONTEXT_END,
]);

static OPERATIONS: OperationTable<6> = OperationTable::new([
    // No pre-create: with a NULL pre-operation callback Filter Manager still calls the
    // post-operation one, which is where the file is open and can be inspected.
    operation(IRP_MJ_CREATE, Some(scope::pre_create), Some(post_create)),
    operation(IRP_MJ_READ, Some(pre_operation), None),
    operation(IRP_MJ_QUERY_INFORMATION, Some(pre_operation), None),
    operation(IRP_MJ_CLEANUP, Some(pre_operation), None),
    operation(IRP_MJ_FLUSH_BUFFERS, Some(pre_operation), None),
    OPERATION_END,
]);

/// Version 0x0203: the first that carries `SectionNotificationCallback`.
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)
    .contexts(&CONTEXTS)
    .operations(&OPERATIONS)
    .instance_setup(Some(instance_setup))
    .instance_teardown_start(Some(instance_teardown_start))
    .section_notification(Some(section_conflict))
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
    // FltRegisterFilter, then FltStartFiltering, unregistering if starting fails: the
    // passthrough sample makes the three calls itself and explains each (samples/passthrough).
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { register_and_start(driver, &REGISTRATION, &FILTER, TAG) }.0
}

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): `FltUnregisterFilter` tears every instance down
/// (`InstanceTeardownStart` closes the sections still open) and waits for every reference.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    FILTER.unregister();
    STATUS_SUCCESS
}

// ---- instances ----------------------------------------------------------------------------------

/// `InstanceSetup` (`PASSIVE_LEVEL`): give the instance its context, register for data scan, and
/// attach in every case (fail open: without a context or data scan, the sample only logs).
unsafe extern "system" fn instance_setup(
    objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _volume_device_type: u32,
    file_system_type: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    common::paged_code!();
    let fs = common::volume::file_system_name(file_system_type);
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    let instance = unsafe { (*objects).Instance };
    let state = InstanceState {
        sections: [const { AtomicUsize::new(0) }; SLOTS],
        tearing_down: AtomicBool::new(false),
        not_supported_logged: AtomicBool::new(false),
    };
    match ContextRef::allocate(FILTER.get(), FLT_INSTANCE_CONTEXT, state) {
        Ok(context) => {
            // SAFETY: a live instance and a context of the registered instance type. On success
            // the instance takes its own reference; ours is released when `context` drops.
            let status = NtStatus(unsafe {
                FltSetInstanceContext(
                    instance,
                    FLT_SET_CONTEXT_KEEP_IF_EXISTS,
                    context.as_raw(),
                    core::ptr::null_mut(),
                )
            });
            if !status.is_success() {
                log!(
                    "{TAG}: {fs} volume: FltSetInstanceContext: {status}; no sections on this volume"
                );
            }
        }
        Err(status) => log!(
            "{TAG}: {fs} volume: FltAllocateContext(FLT_INSTANCE_CONTEXT): {status}; no sections on this volume"
        ),
    }
    // SAFETY: `instance` is the instance being set up.
    let status = NtStatus(unsafe { FltRegisterForDataScan(instance) });
    if !status.is_success() {
        log!("{TAG}: {fs} volume: FltRegisterForDataScan: {status}; attaching anyway");
    }
    STATUS_SUCCESS
}

/// `InstanceTeardownStart` (`PASSIVE_LEVEL`): close every section the instance still has open,
/// because a section still linked to a stream at teardown is a leak Filter Manager cannot undo.
unsafe extern "system" fn instance_teardown_start(
    objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    let Some(state) = instance_context(unsafe { (*objects).Instance }) else {
        return;
    };
    // Creators that publish after this point see the flag and close their own section.
    state.tearing_down.store(true, Ordering::SeqCst);
    for slot in &state.sections {
        let raw = slot.swap(0, Ordering::SeqCst);
        if raw != 0 {
            // SAFETY: the exchange gave us the slot's allocation reference.
            unsafe { close_section(raw as PFLT_CONTEXT, "instance teardown") };
        }
    }
}

/// `FltGetInstanceContext`: a reference to the instance's context, if it has one.
fn instance_context(instance: PFLT_INSTANCE) -> Option<ContextRef<InstanceState>> {
    let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: a live instance (we are in one of its callbacks); `raw` is a valid out pointer.
    let status = NtStatus(unsafe { FltGetInstanceContext(instance, &raw mut raw) });
    // SAFETY: on success we own the reference it added, and its body is an `InstanceState`.
    (status.is_success() && !raw.is_null()).then(|| unsafe { ContextRef::from_raw(raw) })
}

// ---- the lookup this sample teaches ---------------------------------------------------------------

/// What `FltGetSectionContext` said.
enum Lookup {
    /// `STATUS_SUCCESS`: one reference, released when this drops.
    Found(ContextRef<StreamSection>),
    /// `STATUS_NOT_FOUND`: no section for this stream here; the context came back NULL.
    NotFound,
    /// `STATUS_NOT_SUPPORTED`: the volume cannot have section contexts.
    NotSupported,
    /// Anything else (undocumented).
    Failed(NtStatus),
}

fn get_section(objects: &FLT_RELATED_OBJECTS) -> Lookup {
    let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: the instance and file object of the operation in progress; `raw` is a valid out
    // pointer. IRQL: every caller is a pre-operation or post-create callback (<= APC_LEVEL).
    let status =
        unsafe { FltGetSectionContext(objects.Instance, objects.FileObject, &raw mut raw) };
    match status {
        // SAFETY: success returned a non-null context with one new reference that we now own;
        // its body is a `StreamSection` (the only section context type we create).
        STATUS_SUCCESS if !raw.is_null() => Lookup::Found(unsafe { ContextRef::from_raw(raw) }),
        STATUS_NOT_FOUND => Lookup::NotFound,
        STATUS_NOT_SUPPORTED => Lookup::NotSupported,
        other => Lookup::Failed(NtStatus(other)),
    }
}

/// `STATUS_NOT_SUPPORTED`: log it once per instance, not once per I/O.
fn not_supported(objects: &FLT_RELATED_OBJECTS, name: &Name, what: &str) {
    let first = instance_context(objects.Instance)
        .is_none_or(|state| !state.not_supported_logged.swap(true, Ordering::Relaxed));
    if first {
        log!(
            "{TAG}: {name}: {what}: FltGetSectionContext: {}: this volume has no section contexts (logged once per instance)",
            NtStatus(STATUS_NOT_SUPPORTED)
        );
    }
}

/// What an open is to the sample.
enum Holder {
    /// Opened to read data, with no write access and no write sharing: it holds a section.
    Reader,
    /// Not opened to read data (execute only, attributes only, ...): a section would serve
    /// nothing. `FILE_OBJECT.ReadAccess` cannot tell this apart, since the I/O manager sets it for
    /// `FILE_EXECUTE` too, and every image load would get a section.
    NoDataRead,
    /// Opened with write access, or sharing write: a writer could conflict with a section.
    Writer,
}

/// Whether this open holds a section: `FILE_READ_DATA` in the access the opener asked for, and
/// no write access and no write sharing as the file system granted them.
fn holder(data: *const FLT_CALLBACK_DATA, file_object: *const FILE_OBJECT) -> Holder {
    // SAFETY: the callback data of the create in progress.
    if unsafe { common::create::desired_access(data) } & FILE_READ_DATA == 0 {
        return Holder::NoDataRead;
    }
    // Field by field through the raw pointer, the BOOLEANs as bytes: the system owns the file
    // object and other threads update some of its fields (`Flags`) while we look.
    // SAFETY: the file object of the operation in progress, valid for the whole callback; the
    // access fields are set once, at create, and only read afterwards.
    let access = unsafe { file_object::access(file_object) };
    if access.write || access.shared_write {
        Holder::Writer
    } else {
        Holder::Reader
    }
}

// ---- create: make the section, or join it ----------------------------------------------------------

/// Post-create (`PASSIVE_LEVEL`, Filter Manager guarantees it for creates): a holder creates the
/// stream's section or joins the one another holder created. Never fails the open.
unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    let objects = unsafe { &*objects };
    // A file the file system actually opened: not a failed or reparsed create, a paging file, a
    // volume or a directory, on an instance that is not being torn down (`common::create` says
    // why for each). None of those gets a section, or a line.
    // SAFETY: this post-create's callback data, related objects and flags.
    if !unsafe { common::create::is_opened_file(data, objects, flags) } {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    let name = name_of(data);
    match holder(data, objects.FileObject) {
        Holder::Reader => {}
        Holder::NoDataRead => {
            mark_handle(objects, &name, None);
            return FLT_POSTOP_FINISHED_PROCESSING;
        }
        Holder::Writer => {
            log!(
                "{TAG}: {name}: opened with write access or write sharing: no section (a writer could conflict with it)"
            );
            mark_handle(objects, &name, None);
            return FLT_POSTOP_FINISHED_PROCESSING;
        }
    }
    // Twice at most: a holder that loses the creation race to another gets
    // STATUS_FLT_CONTEXT_ALREADY_DEFINED and joins the winner's section.
    for _ in 0..2 {
        match get_section(objects) {
            Lookup::Found(section) => {
                if let Some(holders) = section.join() {
                    log!(
                        "{TAG}: {name}: joined the open section (FltGetSectionContext): {holders} holders"
                    );
                    hold(objects, &name, &section);
                } else {
                    log!("{TAG}: {name}: the section is closing: this open goes without");
                    mark_handle(objects, &name, None);
                }
                return FLT_POSTOP_FINISHED_PROCESSING;
            }
            Lookup::NotFound => {}
            Lookup::NotSupported => {
                not_supported(objects, &name, "create");
                mark_handle(objects, &name, None);
                return FLT_POSTOP_FINISHED_PROCESSING;
            }
            Lookup::Failed(status) => {
                log!("{TAG}: {name}: create: FltGetSectionContext: {status}");
                mark_handle(objects, &name, None);
                return FLT_POSTOP_FINISHED_PROCESSING;
            }
        }
        match create_section(data, objects, &name) {
            Err(NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED)) => {}
            Ok(Some(section)) => {
                // The creator is the first holder.
                hold(objects, &name, &section);
                return FLT_POSTOP_FINISHED_PROCESSING;
            }
            Ok(None) | Err(_) => break,
        }
    }
    // No section for this open (none could be created): its later operations still report.
    mark_handle(objects, &name, None);
    FLT_POSTOP_FINISHED_PROCESSING
}

/// Marks this handle as one of `section`'s holders; if it cannot be marked, it leaves at once
/// (closing the section if it was the last holder), since its cleanup would not know to.
fn hold(objects: &FLT_RELATED_OBJECTS, name: &Name, section: &ContextRef<StreamSection>) {
    if !mark_handle(objects, name, Some(section.generation)) && section.leave() {
        request_close(section, section.as_raw(), "a holder could not be marked");
    }
}

/// Allocates the section context, creates the section, and publishes it in the instance's table.
fn create_section(
    data: *mut FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &Name,
) -> Result<Option<ContextRef<StreamSection>>, NtStatus> {
    let Some(instance) = instance_context(objects.Instance) else {
        log!("{TAG}: {name}: the instance has no context: no section");
        return Ok(None);
    };
    if instance.tearing_down.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let body = StreamSection {
        generation: SECTIONS_CREATED.fetch_add(1, Ordering::Relaxed) + 1,
        instance,
        name: *name,
        // SAFETY: the callback data of the create in progress.
        process: unsafe { FltGetRequestorProcessId(data) },
        size_at_open: AtomicI64::new(0),
        handle: AtomicIsize::new(0),
        object: AtomicUsize::new(0),
        slot: AtomicUsize::new(NO_SLOT),
        close_requested: AtomicBool::new(false),
        created: AtomicBool::new(false),
        closed: Event::new(),
        holders: AtomicU32::new(1),
        reads: AtomicU32::new(0),
        queries: AtomicU32::new(0),
    };
    let context =
        ContextRef::allocate(FILTER.get(), FLT_SECTION_CONTEXT, body).inspect_err(|status| {
            log!("{TAG}: {name}: FltAllocateContext(FLT_SECTION_CONTEXT): {status}: no section");
        })?;
    // The event a losing notification waits on exists before the section does: the notification
    // can come before FltCreateSectionForDataScan returns.
    // SAFETY: the event lives in the context's pool block, which does not move, and no other
    // thread can reach the context before the create links it; a notification event, not set.
    // `<= DISPATCH_LEVEL`.
    unsafe { context.closed.init(NotificationEvent) };
    // InitializeObjectAttributes(&attributes, NULL, OBJ_KERNEL_HANDLE, NULL, NULL).
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(u32::MAX),
        RootDirectory: core::ptr::null_mut(),
        ObjectName: core::ptr::null(),
        Attributes: OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null(),
        SecurityQualityOfService: core::ptr::null(),
    };
    let (mut handle, mut object, mut size) = (core::ptr::null_mut(), core::ptr::null_mut(), 0i64);
    // SAFETY: the instance registered for data scan (or the call fails with
    // STATUS_INVALID_PARAMETER), the file object of this create, a fresh FLT_SECTION_CONTEXT, and
    // valid out pointers. We are at PASSIVE_LEVEL in post-create.
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
    if !status.is_success() {
        // The context was never linked: dropping `context` releases it (never close it).
        log!("{TAG}: {name}: FltCreateSectionForDataScan: {status}: no section");
        return Err(status);
    }
    context.handle.store(handle as isize, Ordering::Relaxed);
    context.object.store(object as usize, Ordering::Relaxed);
    context.size_at_open.store(size, Ordering::Relaxed);
    // From here a notification knows the close will come soon (from us in `publish`, or from
    // whoever takes the slot), and waits for it.
    context.created.store(true, Ordering::SeqCst);
    log!(
        "{TAG}: {name}: section created (FltCreateSectionForDataScan), {size} bytes, process {}",
        context.process
    );
    // A reference for the caller, who marks its handle as the first holder.
    let creator = context.add_ref();
    publish(context);
    Ok(Some(creator))
}

/// Hands the allocation reference to a free slot of the instance table, where any closer can take
/// it. Closes at once if there is no free slot, or if a close was asked for meanwhile.
fn publish(context: ContextRef<StreamSection>) {
    // Our own reference (`FltReferenceContext`): once the allocation reference is in a slot,
    // another thread may take it and close the section, and only this keeps the body alive.
    let keep = context.add_ref();
    let raw = context.into_raw();
    let Some(index) = keep.instance.sections.iter().position(|slot| {
        slot.compare_exchange(0, raw as usize, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }) else {
        log!("{TAG}: {}: all {SLOTS} section slots are taken", keep.name);
        // SAFETY: no slot took it, so we still own the allocation reference.
        unsafe { close_section(raw, "no free slot") };
        return;
    };
    keep.slot.store(index, Ordering::SeqCst);
    // A closer that came before `slot` was stored could not take the section: it left a request.
    // So could teardown, which set its flag before sweeping the slots.
    if (keep.close_requested.load(Ordering::SeqCst)
        || keep.instance.tearing_down.load(Ordering::SeqCst))
        && take(&keep, raw)
    {
        // SAFETY: the exchange in `take` gave the allocation reference back to us.
        unsafe { close_section(raw, "closed as it was published") };
    }
}

/// Takes the section's allocation reference out of its slot. `true` for the one caller that wins.
fn take(section: &StreamSection, raw: PFLT_CONTEXT) -> bool {
    let index = section.slot.load(Ordering::SeqCst);
    index != NO_SLOT
        && section.instance.sections[index]
            .compare_exchange(raw as usize, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
}

/// Asks for the section to close: closes it if this caller wins the slot exchange. The caller
/// holds its own reference on the context, so `section` stays valid after the close.
fn request_close(section: &StreamSection, raw: PFLT_CONTEXT, why: &str) {
    section.close_requested.store(true, Ordering::SeqCst);
    if take(section, raw) {
        // SAFETY: the exchange gave us the allocation reference.
        unsafe { close_section(raw, why) };
    }
}

/// Closes the section in the documented order: `ObCloseHandle`, `ObDereferenceObject`,
/// `FltCloseSectionForDataScan`, then `FltReleaseContext` of the allocation reference
/// (`DataScanSection::close`). `PASSIVE_LEVEL`.
///
/// # Safety
/// The caller owns the allocation reference of `raw`, a `StreamSection` whose section was created.
unsafe fn close_section(raw: PFLT_CONTEXT, why: &str) {
    common::paged_code!();
    // SAFETY: the caller hands us the allocation reference.
    let context = unsafe { ContextRef::<StreamSection>::from_raw(raw) };
    // The close below releases the allocation reference, which may be the last one (teardown has
    // no other): keep the body alive until the waiters are told.
    let keep = context.add_ref();
    let name = context.name;
    let handle = context.handle.load(Ordering::Relaxed) as *mut c_void;
    let object = context.object.load(Ordering::Relaxed) as *mut c_void;
    let size = context.size_at_open.load(Ordering::Relaxed);
    // SAFETY: the handle and object FltCreateSectionForDataScan returned for this context, never
    // released: only the owner of the allocation reference closes, and we are it.
    let section = unsafe { DataScanSection::from_created(handle, object, context, size) };
    let status = section.close();
    keep.signal_closed();
    log!(
        "{TAG}: {name}: {why}: section closed (FltCloseSectionForDataScan {status}), context released"
    );
}

// ---- later operations: find the section again --------------------------------------------------

/// Pre-read, pre-query-information and pre-cleanup (`PASSIVE_LEVEL` or `APC_LEVEL`).
unsafe extern "system" fn pre_operation(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    let objects = unsafe { &*objects };
    // SAFETY: the callback data is valid too, so is its parameter block pointer.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: the parameter block lives as long as the callback data.
    let iopb = unsafe { &*iopb };
    let major = u32::from(iopb.MajorFunction);
    // Paging reads come from the memory manager (our own section's page faults among them):
    // no name queries there, and nothing to report.
    if major == IRP_MJ_READ && iopb.IrpFlags & IRP_PAGING_IO != 0 {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // A flush-and-purge that meets the section is pended by the file system until the section
    // closes, and nothing notifies us (FSCTL_SET_PURGE_FAILURE_MODE): treat it as a conflict and
    // close now. Only a writer that skipped the share check can send one beside a holder.
    if major == IRP_MJ_FLUSH_BUFFERS {
        if u32::from(iopb.MinorFunction) == IRP_MN_FLUSH_AND_PURGE
            && let Lookup::Found(section) = get_section(objects)
        {
            request_close(&section, section.as_raw(), "flush and purge");
        }
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // Only handles post-create marked: an out-of-scope open (its pre-create passed it by) or one
    // that is not a file has no mark, and costs one context lookup here, no name query, no line.
    let Some(mark) = handle_mark(objects) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let what = match major {
        IRP_MJ_READ => "read",
        IRP_MJ_QUERY_INFORMATION => "query information",
        _ => "cleanup",
    };
    match get_section(objects) {
        Lookup::Found(section) => {
            let (reads, queries) = match major {
                IRP_MJ_READ => (
                    section.reads.fetch_add(1, Ordering::Relaxed) + 1,
                    section.queries.load(Ordering::Relaxed),
                ),
                IRP_MJ_QUERY_INFORMATION => (
                    section.reads.load(Ordering::Relaxed),
                    section.queries.fetch_add(1, Ordering::Relaxed) + 1,
                ),
                _ => (
                    section.reads.load(Ordering::Relaxed),
                    section.queries.load(Ordering::Relaxed),
                ),
            };
            log!(
                "{TAG}: {}: {what}: section found (FltGetSectionContext), read {reads}, query {queries}, opened by process {} with {} bytes",
                section.name,
                section.process,
                section.size_at_open.load(Ordering::Relaxed)
            );
            // Only the section this handle joined: the one it found may be a newer one.
            if major == IRP_MJ_CLEANUP && mark.holds == Some(section.generation) && section.leave()
            {
                request_close(&section, section.as_raw(), "last cleanup");
            }
            // `section` drops here: the one FltReleaseContext for this successful get.
        }
        Lookup::NotFound => log!(
            "{TAG}: {}: {what}: no section (FltGetSectionContext {})",
            name_of(data),
            NtStatus(STATUS_NOT_FOUND)
        ),
        Lookup::NotSupported => not_supported(objects, &name_of(data), what),
        Lookup::Failed(status) => {
            log!(
                "{TAG}: {}: {what}: FltGetSectionContext: {status}",
                name_of(data)
            );
        }
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// `SectionNotificationCallback` (`PASSIVE_LEVEL`, on the conflicting I/O's thread): an
/// operation that needs the cache purged (a truncation, a non-cached write, an overwriting open)
/// met it, and Filter Manager has pended it until the section is closed (handle, object and link:
/// the section object is what makes the purge fail). Closing it here lets Filter Manager requeue
/// the operation at once. Filter Manager holds a reference on the context for the duration of the
/// call. Always returns `STATUS_SUCCESS`.
unsafe extern "system" fn section_conflict(
    _instance: PFLT_INSTANCE,
    section_context: PFLT_CONTEXT,
    _data: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes one of our section contexts and keeps it referenced until we
    // return.
    let section = unsafe { &*section_context.cast::<StreamSection>() };
    let name = section.name;
    log!(
        "{TAG}: {name}: a conflicting operation needs the section closed (SectionNotificationCallback)"
    );
    // Ask first, then try to take the slot: a creator that publishes after this sees the request.
    section.close_requested.store(true, Ordering::SeqCst);
    if take(section, section_context) {
        // SAFETY: the exchange gave us the allocation reference.
        unsafe { close_section(section_context, "section conflict") };
    } else if !section.created.load(Ordering::SeqCst) {
        // FltCreateSectionForDataScan has not returned: the handle and object are not known yet,
        // and the creator's thread may be waiting for this very I/O, so waiting for it could
        // only time out. The creator closes all three the moment the create returns.
        log!(
            "{TAG}: {name}: the conflict came before FltCreateSectionForDataScan returned: the creator closes the section when it returns; Filter Manager keeps the operation pended until then"
        );
    } else if !section.wait_closed() {
        // Another party owns the close (the last cleanup, teardown, or the creator about to
        // publish). Filter Manager keeps the operation pended until that close either way. The
        // bounded wait is for when it requeues, which the page does not say: a requeue into a
        // section still being closed would only fail and pend again.
        log!(
            "{TAG}: {name}: the section was still being closed after {CLOSE_WAIT_MS} ms; Filter Manager keeps the operation pended until it is"
        );
    }
    STATUS_SUCCESS
}
