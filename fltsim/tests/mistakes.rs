//! The mistakes of `docs/common-mistakes.md`, each made on purpose by a small filter written here
//! against fltsim's C ABI, with the verifier finding that catches it. The page quotes every
//! finding word for word; `the_page_quotes_exactly_the_findings_proven_here` keeps the page and
//! these tests equal, so neither can drift.
//!
//! One probe filter serves most tests: what its callbacks get wrong is chosen by [`MODE`], set
//! after `World::new` (which serialises the worlds of this binary's tests). Where the mistake is
//! in `DriverEntry` or the unload callback, the test has a filter of its own.

use std::{
    ffi::c_void,
    ptr,
    sync::atomic::{AtomicPtr, AtomicU8, Ordering},
};

use common::{
    bindings::{
        DRIVER_OBJECT, FILE_OBJECT, FLT_CALLBACK_DATA, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
        FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_REGISTRATION_VERSION_0202,
        FLT_REGISTRATION_VERSION_0203, FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT,
        FltAllocateCallbackData, FltAllocateContext, FltCloseSectionForDataScan,
        FltCreateSectionForDataScan, FltFreeCallbackData, FltGetSectionContext, FltRegisterFilter,
        FltRegisterForDataScan, FltReleaseContext, FltStartFiltering, HANDLE, IRP_MJ_CLEANUP,
        IRP_MJ_CREATE, IRP_MJ_READ, MmMapViewInSystemSpace, MmUnmapViewInSystemSpace, NTSTATUS,
        NonPagedPoolNx, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, ObCloseHandle, ObfDereferenceObject,
        PAGE_READONLY, PFLT_CONTEXT, PFLT_FILTER, PFLT_INSTANCE, SEC_COMMIT, SECTION_MAP_READ,
        STATUS_SUCCESS, STATUS_UNSUCCESSFUL, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context, operation,
    },
};
use fltsim::{Handle, Open, World};

const PROBE: &str = "mistake-probe";
const ALTITUDE: u32 = 370_990;
const FILE: &str = "C:\\mistakes\\data.bin";
const SECTION_CONTEXT: u16 = 0x40;

// ---- the findings the page quotes, each proven by the test named beside it ---------------------

/// passthrough: `DriverEntry` returns a failure after `FltRegisterFilter` and never unregisters.
/// [`driver_entry_failure_path_without_unregister`]
const REGISTERED_ON_FAILURE: &str = "mistake-register: DriverEntry failed with \
    STATUS_INSUFFICIENT_RESOURCES (0xC000009A) but left the filter registered (call \
    FltUnregisterFilter on the failure path)";
/// passthrough: the unload callback returns success without `FltUnregisterFilter`.
/// [`unload_without_unregister`]
const UNLOAD_WITHOUT_UNREGISTER: &str =
    "mistake-unload: the unload callback returned success without calling FltUnregisterFilter";
/// callback-data: `FltFreeCallbackData` twice. [`callback_data_freed_twice`]
const FREED_TWICE: &str = "FltFreeCallbackData: the callback data allocated by \
    FltAllocateCallbackData in mistake-probe PostCreate (trace #9) was already freed (in \
    mistake-probe: PostCreate)";
/// data-scan: `FltCloseSectionForDataScan` on a context no section was created with.
/// [`closing_a_context_never_used_for_a_section`]
const CLOSE_UNUSED_CONTEXT: &str = "FltCloseSectionForDataScan on the context from \
    FltAllocateContext in mistake-probe PreRead (trace #12), which was never used to create a \
    section: release it with FltReleaseContext instead (in mistake-probe: PreRead)";
/// data-scan: `ObCloseHandle` (`PASSIVE_LEVEL` only) in a post-operation callback.
/// [`passive_only_work_in_a_post_operation_callback`]
const PASSIVE_ONLY_IN_POST_OP: &str = "ObCloseHandle called at DISPATCH_LEVEL; its documented \
    maximum is PASSIVE_LEVEL (IRQL_NOT_LESS_OR_EQUAL) (in mistake-probe: PostCleanup)";
/// data-scan: a view read directly instead of through `MmCopyMemory`.
/// [`reading_a_mapped_view_directly`]
const DIRECT_READ: &str = fltsim::DIRECT_READ;
/// data-scan: the section handle never closed; the rest released.
/// [`section_handle_never_closed`]
const SECTION_HANDLE_LEAKED: &str = "mistake-probe: the section handle from \
    FltCreateSectionForDataScan (trace #11) was never closed (ObCloseHandle/ZwClose)";
/// section-context: the reference `FltGetSectionContext` returned, never released.
/// [`forgotten_release_of_a_section_context`]
const LEAKED_CONTEXT: &str = "mistake-probe: leaked context (16 bytes, type 0x40) from \
    FltAllocateContext (trace #10) still has 1 reference(s); on Windows FltUnregisterFilter \
    waits for it forever";
/// section-context: one reference released twice; the context is freed under its other owner.
/// [`a_section_context_released_twice`]
const RELEASED_TWICE: &str = "FltReleaseContext: the context allocated by FltAllocateContext \
    (trace #10) was already freed (its last reference was released)";
/// section-conflict: a `SectionNotificationCallback` that returns an error.
/// [`section_notification_returning_an_error`]
const NOTIFICATION_ERROR: &str = "mistake-probe: SectionNotificationCallback returned \
    STATUS_UNSUCCESSFUL (0xC0000001); it must return STATUS_SUCCESS";

/// Every finding the page may quote, with the test that proves it.
const PROVEN: &[(&str, &str)] = &[
    (
        REGISTERED_ON_FAILURE,
        "driver_entry_failure_path_without_unregister",
    ),
    (UNLOAD_WITHOUT_UNREGISTER, "unload_without_unregister"),
    (FREED_TWICE, "callback_data_freed_twice"),
    (
        CLOSE_UNUSED_CONTEXT,
        "closing_a_context_never_used_for_a_section",
    ),
    (
        PASSIVE_ONLY_IN_POST_OP,
        "passive_only_work_in_a_post_operation_callback",
    ),
    (DIRECT_READ, "reading_a_mapped_view_directly"),
    (SECTION_HANDLE_LEAKED, "section_handle_never_closed"),
    (LEAKED_CONTEXT, "forgotten_release_of_a_section_context"),
    (RELEASED_TWICE, "a_section_context_released_twice"),
    (
        NOTIFICATION_ERROR,
        "section_notification_returning_an_error",
    ),
];

// ---- the probe filter ---------------------------------------------------------------------------

/// What the probe's callbacks get wrong.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Correct,
    FreeCallbackDataTwice,
    CloseUnusedContext,
    CloseHandleInPostCleanup,
    ForgetSectionContextRelease,
    ReleaseSectionContextTwice,
    NotificationFails,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Correct as u8);
/// The section handle [`Mode::CloseHandleInPostCleanup`] closes.
static SECTION_HANDLE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::SeqCst);
}

fn mode_is(mode: Mode) -> bool {
    MODE.load(Ordering::SeqCst) == mode as u8
}

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<4> = OperationTable::new([
    operation(IRP_MJ_CREATE, None, Some(post_create)),
    operation(IRP_MJ_READ, Some(pre_read), None),
    operation(IRP_MJ_CLEANUP, Some(pre_cleanup), Some(post_cleanup)),
    OPERATION_END,
]);
static CONTEXTS: ContextTable<2> = ContextTable::new([
    context(FLT_SECTION_CONTEXT, 16, u32::from_le_bytes(*b"misS"), None),
    CONTEXT_END,
]);
// Version 0x0203: the first with `SectionNotificationCallback`.
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)
    .operations(&OPERATIONS)
    .contexts(&CONTEXTS)
    .unload(Some(unload))
    .section_notification(Some(section_notification));

unsafe extern "system" fn driver_entry(
    d: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the driver object the model passed.
    let filter = unsafe { RegisteredFilter::register(d, &REGISTRATION) }.expect("registers");
    filter.start_filtering(&FILTER).expect("starts");
    STATUS_SUCCESS
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

/// [`Mode::FreeCallbackDataTwice`]: allocates callback data for the new file object and frees it
/// twice.
unsafe extern "system" fn post_create(
    _: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _: *const c_void,
    _: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    if mode_is(Mode::FreeCallbackDataTwice) {
        // SAFETY: Filter Manager passes valid related objects for the callback's duration.
        let objects = unsafe { &*objects };
        let mut data: *mut FLT_CALLBACK_DATA = ptr::null_mut();
        // SAFETY: this instance, the created file object, a valid out pointer; post-create runs
        // at PASSIVE_LEVEL.
        let status =
            unsafe { FltAllocateCallbackData(objects.Instance, objects.FileObject, &raw mut data) };
        assert_eq!(status, STATUS_SUCCESS);
        // SAFETY: the callback data allocated above, never issued.
        unsafe { FltFreeCallbackData(data) };
        // SAFETY: none: the second free is the mistake under test.
        unsafe { FltFreeCallbackData(data) };
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// [`Mode::CloseUnusedContext`], [`Mode::ForgetSectionContextRelease`] and
/// [`Mode::ReleaseSectionContextTwice`].
unsafe extern "system" fn pre_read(
    _: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    if mode_is(Mode::CloseUnusedContext) {
        let mut context: PFLT_CONTEXT = ptr::null_mut();
        // SAFETY: this filter, a registered context type and size, a valid out pointer.
        let status = unsafe {
            FltAllocateContext(
                objects.Filter,
                SECTION_CONTEXT,
                16,
                NonPagedPoolNx,
                &raw mut context,
            )
        };
        assert_eq!(status, STATUS_SUCCESS);
        // SAFETY: a live context, but never passed to FltCreateSectionForDataScan: the mistake.
        unsafe { FltCloseSectionForDataScan(context) };
        // SAFETY: the allocation reference, released once.
        unsafe { FltReleaseContext(context) };
    }
    if mode_is(Mode::ForgetSectionContextRelease) || mode_is(Mode::ReleaseSectionContextTwice) {
        let mut context: PFLT_CONTEXT = ptr::null_mut();
        // SAFETY: this instance, the read's file object, a valid out pointer.
        let status =
            unsafe { FltGetSectionContext(objects.Instance, objects.FileObject, &raw mut context) };
        assert_eq!(status, STATUS_SUCCESS);
        if mode_is(Mode::ReleaseSectionContextTwice) {
            // SAFETY: the reference FltGetSectionContext returned.
            unsafe { FltReleaseContext(context) };
            // SAFETY: none: the second release drops a reference this code does not own.
            unsafe { FltReleaseContext(context) };
        }
        // Mode::ForgetSectionContextRelease: the reference is never released.
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

unsafe extern "system" fn pre_cleanup(
    _: *mut FLT_CALLBACK_DATA,
    _: *const FLT_RELATED_OBJECTS,
    _: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}

/// [`Mode::CloseHandleInPostCleanup`]: closes the section handle in a post-operation callback,
/// which may run at `DISPATCH_LEVEL`; `ObCloseHandle` needs `PASSIVE_LEVEL`.
unsafe extern "system" fn post_cleanup(
    _: *mut FLT_CALLBACK_DATA,
    _: *const FLT_RELATED_OBJECTS,
    _: *const c_void,
    _: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    if mode_is(Mode::CloseHandleInPostCleanup) {
        let handle = SECTION_HANDLE.swap(ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: the section's kernel handle, closed once; the IRQL is the mistake.
        unsafe { ObCloseHandle(handle, 0) };
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// [`Mode::NotificationFails`]: answers a conflict with an error status.
unsafe extern "system" fn section_notification(
    _: PFLT_INSTANCE,
    _: PFLT_CONTEXT,
    _: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    if mode_is(Mode::NotificationFails) {
        STATUS_UNSUCCESSFUL
    } else {
        STATUS_SUCCESS
    }
}

// ---- helpers ------------------------------------------------------------------------------------

/// A world with the probe loaded, data scan registered on `C:`, the test file, and the probe's
/// mode set.
fn probe_world(mode: Mode) -> World {
    let world = World::new();
    set_mode(mode);
    world.create_file(FILE, &[0x5A; 5000]);
    world.load(PROBE, ALTITUDE, driver_entry).expect("loads");
    let instance: PFLT_INSTANCE = world.instance_handle(PROBE, 'C').expect("attached");
    // SAFETY: the probe's instance.
    assert_eq!(unsafe { FltRegisterForDataScan(instance) }, STATUS_SUCCESS);
    world
}

/// A data-scan section on the file behind `handle`, created by the test thread for the probe.
struct Section {
    handle: HANDLE,
    object: *mut c_void,
    context: PFLT_CONTEXT,
}

fn create_section(world: &World, handle: Handle) -> Section {
    let instance: PFLT_INSTANCE = world.instance_handle(PROBE, 'C').expect("attached");
    let fo: *const FILE_OBJECT = world.file_object(handle);
    let filter: PFLT_FILTER = world.filter_handle(PROBE);
    let mut context: PFLT_CONTEXT = ptr::null_mut();
    // SAFETY: the probe's filter, a registered type and size, a valid out pointer.
    let status = unsafe {
        FltAllocateContext(
            filter,
            SECTION_CONTEXT,
            16,
            NonPagedPoolNx,
            &raw mut context,
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap(),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let (mut section, mut object): (HANDLE, *mut c_void) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: a registered instance, an open file object, a fresh section context, valid outs.
    let status = unsafe {
        FltCreateSectionForDataScan(
            instance,
            fo,
            context,
            SECTION_MAP_READ,
            &raw const attributes,
            ptr::null(),
            PAGE_READONLY,
            SEC_COMMIT,
            0,
            &raw mut section,
            &raw mut object,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    Section {
        handle: section,
        object,
        context,
    }
}

/// Releases what `create_section` returned, in the documented order (the handle unless a test
/// closed it already).
fn release_section(section: &Section, close_handle: bool) {
    if close_handle {
        // SAFETY: the kernel handle the create returned, closed once.
        unsafe { ObCloseHandle(section.handle, 0) };
    }
    // SAFETY: the referenced object the create returned, dereferenced once.
    unsafe { ObfDereferenceObject(section.object) };
    // SAFETY: the section context the create linked, closed once.
    unsafe { FltCloseSectionForDataScan(section.context) };
    // SAFETY: the allocation reference on the context, released once.
    unsafe { FltReleaseContext(section.context) };
}

/// The findings so far, as text, taken (so that `finish` judges only what follows).
fn findings(world: &World) -> Vec<String> {
    world
        .take_violations()
        .into_iter()
        .map(|v| v.message)
        .collect()
}

// ---- passthrough --------------------------------------------------------------------------------

static LEAKY_REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202);

/// Registers, then returns `FltStartFiltering`'s failure without `FltUnregisterFilter`.
unsafe extern "system" fn leaky_driver_entry(
    d: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    let mut filter: PFLT_FILTER = 0;
    // SAFETY: the driver object the model passed, a static registration, a valid out pointer.
    let status = unsafe { FltRegisterFilter(d, LEAKY_REGISTRATION.as_ptr(), &raw mut filter) };
    if status != STATUS_SUCCESS {
        return status;
    }
    // SAFETY: the filter registered above.
    let status = unsafe { FltStartFiltering(filter) };
    // The mistake: the failure path returns without FltUnregisterFilter(filter).
    status
}

#[test]
fn driver_entry_failure_path_without_unregister() {
    let world = World::new();
    world.fail_nth("FltStartFiltering", 1);
    assert!(
        world
            .load("mistake-register", ALTITUDE, leaky_driver_entry)
            .is_err()
    );
    assert_eq!(findings(&world), [REGISTERED_ON_FAILURE]);
    world.finish();
}

static NO_UNREGISTER_SLOT: FilterSlot = FilterSlot::new();
static NO_UNREGISTER: Registration =
    Registration::new(FLT_REGISTRATION_VERSION_0202).unload(Some(unload_without_unregistering));

unsafe extern "system" fn no_unregister_entry(
    d: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the driver object the model passed.
    let filter = unsafe { RegisteredFilter::register(d, &NO_UNREGISTER) }.expect("registers");
    filter.start_filtering(&NO_UNREGISTER_SLOT).expect("starts");
    STATUS_SUCCESS
}

/// Returns success and leaves the filter registered: the mistake.
unsafe extern "system" fn unload_without_unregistering(_: u32) -> NTSTATUS {
    STATUS_SUCCESS
}

#[test]
fn unload_without_unregister() {
    let world = World::new();
    world
        .load("mistake-unload", ALTITUDE, no_unregister_entry)
        .unwrap();
    let _ = world.unload("mistake-unload");
    assert_eq!(findings(&world), [UNLOAD_WITHOUT_UNREGISTER]);
    world.finish();
}

// ---- callback-data ------------------------------------------------------------------------------

#[test]
fn callback_data_freed_twice() {
    let world = probe_world(Mode::FreeCallbackDataTwice);
    let handle = world.open(FILE, Open::read()).unwrap();
    set_mode(Mode::Correct);
    world.close(handle).unwrap();
    assert_eq!(findings(&world), [FREED_TWICE]);
    world.finish();
}

// ---- data-scan ----------------------------------------------------------------------------------

#[test]
fn closing_a_context_never_used_for_a_section() {
    let world = probe_world(Mode::CloseUnusedContext);
    let handle = world.open(FILE, Open::read()).unwrap();
    world.read(handle, 0, 16).unwrap();
    set_mode(Mode::Correct);
    world.close(handle).unwrap();
    assert_eq!(findings(&world), [CLOSE_UNUSED_CONTEXT]);
    world.finish();
}

#[test]
fn passive_only_work_in_a_post_operation_callback() {
    let world = probe_world(Mode::Correct);
    // Windows may call post-operation callbacks at DISPATCH_LEVEL; the model does by default.
    world.set_post_operation_irql(common::irql::DISPATCH_LEVEL);
    let handle = world.open(FILE, Open::read()).unwrap();
    let section = create_section(&world, handle);
    SECTION_HANDLE.store(section.handle, Ordering::SeqCst);
    set_mode(Mode::CloseHandleInPostCleanup);
    world.close(handle).unwrap();
    set_mode(Mode::Correct);
    release_section(&section, false);
    assert_eq!(findings(&world), [PASSIVE_ONLY_IN_POST_OP]);
    world.finish();
}

/// The child's half of [`reading_a_mapped_view_directly`].
const CHILD: &str = "FLTSIM_MISTAKES_DIRECT_READ_CHILD";

#[test]
fn reading_a_mapped_view_directly() {
    if std::env::var_os(CHILD).is_some() {
        let world = probe_world(Mode::Correct);
        let handle = world.open(FILE, Open::read()).unwrap();
        let section = create_section(&world, handle);
        let (mut base, mut size): (*mut c_void, usize) = (ptr::null_mut(), 0);
        // SAFETY: a referenced section object and valid in/out pointers.
        let status =
            unsafe { MmMapViewInSystemSpace(section.object, &raw mut base, &raw mut size) };
        assert_eq!(status, STATUS_SUCCESS);
        // SAFETY: none: reading a view directly is the mistake under test; the process dies here.
        let byte = unsafe { base.cast::<u8>().read_volatile() };
        println!("read {byte} from a view directly");
        // SAFETY: not reached when the model works; the view mapped above.
        unsafe { MmUnmapViewInSystemSpace(base) };
        std::process::exit(0);
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "reading_a_mapped_view_directly",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("from a view directly"), "{stdout}");
    assert!(!output.status.success(), "{:?}", output.status);
    // The message comes from the fault handler fltsim installs on Linux.
    #[cfg(target_os = "linux")]
    assert!(
        stderr.contains(&format!("{DIRECT_READ} (address 0x")),
        "stderr: {stderr}"
    );
    #[cfg(not(target_os = "linux"))]
    let _ = stderr;
}

#[test]
fn section_handle_never_closed() {
    let world = probe_world(Mode::Correct);
    let handle = world.open(FILE, Open::read()).unwrap();
    let section = create_section(&world, handle);
    // Everything but ObCloseHandle(section.handle): the mistake.
    release_section(&section, false);
    world.close(handle).unwrap();
    assert_eq!(findings(&world), Vec::<String>::new());
    world.unload(PROBE).unwrap();
    assert_eq!(findings(&world), [SECTION_HANDLE_LEAKED]);
    world.finish();
}

// ---- section-context ----------------------------------------------------------------------------

#[test]
fn forgotten_release_of_a_section_context() {
    let world = probe_world(Mode::Correct);
    let handle = world.open(FILE, Open::read()).unwrap();
    let section = create_section(&world, handle);
    set_mode(Mode::ForgetSectionContextRelease);
    world.read(handle, 0, 16).unwrap();
    set_mode(Mode::Correct);
    release_section(&section, true);
    world.close(handle).unwrap();
    assert_eq!(findings(&world), Vec::<String>::new());
    world.unload(PROBE).unwrap();
    assert_eq!(findings(&world), [LEAKED_CONTEXT]);
    world.finish();
}

#[test]
fn a_section_context_released_twice() {
    let world = probe_world(Mode::Correct);
    let handle = world.open(FILE, Open::read()).unwrap();
    let section = create_section(&world, handle);
    set_mode(Mode::ReleaseSectionContextTwice);
    world.read(handle, 0, 16).unwrap();
    set_mode(Mode::Correct);
    // The rest of the filter releases what it owns, and finds the context already gone.
    release_section(&section, true);
    world.close(handle).unwrap();
    assert_eq!(findings(&world), [RELEASED_TWICE]);
    world.finish();
}

// ---- section-conflict ---------------------------------------------------------------------------

#[test]
fn section_notification_returning_an_error() {
    let world = probe_world(Mode::NotificationFails);
    let handle = world.open(FILE, Open::read()).unwrap();
    let section = create_section(&world, handle);
    let writer = world.open(FILE, Open::read_write()).unwrap();
    // A truncation conflicts with the section: Filter Manager pends it and calls the callback,
    // which answers with an error and leaves the section open. The truncation stays pended until
    // the section is closed here, then is requeued and goes through.
    std::thread::scope(|s| {
        let truncation = s.spawn(|| world.set_end_of_file(writer, 0));
        assert!(
            world
                .wait_for_event(std::time::Duration::from_secs(10), |e| e
                    .text
                    .starts_with("SectionNotificationCallback <-"))
                .is_some(),
            "the callback was never called"
        );
        set_mode(Mode::Correct);
        release_section(&section, true);
        assert_eq!(truncation.join().unwrap(), Ok(()));
    });
    world.close(writer).unwrap();
    world.close(handle).unwrap();
    assert_eq!(findings(&world), [NOTIFICATION_ERROR]);
    world.finish();
}

// ---- the page -----------------------------------------------------------------------------------

/// The messages `docs/common-mistakes.md` quotes: every line of a ```` ```text ```` block.
fn quoted_on_the_page() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/common-mistakes.md");
    let page = std::fs::read_to_string(path).expect("docs/common-mistakes.md");
    let mut quoted = Vec::new();
    let mut in_block = false;
    for line in page.lines() {
        match (in_block, line.trim()) {
            (false, "```text") => in_block = true,
            (true, "```") => in_block = false,
            (true, text) if !text.is_empty() => quoted.push(text.to_owned()),
            _ => {}
        }
    }
    quoted
}

#[test]
fn the_page_quotes_exactly_the_findings_proven_here() {
    let quoted = quoted_on_the_page();
    for message in &quoted {
        assert!(
            PROVEN.iter().any(|(proven, _)| proven == message),
            "docs/common-mistakes.md quotes a message no test here proves:\n{message}"
        );
    }
    for (message, test) in PROVEN {
        assert!(
            quoted.iter().any(|q| q == message),
            "docs/common-mistakes.md does not quote the finding `{test}` proves:\n{message}"
        );
    }
}
