//! The model change made for the data-scan sample (`abi/sections.rs`, `create_section`): one
//! data-scan section per stream per instance, checked again under the lock that links the section.
//! Two `FltCreateSectionForDataScan` calls on different threads can both pass the first check
//! (nothing linked yet); only one may link, and the other gets
//! `STATUS_FLT_CONTEXT_ALREADY_DEFINED`, as Filter Manager's own lock guarantees on Windows.
//!
//! A tiny test filter creates the sections from two threads at once, through two opens of one
//! file, for many rounds. Each round both creates finish before either section is closed, so
//! exactly one may succeed whichever check refuses the other.

use std::{ffi::c_void, sync::Barrier};

use common::{
    KERNEL_MODE,
    bindings::{
        DRIVER_OBJECT, FILE_OBJECT, FLT_FILESYSTEM_TYPE, FLT_REGISTRATION_VERSION_0203,
        FLT_RELATED_OBJECTS, FLT_SECTION_CONTEXT, FltAllocateContext, FltCloseSectionForDataScan,
        FltCreateSectionForDataScan, FltRegisterForDataScan, FltReleaseContext, HANDLE, NTSTATUS,
        NonPagedPoolNx, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, ObCloseHandle, ObfDereferenceObject,
        PAGE_READONLY, PFLT_CONTEXT, PFLT_INSTANCE, SEC_COMMIT, SECTION_MAP_READ,
        STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    registration::{CONTEXT_END, ContextTable, Registration, context},
};
use fltsim::{Open, World};

const NAME: &str = "data-scan-model";

static FILTER: FilterSlot = FilterSlot::new();
static CONTEXTS: ContextTable<2> = ContextTable::new([
    context(FLT_SECTION_CONTEXT, 8, 0x6D53_6452, None),
    CONTEXT_END,
]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0203)
    .contexts(&CONTEXTS)
    .instance_setup(Some(setup))
    .unload(Some(unload));

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
    // SAFETY: the instance being set up; a non-C: volume answers STATUS_NOT_SUPPORTED.
    unsafe { FltRegisterForDataScan(instance) }
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

/// A section created by [`try_create`]: handle, object and context.
struct Created(HANDLE, *mut c_void, PFLT_CONTEXT);

/// Allocates a section context and tries to create a section with it. On failure the context is
/// released; on success the caller closes everything with [`close`].
fn try_create(instance: PFLT_INSTANCE, fo: *const FILE_OBJECT) -> Result<Created, NTSTATUS> {
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
    if status == STATUS_SUCCESS {
        Ok(Created(handle, object, ctx))
    } else {
        // SAFETY: the allocation reference; the context was never linked.
        unsafe { FltReleaseContext(ctx) };
        Err(status)
    }
}

/// Closes a created section in the documented order.
fn close(c: &Created) {
    // SAFETY: the kernel handle the create returned, closed once.
    unsafe { ObCloseHandle(c.0, KERNEL_MODE) };
    // SAFETY: the object reference the create returned, dropped once.
    unsafe { ObfDereferenceObject(c.1) };
    // SAFETY: the linked context, closed once.
    assert_eq!(unsafe { FltCloseSectionForDataScan(c.2) }, STATUS_SUCCESS);
    // SAFETY: the allocation reference, released once.
    unsafe { FltReleaseContext(c.2) };
}

#[test]
fn two_threads_creating_a_section_for_one_stream_link_exactly_one() {
    const ROUNDS: usize = 200;
    let world = World::new();
    world.create_file("C:\\race.bin", b"bytes for two sections");
    world.load(NAME, 265_998, driver_entry).unwrap();
    let instance = world.instance_handle(NAME, 'C').expect("attached to C:");
    let first = world.open("C:\\race.bin", Open::read()).unwrap();
    let second = world.open("C:\\race.bin", Open::read()).unwrap();
    // File objects cross threads as addresses.
    let fos = [
        world.file_object(first) as usize,
        world.file_object(second) as usize,
    ];
    let both_tried = Barrier::new(2);
    let start = Barrier::new(2);
    let mut winners = [0usize; 2];
    for _ in 0..ROUNDS {
        let results: Vec<Result<(), NTSTATUS>> = std::thread::scope(|s| {
            let threads: Vec<_> = fos
                .iter()
                .map(|&fo| {
                    let (start, both_tried) = (&start, &both_tried);
                    s.spawn(move || {
                        start.wait();
                        let created = try_create(instance, fo as *const FILE_OBJECT);
                        // Neither section is closed before both creates have returned.
                        both_tried.wait();
                        created.map(|c| close(&c))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let won: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(won.len(), 1, "exactly one links: {results:?}");
        winners[won[0]] += 1;
        let loser = 1 - won[0];
        assert_eq!(results[loser], Err(STATUS_FLT_CONTEXT_ALREADY_DEFINED));
        world.assert_clean();
    }
    assert_eq!(winners[0] + winners[1], ROUNDS);
    assert_eq!(world.calls("FltCloseSectionForDataScan").len(), ROUNDS);
    world.close(first).unwrap();
    world.close(second).unwrap();
    world.finish();
}

/// `World::hold_next_section_create`: the create is held after linking and before returning, so
/// another thread meets the section (a second create is refused) until the hold is released; an
/// unreached hold is disarmed by dropping it.
#[test]
fn a_held_create_has_linked_its_section_and_returns_when_released() {
    let world = World::new();
    world.create_file("C:\\held.bin", b"bytes for one section");
    world.load(NAME, 265_997, driver_entry).unwrap();
    let instance = world.instance_handle(NAME, 'C').expect("attached to C:");
    let first = world.open("C:\\held.bin", Open::read()).unwrap();
    let second = world.open("C:\\held.bin", Open::read()).unwrap();
    let fos = [
        world.file_object(first) as usize,
        world.file_object(second) as usize,
    ];
    let hold = world.hold_next_section_create();
    std::thread::scope(|s| {
        let creator =
            s.spawn(|| try_create(instance, fos[0] as *const FILE_OBJECT).map(|c| close(&c)));
        assert!(hold.wait_held(std::time::Duration::from_secs(10)));
        assert!(!creator.is_finished(), "a held create does not return");
        // Linked while held: the stream already has this instance's section.
        assert_eq!(
            try_create(instance, fos[1] as *const FILE_OBJECT).map(|c| close(&c)),
            Err(STATUS_FLT_CONTEXT_ALREADY_DEFINED)
        );
        hold.release();
        assert_eq!(creator.join().unwrap(), Ok(()));
    });
    // A hold nobody reached, dropped: the next create is not held.
    drop(world.hold_next_section_create());
    assert_eq!(
        try_create(instance, fos[1] as *const FILE_OBJECT).map(|c| close(&c)),
        Ok(())
    );
    world.close(first).unwrap();
    world.close(second).unwrap();
    world.finish();
}
