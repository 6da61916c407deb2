//! The model changes made for the section-conflict sample (see `fs.rs`'s top doc):
//! - Filter Manager holds a reference on the section context for the duration of the
//!   `SectionNotificationCallback`, so a callback that closes the section and drops the last
//!   reference of its own can still read the context until it returns.
//! - A conflicting operation is judged against the sections on the stream when it starts: a
//!   section created while the callbacks run does not fail it.

use std::{
    ffi::c_void,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use common::{
    KERNEL_MODE,
    bindings::{
        DRIVER_OBJECT, FILE_OBJECT, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE,
        FLT_POSTOP_CALLBACK_STATUS, FLT_POSTOP_FINISHED_PROCESSING, FLT_REGISTRATION_VERSION_0203,
        FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT, FltAllocateContext, FltCloseSectionForDataScan,
        FltCreateSectionForDataScan, FltRegisterForDataScan, FltReleaseContext, HANDLE,
        IRP_MJ_CREATE, NTSTATUS, NonPagedPoolNx, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES,
        ObCloseHandle, ObfDereferenceObject, PAGE_READONLY, PFLT_CONTEXT, PFLT_INSTANCE,
        SEC_COMMIT, SECTION_MAP_READ, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context, operation,
    },
};
use fltsim::{Open, World};

const MAGIC: u64 = 0x5EC7_10C0_FFEE_0001;

static FILTER: FilterSlot = FilterSlot::new();
/// Mode: in the callback, create a new section on the stream after closing the first.
static RECREATE: AtomicBool = AtomicBool::new(false);
/// What the callback read from the context body after giving up every reference of its own.
static SEEN: AtomicU64 = AtomicU64::new(0);

/// A section this test filter holds: (instance, file object, context, handle, object).
#[derive(Clone, Copy)]
struct Held(PFLT_INSTANCE, usize, usize, usize, usize);
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

static CONTEXTS: ContextTable<2> = ContextTable::new([
    context(FLT_SECTION_CONTEXT, 8, 0x7453_7752, None),
    CONTEXT_END,
]);
static OPERATIONS: OperationTable<2> = OperationTable::new([
    operation(IRP_MJ_CREATE, None, Some(post_create)),
    OPERATION_END,
]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)
    .contexts(&CONTEXTS)
    .operations(&OPERATIONS)
    .instance_setup(Some(setup))
    .unload(Some(unload))
    .section_notification(Some(notified));

unsafe extern "system" fn driver_entry(
    d: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the driver object the model passed.
    let filter = unsafe { RegisteredFilter::register(d, &REGISTRATION) }.expect("registers");
    filter.start_filtering(&FILTER).expect("starts");
    STATUS_SUCCESS
}

unsafe extern "system" fn setup(
    objects: *const FLT_RELATED_OBJECTS,
    _: u32,
    _: u32,
    _: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    // SAFETY: Filter Manager passes valid related objects for the callback's duration.
    let instance = unsafe { (*objects).Instance };
    // SAFETY: the instance being set up; a non-C: volume just answers STATUS_NOT_SUPPORTED.
    unsafe { FltRegisterForDataScan(instance) }
}

/// Allocates a context holding MAGIC and creates a section with it; records it in HELD.
fn create(instance: PFLT_INSTANCE, fo: *const FILE_OBJECT) {
    let mut ctx: PFLT_CONTEXT = std::ptr::null_mut();
    // SAFETY: a registered context type of 8 bytes and a valid out pointer.
    let status = unsafe {
        FltAllocateContext(
            FILTER.get(),
            u16::try_from(FLT_SECTION_CONTEXT).unwrap(),
            8,
            NonPagedPoolNx,
            &raw mut ctx,
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    // SAFETY: 8 writable bytes.
    unsafe { ctx.cast::<u64>().write(MAGIC) };
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap(),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let (mut handle, mut object): (HANDLE, *mut c_void) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: valid arguments and out pointers.
    let status = unsafe {
        FltCreateSectionForDataScan(
            instance,
            fo,
            ctx,
            SECTION_MAP_READ,
            &raw const attributes,
            std::ptr::null(),
            PAGE_READONLY,
            SEC_COMMIT,
            0,
            &raw mut handle,
            &raw mut object,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    HELD.lock().unwrap().push(Held(
        instance,
        fo as usize,
        ctx as usize,
        handle as usize,
        object as usize,
    ));
}

/// Closes a held section in the documented order and drops the allocation reference.
fn close(h: Held) {
    // SAFETY: the handle, object and context `create` recorded, each released once.
    unsafe { ObCloseHandle(h.3 as HANDLE, KERNEL_MODE) };
    // SAFETY: as above.
    unsafe { ObfDereferenceObject(h.4 as *const c_void) };
    // SAFETY: as above.
    let status = unsafe { FltCloseSectionForDataScan(h.2 as PFLT_CONTEXT) };
    assert_eq!(status, STATUS_SUCCESS);
    // SAFETY: as above.
    unsafe { FltReleaseContext(h.2 as PFLT_CONTEXT) };
}

unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _: *const c_void,
    _: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    // SAFETY: valid callback data for the callback's duration.
    let io = unsafe { (*data).IoStatus };
    // SAFETY: `Status` is the member a completed create sets.
    let status = unsafe { io.Anonymous.Status };
    // SAFETY: valid related objects for the callback's duration.
    let objects = unsafe { &*objects };
    let (instance, fo) = (objects.Instance, objects.FileObject);
    if status == STATUS_SUCCESS && HELD.lock().unwrap().is_empty() {
        create(instance, fo);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

unsafe extern "system" fn notified(
    _: PFLT_INSTANCE,
    context: PFLT_CONTEXT,
    _: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    let held = HELD.lock().unwrap().pop().expect("a held section");
    assert_eq!(held.2, context as usize);
    // Close it and drop our own (last) reference: only Filter Manager's is left now.
    close(held);
    // SAFETY: the context Filter Manager passed, which it must keep valid until we return.
    SEEN.store(unsafe { context.cast::<u64>().read() }, Ordering::SeqCst);
    if RECREATE.load(Ordering::SeqCst) {
        create(held.0, held.1 as *const FILE_OBJECT);
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    let held: Vec<Held> = HELD.lock().unwrap().drain(..).collect();
    for h in held {
        close(h);
    }
    FILTER.unregister();
    STATUS_SUCCESS
}

#[test]
fn the_section_context_stays_valid_for_the_whole_notification_callback() {
    let world = World::new();
    world.create_file("C:\\f.bin", b"some bytes");
    RECREATE.store(false, Ordering::SeqCst);
    world.load("model-test", 265_999, driver_entry).unwrap();
    let reader = world.open("C:\\f.bin", Open::read()).unwrap();
    let writer = world.open("C:\\f.bin", Open::write()).unwrap();
    world
        .set_end_of_file(writer, 1)
        .expect("the section was closed: the truncation proceeds");
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        MAGIC,
        "the context was freed under the callback"
    );
    // The context's last reference went when the callback returned, not before.
    let trace = world.trace();
    let returned = trace
        .iter()
        .position(|e| e.text.starts_with("SectionNotificationCallback <-"))
        .unwrap();
    assert!(
        trace[..returned]
            .iter()
            .all(|e| !e.text.contains("ContextCleanupCallback"))
    );
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

#[test]
fn a_section_created_during_the_notification_does_not_fail_the_operation() {
    let world = World::new();
    world.create_file("C:\\g.bin", b"some more bytes");
    RECREATE.store(true, Ordering::SeqCst);
    world.load("model-test", 265_999, driver_entry).unwrap();
    let reader = world.open("C:\\g.bin", Open::read()).unwrap();
    let writer = world.open("C:\\g.bin", Open::write()).unwrap();
    world
        .purge(writer)
        .expect("judged against the sections present when it started");
    assert_eq!(HELD.lock().unwrap().len(), 1, "the new section is linked");
    // A later conflict meets the new section, and it is notified like any other.
    RECREATE.store(false, Ordering::SeqCst);
    world.purge(writer).unwrap();
    assert!(HELD.lock().unwrap().is_empty());
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}
