//! Filter Manager and a data-scan section created while a conflicting operation is pended
//! (issue 25): Filter Manager pends the operation and notifies the owners of the sections on the
//! stream, waits until those are closed, and requeues it. A section created meanwhile fails the
//! requeued operation's purge again, and its owner is notified in turn. Before, Filter Manager
//! waited for the outstanding count to reach zero, so a section created after the notification
//! was never notified and the operation waited out the pend limit (a section-context storm's
//! destructive create, pended for 10 s).
//!
//! The test filter's notification callback closes the section it is told about. The first time,
//! before it returns, it has the test create a second section on the stream: that one exists
//! before Filter Manager's wait begins, whatever the threads do.

use std::{
    ffi::c_void,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use common::{
    KERNEL_MODE,
    bindings::{
        DRIVER_OBJECT, FILE_OBJECT, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE,
        FLT_REGISTRATION_VERSION_0203, FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT,
        FltAllocateContext, FltCloseSectionForDataScan, FltCreateSectionForDataScan,
        FltRegisterForDataScan, FltReleaseContext, HANDLE, NTSTATUS, NonPagedPoolNx,
        OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, ObCloseHandle, ObfDereferenceObject, PAGE_READONLY,
        PFLT_CONTEXT, PFLT_INSTANCE, SEC_COMMIT, SECTION_MAP_READ, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{CONTEXT_END, ContextTable, Registration, context},
};
use fltsim::{Open, World};
use windows_sys::Wdk::Storage::FileSystem::FILE_OVERWRITE_IF;

const NAME: &str = "requeue-model";
const PATH: &str = "C:\\requeue.bin";
/// A bound on a hang, not a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

static FILTER: FilterSlot = FilterSlot::new();
static CONTEXTS: ContextTable<2> = ContextTable::new([
    context(FLT_SECTION_CONTEXT, 8, 0x7152_6452, None),
    CONTEXT_END,
]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)
    .contexts(&CONTEXTS)
    .instance_setup(Some(setup))
    .section_notification(Some(notified))
    .unload(Some(unload));

/// The open sections, as (handle, object, context) addresses.
static SECTIONS: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());
/// How many notifications the filter received.
static NOTIFICATIONS: AtomicUsize = AtomicUsize::new(0);
/// The first notification asks the test (through the sender) to create a second section, and
/// waits for its answer.
static ASK: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> = Mutex::new(None);

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
    // SAFETY: the instance being set up.
    unsafe { FltRegisterForDataScan(instance) }
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

unsafe extern "system" fn notified(
    _: PFLT_INSTANCE,
    context: PFLT_CONTEXT,
    _: *const FLT_CALLBACK_DATA,
) -> NTSTATUS {
    let first = NOTIFICATIONS.fetch_add(1, Ordering::SeqCst) == 0;
    let mine = {
        let mut sections = SECTIONS.lock().unwrap();
        let at = sections.iter().position(|s| s.2 == context as usize);
        at.map(|at| sections.remove(at))
    };
    if let Some(section) = mine {
        close(section);
    }
    if first && let Some((ask, answered)) = ASK.lock().unwrap().take() {
        ask.send(()).unwrap();
        answered.recv_timeout(BOUND).unwrap();
    }
    STATUS_SUCCESS
}

/// Creates a section on the file object and records it.
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
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap(),
        Attributes: OBJ_KERNEL_HANDLE,
        ..OBJECT_ATTRIBUTES::default()
    };
    let (mut handle, mut object): (HANDLE, *mut c_void) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: an instance registered for data scan, an open file object, a fresh section context
    // and valid out pointers.
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
    SECTIONS
        .lock()
        .unwrap()
        .push((handle as usize, object as usize, ctx as usize));
}

/// Closes a section in the documented order.
fn close((handle, object, ctx): (usize, usize, usize)) {
    // SAFETY: the kernel handle the create returned, closed once.
    unsafe { ObCloseHandle(handle as HANDLE, KERNEL_MODE) };
    // SAFETY: the object reference the create returned, dropped once.
    unsafe { ObfDereferenceObject(object as *mut c_void) };
    // SAFETY: the linked context, closed once.
    let closed = unsafe { FltCloseSectionForDataScan(ctx as PFLT_CONTEXT) };
    assert_eq!(closed, STATUS_SUCCESS);
    // SAFETY: the allocation reference, released once.
    unsafe { FltReleaseContext(ctx as PFLT_CONTEXT) };
}

#[test]
fn a_section_created_while_an_operation_is_pended_is_notified_in_turn() {
    let world = World::new();
    // Long enough for any machine; the old model waited it out and reported a hang.
    world.set_pend_limit(Duration::from_secs(5));
    world.create_file(PATH, &[1; 4096]);
    world.load(NAME, 265_996, driver_entry).unwrap();
    let instance = world.instance_handle(NAME, 'C').expect("attached to C:");
    let reader = world.open(PATH, Open::read()).unwrap();
    let fo = world.file_object(reader) as usize;
    create(instance, fo as *const FILE_OBJECT);

    let (ask, asked) = mpsc::channel();
    let (answer, answered) = mpsc::channel();
    *ASK.lock().unwrap() = Some((ask, answered));
    let (done, overwrite) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            done.send(world.open(PATH, Open::write().disposition(FILE_OVERWRITE_IF)))
                .unwrap();
        });
        // The first notification closed the first section; before it returns, a second one.
        asked.recv_timeout(BOUND).expect("the owner was notified");
        create(instance, fo as *const FILE_OBJECT);
        answer.send(()).unwrap();
        let writer = overwrite.recv_timeout(BOUND).unwrap();
        let writer = writer.expect("the destructive create goes through once both are closed");
        world.close(writer).unwrap();
    });
    assert_eq!(
        NOTIFICATIONS.load(Ordering::SeqCst),
        2,
        "both owners notified"
    );
    assert!(SECTIONS.lock().unwrap().is_empty());
    assert_eq!(world.contents(PATH).map(|c| c.len()), Some(0));
    world.close(reader).unwrap();
    world.finish();
}
