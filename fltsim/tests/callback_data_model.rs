//! The model changes made for the callback-data sample: `Open::paging_file` delivers
//! `SL_OPEN_PAGING_FILE` in `Iopb->OperationFlags` of the create, and only there;
//! `FltPerformAsynchronousIo` calls its completion routine when an injected fault fails it;
//! `ObfReferenceObject` on file objects holds back `IRP_MJ_CLOSE`; rundown protection.

use common::{
    bindings::{
        DRIVER_OBJECT, FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
        FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, IRP_MJ_CREATE, NTSTATUS,
        SL_OPEN_PAGING_FILE, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    log,
    registration::{OPERATION_END, OperationTable, Registration, operation},
};
use fltsim::{EventKind, Open, World};

const PROBE: &str = "flags-probe";

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<2> = OperationTable::new([
    operation(IRP_MJ_CREATE, Some(pre_create), None),
    OPERATION_END,
]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .unload(Some(unload));

unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the driver object the model passed to DriverEntry.
    let filter = match unsafe { RegisteredFilter::register(driver, &REGISTRATION) } {
        Ok(filter) => filter,
        Err(status) => return status.0,
    };
    match filter.start_filtering(&FILTER) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status.0,
    }
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

/// Logs the create's `OperationFlags`.
unsafe extern "system" fn pre_create(
    data: *mut FLT_CALLBACK_DATA,
    _: *const FLT_RELATED_OBJECTS,
    _: *mut *mut core::ffi::c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: the model passes valid callback data whose parameter block lives as long.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: as above.
    let flags = unsafe { (*iopb).OperationFlags };
    log!("operation flags {flags:#x}");
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

#[test]
fn paging_file_opens_carry_sl_open_paging_file_and_ordinary_opens_do_not() {
    let world = World::new();
    world.create_file("C:\\pagefile.sys", &[0; 4096]);
    world.create_file("C:\\a.txt", b"a");
    world.load(PROBE, 365_000, driver_entry).unwrap();

    let paging = world
        .open("C:\\pagefile.sys", Open::read_write().paging_file())
        .unwrap();
    world.close(paging).unwrap();
    let ordinary = world.open("C:\\a.txt", Open::read()).unwrap();
    world.close(ordinary).unwrap();

    assert_eq!(
        world.log_lines(PROBE),
        [
            format!("operation flags {SL_OPEN_PAGING_FILE:#x}"),
            "operation flags 0x0".to_owned(),
        ]
    );
    // The flag composes with the other builders and changes nothing else.
    let how = Open::read().share(0).paging_file();
    assert_eq!((how.share, how.operation_flags), (0, 0x2));
    assert_eq!(Open::read().operation_flags, 0);
    world.finish();
}

// ---- FltPerformAsynchronousIo: an injected failure still completes through the routine --------

/// (status, IRQL, host thread) of each completion.
static COMPLETIONS: std::sync::Mutex<Vec<(NTSTATUS, u8, std::thread::ThreadId)>> =
    std::sync::Mutex::new(Vec::new());

unsafe extern "system" fn completed(
    data: *const common::bindings::FLT_CALLBACK_DATA,
    _: common::bindings::PFLT_CONTEXT,
) {
    // SAFETY: the model passes the callback data the test issued; its request has completed.
    let io = unsafe { (*data).IoStatus };
    // SAFETY: `Status` is the member the model writes on completion.
    let status = unsafe { io.Anonymous.Status };
    COMPLETIONS.lock().unwrap().push((
        status,
        common::irql::current(),
        std::thread::current().id(),
    ));
    // SAFETY: the routine owns the callback data now; freed once, here.
    unsafe { common::bindings::FltFreeCallbackData(data) };
}

/// Allocates callback data for a `FileStandardInformation` query into `buffer`.
fn query_data(
    world: &World,
    h: fltsim::Handle,
    buffer: &mut [u8; 24],
) -> *mut common::bindings::FLT_CALLBACK_DATA {
    use common::bindings::{FileStandardInformation, FltAllocateCallbackDataEx};
    let instance = world.instance_handle(PROBE, 'C').expect("attached");
    let mut data = core::ptr::null_mut();
    // SAFETY: an attached instance, an open file object, a local out pointer.
    let status =
        unsafe { FltAllocateCallbackDataEx(instance, world.file_object(h), 1, &raw mut data) };
    assert_eq!(status, STATUS_SUCCESS);
    // SAFETY: the data was just allocated and is idle; its parameter block is ours to fill.
    let iopb = unsafe { (*data).Iopb }.cast_mut();
    // SAFETY: as above.
    let iopb = unsafe { &mut *iopb };
    iopb.MajorFunction = 5; // IRP_MJ_QUERY_INFORMATION
    // SAFETY: the query's member (C layout), in freshly allocated, zeroed callback data.
    let query = unsafe { common::params::QueryFileInformation::of_mut(&mut iopb.Parameters) };
    query.Length = 24;
    query.FileInformationClass = FileStandardInformation;
    query.InfoBuffer = buffer.as_mut_ptr().cast();
    data
}

#[test]
fn an_injected_asynchronous_io_failure_calls_the_routine_before_returning() {
    use common::bindings::{
        FltPerformAsynchronousIo, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST,
    };
    let world = World::new();
    world.create_file("C:\\a.txt", b"abc");
    world.load(PROBE, 365_000, driver_entry).unwrap();
    let h = world.open("C:\\a.txt", Open::read()).unwrap();
    world.fail_nth("FltPerformAsynchronousIo", 1);
    world.fail_nth_with("FltPerformAsynchronousIo", 2, STATUS_INVALID_DEVICE_REQUEST);
    COMPLETIONS.lock().unwrap().clear();
    let mut buffer = [0u8; 24];
    for expected in [STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST] {
        let data = query_data(&world, h, &mut buffer);
        // SAFETY: set-up callback data, and a routine that frees it.
        let status = unsafe { FltPerformAsynchronousIo(data, Some(completed), core::ptr::null()) };
        assert_eq!(status, expected);
        // Already called, on this thread, at DISPATCH_LEVEL, with the failure in IoStatus.
        let last = *COMPLETIONS.lock().unwrap().last().expect("the routine ran");
        assert_eq!(
            last,
            (
                expected,
                common::irql::DISPATCH_LEVEL,
                std::thread::current().id()
            )
        );
    }
    assert_eq!(COMPLETIONS.lock().unwrap().len(), 2);
    // Nothing reached the file system, and the trace shows the routine inside the call.
    let trace = world.trace();
    let routine = trace
        .iter()
        .position(|e| e.kind == EventKind::Callback("AsyncIoCompletion"))
        .unwrap();
    let call = trace
        .iter()
        .position(|e| e.kind == EventKind::Call("FltPerformAsynchronousIo"))
        .unwrap();
    assert!(routine < call);
    world.close(h).unwrap();
    world.finish();
}

// ---- file-object references ---------------------------------------------------------------------

#[test]
fn a_file_object_reference_holds_back_irp_mj_close_until_it_is_dropped() {
    use common::bindings::{ObfDereferenceObject, ObfReferenceObject};
    let world = World::new();
    world.create_file("C:\\a.txt", b"abc");
    world.load_counting_filter("below", 360_000);
    let h = world.open("C:\\a.txt", Open::read()).unwrap();
    let fo = world.file_object(h) as usize;
    // SAFETY: an open file object the model handed out.
    unsafe { ObfReferenceObject(fo as *const _) };
    std::thread::scope(|s| {
        let closing = s.spawn(|| world.close(h));
        // Bounded: wait until cleanup went through; IRP_MJ_CLOSE cannot, while we hold the
        // reference.
        let started = std::time::Instant::now();
        while world.counts("below").pre[18] == 0 {
            // IRP_MJ_CLEANUP
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            std::thread::yield_now();
        }
        assert_eq!(world.counts("below").pre[2], 0); // IRP_MJ_CLOSE
        // SAFETY: the reference taken above, dropped once.
        unsafe { ObfDereferenceObject(fo as *const _) };
        closing.join().unwrap().unwrap();
    });
    assert_eq!(world.counts("below").pre[2], 1);
    assert!(world.violations().is_empty());
    world.finish();
}

#[test]
fn file_object_reference_misuse_is_a_finding() {
    use common::bindings::{FltPerformSynchronousIo, ObfDereferenceObject, ObfReferenceObject};
    let world = World::new();
    world.create_file("C:\\a.txt", b"abc");
    world.load(PROBE, 365_000, driver_entry).unwrap();
    let h = world.open("C:\\a.txt", Open::read()).unwrap();
    let fo = world.file_object(h) as usize;
    let mut buffer = [0u8; 24];
    let data = query_data(&world, h, &mut buffer);
    // SAFETY: a file object the model handed out, with no reference of ours to drop.
    unsafe { ObfDereferenceObject(fo as *const _) };
    world.close(h).unwrap();
    // SAFETY: the file object is closed: the model reports the reference.
    unsafe { ObfReferenceObject(fo as *const _) };
    // SAFETY: our idle callback data, whose target file object is now closed.
    unsafe { FltPerformSynchronousIo(data) };
    // SAFETY: freed once.
    unsafe { common::bindings::FltFreeCallbackData(data) };
    let found: Vec<_> = world
        .take_violations()
        .into_iter()
        .map(|v| v.message)
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].contains("no filter holds a reference"),
        "{found:?}"
    );
    assert!(
        found[1].contains("is closed; its last reference is gone"),
        "{found:?}"
    );
    assert!(found[2].contains("is closed (use after free)"), "{found:?}");
    world.finish();
}

// ---- rundown protection -------------------------------------------------------------------------

#[test]
fn rundown_protection_waits_for_holders_and_refuses_new_ones_once_the_wait_began() {
    use common::bindings::{
        EX_RUNDOWN_REF, ExAcquireRundownProtection, ExInitializeRundownProtection,
        ExReleaseRundownProtection, ExWaitForRundownProtectionRelease,
    };
    /// Where a driver keeps it: the model keys the count by this address.
    struct Ref(std::cell::UnsafeCell<EX_RUNDOWN_REF>);
    // SAFETY: only the Ex*RundownProtection routines touch it, and the model synchronizes them.
    unsafe impl Sync for Ref {}
    impl Ref {
        fn get(&self) -> *mut EX_RUNDOWN_REF {
            self.0.get()
        }
    }
    let runref = Ref(std::cell::UnsafeCell::new(EX_RUNDOWN_REF::default()));
    let r = runref.0.get();
    let world = World::new();
    // SAFETY: `r` points at a live EX_RUNDOWN_REF for the whole test (so for every call below).
    unsafe { ExInitializeRundownProtection(r) };
    // SAFETY: as above.
    assert!(unsafe { ExAcquireRundownProtection(r) });
    // SAFETY: as above.
    assert!(unsafe { ExAcquireRundownProtection(r) });
    // SAFETY: as above.
    unsafe { ExReleaseRundownProtection(r) };
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            // SAFETY: as above.
            unsafe { ExWaitForRundownProtectionRelease(runref.get()) };
        });
        let started = std::time::Instant::now();
        while world.calls("ExWaitForRundownProtectionRelease").is_empty() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            std::thread::yield_now();
        }
        assert!(
            world.calls("ExWaitForRundownProtectionRelease")[0]
                .text
                .ends_with("waiting for 1 holder(s)")
        );
        // Once the wait has begun, nobody new gets in.
        // SAFETY: as above.
        assert!(!unsafe { ExAcquireRundownProtection(r) });
        // It cannot return while a holder is left.
        assert!(!waiter.is_finished());
        // SAFETY: the last holder leaves; the wait returns.
        unsafe { ExReleaseRundownProtection(r) };
        waiter.join().unwrap();
    });
    assert!(world.violations().is_empty(), "{:?}", world.violations());
    // Misuse: one release too many, and a wait above APC_LEVEL.
    // SAFETY: as above.
    unsafe { ExReleaseRundownProtection(r) };
    world.at_irql(common::irql::DISPATCH_LEVEL, || {
        // SAFETY: as above; no holders, so the wait returns at once.
        unsafe { ExWaitForRundownProtectionRelease(r) };
    });
    let found: Vec<_> = world
        .take_violations()
        .into_iter()
        .map(|v| v.message)
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("has no holder to release"), "{found:?}");
    assert!(
        found[1].contains("ExWaitForRundownProtectionRelease called at DISPATCH_LEVEL"),
        "{found:?}"
    );
    world.finish();
}

// ---- the file-object reference a completion routine drops ------------------------------------------

/// A completion routine that drops a file-object reference whose object is its context, the
/// plain way (`ObfDereferenceObject`) or the deferred way.
unsafe extern "system" fn completed_dropping_plain(
    data: *const common::bindings::FLT_CALLBACK_DATA,
    context: common::bindings::PFLT_CONTEXT,
) {
    // SAFETY: the routine owns the callback data now; freed once, here.
    unsafe { common::bindings::FltFreeCallbackData(data) };
    // SAFETY: the reference the test took for this request, dropped once.
    unsafe { common::bindings::ObfDereferenceObject(context.cast_const()) };
}

unsafe extern "system" fn completed_dropping_deferred(
    data: *const common::bindings::FLT_CALLBACK_DATA,
    context: common::bindings::PFLT_CONTEXT,
) {
    // SAFETY: as above.
    unsafe { common::bindings::FltFreeCallbackData(data) };
    // SAFETY: as above.
    unsafe { common::bindings::ObDereferenceObjectDeferDelete(context.cast_const()) };
}

#[test]
fn a_completion_routine_that_drops_a_file_object_reference_must_defer_the_delete() {
    use common::bindings::{FltPerformAsynchronousIo, ObfReferenceObject};
    let world = World::new();
    world.create_file("C:\\a.txt", b"abc");
    world.load(PROBE, 365_000, driver_entry).unwrap();
    let h = world.open("C:\\a.txt", Open::read()).unwrap();
    let mut buffer = [0u8; 24];
    for (nth, routine, findings) in [
        (
            1,
            completed_dropping_deferred as unsafe extern "system" fn(_, _),
            0,
        ),
        (2, completed_dropping_plain, 1),
    ] {
        let fo = world.file_object(h);
        // SAFETY: an open file object; the routine drops this reference.
        unsafe { ObfReferenceObject(fo.cast()) };
        let data = query_data(&world, h, &mut buffer);
        // Injected failure: the routine runs before the call returns, so the test can look at
        // what it did without waiting for another thread.
        world.fail_nth("FltPerformAsynchronousIo", nth);
        // SAFETY: set-up callback data, a routine that frees it, and the referenced object.
        unsafe { FltPerformAsynchronousIo(data, Some(routine), fo.cast_mut().cast()) };
        let found: Vec<String> = world
            .take_violations()
            .into_iter()
            .map(|v| v.message)
            .collect();
        assert_eq!(found.len(), findings, "{found:?}");
        assert!(
            found
                .iter()
                .all(|m| m.contains("Use ObDereferenceObjectDeferDelete")),
            "{found:?}"
        );
    }
    world.close(h).unwrap();
    world.finish();
}
