//! Kernel services with their real limits (see `fltsim/src/threads.rs`,
//! `fltsim/src/abi/system_threads.rs`, `fltsim/src/abi/work_items.rs`):
//! - generic work items run on a small, fixed pool of system worker threads (2 by default): an
//!   item that blocks holds one, and the items queued behind it wait;
//! - a generic work item that runs past the model's limit (1 s by default) is a finding;
//! - delays and relative wait timeouts round up to the clock tick (15.625 ms by default);
//! - threads a driver creates (`PsCreateSystemThread`) must end with `PsTerminateSystemThread`,
//!   and must have ended (the unload waits for the thread object) when the driver unloads.

use std::{
    cell::UnsafeCell,
    ffi::c_void,
    sync::atomic::{AtomicI32, AtomicPtr, Ordering},
    time::{Duration, Instant},
};

use common::{
    bindings::{
        DRIVER_OBJECT, FLT_REGISTRATION_VERSION_0202, KEVENT, NTSTATUS, OBJ_KERNEL_HANDLE,
        OBJECT_ATTRIBUTES, PFLT_GENERIC_WORKITEM, STATUS_SUCCESS, STATUS_TIMEOUT, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{OPERATION_END, OperationTable, Registration},
};
use fltsim::{EventKind, World};
use windows_sys::{
    Wdk::{
        Storage::FileSystem::Minifilters::{
            FltAllocateGenericWorkItem, FltFreeGenericWorkItem, FltQueueGenericWorkItem,
        },
        System::SystemServices::{
            DelayedWorkQueue, Executive, KeDelayExecutionThread, KeInitializeEvent, KeSetEvent,
            KeWaitForSingleObject, ObCloseHandle, ObReferenceObjectByHandle, ObfDereferenceObject,
            PsCreateSystemThread, PsTerminateSystemThread,
        },
    },
    Win32::System::Kernel::{NotificationEvent, SynchronizationEvent},
};

const NAME: &str = "thread-probe";
/// A bound on a hang, not a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<1> = OperationTable::new([OPERATION_END]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .unload(Some(unload));

/// A `KEVENT` in a static, for the probes' routines.
struct StaticEvent(UnsafeCell<KEVENT>);
// SAFETY: the model keeps the event's state in its own twin; the bytes are never read.
unsafe impl Sync for StaticEvent {}
// SAFETY: all-zero bytes are a valid KEVENT representation (plain integers and pointers).
static EVENT: StaticEvent = StaticEvent(UnsafeCell::new(unsafe { std::mem::zeroed() }));

fn event() -> *mut KEVENT {
    EVENT.0.get()
}

/// What the unload callback does about the system thread (see the thread tests).
static JOIN_THREAD: AtomicI32 = AtomicI32::new(0);
/// The thread object, referenced from the thread handle in `DriverEntry`.
static THREAD: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static THREAD_HANDLE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
/// The status the blocking work item's wait returned.
static WAITED: AtomicI32 = AtomicI32::new(0);
/// Which start routine `DriverEntry` gives a system thread: 0 none, 1 `thread_body`, 2
/// `returns_without_terminating`.
static START: AtomicI32 = AtomicI32::new(0);

unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the driver object the model passed to DriverEntry.
    let filter = match unsafe { RegisteredFilter::register(driver, &REGISTRATION) } {
        Ok(filter) => filter,
        Err(status) => return status.0,
    };
    match START.load(Ordering::Relaxed) {
        1 => start_thread(thread_body),
        2 => start_thread(returns_without_terminating),
        _ => {}
    }
    match filter.start_filtering(&FILTER) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status.0,
    }
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    if JOIN_THREAD.load(Ordering::Relaxed) == 1 {
        join_thread();
    }
    FILTER.unregister();
    STATUS_SUCCESS
}

fn load(world: &World) {
    load_with_thread(world, 0);
}

/// Loads the probe; `start` says which system thread its `DriverEntry` starts (see `START`).
fn load_with_thread(world: &World, start: i32) {
    JOIN_THREAD.store(0, Ordering::Relaxed);
    START.store(start, Ordering::Relaxed);
    // SAFETY: a static event, initialised before any routine uses it; notification, not set.
    world.at_irql(0, || unsafe {
        KeInitializeEvent(event(), NotificationEvent, false);
    });
    world.load(NAME, 370_000, driver_entry).expect("loads");
}

/// Queues `routine` as a generic work item of the probe filter; returns the work item.
fn queue(
    world: &World,
    routine: unsafe extern "system" fn(PFLT_GENERIC_WORKITEM, *const c_void, *const c_void),
) -> PFLT_GENERIC_WORKITEM {
    // SAFETY: no preconditions.
    let item = unsafe { FltAllocateGenericWorkItem() };
    assert_ne!(item, 0);
    let filter = world.filter_handle(NAME);
    // SAFETY: an allocated work item, the probe's filter object, a routine that frees the item.
    let status = unsafe {
        FltQueueGenericWorkItem(
            item,
            filter as *const c_void,
            Some(routine),
            DelayedWorkQueue,
            std::ptr::null(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    item
}

fn wait_returned(world: &World, item: PFLT_GENERIC_WORKITEM) -> fltsim::Event {
    world
        .wait_for_event(BOUND, |e| e.text == format!("work item {item:#x} returns"))
        .expect("the work item returned")
}

fn runs(world: &World, item: PFLT_GENERIC_WORKITEM) -> fltsim::Event {
    world
        .wait_for_event(BOUND, |e| e.text == format!("work item {item:#x} runs"))
        .expect("the work item ran")
}

/// Waits (300 ms at most) for the event the second item sets.
unsafe extern "system" fn waits_for_the_next_item(
    item: PFLT_GENERIC_WORKITEM,
    _: *const c_void,
    _: *const c_void,
) {
    let timeout: i64 = -3_000_000;
    // SAFETY: the static event, initialised in `load`; PASSIVE_LEVEL.
    let status =
        unsafe { KeWaitForSingleObject(event().cast(), Executive, 0, false, &raw const timeout) };
    WAITED.store(status, Ordering::Relaxed);
    // SAFETY: this routine's own work item, freed once.
    unsafe { FltFreeGenericWorkItem(item) };
}

unsafe extern "system" fn sets_the_event(
    item: PFLT_GENERIC_WORKITEM,
    _: *const c_void,
    _: *const c_void,
) {
    // SAFETY: as above.
    unsafe { KeSetEvent(event(), 0, false) };
    // SAFETY: as above.
    unsafe { FltFreeGenericWorkItem(item) };
}

/// The deliberately bad probe: what section-conflict's scan did, a 2 ms pause per 4 KiB chunk
/// of a whole file (here 70 chunks, 280 KiB), on a system worker thread. With the tick each
/// pause lasts 15.625 ms: 1.09 s in all.
unsafe extern "system" fn paces_a_whole_file(
    item: PFLT_GENERIC_WORKITEM,
    _: *const c_void,
    _: *const c_void,
) {
    for _ in 0..70 {
        let pause: i64 = -20_000;
        // SAFETY: a relative interval at PASSIVE_LEVEL.
        unsafe { KeDelayExecutionThread(0, false, &raw const pause) };
    }
    // SAFETY: as above.
    unsafe { FltFreeGenericWorkItem(item) };
}

unsafe extern "system" fn returns_at_once(
    item: PFLT_GENERIC_WORKITEM,
    _: *const c_void,
    _: *const c_void,
) {
    // SAFETY: as above.
    unsafe { FltFreeGenericWorkItem(item) };
}

#[test]
fn with_one_worker_thread_an_item_that_waits_for_the_next_one_starves_it() {
    let world = World::new();
    world.set_worker_threads(1);
    load(&world);
    let first = queue(&world, waits_for_the_next_item);
    let second = queue(&world, sets_the_event);
    let first_returned = wait_returned(&world, first);
    let second_ran = runs(&world, second);
    // The second item could not run while the first held the only worker: the first's wait
    // timed out, and the second ran only after it returned.
    assert_eq!(WAITED.load(Ordering::Relaxed), STATUS_TIMEOUT);
    assert!(second_ran.seq > first_returned.seq);
    assert_eq!(
        second_ran.thread, first_returned.thread,
        "the same worker thread"
    );
    wait_returned(&world, second);
    world.finish();
}

#[test]
fn with_two_worker_threads_the_same_items_both_run() {
    let world = World::new();
    load(&world);
    let first = queue(&world, waits_for_the_next_item);
    let second = queue(&world, sets_the_event);
    wait_returned(&world, first);
    wait_returned(&world, second);
    assert_eq!(WAITED.load(Ordering::Relaxed), STATUS_SUCCESS);
    world.finish();
}

#[test]
fn a_work_item_that_paces_a_whole_file_is_a_finding() {
    let world = World::new();
    load(&world);
    let item = queue(&world, paces_a_whole_file);
    wait_returned(&world, item);
    let findings = world.take_violations();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0]
            .message
            .starts_with(&format!("{NAME}: the generic work item {item:#x} ran for "))
            && findings[0]
                .message
                .contains("past the model's limit of 1000 ms")
            && findings[0].message.contains(
                "\"must run for a limited amount of time; otherwise, the system can deadlock\""
            ),
        "{findings:#?}"
    );
    world.finish();
}

#[test]
fn a_short_work_item_is_not_a_finding_and_the_limit_is_settable() {
    let world = World::new();
    load(&world);
    let item = queue(&world, returns_at_once);
    wait_returned(&world, item);
    assert_eq!(world.violations(), []);
    // A limit below one tick: the same bad probe is reported at its first pause's length.
    world.set_work_item_limit(Duration::from_millis(10));
    let item = queue(&world, waits_for_the_next_item);
    wait_returned(&world, item);
    let findings = world.take_violations();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0]
            .message
            .contains("past the model's limit of 10 ms"),
        "{findings:#?}"
    );
    world.finish();
}

#[test]
fn a_delay_of_2_ms_sleeps_a_whole_tick() {
    let world = World::new();
    let pause: i64 = -20_000;
    // SAFETY: a relative interval at PASSIVE_LEVEL.
    unsafe { KeDelayExecutionThread(0, false, &raw const pause) };
    let call = world.calls("KeDelayExecutionThread").pop().unwrap();
    assert_eq!(
        call.text,
        "KeDelayExecutionThread(-20000) -> 1 tick(s) of 15.625 ms: 15.625 ms"
    );
    // With a long tick the rounding shows on the clock: at least one tick passes.
    world.set_clock_tick(Duration::from_millis(200));
    let start = Instant::now();
    // SAFETY: as above.
    unsafe { KeDelayExecutionThread(0, false, &raw const pause) };
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    // Zero is a yield, not rounded.
    let zero: i64 = 0;
    // SAFETY: as above.
    unsafe { KeDelayExecutionThread(0, false, &raw const zero) };
    assert_eq!(
        world.calls("KeDelayExecutionThread").pop().unwrap().text,
        "KeDelayExecutionThread(0) -> 0 tick(s) of 200 ms: 0 ms"
    );
    world.finish();
}

#[test]
fn a_relative_wait_timeout_rounds_up_to_the_tick() {
    let world = World::new();
    // SAFETY: the static event; notification, not set.
    unsafe { KeInitializeEvent(event(), SynchronizationEvent, false) };
    world.set_clock_tick(Duration::from_millis(200));
    let timeout: i64 = -10_000;
    let start = Instant::now();
    // SAFETY: an initialised event, a relative timeout, PASSIVE_LEVEL.
    let status =
        unsafe { KeWaitForSingleObject(event().cast(), Executive, 0, false, &raw const timeout) };
    assert_eq!(status, STATUS_TIMEOUT);
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    assert!(
        world.calls("KeWaitForSingleObject")[0]
            .text
            .ends_with("-> at most 1 tick(s) of 200 ms: 200 ms")
    );
    world.finish();
}

// ---- PsCreateSystemThread -------------------------------------------------------------------

/// Waits for the event, pauses once (so `World::hold_delays` can park it), then ends.
unsafe extern "system" fn thread_body() {
    // SAFETY: the static event, initialised in `load`; no timeout, PASSIVE_LEVEL.
    unsafe { KeWaitForSingleObject(event().cast(), Executive, 0, false, std::ptr::null()) };
    let pause: i64 = -10_000;
    // SAFETY: a relative interval.
    unsafe { KeDelayExecutionThread(0, false, &raw const pause) };
    // SAFETY: the calling thread is a system thread of this driver.
    unsafe { PsTerminateSystemThread(STATUS_SUCCESS) };
}

unsafe extern "system" fn returns_without_terminating() {}

fn start_thread(routine: unsafe extern "system" fn()) {
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap(),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let mut handle = std::ptr::null_mut();
    // SAFETY: valid out pointer and attributes; no process, no client id.
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut handle,
            0x1F_FFFF,
            &raw const attributes,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            Some(routine),
            std::ptr::null(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    let mut object = std::ptr::null_mut();
    // SAFETY: the kernel handle just returned; KernelMode; NULL type is allowed in KernelMode.
    let status = unsafe {
        ObReferenceObjectByHandle(
            handle,
            0x1F_FFFF,
            0,
            0,
            &raw mut object,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    THREAD.store(object, Ordering::Relaxed);
    THREAD_HANDLE.store(handle, Ordering::Relaxed);
}

/// Tells the thread to end, waits for its object, drops the reference and closes the handle.
fn join_thread() {
    // SAFETY: the static event.
    unsafe { KeSetEvent(event(), 0, false) };
    let object = THREAD.load(Ordering::Relaxed);
    // SAFETY: the referenced thread object (a dispatcher object); no timeout, PASSIVE_LEVEL.
    let status = unsafe { KeWaitForSingleObject(object, Executive, 0, false, std::ptr::null()) };
    assert_eq!(status, STATUS_SUCCESS);
    // SAFETY: the reference ObReferenceObjectByHandle took, dropped once.
    unsafe { ObfDereferenceObject(object) };
    // SAFETY: the kernel handle PsCreateSystemThread returned, closed once.
    unsafe { ObCloseHandle(THREAD_HANDLE.load(Ordering::Relaxed), 0) };
}

#[test]
fn a_system_thread_joined_at_unload_is_clean_even_while_its_delay_is_held() {
    let world = World::new();
    load_with_thread(&world, 1);
    JOIN_THREAD.store(1, Ordering::Relaxed);
    let hold = world.hold_delays();
    // SAFETY: the static event: the thread goes on to its pause.
    unsafe { KeSetEvent(event(), 0, false) };
    assert!(hold.wait_held(BOUND), "the thread never paused");
    // The unload's wait for the thread object releases the held pause.
    world.unload(NAME).unwrap();
    let trace = world.trace();
    let exits = trace
        .iter()
        .position(|e| e.kind == EventKind::Callback("SystemThread") && e.text.ends_with("exits"))
        .unwrap();
    let unregister = trace
        .iter()
        .position(|e| e.kind == EventKind::Call("FltUnregisterFilter"))
        .unwrap();
    assert!(exits < unregister);
    world.finish();
}

#[test]
fn a_system_thread_still_running_at_unload_is_a_finding() {
    let world = World::new();
    load_with_thread(&world, 1);
    world.unload(NAME).unwrap();
    let findings: Vec<String> = world
        .take_violations()
        .into_iter()
        .map(|v| v.message)
        .collect();
    assert!(
        findings.iter().any(|f| f.starts_with(&format!(
            "{NAME}: the system thread from PsCreateSystemThread"
        )) && f.contains("is still running after the driver unloaded")),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("the thread handle from") && f.contains("was never closed")),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("the thread object from") && f.contains("never dereferenced")),
        "{findings:#?}"
    );
    // Let it end, so nothing outlives the test.
    join_thread();
    world.finish();
}

#[test]
fn a_start_routine_that_returns_without_ps_terminate_system_thread_is_a_finding() {
    let world = World::new();
    load_with_thread(&world, 2);
    let object = THREAD.load(Ordering::Relaxed);
    // SAFETY: as in join_thread.
    let status = unsafe { KeWaitForSingleObject(object, Executive, 0, false, std::ptr::null()) };
    assert_eq!(status, STATUS_SUCCESS);
    // SAFETY: as in join_thread.
    unsafe { ObfDereferenceObject(object) };
    // SAFETY: as in join_thread.
    unsafe { ObCloseHandle(THREAD_HANDLE.load(Ordering::Relaxed), 0) };
    let findings = world.take_violations();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0]
            .message
            .contains("returned without calling PsTerminateSystemThread")
    );
    world.finish();
}
