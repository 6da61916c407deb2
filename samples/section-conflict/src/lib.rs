//! # section-conflict: give way to conflicting I/O in the `SectionNotificationCallback`
//!
//! A background scanner holds a data-scan section open while it reads a file, and gives the
//! section up the moment I/O arrives that needs the cache purged (a truncating set-end-of-file, a
//! non-cached write, an overwriting open, a flush-and-purge), which otherwise waits for the whole
//! scan (`FSCTL_SET_PURGE_FAILURE_MODE`). It scans only files opened for reading in its demo
//! folder (`common::scope`). The README has each call's contract in full.
//!
//! ## The calls it teaches
//! - **`FLT_REGISTRATION` version `0x0203`**, the first with a `SectionNotificationCallback`.
//! - **`PsCreateSystemThread`** (`PASSIVE_LEVEL`) in `DriverEntry`: one scan thread, whose object
//!   `ObReferenceObjectByHandle` keeps; unload waits for it. A scan can last minutes, and a work
//!   item "must run for a limited amount of time" (`IO_WORKITEM_ROUTINE`).
//! - **`FltRegisterForDataScan`** (`<= APC_LEVEL`); `STATUS_NOT_SUPPORTED` means do not attach.
//! - **Post-create**: everything that can fail comes first (pool, a section context whose pointer
//!   to the scan is set *before* the create, an instance reference, a slot in a queue of
//!   [`QUEUE_DEPTH`]), then **`FltCreateSectionForDataScan`** (`<= APC_LEVEL`; called at
//!   `PASSIVE_LEVEL`). A failure is logged and the open goes on.
//! - **The scan thread**, per [`CHUNK_SIZE`] chunk: `MmMapViewInSystemSpaceEx` of that chunk,
//!   `MmCopyMemory`, `MmUnmapViewInSystemSpace` (`<= APC_LEVEL`); [`is_paced`] files pause.
//! - **`SectionNotificationCallback(Instance, SectionContext, Data)`** (`PASSIVE_LEVEL`; `Data` is
//!   the conflicting I/O, pended; returns `STATUS_SUCCESS`): close the section; Filter Manager
//!   then requeues the I/O. It may run before `FltCreateSectionForDataScan` has returned, when
//!   the handle and object are not yet valid. A flush-and-purge is notified to no one: a
//!   pre-flush gives way to it the same way. **`InstanceTeardownStart`** (`PASSIVE_LEVEL`)
//!   closes the instance's sections and sets a teardown flag that a post-create in flight reads
//!   when it queues: a dismount or detach never waits for a scan.
//!
//! ## Exactly one party closes
//! Each scan has an ownership word: `CREATING` until the create returns, then `OPEN`. Whoever
//! exchanges it away from `OPEN` (the callback, the scan thread, teardown) closes, in the
//! documented order: the scan's push lock exclusive (no view mapped), `ObCloseHandle`,
//! `ObDereferenceObject`, `FltCloseSectionForDataScan`. A callback that finds `CREATING` marks the
//! scan aborted, and the creator closes right after its create returns. The callback never waits
//! for a scan, and waits for another party's close for at most [`CLOSE_WAIT_MS`].
//!
//! ## What you see when it runs
//! `cargo xtask demo section-conflict` runs it in `fltsim`; on Windows, `Start-SampleDemo.ps1
//! -Name section-conflict` truncates a file in the demo folder while its scan runs:
//! `rs-section-conflict: <path>\big.bin: a set-end-of-file to 1048576 bytes conflicts with the
//! scan's section: aborting the scan and closing the section`, then `section closed
//! (STATUS_SUCCESS (0x00000000)): a set-end-of-file to 1048576 bytes proceeds`.
#![cfg_attr(target_os = "windows", no_std)]

use core::{
    cell::UnsafeCell,
    ffi::c_void,
    fmt::{self, Write as _},
    sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, Ordering},
};

use common::{
    KERNEL_MODE, NtStatus,
    bindings::{
        DRIVER_OBJECT, Executive, FILE_END_OF_FILE_INFORMATION, FILE_OBJECT, FILE_READ_DATA,
        FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_INSTANCE_CONTEXT, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
        FLT_REGISTRATION_VERSION_0203, FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT,
        FltAcquirePushLockExclusive, FltAcquirePushLockShared, FltCloseSectionForDataScan,
        FltCreateSectionForDataScan, FltDeletePushLock, FltInitializePushLock,
        FltObjectDereference, FltObjectReference, FltReferenceContext, FltRegisterForDataScan,
        FltReleasePushLock, HANDLE, IRP_MJ_CREATE, IRP_MJ_FLUSH_BUFFERS, IRP_MJ_SET_INFORMATION,
        IRP_MJ_WRITE, IRP_MN_FLUSH_AND_PURGE, IRP_NOCACHE, KeDelayExecutionThread,
        KeWaitForSingleObject, NTSTATUS, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, ObCloseHandle,
        ObfDereferenceObject, PAGE_READONLY, PFLT_CONTEXT, PFLT_INSTANCE, SEC_COMMIT,
        SECTION_MAP_READ, SECTION_QUERY, STATUS_FLT_DO_NOT_ATTACH, STATUS_SUCCESS, UNICODE_STRING,
    },
    context::{ContextRef, TeardownFlag},
    create::{desired_access, is_opened_file},
    event::Event,
    filter::{FilterSlot, register_and_start},
    log,
    log::LineBuffer,
    name::CopiedName,
    params,
    pool::{PoolBox, PoolBytes, tag},
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context_of,
        operation,
    },
    scope::{self, SCOPE},
    section::{ReadError, WindowReader, map_view_of},
};
use windows_sys::{
    Wdk::{
        Storage::FileSystem::FileEndOfFileInformation,
        System::SystemServices::{
            ObReferenceObjectByHandle, PsCreateSystemThread, PsTerminateSystemThread,
        },
    },
    Win32::System::{
        Kernel::{NotificationEvent, SynchronizationEvent},
        Threading::THREAD_ALL_ACCESS,
    },
};

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-section-conflict";

/// How much the scan thread reads per chunk; it polls the "aborted" flag between chunks.
pub const CHUNK_SIZE: usize = 4096;

/// The pause after each chunk of a *paced* scan (a file in the demo folder, see [`is_paced`]):
/// one clock tick, 15.625 ms, as a relative `KeDelayExecutionThread` interval (100 ns units,
/// negative). A shorter pause would last a tick anyway: delays end on a clock interrupt. It
/// stands in for slow scanning work, and keeps the demo's scan in flight long enough for a
/// conflict to meet it (a 64 MiB file: about 4 minutes). Every other file is scanned at memory
/// speed, with no pause.
const CHUNK_PAUSE: i64 = -156_250;

/// The folder whose files are scanned slowly: a path component of this name, matched without
/// regard to case (the demo's `%TEMP%\rs-minifilter-demo`). The decision is made per file, in
/// [`is_paced`], so that a configurable scope can replace this default later.
pub const DEMO_FOLDER: &str = "rs-minifilter-demo";

/// How many scans may wait for the scan thread. A read-open beyond that is not scanned (the
/// sample fails open): the queue, and the sections its scans hold open, stay bounded.
pub const QUEUE_DEPTH: usize = 16;

/// The pool tag of the scan state (`!poolused` shows `RsSf`) and of the section context (`RsCx`).
/// Each sample has tags of its own, so `!poolused` tells whose memory leaked.
const SCAN_TAG: u32 = tag(b"RsSf");
const CONTEXT_TAG: u32 = tag(b"RsCx");

/// How long a notification waits for a close another party is making, in milliseconds. The scan
/// thread's or a teardown's close takes microseconds; a creator's waits for its create to return,
/// which can take longer, and a notification must not hold the conflicting I/O without a bound.
pub const CLOSE_WAIT_MS: i64 = 100;

// The scan state's ownership word (see the module doc).
/// `FltCreateSectionForDataScan` has not returned: nobody has the handle or the object yet.
const CREATING: u32 = 0;
/// Published: the scan is queued or running, and whoever takes the word first closes.
const OPEN: u32 = 1;
/// Taken by a `SectionNotificationCallback` (a conflicting I/O).
const CONFLICT: u32 = 2;
/// Taken by the scan thread, which finished or stopped.
const FINISHING: u32 = 3;
/// Taken by `InstanceTeardownStart`.
const TEARDOWN: u32 = 4;

/// Whether the scan of `name` (as opened, e.g. `\Device\HarddiskVolume3\Users\me\AppData\Local\Temp\rs-minifilter-demo\big.bin`)
/// pauses after each chunk: only inside the demo folder.
#[must_use]
pub fn is_paced(name: &str) -> bool {
    name.split('\\')
        .any(|component| component.eq_ignore_ascii_case(DEMO_FOLDER))
}

/// The number of chunks a file of `size` bytes is scanned in.
#[must_use]
pub fn chunk_count(size: i64) -> usize {
    usize::try_from(size).unwrap_or(0).div_ceil(CHUNK_SIZE)
}

// ---- state ---------------------------------------------------------------------------------

/// One background scan, in non-paged pool. Shared by the creator, the scan thread, `InstanceTeardownStart` and any number of
/// notification callbacks; it lives as long as the section context that owns it.
struct Scan {
    /// The instance the section belongs to; the scan holds a rundown reference on it.
    instance: PFLT_INSTANCE,
    /// `CREATING`, `OPEN`, or who took it (`CONFLICT`, `FINISHING`, `TEARDOWN`): who may close
    /// the section.
    state: AtomicU32,
    /// Set by whoever aborts the scan; the scan thread polls it between chunks.
    aborted: AtomicBool,
    /// Whether the scan pauses after each chunk ([`is_paced`]).
    paced: bool,
    /// The kernel handle and object `FltCreateSectionForDataScan` returned, published before
    /// `state` becomes `OPEN`.
    handle: AtomicPtr<c_void>,
    object: AtomicPtr<c_void>,
    /// The file size the create reported.
    size: AtomicI64,
    /// Push lock: the scan thread holds it shared for one chunk (while a view is mapped); the closer
    /// holds it exclusive while it closes, so no view is ever mapped across the close.
    chunk_lock: UnsafeCell<usize>,
    /// Notification event, set once the section context is unlinked; a callback that lost the
    /// exchange waits for it.
    closed: Event,
    /// The file's name as opened (`FltGetFileNameInformation`), for log lines and [`is_paced`].
    name: LineBuffer,
    /// The scan thread's reader: one chunk of non-paged pool, the target of its `MmCopyMemory`
    /// calls. Allocated with the scan state, before the section exists (as everything else that
    /// can fail is); only the scan thread touches it.
    reader: UnsafeCell<WindowReader<PoolBytes>>,
}

impl Scan {
    /// Allocates the scan state in pool and initializes its push lock and event in place.
    fn allocate(instance: PFLT_INSTANCE, name: LineBuffer) -> Result<PoolBox<Self>, NtStatus> {
        let reader = WindowReader::allocate(CHUNK_SIZE, 0, 0, SCAN_TAG)?;
        let scan = PoolBox::new(
            Self {
                instance,
                state: AtomicU32::new(CREATING),
                aborted: AtomicBool::new(false),
                paced: is_paced(name.as_str()),
                handle: AtomicPtr::new(core::ptr::null_mut()),
                object: AtomicPtr::new(core::ptr::null_mut()),
                size: AtomicI64::new(0),
                chunk_lock: UnsafeCell::new(0),
                closed: Event::new(),
                name,
                reader: UnsafeCell::new(reader),
            },
            SCAN_TAG,
        )?;
        // SAFETY: the push lock lives in the pool block, which does not move; deleted in `drop`.
        unsafe { FltInitializePushLock(scan.chunk_lock.get()) };
        // SAFETY: the event lives in the same block, which does not move, and nobody else can
        // reach the scan yet; a notification event, initially not set.
        unsafe { scan.closed.init(NotificationEvent) };
        Ok(scan)
    }

    fn name(&self) -> &str {
        self.name.as_str()
    }

    fn signal_closed(&self) {
        self.closed.set();
    }

    /// Waits at most [`CLOSE_WAIT_MS`] for a close another party has taken on; `false` if it
    /// has not finished by then. `PASSIVE_LEVEL`, holding no lock.
    fn wait_closed(&self) -> bool {
        self.closed.wait(Some(CLOSE_WAIT_MS))
    }
}

/// The section context. Its one field is the back-pointer to the scan (which it owns, so the
/// scan lives exactly as long as any reference to the context).
struct SectionContext {
    scan: PoolBox<Scan>,
}

impl Drop for SectionContext {
    /// Runs in the context's cleanup callback, when its last reference goes (or when
    /// `FltAllocateContext` fails and the value is dropped unused).
    fn drop(&mut self) {
        // SAFETY: `Scan::allocate` initialized the lock before the scan could be put here;
        // nobody holds it (no reference to the context is left), and it is deleted once.
        unsafe { FltDeletePushLock(self.scan.chunk_lock.get()) };
    }
}

/// How a scan ended.
enum Ending {
    Complete(u32),
    Aborted,
    Stopped,
    Failed(&'static str, NtStatus),
}

// ---- registration --------------------------------------------------------------------------

static FILTER: FilterSlot = FilterSlot::new();

/// Set by the unload callback: the scan in flight stops at its next chunk, no new scans start.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Counters for the unload summary.
static STARTED: AtomicU32 = AtomicU32::new(0);
static COMPLETED: AtomicU32 = AtomicU32::new(0);
static ABORTED: AtomicU32 = AtomicU32::new(0);
static STOPPED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
static CONFLICTS: AtomicU32 = AtomicU32::new(0);
static RACED: AtomicU32 = AtomicU32::new(0);

static TORN_DOWN: AtomicU32 = AtomicU32::new(0);

// ---- the scan queue and the scan thread ----------------------------------------------------

/// The scans waiting for the scan thread, and the one it is working on. Each entry is a section
/// context reference the queue owns (with the scan's instance reference).
struct Queue {
    slots: [PFLT_CONTEXT; QUEUE_DEPTH],
    head: usize,
    len: usize,
    /// Slots promised to creates in flight, so a scan never finds the queue full after its
    /// section exists.
    reserved: usize,
    /// Set when the thread stops: nothing is queued any more.
    closed: bool,
    /// The scan the thread is working on (NULL between scans).
    current: PFLT_CONTEXT,
}

/// The queue behind its push lock, and the synchronization event that wakes the thread.
struct ScanQueue {
    lock: UnsafeCell<usize>,
    work: Event,
    inner: UnsafeCell<Queue>,
}

// SAFETY: `inner` is only touched with `lock` held exclusive (`ScanQueue::with`); the lock and
// the event are kernel objects made for concurrent use.
unsafe impl Sync for ScanQueue {}

static QUEUE: ScanQueue = ScanQueue {
    lock: UnsafeCell::new(0),
    // DriverEntry initializes it.
    work: Event::new(),
    inner: UnsafeCell::new(Queue {
        slots: [core::ptr::null_mut(); QUEUE_DEPTH],
        head: 0,
        len: 0,
        reserved: 0,
        closed: false,
        current: core::ptr::null_mut(),
    }),
};

/// The scan thread's object (referenced), waited for at unload.
static THREAD: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

impl ScanQueue {
    /// Resets the queue and initializes its lock and event (`DriverEntry`, before any user).
    fn init(&self) {
        // SAFETY: no other user yet: the thread and the callbacks start after this.
        unsafe {
            *self.inner.get() = Queue {
                slots: [core::ptr::null_mut(); QUEUE_DEPTH],
                head: 0,
                len: 0,
                reserved: 0,
                closed: false,
                current: core::ptr::null_mut(),
            };
        }
        // SAFETY: a static push lock, initialized before use; deleted at unload.
        unsafe { FltInitializePushLock(self.lock.get()) };
        // SAFETY: a static event, which does not move, and no other user yet (see above);
        // synchronization: one wait is satisfied per set.
        unsafe { self.work.init(SynchronizationEvent) };
    }

    /// Runs `f` on the queue with its lock held exclusive (`<= APC_LEVEL`).
    fn with<R>(&self, f: impl FnOnce(&mut Queue) -> R) -> R {
        // SAFETY: the push lock DriverEntry initialized; released below.
        unsafe { FltAcquirePushLockExclusive(self.lock.get()) };
        // SAFETY: the lock is held exclusive: nobody else touches `inner`.
        let result = f(unsafe { &mut *self.inner.get() });
        // SAFETY: acquired above by this thread.
        unsafe { FltReleasePushLock(self.lock.get()) };
        result
    }

    fn wake(&self) {
        self.work.set();
    }

    /// Promises a slot to a create; `false` when the queue is full or closed.
    fn reserve(&self) -> bool {
        self.with(|q| {
            let free = !q.closed && q.len + q.reserved < QUEUE_DEPTH;
            if free {
                q.reserved += 1;
            }
            free
        })
    }

    fn unreserve(&self) {
        self.with(|q| q.reserved -= 1);
    }

    /// Queues a reserved scan; `false` if the thread has stopped, or the scan's instance is being
    /// torn down, meanwhile (the caller keeps it).
    fn push(&self, context: PFLT_CONTEXT, teardown: &TeardownFlag) -> bool {
        let queued = self.with(|q| {
            q.reserved -= 1;
            // Read under the lock: teardown sets the flag before it takes the lock to empty the
            // queue, so either it finds this scan queued or this sees its flag.
            if q.closed || teardown.is_set() {
                return false;
            }
            q.slots[(q.head + q.len) % QUEUE_DEPTH] = context;
            q.len += 1;
            true
        });
        if queued {
            self.wake();
        }
        queued
    }

    /// The next scan, which becomes the current one (the thread only).
    fn take_next(&self) -> Option<PFLT_CONTEXT> {
        self.with(|q| {
            if q.len == 0 {
                return None;
            }
            let context = q.slots[q.head];
            q.head = (q.head + 1) % QUEUE_DEPTH;
            q.len -= 1;
            q.current = context;
            Some(context)
        })
    }

    /// The thread is done with its current scan (before it drops its reference).
    fn done_with_current(&self) {
        self.with(|q| q.current = core::ptr::null_mut());
    }

    fn close(&self) {
        self.with(|q| q.closed = true);
    }

    /// Removes every queued scan of `instance` into `taken` (how many: the return's first
    /// value), and returns a new reference to the current scan if it is one of `instance`'s.
    fn take_instance(
        &self,
        instance: PFLT_INSTANCE,
        taken: &mut [PFLT_CONTEXT; QUEUE_DEPTH],
    ) -> (usize, Option<ContextRef<SectionContext>>) {
        self.with(|q| {
            let of_instance = |context: PFLT_CONTEXT| {
                // SAFETY: a context the queue holds a reference to; its body is a SectionContext.
                let body = unsafe { &*context.cast::<SectionContext>() };
                body.scan.instance == instance
            };
            let (mut count, mut kept) = (0, 0);
            for i in 0..q.len {
                let context = q.slots[(q.head + i) % QUEUE_DEPTH];
                if of_instance(context) {
                    taken[count] = context;
                    count += 1;
                } else {
                    q.slots[(q.head + kept) % QUEUE_DEPTH] = context;
                    kept += 1;
                }
            }
            q.len = kept;
            let current = (!q.current.is_null() && of_instance(q.current)).then(|| {
                // SAFETY: the current scan's context stays referenced while the lock is held
                // (the thread clears `current` under it before dropping its reference).
                unsafe { FltReferenceContext(q.current) };
                // SAFETY: the reference just taken, owned by the returned value.
                unsafe { ContextRef::<SectionContext>::from_raw(q.current) }
            });
            (count, current)
        })
    }
}

/// Creates the scan thread and keeps a reference to its object, to wait for it at unload.
fn start_thread() -> Result<(), NtStatus> {
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: valid out pointer and attributes (a kernel handle); no process (the system
    // process) and no client id, as the page asks of a driver-created thread. PASSIVE_LEVEL.
    // windows-sys declares PKSTART_ROUTINE without its StartContext parameter; the thread needs
    // none (its work is the static queue), so the routine takes none and NULL is passed.
    let status = NtStatus(unsafe {
        PsCreateSystemThread(
            &raw mut handle,
            THREAD_ALL_ACCESS,
            &raw const attributes,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            Some(scan_thread),
            core::ptr::null(),
        )
    });
    status.ok()?;
    let mut object: *mut c_void = core::ptr::null_mut();
    // SAFETY: the kernel handle just returned. KernelMode with no object type is allowed, and
    // with a handle this driver just created none of the documented failures applies.
    let referenced = NtStatus(unsafe {
        ObReferenceObjectByHandle(
            handle,
            THREAD_ALL_ACCESS,
            0,
            KERNEL_MODE,
            &raw mut object,
            core::ptr::null_mut(),
        )
    });
    // SAFETY: the handle PsCreateSystemThread returned, closed once; the object reference (if
    // taken) keeps the thread object.
    unsafe { ObCloseHandle(handle, KERNEL_MODE) };
    if !referenced.is_success() {
        // Not expected (see above). Tell the thread to stop; it ends within microseconds, but
        // nothing can wait for it: a real driver that meets this may prefer to stay loaded.
        log!("{TAG}: ObReferenceObjectByHandle of the scan thread returned {referenced}");
        STOPPING.store(true, Ordering::Release);
        QUEUE.wake();
        return Err(referenced);
    }
    THREAD.store(object, Ordering::Release);
    Ok(())
}

/// Stops the scan thread and waits for it to end (unload, or a failed `DriverEntry`).
fn stop_thread() {
    STOPPING.store(true, Ordering::Release);
    QUEUE.wake();
    let object = THREAD.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if object.is_null() {
        return;
    }
    // SAFETY: the referenced thread object, a dispatcher object signalled when the thread ends;
    // PASSIVE_LEVEL, no timeout: the thread ends after its current chunk.
    unsafe { KeWaitForSingleObject(object, Executive, KERNEL_MODE, false, core::ptr::null()) };
    // SAFETY: the reference ObReferenceObjectByHandle took, dropped once.
    unsafe { ObfDereferenceObject(object) };
}

/// The scan thread (`PASSIVE_LEVEL`, the system process): scans queued files one after another,
/// sleeping on the queue's event in between. It holds no system worker thread, however long a
/// paced scan takes.
unsafe extern "system" fn scan_thread() {
    loop {
        drain_queue();
        if STOPPING.load(Ordering::Acquire) {
            break;
        }
        // PASSIVE_LEVEL, no timeout: the event is set for every queued scan and at unload.
        let _ = QUEUE.work.wait(None);
    }
    // Nothing is queued from now on; what is queued stops at once (STOPPING is set).
    QUEUE.close();
    drain_queue();
    // SAFETY: this is a system thread of this driver; it does not return.
    unsafe { PsTerminateSystemThread(STATUS_SUCCESS) };
}

/// Scans every queued file, finalizes it, and drops the queue's references.
fn drain_queue() {
    while let Some(raw) = QUEUE.take_next() {
        // SAFETY: the reference the creator gave the queue, adopted once here.
        let context = unsafe { ContextRef::<SectionContext>::from_raw(raw) };
        let instance = context.scan.instance;
        let (done, ending) = scan_chunks(&context.scan);
        finish(&context, done, &ending);
        // Before our reference goes: InstanceTeardownStart takes its own under the lock.
        QUEUE.done_with_current();
        drop(context);
        // SAFETY: the instance reference start_scan took for this scan, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
    }
}

static CONTEXTS: ContextTable<3> = ContextTable::new([
    context_of::<SectionContext>(FLT_SECTION_CONTEXT, CONTEXT_TAG),
    context_of::<TeardownFlag>(FLT_INSTANCE_CONTEXT, CONTEXT_TAG),
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
    .instance_query_teardown(Some(instance_query_teardown))
    .instance_teardown_start(Some(instance_teardown_start))
    .unload(Some(unload))
    .section_notification(Some(section_conflict));

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
    STOPPING.store(false, Ordering::Release);
    for counter in [
        &STARTED, &COMPLETED, &ABORTED, &TORN_DOWN, &STOPPED, &FAILED, &CONFLICTS, &RACED,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    QUEUE.init();
    // The thread first: once filtering starts, post-creates queue scans for it.
    if let Err(status) = start_thread() {
        log!("{TAG}: PsCreateSystemThread failed: {status}");
        // SAFETY: initialized above; nobody else uses it.
        unsafe { FltDeletePushLock(QUEUE.lock.get()) };
        return status.0;
    }
    // FltRegisterFilter, then FltStartFiltering, unregistering if starting fails: the
    // passthrough sample makes the three calls itself and explains each (samples/passthrough).
    // SAFETY: `driver` is the driver object this entry point was called with.
    let status = unsafe { register_and_start(driver, &REGISTRATION, &FILTER, TAG) };
    if !status.is_success() {
        stop_thread();
        // SAFETY: as above; the thread has ended.
        unsafe { FltDeletePushLock(QUEUE.lock.get()) };
    }
    status.0
}

/// `InstanceSetup` (`PASSIVE_LEVEL`): attach only where sections for data scan can be created.
unsafe extern "system" fn instance_setup(
    objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _volume_device_type: u32,
    _file_system_type: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let instance = unsafe { (*objects).Instance };
    // SAFETY: the instance being set up; FltRegisterForDataScan is callable at <= APC_LEVEL.
    let status = NtStatus(unsafe { FltRegisterForDataScan(instance) });
    if !status.is_success() {
        log!("{TAG}: not attaching to this volume: FltRegisterForDataScan returned {status}");
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    // The teardown flag (see `hand_to_thread`): without it a scan could outlive a teardown.
    if let Err(status) = TeardownFlag::attach(FILTER.get(), instance) {
        log!("{TAG}: not attaching to this volume: its instance context: {status}");
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    STATUS_SUCCESS
}

/// `InstanceQueryTeardown` (`PASSIVE_LEVEL`): allow a manual detach (`fltmc detach`,
/// `FltDetachVolume`). Without this callback an instance cannot be detached manually; with it, a
/// detach is one more teardown that `InstanceTeardownStart` handles.
unsafe extern "system" fn instance_query_teardown(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
) -> NTSTATUS {
    common::paged_code!();
    STATUS_SUCCESS
}

/// `InstanceTeardownStart` (`PASSIVE_LEVEL`): the instance is going (a dismount, a detach, an
/// unload). Abort every scan on it, as avscan does, so teardown does not wait for them: the
/// queued ones are taken out of the queue and closed here; the one in flight is closed here too
/// (after its current chunk) and stops at its next chunk.
unsafe extern "system" fn instance_teardown_start(
    objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    common::paged_code!();
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let instance = unsafe { (*objects).Instance };
    // Before the queue is emptied: a creator that queues after this sees the flag.
    // SAFETY: the instance being torn down; `TeardownFlag` is its one context type.
    if let Some(flag) = unsafe { TeardownFlag::of(instance) } {
        flag.set();
    }
    let mut taken = [core::ptr::null_mut(); QUEUE_DEPTH];
    let (count, current) = QUEUE.take_instance(instance, &mut taken);
    if let Some(context) = current {
        abort_for_teardown(&context, "in-flight");
    }
    for raw in &taken[..count] {
        // SAFETY: the queue's reference, which take_instance handed over.
        let context = unsafe { ContextRef::<SectionContext>::from_raw(*raw) };
        abort_for_teardown(&context, "queued");
        finish(&context, 0, &Ending::Aborted);
        drop(context);
        // SAFETY: the instance reference start_scan took for this scan, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
    }
}

/// Takes the section for instance teardown, if nobody has, and closes it in order.
fn abort_for_teardown(context: &ContextRef<SectionContext>, what: &str) {
    let scan = &context.scan;
    if scan
        .state
        .compare_exchange(OPEN, TEARDOWN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        scan.aborted.store(true, Ordering::Release);
        let closed = close_section(scan, context.as_raw());
        log!(
            "{TAG}: {}: instance teardown: the {what} scan is aborted; section closed ({closed})",
            scan.name()
        );
    }
}

// ---- post-create: start a scan -------------------------------------------------------------

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
    // The one create-skip rule every sample shares (a drained instance, a failed create or a
    // reparse, a paging file, a volume open, a prefetch open, a directory: `common::create`).
    // SAFETY: the post-create's callback data, objects and flags.
    if STOPPING.load(Ordering::Acquire) || !unsafe { is_opened_file(data, objects, flags) } {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the callback data of a create, valid for the call.
    if unsafe { desired_access(data) } & FILE_READ_DATA != 0 {
        start_scan(data, objects.Instance, objects.FileObject);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// The file's name, queried and copied (`common`'s `CopiedName`, as data-scan and
/// section-context take it). Not `FileObject->FileName`: the `FILE_OBJECT` page says it "should
/// not be considered valid after the file system starts to process the `IRP_MJ_CREATE` request",
/// and post-create comes after. Not inlined: the name query's copy stays out of the
/// post-create's frame.
#[inline(never)]
fn opened_name(data: *const FLT_CALLBACK_DATA) -> LineBuffer {
    let mut line = LineBuffer::new();
    // SAFETY: the callback data of the create being completed, at PASSIVE_LEVEL.
    let name = unsafe { CopiedName::query(data) };
    // `LineBuffer` truncates instead of failing.
    let _ = write!(line, "{name}");
    line
}

/// Creates the section and queues the scan for the scan thread. Every failure leaves the open alone.
fn start_scan(
    data: *const FLT_CALLBACK_DATA,
    instance: PFLT_INSTANCE,
    file_object: *const FILE_OBJECT,
) {
    // SAFETY: the instance of this post-create; `TeardownFlag` is its one context type. Every
    // attached instance has one (`instance_setup`).
    let Some(teardown) = (unsafe { TeardownFlag::of(instance) }) else {
        return;
    };
    let name = opened_name(data);
    let scan = match Scan::allocate(instance, name) {
        Ok(scan) => scan,
        Err(status) => {
            log!(
                "{TAG}: {}: not scanned: ExAllocatePool2 failed: {status}",
                opened_name(data).as_str()
            );
            return;
        }
    };
    // The back-pointer is in place before the create: the callback may run before it returns.
    let context =
        match ContextRef::allocate(FILTER.get(), FLT_SECTION_CONTEXT, SectionContext { scan }) {
            Ok(context) => context,
            Err(status) => {
                log!(
                    "{TAG}: {}: not scanned: FltAllocateContext failed: {status}",
                    opened_name(data).as_str()
                );
                return;
            }
        };
    let name = context.scan.name();
    // What can fail comes before the section exists, so a failure never has a section to undo.
    // SAFETY: the instance from the related objects, valid during the callback.
    let referenced = NtStatus(unsafe { FltObjectReference(instance as *mut c_void) });
    if !referenced.is_success() {
        log!("{TAG}: {name}: not scanned: FltObjectReference failed: {referenced}");
        return;
    }
    if !QUEUE.reserve() {
        log!("{TAG}: {name}: not scanned: {QUEUE_DEPTH} scans are already waiting");
        // SAFETY: the reference taken above, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
        return;
    }
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let mut handle: HANDLE = core::ptr::null_mut();
    let mut object: *mut c_void = core::ptr::null_mut();
    let mut size: i64 = 0;
    // SAFETY: a registered instance, the file object of this create, a section context allocated
    // for it, kernel-handle attributes, and valid out pointers. PASSIVE_LEVEL (post-create).
    let status = NtStatus(unsafe {
        FltCreateSectionForDataScan(
            instance,
            file_object,
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
        log!("{TAG}: {name}: not scanned: FltCreateSectionForDataScan returned {status}");
        QUEUE.unreserve();
        // SAFETY: the instance reference taken above, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
        return;
    }
    hand_to_thread(context, &teardown, handle, object, size);
}

/// Publishes the handle and object (unless a conflict already took the section during the
/// create), then queues the scan for the scan thread, which adopts the context reference and the
/// instance reference.
fn hand_to_thread(
    context: ContextRef<SectionContext>,
    teardown: &TeardownFlag,
    handle: HANDLE,
    object: *mut c_void,
    size: i64,
) {
    let instance = context.scan.instance;
    let name = context.scan.name();
    let scan = &context.scan;
    scan.handle.store(handle, Ordering::Relaxed);
    scan.object.store(object, Ordering::Relaxed);
    scan.size.store(size, Ordering::Relaxed);
    // Publish. If this fails, a conflict arrived during the create and left the close to us: the
    // handle, the object and the link, in that order.
    if scan
        .state
        .compare_exchange(CREATING, OPEN, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        RACED.fetch_add(1, Ordering::Relaxed);
        // The documented order, by the one party that may: handle, object, then the link.
        // SAFETY: the kernel handle the create just returned, closed once here.
        unsafe { ObCloseHandle(handle, KERNEL_MODE) };
        // SAFETY: the object reference the create just returned, dropped once here.
        unsafe { ObfDereferenceObject(object) };
        // SAFETY: the context the create linked; the failed exchange leaves its close to us.
        let closed = NtStatus(unsafe { FltCloseSectionForDataScan(context.as_raw()) });
        scan.signal_closed();
        log!(
            "{TAG}: {name}: a conflicting I/O arrived before FltCreateSectionForDataScan returned: section closed right after it ({closed}), no scan"
        );
        QUEUE.unreserve();
        drop(context);
        // SAFETY: the instance reference start_scan took, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
        return;
    }
    STARTED.fetch_add(1, Ordering::Relaxed);
    log!(
        "{TAG}: {name}: scanning {size} bytes in {} chunks",
        chunk_count(size)
    );
    // The queue adopts this reference (and the instance reference).
    let raw = context.into_raw();
    if !QUEUE.push(raw, teardown) {
        // SAFETY: the queue refused `raw`, so it is still ours: take it back.
        let context = unsafe { ContextRef::<SectionContext>::from_raw(raw) };
        if teardown.is_set() {
            // A teardown emptied the queue before this scan got there: the creator closes, as
            // teardown would have, and the detach does not wait for a scan.
            abort_for_teardown(&context, "new");
            finish(&context, 0, &Ending::Aborted);
        } else {
            // The scan thread has stopped (an unload began while this create was in flight):
            // the scan stops before it starts, and the creator finalizes it.
            finish(&context, 0, &Ending::Stopped);
        }
        drop(context);
        // SAFETY: the instance reference start_scan took, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
    }
}

// ---- the scan ----------------------------------------------------------------------------

/// Reads the file chunk by chunk; returns how many chunks were read and why it stopped.
fn scan_chunks(scan: &Scan) -> (usize, Ending) {
    let size = scan.size.load(Ordering::Relaxed);
    let chunks = chunk_count(size);
    // SAFETY: only the scan thread touches the reader, and the scan outlives this call.
    let reader = unsafe { &mut *scan.reader.get() };
    // The size FltCreateSectionForDataScan reported: never the views' (whole pages).
    reader.restart(u64::try_from(size).unwrap_or(0));
    // FNV-1a, standing in for whatever a real scanner computes.
    let mut hash: u32 = 0x811C_9DC5;
    for done in 0..chunks {
        if STOPPING.load(Ordering::Acquire) {
            return (done, Ending::Stopped);
        }
        // SAFETY: the scan's initialized push lock; shared, released below on every path.
        unsafe { FltAcquirePushLockShared(scan.chunk_lock.get()) };
        // Checked under the lock: a closer sets `aborted` before it takes the lock exclusive.
        let result = if scan.aborted.load(Ordering::Acquire) {
            Err(None)
        } else {
            read_chunk(scan, reader, &mut hash).map_err(Some)
        };
        // SAFETY: acquired above by this thread.
        unsafe { FltReleasePushLock(scan.chunk_lock.get()) };
        match result {
            Ok(()) => {}
            Err(None) => return (done, Ending::Aborted),
            Err(Some((api, status))) => return (done, Ending::Failed(api, status)),
        }
        if scan.paced {
            let pause = CHUNK_PAUSE;
            // SAFETY: a relative interval at PASSIVE_LEVEL, with no lock held and no view mapped.
            unsafe { KeDelayExecutionThread(KERNEL_MODE, false, &raw const pause) };
        }
    }
    (chunks, Ending::Complete(hash))
}

/// Maps the next chunk only (`MmMapViewInSystemSpaceEx` at the chunk's offset), copies it into
/// the reader's buffer with `MmCopyMemory`, unmaps it, and hashes the copy. The view is never
/// read directly: a failed paging read would raise `STATUS_IN_PAGE_ERROR` here, a bugcheck in a
/// driver without an exception handler; `MmCopyMemory` returns it as a status instead. Called
/// with the chunk lock held shared, so the section object stays referenced (closing it needs the
/// lock exclusive).
fn read_chunk(
    scan: &Scan,
    reader: &mut WindowReader<PoolBytes>,
    hash: &mut u32,
) -> Result<(), (&'static str, NtStatus)> {
    let object = scan.object.load(Ordering::Acquire);
    // SAFETY: the section object stays referenced while the chunk lock is held shared, and the
    // view is unmapped before `next_from_views` returns. <= APC_LEVEL.
    let chunk = reader.next_from_views(|offset, len| unsafe { map_view_of(object, offset, len) });
    match chunk {
        Ok(Some((_, bytes))) => {
            for byte in bytes {
                *hash = (*hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(ReadError::Map(status)) => Err(("MmMapViewInSystemSpaceEx", status)),
        Err(ReadError::Copy { status, .. }) => Err(("MmCopyMemory", status)),
    }
}

/// The end of a scan: if nobody took the section, close it; either way, say how the scan ended.
fn finish(context: &ContextRef<SectionContext>, done: usize, ending: &Ending) {
    let scan = &context.scan;
    let name = scan.name();
    let chunks = chunk_count(scan.size.load(Ordering::Relaxed));
    match scan
        .state
        .compare_exchange(OPEN, FINISHING, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {}
        Err(TEARDOWN) => {
            TORN_DOWN.fetch_add(1, Ordering::Relaxed);
            log!(
                "{TAG}: {name}: scan aborted after {done} of {chunks} chunks: the section was closed for instance teardown"
            );
            return;
        }
        Err(_) => {
            // A notification callback won the exchange and closed the section.
            ABORTED.fetch_add(1, Ordering::Relaxed);
            log!(
                "{TAG}: {name}: scan aborted after {done} of {chunks} chunks: the section was closed for a conflicting I/O"
            );
            return;
        }
    }
    let closed = close_section(scan, context.as_raw());
    match ending {
        Ending::Complete(hash) => {
            COMPLETED.fetch_add(1, Ordering::Relaxed);
            log!(
                "{TAG}: {name}: scan complete: {chunks} chunks, FNV-1a {hash:#010x}; section closed ({closed})"
            );
        }
        Ending::Stopped => {
            STOPPED.fetch_add(1, Ordering::Relaxed);
            log!(
                "{TAG}: {name}: scan stopped for unload after {done} of {chunks} chunks; section closed ({closed})"
            );
        }
        // Whoever sets `aborted` (a notification, a teardown) takes the state first, so the
        // exchange above fails before this is reached; kept for completeness.
        Ending::Aborted => {
            ABORTED.fetch_add(1, Ordering::Relaxed);
            log!(
                "{TAG}: {name}: scan aborted after {done} of {chunks} chunks; section closed ({closed})"
            );
        }
        Ending::Failed(api, status) => {
            FAILED.fetch_add(1, Ordering::Relaxed);
            log!(
                "{TAG}: {name}: scan failed after {done} of {chunks} chunks: {api} returned {status}; section closed ({closed})"
            );
        }
    }
}

/// Steps 1 to 4 of the documented order, by the party that won the exchange from `OPEN`.
/// Returns what `FltCloseSectionForDataScan` said.
fn close_section(scan: &Scan, context: PFLT_CONTEXT) -> NtStatus {
    // Step 1: exclusive waits for the scan thread's current chunk, so no view is mapped from here on.
    // SAFETY: the scan's initialized push lock, released below.
    unsafe { FltAcquirePushLockExclusive(scan.chunk_lock.get()) };
    // SAFETY: step 2. The kernel handle published before `OPEN`; the exchange makes us its one closer.
    unsafe { ObCloseHandle(scan.handle.load(Ordering::Acquire), KERNEL_MODE) };
    // SAFETY: step 3. The object reference published with it, dropped once.
    unsafe { ObfDereferenceObject(scan.object.load(Ordering::Acquire)) };
    // SAFETY: step 4. The context linked by the create and not closed by anyone else.
    let status = NtStatus(unsafe { FltCloseSectionForDataScan(context) });
    // SAFETY: acquired above by this thread.
    unsafe { FltReleasePushLock(scan.chunk_lock.get()) };
    scan.signal_closed();
    status
}

// ---- the notification ----------------------------------------------------------------------

/// `SectionNotificationCallback` (`PASSIVE_LEVEL`, on the conflicting I/O's thread): give the
/// section up, so that Filter Manager, which has pended the I/O, can requeue it. Always returns
/// `STATUS_SUCCESS`.
unsafe extern "system" fn section_conflict(
    _instance: PFLT_INSTANCE,
    section_context: PFLT_CONTEXT,
    data: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    common::paged_code!();
    // SAFETY: Filter Manager passes the section context this driver linked, and holds it for the
    // callback's duration; `data` is the conflicting I/O, valid as long.
    unsafe { give_way(section_context, data) };
    STATUS_SUCCESS
}

/// Pre-flush (`PASSIVE_LEVEL` here): a flush-and-purge (`IRP_MN_FLUSH_AND_PURGE`) of a stream
/// with an open scan is a conflict nobody notifies. It is not in the
/// `FSCTL_SET_PURGE_FAILURE_MODE` page's table: for any other operation, "the filesystem (or
/// filter)" that fails to purge "is responsible for pending the operation and reissuing it"
/// once no section is left, so without this the flush would wait for the whole scan. The filter
/// gives way exactly as for a notification, before the file system sees the flush, which then
/// waits at most for the chunk being read. Above `PASSIVE_LEVEL` it does nothing (the close
/// needs `PASSIVE_LEVEL`), and the flush waits for the scan as before.
unsafe extern "system" fn pre_flush(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes valid callback data for the callback's duration.
    let minor = unsafe { common::callback_data::parameters(data) }.MinorFunction;
    let purges = u32::from(minor) == IRP_MN_FLUSH_AND_PURGE;
    if purges && common::irql::current() == common::irql::PASSIVE_LEVEL {
        // SAFETY: Filter Manager passes valid related objects for the callback's duration.
        let objects = unsafe { &*objects };
        // SAFETY: this driver's section contexts are `SectionContext`s.
        if let Some(context) = unsafe { ContextRef::<SectionContext>::of_section(objects) } {
            // SAFETY: the reference just taken keeps the context alive; `data` is this flush.
            unsafe { give_way(context.as_raw(), data) };
        }
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// Gives the section up for the conflicting I/O `data` (a notification's, or a flush-and-purge's):
/// whoever takes the ownership word from `OPEN` closes; a scan still `CREATING` is marked for its
/// creator; a close someone else is making is waited for, for at most [`CLOSE_WAIT_MS`].
///
/// # Safety
/// `section_context` is one of this driver's section contexts, referenced for the call, and
/// `data` the conflicting I/O's callback data. `PASSIVE_LEVEL`.
unsafe fn give_way(section_context: PFLT_CONTEXT, data: *const FLT_CALLBACK_DATA) {
    // SAFETY: the caller's guarantee; its body is a `SectionContext`.
    let scan = unsafe { &(*section_context.cast::<SectionContext>()).scan };
    let name = scan.name();
    let io = Conflicting(data);
    CONFLICTS.fetch_add(1, Ordering::Relaxed);
    loop {
        let state = scan.state.load(Ordering::Acquire);
        let taken = (state == OPEN || state == CREATING)
            && scan
                .state
                .compare_exchange(state, CONFLICT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        match state {
            OPEN if taken => {
                // Ours: abort first, so the scan stops at its next chunk, then close in order.
                scan.aborted.store(true, Ordering::Release);
                log!(
                    "{TAG}: {name}: {io} conflicts with the scan's section: aborting the scan and closing the section"
                );
                let closed = close_section(scan, section_context);
                log!("{TAG}: {name}: section closed ({closed}): {io} proceeds");
            }
            CREATING if taken => {
                // FltCreateSectionForDataScan has not returned: the handle and object are not
                // ours yet, and the link alone is not what blocks the I/O. The creator closes all
                // three, in order, the moment the create returns.
                scan.aborted.store(true, Ordering::Release);
                log!(
                    "{TAG}: {name}: {io} arrived before FltCreateSectionForDataScan returned: the creator closes the section when the create returns; {io} waits until then"
                );
            }
            // The state moved between the load and the exchange: look again.
            OPEN | CREATING => continue,
            _ => {
                // Someone else is closing it (the scan thread, another conflict, a teardown or
                // a creator). Filter Manager keeps the I/O pended until the section is closed
                // either way. The bounded wait is for when it requeues, which the page does not
                // say: a requeue into a section still being closed would only fail and pend again.
                if !scan.wait_closed() {
                    log!(
                        "{TAG}: {name}: {io}: the section was still being closed after {CLOSE_WAIT_MS} ms; {io} waits until it is"
                    );
                }
            }
        }
        break;
    }
}

/// The conflicting operation, described from its callback data for the log.
struct Conflicting(*const FLT_CALLBACK_DATA);

impl fmt::Display for Conflicting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: the conflicting operation's callback data, valid for the callback's duration.
        let iopb = unsafe { common::callback_data::parameters(self.0) };
        match u32::from(iopb.MajorFunction) {
            IRP_MJ_SET_INFORMATION => {
                // SAFETY: for IRP_MJ_SET_INFORMATION the `SetFileInformation` member is live.
                // `common::params` has the C layout: windows-sys's member reads `InfoBuffer` at
                // 24, where the header's is at 32 (windows-rs #3525).
                let set = unsafe { params::SetFileInformation::of(&iopb.Parameters) };
                let fits =
                    set.Length as usize >= core::mem::size_of::<FILE_END_OF_FILE_INFORMATION>();
                if set.FileInformationClass == FileEndOfFileInformation
                    && fits
                    && !set.InfoBuffer.is_null()
                {
                    // SAFETY: a (system) buffer of at least that size, checked above.
                    let eof = unsafe {
                        set.InfoBuffer
                            .cast::<FILE_END_OF_FILE_INFORMATION>()
                            .read_unaligned()
                    };
                    write!(f, "a set-end-of-file to {} bytes", eof.EndOfFile)
                } else {
                    f.write_str("a set-information")
                }
            }
            IRP_MJ_WRITE => {
                // SAFETY: for IRP_MJ_WRITE the `Write` member is live. With the C layout:
                // `ByteOffset` follows `ULONG POINTER_ALIGNMENT Key`, at 16, not windows-sys's 8.
                let write = unsafe { params::Write::of(&iopb.Parameters) };
                let kind = if iopb.IrpFlags & IRP_NOCACHE != 0 {
                    "non-cached "
                } else {
                    ""
                };
                let (length, offset) = (write.Length, write.ByteOffset);
                write!(f, "a {kind}write of {length} bytes at {offset}")
            }
            IRP_MJ_FLUSH_BUFFERS => f.write_str("a flush-and-purge"),
            IRP_MJ_CREATE => f.write_str("an overwriting open"),
            major => write!(f, "an I/O (major function {major:#04x})"),
        }
    }
}

// ---- unload --------------------------------------------------------------------------------

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): stop the scan thread and wait for it, then
/// unregister, then report.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    // The thread stops the scan in flight at its next chunk, stops what is queued, closes the
    // queue (a post-create still in flight then finalizes its own scan) and ends. The wait is
    // bounded by one chunk and one pause.
    stop_thread();
    // Waits for the callbacks in flight, the instances' rundown and every context reference.
    FILTER.unregister();
    // SAFETY: initialized in DriverEntry; the thread and every callback are gone.
    unsafe { FltDeletePushLock(QUEUE.lock.get()) };
    log!(
        "{TAG}: unloaded: {} scans: {} complete, {} aborted by conflicting I/O, {} aborted by instance teardown, {} stopped for unload, {} failed; {} section conflicts, {} before FltCreateSectionForDataScan returned",
        STARTED.load(Ordering::Relaxed),
        COMPLETED.load(Ordering::Relaxed),
        ABORTED.load(Ordering::Relaxed),
        TORN_DOWN.load(Ordering::Relaxed),
        STOPPED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
        CONFLICTS.load(Ordering::Relaxed),
        RACED.load(Ordering::Relaxed),
    );
    NtStatus::SUCCESS.0
}
