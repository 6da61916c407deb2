//! The model changes made for the section-conflict sample (see `fs.rs`'s top doc and
//! `io::perform`):
//! - Filter Manager holds a reference on the section context for the duration of the
//!   `SectionNotificationCallback`, so a callback that closes the section and drops the last
//!   reference of its own can still read the context until it returns.
//! - Purge failure mode (the `FSCTL_SET_PURGE_FAILURE_MODE` page): Filter Manager brackets each
//!   data-scan section's life with ENABLED / DISABLED; while one is outstanding, the file system
//!   fails a purge of the table's operations (destructive create: `STATUS_USER_MAPPED_FILE`;
//!   non-cached write, set-information: `STATUS_PURGE_FAILED`), and Filter Manager pends the
//!   operation, calls the `SectionNotificationCallback`s, and requeues it to the file system once
//!   the sections it notified are closed; a section created meanwhile fails the requeued
//!   operation again and is notified in turn. Other operations (a flush-and-purge) the file
//!   system pends itself; a cached write needs no purge. The status and the requeue are
//!   invisible to filters. Outside purge failure mode the failure reaches the caller.

use std::{
    ffi::c_void,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
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
        SEC_COMMIT, SECTION_MAP_READ, STATUS_END_OF_FILE, STATUS_PENDING, STATUS_SUCCESS,
        STATUS_USER_MAPPED_FILE, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context, operation,
    },
};
use fltsim::{Handle, NtStatus, Open, World};
use windows_sys::Wdk::Storage::FileSystem::FILE_OVERWRITE;

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
    if status != STATUS_SUCCESS {
        // An empty file (a requeued overwrite, say) has nothing to scan.
        assert_eq!(status, STATUS_END_OF_FILE);
        // SAFETY: the context allocated above, never used for a section.
        unsafe { FltReleaseContext(ctx) };
        return;
    }
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
    // Once: the section created here is notified in turn, and then stays closed.
    if RECREATE.swap(false, Ordering::SeqCst) {
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
fn a_section_created_during_the_notification_is_notified_in_turn() {
    let world = World::new();
    world.create_file("C:\\g.bin", b"some more bytes");
    RECREATE.store(true, Ordering::SeqCst);
    world.load("model-test", 265_999, driver_entry).unwrap();
    let reader = world.open("C:\\g.bin", Open::read()).unwrap();
    let writer = world.open("C:\\g.bin", Open::write()).unwrap();
    // The callback closes the first section and creates another before it returns. Filter
    // Manager requeues the truncation once the notified section is closed; the requeue meets the
    // new section, is pended again, and that section's owner is notified in turn.
    assert_eq!(world.set_end_of_file(writer, 1), Ok(()));
    let notifications = world
        .trace()
        .iter()
        .filter(|e| e.text.starts_with("SectionNotificationCallback <-"))
        .count();
    assert_eq!(notifications, 2);
    assert!(HELD.lock().unwrap().is_empty());
    assert_eq!(world.contents("C:\\g.bin").unwrap(), b"s");
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

/// Waits (bounded) for a trace event whose text contains `text`.
fn wait_for(world: &World, text: &str) -> usize {
    world
        .wait_for_event(Duration::from_secs(5), |e| e.text.contains(text))
        .unwrap_or_else(|| panic!("no trace event containing {text:?}"))
        .seq
        .try_into()
        .unwrap()
}

/// The position of the first trace event (from `from`) whose text contains `text`.
fn position(world: &World, from: usize, text: &str) -> usize {
    let trace = world.trace();
    from + trace[from..]
        .iter()
        .position(|e| e.text.contains(text))
        .unwrap_or_else(|| panic!("no trace event containing {text:?} after #{from}"))
}

/// One conflicting operation of the page's table (or not), as a user issues it.
#[derive(Clone, Copy, Debug)]
enum Op {
    Truncate,
    NonCachedWrite,
    Overwrite,
    FlushAndPurge,
}

const FILE: &str = "C:\\t.bin";
const BYTES: &[u8] = b"0123456789abcdef";

impl Op {
    fn run(self, world: &World, writer: Handle) -> Result<(), NtStatus> {
        match self {
            Self::Truncate => world.set_end_of_file(writer, 4),
            Self::NonCachedWrite => world.write(writer, 0, b"XXXX", true),
            Self::FlushAndPurge => world.purge(writer),
            Self::Overwrite => {
                let h = world.open(
                    FILE,
                    Open {
                        disposition: FILE_OVERWRITE,
                        ..Open::write()
                    },
                )?;
                world.close(h)
            }
        }
    }

    /// The file after the operation went through.
    fn expected(self) -> Vec<u8> {
        match self {
            Self::Truncate => BYTES[..4].to_vec(),
            Self::NonCachedWrite => [b"XXXX", &BYTES[4..]].concat(),
            Self::FlushAndPurge => BYTES.to_vec(),
            Self::Overwrite => Vec::new(),
        }
    }

    /// What the file system answers a failed purge with while purge failure mode is
    /// outstanding, for the operations Filter Manager pends; `None`: the file system pends it.
    fn failure(self) -> Option<&'static str> {
        match self {
            Self::Truncate | Self::NonCachedWrite => Some("STATUS_PURGE_FAILED"),
            Self::Overwrite => Some("STATUS_USER_MAPPED_FILE"),
            Self::FlushAndPurge => None,
        }
    }
}

/// A world with the test filter holding a section on FILE (opened by a reader), and the
/// counting filters "above" and "below" it; returns (reader, writer).
fn setup_held(world: &World) -> (Handle, Handle) {
    RECREATE.store(false, Ordering::SeqCst);
    world.create_file(FILE, BYTES);
    world.load_counting_filter("above", 370_000);
    world.load("model-test", 265_999, driver_entry).unwrap();
    world.load_counting_filter("below", 100_000);
    let reader = world.open(FILE, Open::read()).unwrap();
    let writer = world.open(FILE, Open::write()).unwrap();
    assert_eq!(HELD.lock().unwrap().len(), 1);
    (reader, writer)
}

/// With the notification: the file system fails the purge with the table's status, Filter
/// Manager pends the operation, calls the callback (which closes the section: DISABLED), and
/// requeues it to the file system, where it succeeds. Filters above and below the section's
/// owner see one pre- and one post-operation callback, with the final status.
fn assert_pended_notified_and_requeued(op: Op) {
    let world = World::new();
    let (reader, writer) = setup_held(&world);
    let since = world.trace().len();
    let above = world.counts("above");
    let below = world.counts("below");
    assert_eq!(op.run(&world, writer), Ok(()), "{op:?}");
    assert_eq!(world.contents(FILE).unwrap(), op.expected(), "{op:?}");
    assert!(
        HELD.lock().unwrap().is_empty(),
        "{op:?}: the callback closed it"
    );
    let status = op.failure().unwrap();
    let failed = position(&world, since, &format!("fails with {status}"));
    let pended = position(&world, failed, "Filter Manager pends it");
    let notified = position(&world, pended, "SectionNotificationCallback -> model-test");
    let disabled = position(&world, notified, "SET_PURGE_FAILURE_MODE_DISABLED");
    let requeued = position(&world, disabled, "requeued to the file system");
    assert!(requeued > disabled, "{op:?}");
    // The requeue is Filter Manager's own: no filter's callback runs for it again.
    let major = match op {
        Op::Truncate => 6,
        Op::NonCachedWrite => 4,
        _ => 0,
    };
    for (name, before) in [("above", above), ("below", below)] {
        let after = world.counts(name);
        assert_eq!(after.pre[major] - before.pre[major], 1, "{op:?}: {name}");
        assert_eq!(after.post[major] - before.post[major], 1, "{op:?}: {name}");
    }
    assert!(
        world
            .trace()
            .iter()
            .filter(|e| e.text.starts_with("Post"))
            .all(|e| !e.text.contains(status)),
        "{op:?}: a post-operation callback saw the purge failure"
    );
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

#[test]
fn a_truncation_is_pended_and_requeued_after_the_notification_closes_the_section() {
    assert_pended_notified_and_requeued(Op::Truncate);
}

#[test]
fn a_non_cached_write_is_pended_and_requeued_after_the_notification_closes_the_section() {
    assert_pended_notified_and_requeued(Op::NonCachedWrite);
}

#[test]
fn a_destructive_create_is_pended_and_requeued_after_the_notification_closes_the_section() {
    assert_pended_notified_and_requeued(Op::Overwrite);
}

/// Without a notification (withheld; a filter that registered none), nothing expedites the
/// close: the operation waits, pended, until the section's owner closes it, then is requeued
/// and succeeds. A flush-and-purge is the page's "any other operation": the file system pends
/// it itself until the outstanding count drops to zero, and Filter Manager never learns of it,
/// so no callback is called even when one is registered.
fn assert_waits_for_the_close(op: Op, notifications: bool) {
    let world = World::new();
    world.set_section_notifications(notifications);
    let (reader, writer) = setup_held(&world);
    let since = world.trace().len();
    std::thread::scope(|s| {
        let pending = s.spawn(|| op.run(&world, writer));
        let pended = match op.failure() {
            Some(_) => "Filter Manager pends it",
            None => "so it pends",
        };
        wait_for(&world, pended);
        assert_eq!(world.contents(FILE).unwrap(), BYTES, "{op:?}: not yet done");
        close(HELD.lock().unwrap().pop().unwrap());
        assert_eq!(pending.join().unwrap(), Ok(()), "{op:?}");
    });
    assert_eq!(world.contents(FILE).unwrap(), op.expected(), "{op:?}");
    let trace = world.trace();
    assert!(
        trace[since..]
            .iter()
            .all(|e| !e.text.starts_with("SectionNotificationCallback")),
        "{op:?}"
    );
    let reissue = match op.failure() {
        Some(_) => "requeued to the file system",
        None => "reissues",
    };
    let disabled = position(&world, since, "SET_PURGE_FAILURE_MODE_DISABLED");
    position(&world, disabled, reissue);
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

#[test]
fn without_a_notification_each_row_waits_for_the_close_and_then_succeeds() {
    for op in [
        Op::Truncate,
        Op::NonCachedWrite,
        Op::Overwrite,
        Op::FlushAndPurge,
    ] {
        assert_waits_for_the_close(op, false);
    }
}

#[test]
fn a_flush_and_purge_is_pended_by_the_file_system_without_a_notification() {
    assert_waits_for_the_close(Op::FlushAndPurge, true);
}

#[test]
fn a_cached_write_needs_no_purge_and_goes_through_at_once() {
    let world = World::new();
    let (reader, writer) = setup_held(&world);
    let since = world.trace().len();
    world.write(writer, 0, b"YY", false).unwrap();
    assert_eq!(&world.contents(FILE).unwrap()[..2], b"YY");
    assert_eq!(HELD.lock().unwrap().len(), 1, "the section stayed open");
    assert!(
        world.trace()[since..]
            .iter()
            .all(|e| !e.text.contains("pends") && !e.text.starts_with("SectionNotification"))
    );
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

/// Outside purge failure mode the failure goes to the application: a section object that
/// outlives its `FltCloseSectionForDataScan` (the link closed first, the handle still open) still
/// holds the cache, and no `FSCTL_SET_PURGE_FAILURE_MODE` is outstanding any more.
#[test]
fn outside_purge_failure_mode_the_failure_reaches_the_caller() {
    let world = World::new();
    let (reader, writer) = setup_held(&world);
    let held = HELD.lock().unwrap().pop().unwrap();
    // SAFETY: the context `create` linked; the link is closed first on purpose.
    let status = unsafe { FltCloseSectionForDataScan(held.2 as PFLT_CONTEXT) };
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(
        world.set_end_of_file(writer, 1),
        Err(NtStatus(STATUS_USER_MAPPED_FILE))
    );
    assert!(world.trace().iter().all(|e| !e.text.contains("pends it")));
    // SAFETY: the handle and object `create` recorded, each released once.
    unsafe { ObCloseHandle(held.3 as HANDLE, KERNEL_MODE) };
    // SAFETY: as above.
    unsafe { ObfDereferenceObject(held.4 as *const c_void) };
    // SAFETY: the allocation reference.
    unsafe { FltReleaseContext(held.2 as PFLT_CONTEXT) };
    assert_eq!(world.set_end_of_file(writer, 1), Ok(()));
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

/// A section nobody closes: on Windows the caller hangs. The model waits its pend limit,
/// reports it as a finding, and completes the operation with `STATUS_PENDING` (neither failed
/// nor done; no post-operation callback).
#[test]
fn an_operation_pended_on_a_section_that_never_closes_is_a_finding() {
    let world = World::new();
    world.set_section_notifications(false);
    world.set_pend_limit(Duration::from_millis(50));
    let (reader, writer) = setup_held(&world);
    let post_before = world.counts("above").post[6];
    assert_eq!(
        world.set_end_of_file(writer, 1),
        Err(NtStatus(STATUS_PENDING))
    );
    assert_eq!(world.contents(FILE).unwrap(), BYTES);
    assert_eq!(world.counts("above").post[6], post_before);
    let findings = world.take_violations();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]
            .message
            .contains("has been pended by Filter Manager")
            && findings[0].message.contains("its caller hangs"),
        "{findings:?}"
    );
    close(HELD.lock().unwrap().pop().unwrap());
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}

/// The same for the page's "any other operation": a flush-and-purge, which the file system pends
/// itself and nobody is notified of, is a hang past the limit too, and a finding (issue 28: it
/// is the wait the section-conflict sample's pre-flush now prevents).
#[test]
fn a_flush_and_purge_pended_on_a_section_that_never_closes_is_a_finding() {
    let world = World::new();
    world.set_pend_limit(Duration::from_millis(50));
    let (reader, writer) = setup_held(&world);
    assert_eq!(
        Op::FlushAndPurge.run(&world, writer),
        Err(NtStatus(STATUS_PENDING))
    );
    assert_eq!(world.contents(FILE).unwrap(), BYTES);
    let trace = world.trace();
    assert!(
        trace
            .iter()
            .all(|e| !e.text.starts_with("SectionNotificationCallback"))
    );
    let findings = world.take_violations();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]
            .message
            .contains("has been pended by the file system")
            && findings[0].message.contains("its caller hangs"),
        "{findings:?}"
    );
    close(HELD.lock().unwrap().pop().unwrap());
    world.close(writer).unwrap();
    world.close(reader).unwrap();
    world.finish();
}
