//! # section-conflict: give way to conflicting I/O in the `SectionNotificationCallback`
//!
//! A background scanner reads files through a data-scan section, a chunk at a time, pausing a
//! clock tick after each chunk as slow scanning work would. I/O that needs the file's cache purged
//! (a truncating set-end-of-file, a non-cached write, an overwriting open) would wait for the
//! whole scan. Instead Filter Manager pends it and calls the `SectionNotificationCallback`, the
//! sample closes the section there, and the I/O proceeds once the chunk being read is done. It
//! scans the files opened for reading in its demo folder (`common::scope`).
//!
//! Its own code is the lesson: the `FLT_REGISTRATION` of version `0x0203`, the
//! `SectionNotificationCallback`, and the one-closer hand-off that decides who closes
//! (`common::handoff`; the rule is told once in `docs/sections.md`). The data-scan registration,
//! the section's create and close are data-scan's lesson (`common::section`); the scan thread and
//! its queue are `common::worker`. `samples/section-conflict/README.md` goes on: every call's contract, who
//! closes and why, what the model cannot show, and what you see when it runs.
#![cfg_attr(target_os = "windows", no_std)]

use core::{cell::UnsafeCell, ffi::c_void};

use common::{
    KERNEL_MODE, NtStatus,
    bindings::{
        FILE_READ_DATA, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_INSTANCE_CONTEXT,
        FLT_POSTOP_CALLBACK_STATUS, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS,
        FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_REGISTRATION_VERSION_0203, FLT_RELATED_OBJECTS,
        FLT_SECTION_CONTEXT, IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS, KeDelayExecutionThread, NTSTATUS,
        PFLT_CONTEXT, PFLT_INSTANCE, STATUS_FLT_DO_NOT_ATTACH, STATUS_NOT_FOUND, STATUS_SUCCESS,
    },
    callback_data::Described,
    context::{ContextRef, Failed},
    create::{desired_access, is_opened_file},
    filter::{FilterSlot, InstanceRef},
    handoff::{self, Answer, NextWindow, Publish, SharedSection, Slots},
    log,
    log::Tally,
    name::CopiedName,
    pool::{PoolBytes, tag},
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context_of,
        operation,
    },
    scope,
    section::{ReadError, WindowReader},
    worker::Worker,
};

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-section-conflict";

/// How much the scan reads per chunk. A close waits for the chunk being read, no longer.
pub const CHUNK_SIZE: usize = 4096;

/// The pause after each chunk, standing in for slow scanning work: one clock tick (15.625 ms) as
/// a relative `KeDelayExecutionThread` interval, in 100 ns units. A shorter one would last a
/// tick anyway: delays end on a clock interrupt.
const CHUNK_PAUSE: i64 = -156_250;

/// How many scans may wait for the scan thread. An open beyond that is not scanned: the queue,
/// and the sections its scans hold, stay bounded.
pub const QUEUE_DEPTH: usize = 16;

/// How long a notification that lost the close to another party waits for that close, in
/// milliseconds: the conflicting I/O waits for the callback, and never without a bound.
pub const CLOSE_WAIT_MS: i64 = 100;

/// The pool tag of the contexts and chunk buffers this driver allocates (`!poolused` shows `RsSf`).
const POOL_TAG: u32 = tag(b"RsSf");

/// The number of chunks a file of `size` bytes is scanned in.
#[must_use]
pub fn chunk_count(size: i64) -> usize {
    usize::try_from(size).unwrap_or(0).div_ceil(CHUNK_SIZE)
}

/// The instance context: the right to close each of the volume's open sections, one slot each
/// (`common::handoff`). Every queued scan and the one being read fit.
type Sections = Slots<{ QUEUE_DEPTH + 1 }>;

/// The section context: one scan of one file. The creator, the scan thread, notifications and
/// teardown share it; it lives while any of them holds a reference.
struct Scan {
    /// The volume's slots, kept alive by this reference for as long as the scan lives.
    sections: ContextRef<Sections>,
    /// A rundown reference on the instance: the scan thread closes outside any callback of it.
    instance: InstanceRef,
    /// The section's handle, object and size, its claim in the hand-off, and its views lock.
    shared: SharedSection,
    /// The file, as `FltGetFileNameInformation` named it in post-create.
    name: CopiedName,
    /// One chunk of non-paged pool, the target of `MmCopyMemory`; only the scan thread uses it.
    reader: UnsafeCell<WindowReader<PoolBytes>>,
}

impl Scan {
    /// What a scan needs that can fail, before its section exists: the volume's slots, the chunk
    /// buffer, and the instance reference (refused once the instance's teardown has begun).
    fn new(objects: &FLT_RELATED_OBJECTS, name: &CopiedName) -> Result<Self, Failed> {
        let failed = |call| move |status| Failed::new(call, status);
        Ok(Self {
            // SAFETY: a live instance (its post-create); `Sections` is its one context type.
            sections: unsafe { ContextRef::of_instance(objects.Instance) }.ok_or(Failed::new(
                "FltGetInstanceContext",
                NtStatus(STATUS_NOT_FOUND),
            ))?,
            reader: UnsafeCell::new(
                WindowReader::allocate(CHUNK_SIZE, 0, 0, POOL_TAG)
                    .map_err(failed("ExAllocatePool2"))?,
            ),
            instance: InstanceRef::new(objects.Instance).map_err(failed("FltObjectReference"))?,
            shared: SharedSection::new(),
            name: *name,
        })
    }
}

// ---- the counts of the unload summary, by index --------------------------------------------------

const STARTED: usize = 0;
const COMPLETE: usize = 1;
const CONFLICT: usize = 2;
const TEARDOWN: usize = 3;
const STOPPED: usize = 4;
const FAILED: usize = 5;
const CONFLICTS: usize = 6;
const RACED: usize = 7;
static COUNTS: Tally<8> = Tally::new();

// ---- registration -------------------------------------------------------------------------------

static FILTER: FilterSlot = FilterSlot::new();

/// The scan thread and its queue of section context references (`common::worker`).
static SCANS: Worker<QUEUE_DEPTH> = Worker::new();

static CONTEXTS: ContextTable<3> = ContextTable::new([
    context_of::<Scan>(FLT_SECTION_CONTEXT, POOL_TAG),
    context_of::<Sections>(FLT_INSTANCE_CONTEXT, POOL_TAG),
    CONTEXT_END,
]);

static OPERATIONS: OperationTable<3> = OperationTable::new([
    operation(IRP_MJ_CREATE, Some(scope::pre_create), Some(post_create)),
    operation(IRP_MJ_FLUSH_BUFFERS, Some(pre_flush), None),
    OPERATION_END,
]);

/// Version `0x0203`: the first whose `SectionNotificationCallback` Filter Manager reads.
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)
    .contexts(&CONTEXTS)
    .operations(&OPERATIONS)
    .instance_setup(Some(instance_setup))
    // Without it, a manual detach (`fltmc detach`) is refused.
    .instance_query_teardown(Some(common::registration::allow_detach))
    .instance_teardown_start(Some(instance_teardown_start))
    .unload(Some(unload))
    .section_notification(Some(section_conflict));

// DriverEntry starts the scan thread before it registers and starts filtering; the unload
// callback stops the thread, unregisters, then reports (the passthrough sample writes the
// registration out and explains each call).
common::driver_entry!(REGISTRATION, FILTER, TAG, worker: SCANS, scan_thread, unloaded: report);

/// The unload's summary line. The counts start again from zero for the next load: the host tests
/// load the same image many times in one process.
fn report() {
    let [
        started,
        complete,
        conflict,
        teardown,
        stopped,
        failed,
        conflicts,
        raced,
    ] = COUNTS.take();
    log!(
        "{TAG}: unloaded: {started} scans: {complete} complete, {conflict} aborted by conflicting I/O, {teardown} aborted by instance teardown, {stopped} stopped for unload, {failed} failed; {conflicts} section conflicts, {raced} before FltCreateSectionForDataScan returned"
    );
}

// ---- instances ----------------------------------------------------------------------------------

/// `InstanceSetup` (`PASSIVE_LEVEL`): attach only where sections for data scan can be created,
/// and only with the slots that let teardown close them.
unsafe extern "system" fn instance_setup(
    objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _volume_device_type: u32,
    _file_system_type: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let instance = unsafe { (*objects).Instance };
    // SAFETY: the instance being set up (`<= APC_LEVEL`). `STATUS_NOT_SUPPORTED`: a network share.
    let status = unsafe { common::section::register_for_data_scan(instance) };
    if !status.is_success() {
        log!("{TAG}: not attaching to this volume: FltRegisterForDataScan returned {status}");
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    if let Err(failed) = ContextRef::attach_to_instance(FILTER.get(), instance, Sections::new()) {
        log!("{TAG}: not attaching to this volume: {failed}");
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    STATUS_SUCCESS
}

/// `InstanceTeardownStart` (`PASSIVE_LEVEL`): a dismount, a detach or an unload. Close every
/// section the volume still has open, and take its queued scans out of the queue, so that the
/// teardown, which waits for their instance references, waits for no scan.
unsafe extern "system" fn instance_teardown_start(
    objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let instance = unsafe { (*objects).Instance };
    // SAFETY: the instance being torn down; `Sections` is its one context type.
    let Some(sections) = (unsafe { ContextRef::<Sections>::of_instance(instance) }) else {
        return;
    };
    // A creator that publishes from now on closes its own section.
    for raw in sections.take_all() {
        // SAFETY: `take_all` handed us the allocation reference.
        let (scan, closed) = unsafe { close(raw) };
        COUNTS.add(TEARDOWN);
        let name = scan.name;
        log!("{TAG}: {name}: instance teardown: section closed ({closed})");
    }
    // SAFETY: (the predicate) every queued item is a referenced `Scan` context.
    let of_instance = |raw: *mut c_void| unsafe { &*raw.cast::<Scan>() }.instance.get() == instance;
    SCANS.remove_if(of_instance, |raw| {
        // SAFETY: the queue's reference, handed over.
        finish(&unsafe { ContextRef::from_raw(raw) }, 0, &Ending::Aborted);
    });
}

// ---- post-create: start a scan --------------------------------------------------------------------

/// Post-create (`PASSIVE_LEVEL`): start a background scan of a file opened for reading.
unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    common::paged_code!();
    // SAFETY: valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    // A file the file system actually opened (`common::create` says what else there is).
    // SAFETY: the post-create's callback data, objects and flags.
    if SCANS.is_stopping() || !unsafe { is_opened_file(data, objects, flags) } {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the callback data of a create, valid for the call.
    if unsafe { desired_access(data) } & FILE_READ_DATA != 0 {
        start_scan(data, objects);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// Creates the section and queues its scan. What can fail comes first (a place in the queue, the
/// instance reference, the chunk buffer), so no failure has a section to undo. Every failure is
/// logged and leaves the open alone.
fn start_scan(data: *mut FLT_CALLBACK_DATA, objects: &FLT_RELATED_OBJECTS) {
    // SAFETY: the callback data of the create being completed, at PASSIVE_LEVEL.
    let name = unsafe { CopiedName::query(data) };
    let Some(place) = SCANS.reserve() else {
        return log!("{TAG}: {name}: not scanned: {QUEUE_DEPTH} scans are already waiting");
    };
    // FltAllocateContext, then FltCreateSectionForDataScan: the context, and the claim the
    // notification uses, exist first, since the notification can run before the create returns.
    let created = Scan::new(objects, &name)
        .and_then(|body| SharedSection::create(FILTER.get(), objects, body, |s| &s.shared));
    let section = match created {
        Ok(section) => section,
        Err(failed) => return log!("{TAG}: {name}: not scanned: {failed}"),
    };
    let size = section.file_size();
    COUNTS.add(STARTED);
    // Our own reference: it keeps the scan while the right to close goes into a slot.
    let scan = section.context().add_ref();
    let published = scan.sections.publish_section(section, &scan.shared);
    if let Some(why) = published.why() {
        // SAFETY: no slot holds the allocation reference: it came back to us.
        let (_, closed) = unsafe { close(scan.as_raw()) };
        // A conflict before the create returned aborts the scan as surely as one after it.
        let raced = published == Publish::Requested;
        COUNTS.add(if raced { CONFLICT } else { TEARDOWN });
        if raced {
            COUNTS.add(RACED);
        }
        return log!("{TAG}: {name}: {why}: section closed ({closed}), no scan");
    }
    let chunks = chunk_count(size);
    log!("{TAG}: {name}: scanning {size} bytes in {chunks} chunks");
    // The queue adopts our reference, or gives it back if the thread has stopped meanwhile.
    if let Err(raw) = place.push(scan.into_raw()) {
        // SAFETY: the reference the queue refused, still ours.
        finish(&unsafe { ContextRef::from_raw(raw) }, 0, &Ending::Stopped);
    }
}

// ---- the scan thread --------------------------------------------------------------------------------

/// How a scan ended.
enum Ending {
    Complete(u32),
    Aborted,
    Stopped,
    Failed(ReadError),
}

/// The scan thread's routine: every queued scan in turn (`common::worker`).
unsafe extern "system" fn scan_thread() {
    // SAFETY: (each item) the reference `start_scan` gave the queue, adopted once.
    SCANS.serve(|raw| scan(&unsafe { ContextRef::from_raw(raw) }));
}

/// Reads the file chunk by chunk, through one view per chunk (`SharedSection::read_next`: the
/// view is copied with `MmCopyMemory`, never read), until the end, a failure, an unload, or a
/// close by someone else.
fn scan(scan: &ContextRef<Scan>) {
    // SAFETY: only the scan thread touches the reader, and it scans one file at a time.
    let reader = unsafe { &mut *scan.reader.get() };
    // The size FltCreateSectionForDataScan reported: never the views' (whole pages).
    reader.restart(u64::try_from(scan.shared.file_size()).unwrap_or(0));
    // FNV-1a, standing in for whatever a real scanner computes.
    let (mut hash, mut done) = (0x811C_9DC5_u32, 0);
    let ending = loop {
        if SCANS.is_stopping() {
            break Ending::Stopped;
        }
        match scan.shared.read_next(reader) {
            NextWindow::Bytes(bytes) => {
                let fnv = |h: u32, b: &u8| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
                hash = bytes.iter().fold(hash, fnv);
            }
            NextWindow::End => break Ending::Complete(hash),
            NextWindow::Closed => break Ending::Aborted,
            NextWindow::Failed(error) => break Ending::Failed(error),
        }
        done += 1;
        let pause = CHUNK_PAUSE;
        // SAFETY: a relative interval at PASSIVE_LEVEL, with no lock held and no view mapped.
        unsafe { KeDelayExecutionThread(KERNEL_MODE, false, &raw const pause) };
    };
    finish(scan, done, &ending);
}

/// The end of a scan: close the section unless another party has taken it, then say how the scan
/// ended. The scan thread asks for the close like everyone else (`common::handoff`).
fn finish(scan: &ContextRef<Scan>, done: usize, ending: &Ending) {
    let (name, chunks) = (scan.name, chunk_count(scan.shared.file_size()));
    let taken = scan
        .sections
        .request_section_close(&scan.shared, scan.as_raw());
    if !taken {
        // A notification or a teardown took the section, closed it, and counted the scan.
        return log!(
            "{TAG}: {name}: scan aborted after {done} of {chunks} chunks: another party closed the section"
        );
    }
    // SAFETY: the exchange gave us the allocation reference.
    let (_, closed) = unsafe { close(scan.as_raw()) };
    // `Aborted` does not come here: a closed section was taken by someone else, and the
    // exchange above failed.
    COUNTS.add(match ending {
        Ending::Complete(_) => COMPLETE,
        Ending::Failed(_) => FAILED,
        Ending::Stopped | Ending::Aborted => STOPPED,
    });
    match ending {
        Ending::Complete(hash) => log!(
            "{TAG}: {name}: scan complete: {chunks} chunks, FNV-1a {hash:#010x}; section closed ({closed})"
        ),
        Ending::Failed(error) => log!(
            "{TAG}: {name}: scan failed after {done} of {chunks} chunks: {error}; section closed ({closed})"
        ),
        Ending::Stopped | Ending::Aborted => log!(
            "{TAG}: {name}: scan stopped for unload after {done} of {chunks} chunks; section closed ({closed})"
        ),
    }
}

/// The close by whoever won the hand-off, in the documented order (`common::handoff::close_section`,
/// by way of data-scan's close): after the chunk being read, and before any other is mapped.
/// Returns a reference that keeps the scan, and what `FltCloseSectionForDataScan` said.
/// `PASSIVE_LEVEL`.
///
/// # Safety
/// The caller owns the allocation reference of `raw`, a published `Scan`.
unsafe fn close(raw: PFLT_CONTEXT) -> (ContextRef<Scan>, NtStatus) {
    // SAFETY: the caller's guarantee.
    unsafe { handoff::close_section::<Scan>(raw, |s| &s.shared) }
}

// ---- the notification --------------------------------------------------------------------------

/// Pre-flush: a flush-and-purge of a stream with an open section waits for the section to
/// close, and nobody notifies the filter of it (`common::handoff::section_of_flush_and_purge`
/// says why). The filter gives way exactly as for a notification, before the file system sees
/// the flush: it calls its own notification callback.
unsafe extern "system" fn pre_flush(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    // SAFETY: this pre-flush's own data and objects; our section contexts are `Scan`s.
    if let Some(scan) = unsafe { handoff::section_of_flush_and_purge::<Scan>(data, objects) } {
        // SAFETY: the reference just taken keeps the context for the call; `data` is this flush.
        unsafe { section_conflict(objects.Instance, scan.as_raw(), data) };
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// `SectionNotificationCallback` (`PASSIVE_LEVEL`, on the conflicting I/O's thread): an
/// operation that needs the cache purged met the section, and Filter Manager has pended it until
/// the section is closed. Give the section up, as `common::handoff`'s answer says: close it if
/// this caller wins the exchange; otherwise another party closes, and this one waits for that
/// close at most [`CLOSE_WAIT_MS`], or not at all while the create has not returned. Filter
/// Manager holds a reference on the context for the call. Always returns `STATUS_SUCCESS`.
unsafe extern "system" fn section_conflict(
    _instance: PFLT_INSTANCE,
    raw: PFLT_CONTEXT,
    data: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    common::paged_code!();
    // SAFETY: one of this driver's section contexts (a `Scan`), referenced for the call.
    let scan = unsafe { &*raw.cast::<Scan>() };
    // SAFETY: the conflicting I/O's callback data, valid for the call.
    let (name, io) = (scan.name, unsafe { Described::new(data) });
    COUNTS.add(CONFLICTS);
    match scan
        .sections
        .answer_conflict(&scan.shared, raw, CLOSE_WAIT_MS)
    {
        Answer::Close => {
            log!(
                "{TAG}: {name}: {io} conflicts with the scan's section: aborting the scan and closing the section"
            );
            // SAFETY: the exchange gave us the allocation reference.
            let (_, closed) = unsafe { close(raw) };
            COUNTS.add(CONFLICT);
            log!("{TAG}: {name}: section closed ({closed}): {io} proceeds");
        }
        Answer::Closed => {}
        Answer::NotCreatedYet => log!(
            "{TAG}: {name}: {io} arrived before FltCreateSectionForDataScan returned: the creator closes the section when the create returns; {io} waits until then"
        ),
        Answer::StillClosing => log!(
            "{TAG}: {name}: {io}: the section was still being closed after {CLOSE_WAIT_MS} ms; {io} waits until it is"
        ),
    }
    STATUS_SUCCESS
}
