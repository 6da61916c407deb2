//! `World::detach`, the model's `FltDetachVolume`: a manual detach asks `InstanceQueryTeardown`
//! (none registered, or an error status, keeps the instance), then tears that one instance down
//! with `FLTFL_INSTANCE_TEARDOWN_MANUAL` while the filter stays loaded, waiting for the
//! instance's `FltObjectReference` references before `InstanceTeardownComplete`.

use std::{
    ffi::c_void,
    sync::atomic::{AtomicI32, AtomicU32, Ordering},
    time::Duration,
};

use common::{
    bindings::{
        DRIVER_OBJECT, FLT_CALLBACK_DATA, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS,
        IRP_MJ_CREATE, NTSTATUS, STATUS_FLT_DO_NOT_DETACH, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{OPERATION_END, OperationTable, Registration, operation},
};
use fltsim::{EventKind, NtStatus, Open, World};
use windows_sys::{
    Wdk::Storage::FileSystem::Minifilters::{
        FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD, FLTFL_INSTANCE_TEARDOWN_MANUAL,
        FltObjectDereference, FltObjectReference,
    },
    Win32::Foundation::STATUS_FLT_INSTANCE_NOT_FOUND,
};

const NAME: &str = "detach-probe";
/// A bound on a hang, not a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<2> = OperationTable::new([
    operation(IRP_MJ_CREATE, None, Some(post_create)),
    OPERATION_END,
]);
/// With `InstanceQueryTeardown`.
static DETACHABLE: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .instance_query_teardown(Some(query_teardown))
    .instance_teardown_start(Some(teardown_start))
    .instance_teardown_complete(Some(teardown_complete))
    .unload(Some(unload));
/// Without it: instances cannot be detached manually.
static FIXED: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .instance_teardown_start(Some(teardown_start))
    .instance_teardown_complete(Some(teardown_complete))
    .unload(Some(unload));

/// What `InstanceQueryTeardown` answers.
static ANSWER: AtomicI32 = AtomicI32::new(STATUS_SUCCESS);
/// The `Flags` each teardown callback was given, in the order they were called (2 bits each:
/// 1 manual, 2 unload; the low pair is the first call).
static REASONS: AtomicU32 = AtomicU32::new(0);
static CREATES: AtomicU32 = AtomicU32::new(0);

unsafe extern "system" fn query_teardown(_: *const FLT_RELATED_OBJECTS, _: u32) -> NTSTATUS {
    ANSWER.load(Ordering::Relaxed)
}

fn record(reason: u32) {
    let code = match reason {
        FLTFL_INSTANCE_TEARDOWN_MANUAL => 1,
        FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD => 2,
        _ => 3,
    };
    let _ = REASONS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
        Some((r << 2) | code)
    });
}

unsafe extern "system" fn teardown_start(_: *const FLT_RELATED_OBJECTS, reason: u32) {
    record(reason);
}

unsafe extern "system" fn teardown_complete(_: *const FLT_RELATED_OBJECTS, reason: u32) {
    record(reason);
}

unsafe extern "system" fn post_create(
    _: *mut FLT_CALLBACK_DATA,
    _: *const FLT_RELATED_OBJECTS,
    _: *const c_void,
    _: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    CREATES.fetch_add(1, Ordering::Relaxed);
    FLT_POSTOP_FINISHED_PROCESSING
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

unsafe extern "system" fn detachable_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    entry(driver, &DETACHABLE)
}

unsafe extern "system" fn fixed_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    entry(driver, &FIXED)
}

fn entry(driver: *mut DRIVER_OBJECT, registration: &'static Registration) -> NTSTATUS {
    // SAFETY: the driver object the model passed to DriverEntry.
    let filter = match unsafe { RegisteredFilter::register(driver, registration) } {
        Ok(filter) => filter,
        Err(status) => return status.0,
    };
    match filter.start_filtering(&FILTER) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status.0,
    }
}

fn loaded(entry: fltsim::DriverEntry) -> World {
    let world = World::new();
    ANSWER.store(STATUS_SUCCESS, Ordering::Relaxed);
    REASONS.store(0, Ordering::Relaxed);
    CREATES.store(0, Ordering::Relaxed);
    world.create_file("C:\\a.txt", b"a");
    world.create_file("Z:\\b.txt", b"b");
    world.load(NAME, 370_000, entry).expect("loads");
    world
}

fn open_and_close(world: &World, path: &str) {
    let handle = world.open(path, Open::read()).expect("opens");
    world.close(handle).expect("closes");
}

#[test]
fn a_detach_tears_down_that_instance_only_and_the_filter_stays_loaded() {
    let world = loaded(detachable_entry);
    assert!(world.instance_handle(NAME, 'C').is_some());
    world.detach(NAME, 'C').expect("detaches");
    // Start, then complete, both with the manual reason.
    assert_eq!(REASONS.load(Ordering::Relaxed), 0b01_01);
    let callbacks: Vec<&str> = world
        .trace()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Callback(name) if name.starts_with("Instance") => Some(name),
            _ => None,
        })
        .filter(|name| *name != "InstanceSetup")
        .collect();
    assert_eq!(
        callbacks,
        [
            "InstanceQueryTeardown",
            "InstanceTeardownStart",
            "InstanceTeardownComplete"
        ]
    );
    assert_eq!(world.instance_handle(NAME, 'C'), None);
    assert!(world.instance_handle(NAME, 'Z').is_some());
    // Opens on C: no longer reach the filter; those on Z: still do.
    open_and_close(&world, "C:\\a.txt");
    assert_eq!(CREATES.load(Ordering::Relaxed), 0);
    open_and_close(&world, "Z:\\b.txt");
    assert_eq!(CREATES.load(Ordering::Relaxed), 1);
    // A second detach finds nothing; the unload tears down Z: only.
    assert_eq!(
        world.detach(NAME, 'C'),
        Err(NtStatus(STATUS_FLT_INSTANCE_NOT_FOUND))
    );
    world.unload(NAME).expect("unloads");
    assert_eq!(REASONS.load(Ordering::Relaxed), 0b01_01_10_10);
    world.finish();
}

#[test]
fn without_instance_query_teardown_or_with_an_error_the_instance_stays() {
    let world = loaded(fixed_entry);
    assert_eq!(
        world.detach(NAME, 'C'),
        Err(NtStatus(STATUS_FLT_DO_NOT_DETACH))
    );
    assert!(world.instance_handle(NAME, 'C').is_some());
    assert_eq!(REASONS.load(Ordering::Relaxed), 0);
    world.unload(NAME).expect("unloads");
    world.finish();
    drop(world);

    let world = loaded(detachable_entry);
    ANSWER.store(STATUS_FLT_DO_NOT_DETACH, Ordering::Relaxed);
    assert_eq!(
        world.detach(NAME, 'C'),
        Err(NtStatus(STATUS_FLT_DO_NOT_DETACH))
    );
    assert!(world.instance_handle(NAME, 'C').is_some());
    assert_eq!(REASONS.load(Ordering::Relaxed), 0);
    open_and_close(&world, "C:\\a.txt");
    assert_eq!(CREATES.load(Ordering::Relaxed), 1);
    assert_eq!(
        world.detach(NAME, 'Q'),
        Err(NtStatus(STATUS_FLT_INSTANCE_NOT_FOUND))
    );
    world.unload(NAME).expect("unloads");
    world.finish();
}

#[test]
fn a_detach_waits_for_the_instance_references_before_teardown_complete() {
    let world = loaded(detachable_entry);
    let instance = world.instance_handle(NAME, 'C').expect("attached");
    // SAFETY: a live instance of the probe.
    let status = unsafe { FltObjectReference(instance as *mut c_void) };
    assert_eq!(status, STATUS_SUCCESS);
    std::thread::scope(|s| {
        let detaching = s.spawn(|| world.detach(NAME, 'C'));
        let waits = world
            .wait_for_event(BOUND, |e| {
                e.kind == EventKind::FltMgr
                    && e.text == "instance teardown: the rundown waits for 1 FltObjectReference reference(s)"
            })
            .expect("the detach waits for the reference");
        // InstanceTeardownStart ran; InstanceTeardownComplete waits for the reference.
        assert_eq!(REASONS.load(Ordering::Relaxed), 0b01);
        // SAFETY: the reference taken above, dropped once.
        unsafe { FltObjectDereference(instance as *mut c_void) };
        detaching.join().expect("no panic").expect("detaches");
        let complete = world
            .trace()
            .into_iter()
            .find(|e| e.kind == EventKind::Callback("InstanceTeardownComplete"))
            .expect("teardown completed");
        assert!(complete.seq > waits.seq);
    });
    assert_eq!(REASONS.load(Ordering::Relaxed), 0b01_01);
    world.unload(NAME).expect("unloads");
    world.finish();
}
