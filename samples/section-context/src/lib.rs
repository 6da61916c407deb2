//! # section-context: find the section you created earlier with `FltGetSectionContext`
//!
//! An open that reads a file and denies write sharing (a *holder*) gets a read-only data-scan
//! section on its stream, kept while holders last. Every later read, query-information and
//! cleanup on the stream finds that section again with `FltGetSectionContext`, updates the
//! counters in its context, and releases the reference the lookup added. The last holder's
//! cleanup closes the section; so does a conflicting operation, a flush-and-purge or instance
//! teardown, whichever takes it first in the one-closer hand-off (`common::handoff`). It acts
//! only in its demo folder (`common::scope`).
//!
//! Its own code makes the calls it teaches: `FltGetSectionContext` with each of its documented
//! results, and `FltGetRequestorProcessId`. The data-scan registration, the section's create and
//! its close are data-scan's lesson, reached here through `common::section` and
//! `common::handoff`; its `SectionNotificationCallback` asks for the close as section-conflict's
//! does.
//! `samples/section-context/README.md` goes on: every status and what the sample does with it,
//! who closes and why, the races, and what you see when it runs.
#![cfg_attr(target_os = "windows", no_std)]

use core::{
    ffi::c_void,
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
};

use common::{
    NtStatus,
    bindings::{
        FILE_READ_DATA, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_INSTANCE_CONTEXT,
        FLT_POSTOP_CALLBACK_STATUS, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS,
        FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_REGISTRATION_VERSION_0203, FLT_RELATED_OBJECTS,
        FLT_SECTION_CONTEXT, FLT_STREAMHANDLE_CONTEXT, FltGetRequestorProcessId,
        FltGetSectionContext, IRP_MJ_CLEANUP, IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS,
        IRP_MJ_QUERY_INFORMATION, IRP_MJ_READ, IRP_MN_FLUSH_AND_PURGE, IRP_PAGING_IO, NTSTATUS,
        PFLT_CONTEXT, PFLT_INSTANCE, STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_NOT_FOUND,
        STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    },
    callback_data,
    context::ContextRef,
    file_object,
    filter::FilterSlot,
    handoff::{self, Answer, SharedSection, Slots},
    log,
    name::CopiedName,
    pool::tag,
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context_of,
        operation,
    },
    scope,
};

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-section-context";

/// The pool tag of every context this driver allocates (`!poolused` shows `RsSc`).
const POOL_TAG: u32 = tag(b"RsSc");

/// How long a `SectionNotificationCallback` that lost the close to another party waits for that
/// party's close, in milliseconds. The conflicting I/O waits for the callback, and a callback
/// must never hold it without a bound.
pub const CLOSE_WAIT_MS: i64 = 100;

// ---- the three contexts -------------------------------------------------------------------------

/// The instance context: the open sections of this volume, and what was already logged.
#[derive(Default)]
pub struct InstanceState {
    /// Each slot holds a section context pointer *and its allocation reference*: the right to
    /// close that section, taken out with one interlocked exchange (`common::handoff`). 64
    /// sections at a time: a holder that finds every slot taken has its section closed at once
    /// (logged, "no free slot"), and goes without: fail open.
    sections: Slots<64>,
    /// `FltGetSectionContext` said `STATUS_NOT_SUPPORTED` here once already.
    not_supported_logged: AtomicBool,
}

/// The section context: one per stream with an open section on this instance.
pub struct StreamSection {
    /// Keeps the instance context (and its slot table) alive for as long as this context lives.
    instance: ContextRef<InstanceState>,
    /// The file, as `FltGetFileNameInformation` named it in post-create.
    name: CopiedName,
    /// The requestor's process ID at the create that caused the section
    /// (`FltGetRequestorProcessId`: the process the requesting thread was attached to).
    process: u32,
    /// The section's handle, object and size, its hand-off claim, its generation, and the count
    /// of the opens that hold it (read-only, no write sharing; 0 once it is closing):
    /// `common::handoff`.
    shared: SharedSection,
    /// What later operations report: how many reads, then how many query-information requests.
    counts: [AtomicU32; 2],
}

/// The stream-handle context of every handle post-create looked at (an in-scope open of a
/// file): later operations on a handle without one return at once, with no name query and no
/// line, which is what keeps out-of-scope I/O free. It names the section the handle holds
/// (its `SharedSection::generation`), so that its cleanup leaves that section and no other: the
/// create's desired access, which decided it, is gone by then, and the file object cannot tell
/// `FILE_READ_DATA` from `FILE_EXECUTE` (`ReadAccess` is set for both).
pub struct HandleMark(Option<u64>);

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

// DriverEntry (the demo folder, FltRegisterFilter, FltStartFiltering) and the unload callback
// (FltUnregisterFilter, which tears every instance down: `InstanceTeardownStart` closes the
// sections still open). The passthrough sample writes both out.
common::driver_entry!(REGISTRATION, FILTER, TAG);

// ---- instances ----------------------------------------------------------------------------------

/// `InstanceSetup` (`PASSIVE_LEVEL`): give the instance its context, register for data scan, and
/// attach in every case (fail open: without a context or data scan, the sample only logs). On
/// `STATUS_NOT_SUPPORTED` (a network share) it attaches to show what the lookup answers there; a
/// production filter returns `STATUS_FLT_DO_NOT_ATTACH`.
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
    let state = InstanceState::default();
    if let Err(failed) = ContextRef::attach_to_instance(FILTER.get(), instance, state) {
        log!("{TAG}: {fs} volume: {failed}; no sections on this volume");
    }
    // SAFETY: `instance` is the instance being set up (`<= APC_LEVEL`).
    let status = unsafe { common::section::register_for_data_scan(instance) };
    if !status.is_success() {
        log!("{TAG}: {fs} volume: FltRegisterForDataScan: {status}; attaching anyway");
    }
    STATUS_SUCCESS
}

/// `InstanceTeardownStart` (`PASSIVE_LEVEL`): close every section the instance still has open,
/// because a section still linked to a stream at teardown is a leak Filter Manager cannot undo.
/// Creators that publish after this see the table closing and close their own section.
unsafe extern "system" fn instance_teardown_start(
    objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    if let Some(state) = instance_context(unsafe { (*objects).Instance }) {
        for raw in state.sections.take_all() {
            // SAFETY: the exchange gave us the slot's allocation reference.
            unsafe { close_section(raw, "instance teardown") };
        }
    }
}

/// `FltGetInstanceContext`: a reference to the instance's context, if it has one.
fn instance_context(instance: PFLT_INSTANCE) -> Option<ContextRef<InstanceState>> {
    // SAFETY: a live instance (every caller is in one of its callbacks), and `InstanceState` is
    // the only instance context this driver sets.
    unsafe { ContextRef::of_instance(instance) }
}

// ---- the lookup this sample teaches ---------------------------------------------------------------

/// `FltGetSectionContext(Instance, FileObject, &Context)` (`<= APC_LEVEL`), and what the sample
/// does with each documented result:
/// - `STATUS_SUCCESS`: `Context` carries a new reference, which the returned value releases
///   (`FltReleaseContext`) when it drops, on every path;
/// - `STATUS_NOT_FOUND`: no section for this stream on this instance; `Context` is NULL and
///   there is nothing to release. Returned to the caller, unlogged;
/// - `STATUS_NOT_SUPPORTED`: the volume cannot have section contexts: logged once per instance;
/// - anything else is undocumented: logged.
fn find_section(
    objects: &FLT_RELATED_OBJECTS,
    what: &str,
    name: &dyn Fn() -> CopiedName,
) -> Result<ContextRef<StreamSection>, NtStatus> {
    let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: the instance and file object of the operation in progress; `raw` is a valid out
    // pointer. IRQL: every caller is a pre-operation or post-create callback (<= APC_LEVEL).
    let status =
        unsafe { FltGetSectionContext(objects.Instance, objects.FileObject, &raw mut raw) };
    // STATUS_NOT_SUPPORTED is logged once per instance (a flag in its context), not once per I/O.
    let first = || {
        let state = instance_context(objects.Instance);
        state.is_none_or(|state| !state.not_supported_logged.swap(true, Ordering::Relaxed))
    };
    let status = NtStatus(status);
    match status.0 {
        // SAFETY: success returned a non-null context with one new reference that we now own;
        // its body is a `StreamSection` (the only section context type we create).
        STATUS_SUCCESS if !raw.is_null() => return Ok(unsafe { ContextRef::from_raw(raw) }),
        STATUS_NOT_SUPPORTED if first() => log!(
            "{TAG}: {}: {what}: FltGetSectionContext: {status}: this volume has no section contexts (logged once per instance)",
            name()
        ),
        STATUS_NOT_FOUND | STATUS_NOT_SUPPORTED => {}
        _ => log!("{TAG}: {}: {what}: FltGetSectionContext: {status}", name()),
    }
    Err(status)
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
    // A file the file system actually opened (`common::create` says what else there is).
    // SAFETY: this post-create's callback data, related objects and flags.
    if !unsafe { common::create::is_opened_file(data, objects, flags) } {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the callback data of this create, valid for the call.
    let name = unsafe { CopiedName::query(data) };
    // Every handle gets a mark, which names the section it holds, if any.
    let section = section_for(data, objects, &name);
    let holds = section.as_ref().map(|section| section.shared.generation());
    // FltAllocateContext, FltSetStreamHandleContext (`<= APC_LEVEL`). Unmarked, the handle's
    // later operations go unreported, and a holder leaves at once: its cleanup would not know to.
    let marked = ContextRef::attach_to_stream_handle(FILTER.get(), objects, HandleMark(holds));
    if let Err(failed) = marked {
        log!("{TAG}: {name}: {failed}: this open is not tracked");
        if let Some(section) = section.filter(|section| section.shared.leave()) {
            request_close(&section, section.as_raw(), "a holder could not be marked");
        }
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// The section this open holds: the stream's, joined, or a new one. `None` for an open that
/// holds none (it does not read data, or it could write), or when there is none to be had.
fn section_for(
    data: *mut FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &CopiedName,
) -> Option<ContextRef<StreamSection>> {
    // A holder asked for FILE_READ_DATA: the file object's `ReadAccess` is no test, since the I/O
    // manager sets it for FILE_EXECUTE too, and every image load would get a section.
    // SAFETY: the callback data of the create in progress.
    if unsafe { common::create::desired_access(data) } & FILE_READ_DATA == 0 {
        return None;
    }
    // And no write access and no write sharing, as the file system granted them: a writer could
    // conflict with the section.
    // SAFETY: the file object of the create in progress, valid for the whole callback; its
    // access fields are set once, at create (read as bytes).
    let access = unsafe { file_object::access(objects.FileObject) };
    if access.write || access.shared_write {
        log!(
            "{TAG}: {name}: opened with write access or write sharing: no section (a writer could conflict with it)"
        );
        return None;
    }
    // Twice at most: a holder that loses the creation race to another gets
    // STATUS_FLT_CONTEXT_ALREADY_DEFINED and joins the winner's section.
    for _ in 0..2 {
        match find_section(objects, "create", &|| *name) {
            Ok(section) => {
                let Some(holders) = section.shared.join() else {
                    log!("{TAG}: {name}: the section is closing: this open goes without");
                    return None;
                };
                log!(
                    "{TAG}: {name}: joined the open section (FltGetSectionContext): {holders} holders"
                );
                return Some(section);
            }
            Err(NtStatus(STATUS_NOT_FOUND)) => {}
            Err(_) => return None,
        }
        match create_section(data, objects, name) {
            Err(NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED)) => {}
            // The creator is the first holder.
            created => return created.ok().flatten(),
        }
    }
    None
}

/// Creates the stream's section with its context (`common::handoff::SharedSection::create`) and
/// publishes it in the instance's table, where any party may close it. Returns a reference for
/// the caller, the section's first holder, or `None` when the instance has no table (or is being
/// torn down). `PASSIVE_LEVEL`.
fn create_section(
    data: *mut FLT_CALLBACK_DATA,
    objects: &FLT_RELATED_OBJECTS,
    name: &CopiedName,
) -> Result<Option<ContextRef<StreamSection>>, NtStatus> {
    let instance = instance_context(objects.Instance);
    let Some(instance) = instance.filter(|instance| !instance.sections.is_closing()) else {
        log!("{TAG}: {name}: the instance has no context, or is being torn down: no section");
        return Ok(None);
    };
    let body = StreamSection {
        instance,
        name: *name,
        // SAFETY: the callback data of the create in progress.
        process: unsafe { FltGetRequestorProcessId(data) },
        shared: SharedSection::new(),
        counts: Default::default(),
    };
    // FltAllocateContext(FLT_SECTION_CONTEXT), then FltCreateSectionForDataScan, read-only.
    let section = SharedSection::create(FILTER.get(), objects, body, |s| &s.shared)
        .inspect_err(|failed| log!("{TAG}: {name}: {failed}: no section"))
        .map_err(|failed| failed.status)?;
    let (size, process) = (section.file_size(), section.context().process);
    log!(
        "{TAG}: {name}: section created (FltCreateSectionForDataScan), {size} bytes, process {process}"
    );
    // The caller's reference: it keeps the body alive while the allocation reference, the right
    // to close, goes into a slot, where another party may take it at once.
    let creator = section.context().add_ref();
    let sections = &creator.instance.sections;
    if let Some(why) = sections.publish_section(section, &creator.shared).why() {
        // SAFETY: no slot holds the allocation reference: it is ours.
        unsafe { close_section(creator.as_raw(), why) };
    }
    Ok(Some(creator))
}

/// Asks for the section's close, and closes it if this caller wins the exchange. The caller
/// holds its own reference on the context, so `section` stays valid after the close.
fn request_close(section: &StreamSection, raw: PFLT_CONTEXT, why: &str) {
    let sections = &section.instance.sections;
    if sections.request_section_close(&section.shared, raw) {
        // SAFETY: the exchange gave us the allocation reference.
        unsafe { close_section(raw, why) };
    }
}

/// Closes the section in the documented order (`common::handoff::close_section`, by way of
/// data-scan's close) and says so. `PASSIVE_LEVEL`.
///
/// # Safety
/// The caller owns the allocation reference of `raw`, a published `StreamSection`.
unsafe fn close_section(raw: PFLT_CONTEXT, why: &str) {
    common::paged_code!();
    // SAFETY: the caller's guarantee.
    let (section, status) = unsafe { handoff::close_section::<StreamSection>(raw, |s| &s.shared) };
    log!(
        "{TAG}: {}: {why}: section closed (FltCloseSectionForDataScan {status}), context released",
        section.name
    );
}

// ---- later operations: find the section again --------------------------------------------------

/// Pre-read, pre-query-information, pre-cleanup and pre-flush (`PASSIVE_LEVEL` or `APC_LEVEL`).
unsafe extern "system" fn pre_operation(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes valid related objects for the duration of the callback.
    let objects = unsafe { &*objects };
    // SAFETY: and valid callback data.
    let iopb = unsafe { callback_data::parameters(data) };
    let major = u32::from(iopb.MajorFunction);
    // Paging reads come from the memory manager (our own section's page faults among them):
    // no name queries there, and nothing to report.
    if major == IRP_MJ_READ && iopb.IrpFlags & IRP_PAGING_IO != 0 {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: (each name query) this callback's own data, and not paging I/O.
    let query_name = || unsafe { CopiedName::query(data) };
    // A flush-and-purge that meets the section is pended by the file system until the section
    // closes, and nothing notifies us (FSCTL_SET_PURGE_FAILURE_MODE): treat it as a conflict and
    // close now. Only a writer that skipped the share check can send one beside a holder.
    if major == IRP_MJ_FLUSH_BUFFERS {
        if u32::from(iopb.MinorFunction) == IRP_MN_FLUSH_AND_PURGE
            && let Ok(section) = find_section(objects, "flush and purge", &query_name)
        {
            request_close(&section, section.as_raw(), "flush and purge");
        }
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // Only handles post-create marked: an out-of-scope open, or one that is not a file, costs
    // one context lookup here (`FltGetStreamHandleContext`), no name query, no line.
    // SAFETY: `HandleMark` is the only stream-handle context this driver sets.
    let Some(mark) = (unsafe { ContextRef::<HandleMark>::of_stream_handle(objects) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // What the line calls the operation, and which of the context's counts it adds to.
    let (what, counted) = match major {
        IRP_MJ_READ => ("read", Some(0)),
        IRP_MJ_QUERY_INFORMATION => ("query information", Some(1)),
        _ => ("cleanup", None),
    };
    let found = find_section(objects, what, &query_name);
    if let Err(status @ NtStatus(STATUS_NOT_FOUND)) = found {
        let name = query_name();
        log!("{TAG}: {name}: {what}: no section (FltGetSectionContext {status})");
    }
    let Ok(section) = found else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    if let Some(count) = counted.and_then(|i| section.counts.get(i)) {
        count.fetch_add(1, Ordering::Relaxed);
    }
    let [reads, queries] = section.counts.each_ref().map(|c| c.load(Ordering::Relaxed));
    let (name, process, size) = (section.name, section.process, section.shared.file_size());
    log!(
        "{TAG}: {name}: {what}: section found (FltGetSectionContext), read {reads}, query {queries}, opened by process {process} with {size} bytes"
    );
    // Only the section this handle joined: the one it found may be a newer one.
    let holds = mark.0 == Some(section.shared.generation());
    if major == IRP_MJ_CLEANUP && holds && section.shared.leave() {
        request_close(&section, section.as_raw(), "last cleanup");
    }
    // `section` drops here: the one FltReleaseContext for this successful get.
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// `SectionNotificationCallback` (`PASSIVE_LEVEL`, on the conflicting I/O's thread): an
/// operation that needs the cache purged (a truncation, a non-cached write, an overwriting open)
/// met the section, and Filter Manager has pended it until the section is closed. Closing it here
/// lets Filter Manager requeue the operation at once. Filter Manager holds a reference on the
/// context for the duration of the call. Always returns `STATUS_SUCCESS`.
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
    log!("{TAG}: {name}: conflict (SectionNotificationCallback): the section must close");
    // The hand-off's answer (`common::handoff::Slots::answer_conflict` says why each).
    let sections = &section.instance.sections;
    match sections.answer_conflict(&section.shared, section_context, CLOSE_WAIT_MS) {
        // SAFETY: the exchange gave us the allocation reference.
        Answer::Close => unsafe { close_section(section_context, "section conflict") },
        Answer::Closed => {}
        // Filter Manager keeps the operation pended until the close, in both cases.
        Answer::NotCreatedYet => log!("{TAG}: {name}: conflict before the create returned"),
        Answer::StillClosing => log!("{TAG}: {name}: still closing after {CLOSE_WAIT_MS} ms"),
    }
    STATUS_SUCCESS
}
