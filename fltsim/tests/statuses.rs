//! The model's own tests: every status REFERENCE.md §1 lists for the APIs in scope, and the
//! verifier findings for each documented misuse. A tiny probe filter provides the filter and
//! instance handles; the test thread then calls Filter Manager directly.

use std::{ffi::c_void, ptr, sync::Mutex, time::Duration};

use common::bindings::{
    FLT_CONTEXT_REGISTRATION, FLT_STREAMHANDLE_CONTEXT,
    FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH, IRP_PAGING_IO, PagedPool,
    STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND, STATUS_INVALID_PARAMETER_8,
    STATUS_INVALID_PARAMETER_9,
};
use common::bindings::{
    FltCancellableWaitForSingleObject, KEVENT, KeInitializeEvent, KeLeaveCriticalRegion,
    KeSetEvent, STATUS_THREAD_IS_TERMINATING, STATUS_TIMEOUT,
};
use common::{
    bindings::{
        DRIVER_OBJECT, FILE_END_OF_FILE_INFORMATION, FILE_OBJECT,
        FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY, FLT_CALLBACK_DATA,
        FLT_IO_PARAMETER_BLOCK, FLT_PARAMETERS_5, FLT_REGISTRATION_VERSION_0202,
        FLT_SECTION_CONTEXT, FileStandardInformation, FltAllocateCallbackData,
        FltAllocateCallbackDataEx, FltAllocateContext, FltCloseSectionForDataScan,
        FltCreateSectionForDataScan, FltDeleteContext, FltFreeCallbackData, FltGetSectionContext,
        FltPerformAsynchronousIo, FltPerformSynchronousIo, FltRegisterForDataScan,
        FltReleaseContext, FltReuseCallbackData, FltUnregisterFilter, HANDLE, IRP_MJ_CREATE,
        IRP_MJ_QUERY_INFORMATION, MM_COPY_ADDRESS, MM_COPY_ADDRESS_0, MM_COPY_MEMORY_VIRTUAL,
        MmCopyMemory, MmMapViewInSystemSpace, MmUnmapViewInSystemSpace, NTSTATUS, NonPagedPoolNx,
        OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, ObCloseHandle, ObfDereferenceObject, PAGE_READONLY,
        PFLT_CONTEXT, PFLT_FILTER, PFLT_INSTANCE, SEC_COMMIT, SECTION_MAP_READ, STATUS_END_OF_FILE,
        STATUS_FILE_IS_A_DIRECTORY, STATUS_FILE_LOCK_CONFLICT, STATUS_FLT_CONTEXT_ALREADY_DEFINED,
        STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST, STATUS_INSUFFICIENT_RESOURCES,
        STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_FILE_FOR_SECTION, STATUS_INVALID_INFO_CLASS,
        STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_NOT_SUPPORTED, STATUS_PENDING,
        STATUS_PRIVILEGE_NOT_HELD, STATUS_SUCCESS, STATUS_USER_MAPPED_FILE, UNICODE_STRING,
    },
    context::ContextRef,
    filter::{FilterSlot, RegisteredFilter},
    irql::{APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL},
    registration::{
        CONTEXT_END, ContextTable, OPERATION_END, OperationTable, Registration, context,
    },
};
use fltsim::{Conflict, Handle, NtStatus, Open, World};
use windows_sys::{
    Wdk::Storage::FileSystem::FileEndOfFileInformation,
    Win32::System::{Kernel::NotificationEvent, Memory::SEC_RESERVE},
};

const PROBE: &str = "probe";
/// `IRP_MJ_QUERY_INFORMATION` as the byte `FLT_IO_PARAMETER_BLOCK` holds.
const QUERY: u8 = 5;
/// `IRP_MJ_SET_INFORMATION`, likewise.
const SET_INFORMATION: u8 = 6;
/// `IRP_MJ_READ`, likewise.
const READ: u8 = 3;
/// `FLT_SECTION_CONTEXT` as the 16-bit context type `FltAllocateContext` takes.
const SECTION_CONTEXT: u16 = 0x40;

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<1> = OperationTable::new([OPERATION_END]);
/// `FLT_STREAMHANDLE_CONTEXT` as the 16-bit context type `FltAllocateContext` takes.
const STREAMHANDLE_CONTEXT: u16 = 0x10;
/// `FLT_INSTANCE_CONTEXT`: a type the probe does not register.
const INSTANCE_CONTEXT: u16 = 0x02;

static CONTEXTS: ContextTable<3> = ContextTable::new([
    context(FLT_SECTION_CONTEXT, 16, u32::from_le_bytes(*b"prbS"), None),
    // Any size up to 32 bytes is served (FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH).
    FLT_CONTEXT_REGISTRATION {
        Flags: NO_EXACT_SIZE_MATCH,
        ..context(
            FLT_STREAMHANDLE_CONTEXT,
            32,
            u32::from_le_bytes(*b"prbH"),
            None,
        )
    },
    CONTEXT_END,
]);
#[allow(clippy::cast_possible_truncation)]
const NO_EXACT_SIZE_MATCH: u16 = FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH as u16;
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .contexts(&CONTEXTS)
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

/// A world with the probe loaded and a few files.
fn world() -> World {
    let world = World::new();
    world.create_file("C:\\data\\big.bin", &[7u8; 10_000]);
    world.create_file("C:\\data\\empty.bin", b"");
    world.create_dir("C:\\data\\dir");
    world.create_file("Z:\\remote.bin", b"remote");
    world
        .load(PROBE, 300_000, driver_entry)
        .expect("the probe loads");
    world
}

fn instance(world: &World, letter: char) -> PFLT_INSTANCE {
    world
        .instance_handle(PROBE, letter)
        .expect("the probe attached")
}

fn register_for_data_scan(instance: PFLT_INSTANCE) -> NtStatus {
    // SAFETY: a valid instance handle.
    NtStatus(unsafe { FltRegisterForDataScan(instance) })
}

fn section_context(world: &World) -> PFLT_CONTEXT {
    let mut raw: PFLT_CONTEXT = ptr::null_mut();
    // SAFETY: the probe's filter handle, a registered context type and size, a valid out pointer.
    let status = unsafe {
        FltAllocateContext(
            world.filter_handle(PROBE),
            SECTION_CONTEXT,
            16,
            NonPagedPoolNx,
            &raw mut raw,
        )
    };
    assert_eq!(NtStatus(status), NtStatus::SUCCESS);
    raw
}

/// What `FltCreateSectionForDataScan` returned.
struct Created {
    status: NtStatus,
    handle: HANDLE,
    object: *mut c_void,
    size: i64,
}

fn create_section(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    ctx: PFLT_CONTEXT,
    kernel_handle: bool,
) -> Created {
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(std::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap(),
        Attributes: if kernel_handle { OBJ_KERNEL_HANDLE } else { 0 },
        ..Default::default()
    };
    let mut created = Created {
        status: NtStatus::SUCCESS,
        handle: ptr::null_mut(),
        object: ptr::null_mut(),
        size: 0,
    };
    // SAFETY: valid instance, file object and section context; read-only section parameters as
    // the documentation recommends; valid out pointers.
    created.status = NtStatus(unsafe {
        FltCreateSectionForDataScan(
            instance,
            fo,
            ctx,
            SECTION_MAP_READ,
            &raw const attributes,
            ptr::null(),
            PAGE_READONLY,
            SEC_COMMIT,
            0,
            &raw mut created.handle,
            &raw mut created.object,
            &raw mut created.size,
        )
    });
    created
}

/// Releases a created section in the documented order.
fn close_section(created: &Created, ctx: PFLT_CONTEXT) -> NtStatus {
    // SAFETY: the handle and object the create returned, each released once.
    unsafe { ObCloseHandle(created.handle, 0) };
    // SAFETY: as above.
    unsafe { ObfDereferenceObject(created.object) };
    close_for_data_scan(ctx)
}

fn close_for_data_scan(ctx: PFLT_CONTEXT) -> NtStatus {
    // SAFETY: a context pointer the test allocated (the model checks the rest).
    NtStatus(unsafe { FltCloseSectionForDataScan(ctx) })
}

fn release(ctx: PFLT_CONTEXT) {
    // SAFETY: a context pointer the test allocated (the model checks the reference count).
    unsafe { FltReleaseContext(ctx) };
}

fn get_section_context(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
) -> (NtStatus, PFLT_CONTEXT) {
    let mut ctx: PFLT_CONTEXT = 0x1 as PFLT_CONTEXT;
    // SAFETY: valid instance and file object, valid out pointer.
    let status = NtStatus(unsafe { FltGetSectionContext(instance, fo, &raw mut ctx) });
    (status, ctx)
}

fn open(world: &World, path: &str) -> Handle {
    world.open(path, Open::read()).expect("opens")
}

fn messages(world: &World) -> Vec<String> {
    world
        .take_violations()
        .into_iter()
        .map(|v| v.message)
        .collect()
}

// ---- sections for data scan ---------------------------------------------------------------------

#[test]
fn register_for_data_scan_is_not_supported_on_the_network_volume() {
    let world = world();
    assert_eq!(
        register_for_data_scan(instance(&world, 'Z')),
        NtStatus(STATUS_NOT_SUPPORTED)
    );
    assert_eq!(
        register_for_data_scan(instance(&world, 'C')),
        NtStatus::SUCCESS
    );
    world.finish();
}

#[test]
fn create_section_without_registering_for_data_scan_is_an_invalid_parameter() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(instance(&world, 'C'), world.file_object(h), ctx, true);
    assert_eq!(created.status, NtStatus(STATUS_INVALID_PARAMETER));
    release(ctx);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn a_section_maps_the_file_and_closes_in_the_documented_order() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, true);
    assert_eq!(created.status, NtStatus::SUCCESS);
    assert_eq!(created.size, 10_000);

    let (mut base, mut size) = (ptr::null_mut::<c_void>(), 0usize);
    // SAFETY: the referenced section object; valid out pointers.
    let mapped =
        NtStatus(unsafe { MmMapViewInSystemSpace(created.object, &raw mut base, &raw mut size) });
    assert_eq!(mapped, NtStatus::SUCCESS);
    // Whole pages: 10,000 bytes map as 12,288.
    assert_eq!(size, 12_288);
    // Read through MmCopyMemory only: the view itself is not readable memory.
    let mut bytes = vec![0xAAu8; size];
    let mut copied = 0usize;
    let source = MM_COPY_ADDRESS {
        Anonymous: MM_COPY_ADDRESS_0 {
            VirtualAddress: base,
        },
    };
    // SAFETY: a source in the mapped view, a writable target of `size` bytes, a valid count.
    let status = NtStatus(unsafe {
        MmCopyMemory(
            bytes.as_mut_ptr().cast(),
            source,
            size,
            MM_COPY_MEMORY_VIRTUAL,
            &raw mut copied,
        )
    });
    assert_eq!((status, copied), (NtStatus::SUCCESS, size));
    assert!(bytes[..10_000].iter().all(|b| *b == 7));
    assert!(
        bytes[10_000..].iter().all(|b| *b == 0),
        "past the end of the file: zeros"
    );
    // SAFETY: the view just mapped, unmapped once.
    unsafe { MmUnmapViewInSystemSpace(base) };

    assert_eq!(close_section(&created, ctx), NtStatus::SUCCESS);
    release(ctx);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn one_section_per_stream_per_instance() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let (a, b) = (
        open(&world, "C:\\data\\big.bin"),
        open(&world, "C:\\data\\big.bin"),
    );
    let (first_ctx, second_ctx) = (section_context(&world), section_context(&world));
    let first = create_section(inst, world.file_object(a), first_ctx, true);
    let second = create_section(inst, world.file_object(b), second_ctx, true);
    assert_eq!(first.status, NtStatus::SUCCESS);
    assert_eq!(second.status, NtStatus(STATUS_FLT_CONTEXT_ALREADY_DEFINED));
    // The unused context is released, never closed.
    release(second_ctx);
    assert_eq!(close_section(&first, first_ctx), NtStatus::SUCCESS);
    release(first_ctx);
    world.close(a).unwrap();
    world.close(b).unwrap();
    world.finish();
}

#[test]
fn an_empty_file_is_end_of_file_and_a_directory_is_a_directory() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let empty = open(&world, "C:\\data\\empty.bin");
    let dir = world.open("C:\\data\\dir", Open::directory()).unwrap();
    let ctx = section_context(&world);
    assert_eq!(
        create_section(inst, world.file_object(empty), ctx, true).status,
        NtStatus(STATUS_END_OF_FILE)
    );
    assert_eq!(
        create_section(inst, world.file_object(dir), ctx, true).status,
        NtStatus(STATUS_FILE_IS_A_DIRECTORY)
    );
    release(ctx);
    world.close(empty).unwrap();
    world.close(dir).unwrap();
    world.finish();
}

#[test]
fn injected_create_failures_come_back_with_their_documented_status() {
    for status in [
        STATUS_FILE_LOCK_CONFLICT,
        STATUS_INVALID_FILE_FOR_SECTION,
        STATUS_NOT_SUPPORTED,
        STATUS_PRIVILEGE_NOT_HELD,
        STATUS_INSUFFICIENT_RESOURCES,
    ] {
        let world = world();
        let inst = instance(&world, 'C');
        register_for_data_scan(inst);
        world.fail_nth_with("FltCreateSectionForDataScan", 1, status);
        let h = open(&world, "C:\\data\\big.bin");
        let ctx = section_context(&world);
        assert_eq!(
            create_section(inst, world.file_object(h), ctx, true).status,
            NtStatus(status)
        );
        release(ctx);
        world.close(h).unwrap();
        world.finish();
    }
}

#[test]
fn closing_a_context_never_used_is_an_invalid_parameter_and_a_finding() {
    let world = world();
    let ctx = section_context(&world);
    assert_eq!(close_for_data_scan(ctx), NtStatus(STATUS_INVALID_PARAMETER));
    let found = messages(&world);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("never used to create a section"),
        "{found:?}"
    );
    release(ctx);
    world.finish();
}

#[test]
fn closing_twice_is_not_found_and_not_a_finding() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, true);
    assert_eq!(close_section(&created, ctx), NtStatus::SUCCESS);
    // A documented result the filter handles (for example when Filter Manager closed it first
    // at teardown), not misuse.
    assert_eq!(close_for_data_scan(ctx), NtStatus(STATUS_NOT_FOUND));
    assert_eq!(messages(&world), [] as [String; 0]);
    release(ctx);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn a_section_without_obj_kernel_handle_is_a_finding() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, false);
    assert_eq!(created.status, NtStatus::SUCCESS);
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("OBJ_KERNEL_HANDLE"),
        "{found:?}"
    );
    close_section(&created, ctx);
    release(ctx);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn leaking_the_section_handle_and_object_is_reported_at_unload() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, true);
    assert_eq!(created.status, NtStatus::SUCCESS);
    // Only the Filter Manager link is closed: the handle and object leak.
    assert_eq!(close_for_data_scan(ctx), NtStatus::SUCCESS);
    release(ctx);
    world.close(h).unwrap();
    world.unload(PROBE).unwrap();
    let found = messages(&world);
    assert!(
        found
            .iter()
            .any(|m| m.contains("section handle") && m.contains("never closed")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|m| m.contains("section object") && m.contains("never dereferenced")),
        "{found:?}"
    );
    world.finish();
}

// ---- FltGetSectionContext -----------------------------------------------------------------------

#[test]
fn get_section_context_not_found_sets_null() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    let (status, ctx) = get_section_context(instance(&world, 'C'), world.file_object(h));
    assert_eq!(status, NtStatus(STATUS_NOT_FOUND));
    assert!(ctx.is_null());
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn get_section_context_is_not_supported_on_the_network_volume() {
    let world = world();
    let h = open(&world, "Z:\\remote.bin");
    let (status, ctx) = get_section_context(instance(&world, 'Z'), world.file_object(h));
    assert_eq!(status, NtStatus(STATUS_NOT_SUPPORTED));
    assert!(ctx.is_null());
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn every_successful_get_adds_a_reference_that_must_be_released() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, true);
    let (status, found) = get_section_context(inst, world.file_object(h));
    assert_eq!((status, found), (NtStatus::SUCCESS, ctx));
    // The reference from the get is not released: the leak is reported at unload.
    close_section(&created, ctx);
    release(ctx);
    let (after, null) = get_section_context(inst, world.file_object(h));
    assert_eq!(after, NtStatus(STATUS_NOT_FOUND));
    assert!(null.is_null());
    world.close(h).unwrap();
    world.unload(PROBE).unwrap();
    let leaks = messages(&world);
    assert!(
        leaks.len() == 1 && leaks[0].contains("leaked context") && leaks[0].contains("1 reference"),
        "{leaks:?}"
    );
    world.finish();
}

#[test]
fn releasing_twice_and_deleting_a_section_context_are_findings() {
    let world = world();
    let ctx = section_context(&world);
    // SAFETY: deliberate misuse; the model reports it rather than corrupting anything.
    unsafe { FltDeleteContext(ctx) };
    release(ctx);
    release(ctx);
    let found = messages(&world);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("only by FltCloseSectionForDataScan"),
        "{found:?}"
    );
    assert!(found[1].contains("already freed"), "{found:?}");
    world.finish();
}

// ---- section conflicts --------------------------------------------------------------------------

#[test]
fn conflicting_io_waits_while_a_section_is_open_and_succeeds_once_it_is_closed() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let writer = world.open("C:\\data\\big.bin", Open::read_write()).unwrap();
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, true);
    // A cached write and a growing set-end-of-file do not conflict.
    assert_eq!(world.write(writer, 0, b"x", false), Ok(()));
    assert_eq!(world.set_end_of_file(writer, 20_000), Ok(()));
    // A truncation does: the probe has no notification callback, so it stays pended (purge
    // failure mode) until the section is closed, then is requeued and succeeds.
    std::thread::scope(|s| {
        let truncation = s.spawn(|| world.set_end_of_file(writer, 10));
        world
            .wait_for_event(Duration::from_secs(5), |e| {
                e.text.contains("Filter Manager pends it")
            })
            .expect("the truncation is pended");
        assert_eq!(world.contents("C:\\data\\big.bin").unwrap().len(), 20_000);
        close_section(&created, ctx);
        assert_eq!(truncation.join().unwrap(), Ok(()));
    });
    release(ctx);
    assert_eq!(world.contents("C:\\data\\big.bin").unwrap().len(), 10);
    world.close(h).unwrap();
    world.close(writer).unwrap();
    world.finish();
}

#[test]
fn a_conflict_can_be_delivered_while_the_section_is_being_created() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    world.race_conflict_on_next_section(Conflict::Truncate(1));
    let created = create_section(inst, world.file_object(h), ctx, true);
    assert_eq!(created.status, NtStatus::SUCCESS);
    // The probe has no notification callback: the racing truncation is pended on the section
    // until it is closed, then requeued, and succeeds.
    close_section(&created, ctx);
    assert_eq!(world.race_results(), [Ok(())]);
    release(ctx);
    world.close(h).unwrap();
    world.finish();
}

// ---- callback data ------------------------------------------------------------------------------

/// The parameter block of the test's own (idle) callback data, for filling in a request.
fn iopb_mut<'a>(data: *mut FLT_CALLBACK_DATA) -> &'a mut FLT_IO_PARAMETER_BLOCK {
    // SAFETY: the test owns the callback data, which is valid until it frees it.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: the block belongs to that callback data and nothing else uses it while it is idle.
    unsafe { &mut *iopb.cast_mut() }
}

/// `IoStatus.Status` of completed callback data.
fn io_status(data: *const FLT_CALLBACK_DATA) -> NtStatus {
    // SAFETY: the callback data is valid and its I/O has completed.
    let io = unsafe { (*data).IoStatus };
    // SAFETY: `Status` is the member Filter Manager writes.
    NtStatus(unsafe { io.Anonymous.Status })
}

/// Fills in a `FileStandardInformation` query into `buffer`.
fn set_query(data: *mut FLT_CALLBACK_DATA, buffer: &mut [u8; 24]) {
    let iopb = iopb_mut(data);
    iopb.MajorFunction = QUERY;
    // SAFETY: the query's member (C layout: `common::params`), in the model's zeroed block.
    let query = unsafe { common::params::QueryFileInformation::of_mut(&mut iopb.Parameters) };
    query.Length = 24;
    query.FileInformationClass = FileStandardInformation;
    query.InfoBuffer = buffer.as_mut_ptr().cast();
}

/// Issues a `FileStandardInformation` query with the callback data, returning `IoStatus`.
fn query(data: *mut FLT_CALLBACK_DATA, buffer: &mut [u8; 24]) -> NtStatus {
    set_query(data, buffer);
    // SAFETY: the callback data is ours and fully set up.
    unsafe { FltPerformSynchronousIo(data) };
    io_status(data)
}

fn allocate(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    preallocate: bool,
) -> (NtStatus, *mut FLT_CALLBACK_DATA) {
    let mut data = ptr::null_mut();
    let status = if preallocate {
        // SAFETY: valid instance and file object, valid out pointer.
        unsafe {
            FltAllocateCallbackDataEx(
                instance,
                fo,
                FLT_ALLOCATE_CALLBACK_DATA_PREALLOCATE_ALL_MEMORY,
                &raw mut data,
            )
        }
    } else {
        // SAFETY: as above.
        unsafe { FltAllocateCallbackData(instance, fo, &raw mut data) }
    };
    (NtStatus(status), data)
}

fn free(data: *mut FLT_CALLBACK_DATA) {
    // SAFETY: callback data the test allocated (the model checks double frees).
    unsafe { FltFreeCallbackData(data) };
}

// ---- parameter layout -----------------------------------------------------------------------
//
// fltKernel.h declares `FileInformationClass` (and `Read`/`Write`'s `Key`) `POINTER_ALIGNMENT`:
// offset 8 on 64-bit Windows. windows-sys 0.61 drops the alignment and puts it at 4
// (windows-rs #3525). The model reads what Filter Manager and the file system read, so a request
// filled through windows-sys's members gets Windows's answer: a wrong one, plus a finding.

/// The windows-sys member's fields, as a driver that trusts it would fill them.
fn set_query_the_windows_sys_way(data: *mut FLT_CALLBACK_DATA, buffer: &mut [u8; 24]) {
    let iopb = iopb_mut(data);
    iopb.MajorFunction = QUERY;
    iopb.Parameters.QueryFileInformation = FLT_PARAMETERS_5 {
        Length: 24,
        FileInformationClass: FileStandardInformation,
        InfoBuffer: buffer.as_mut_ptr().cast(),
    };
}

#[test]
fn a_query_filled_through_windows_sys_members_is_malformed() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    let (status, data) = allocate(instance(&world, 'C'), world.file_object(h), true);
    assert_eq!(status, NtStatus::SUCCESS);
    let mut buffer = [0u8; 24];
    set_query_the_windows_sys_way(data, &mut buffer);
    // SAFETY: the callback data is ours and filled in (wrongly, which is the point).
    unsafe { FltPerformSynchronousIo(data) };
    // The file system read the class at offset 8, the low half of the buffer pointer (a
    // multiple of 8, never a valid class here), and wrote nothing.
    assert_eq!(io_status(data), NtStatus(STATUS_INVALID_INFO_CLASS));
    assert_eq!(buffer, [0u8; 24]);
    let found = messages(&world);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("Parameters.QueryFileInformation")
            && found[0].contains("windows-rs #3525"),
        "{found:?}"
    );

    // The same query with the C layout (common::params) succeeds: EndOfFile is at 8.
    // SAFETY: the data is ours and its request has completed.
    unsafe { FltReuseCallbackData(data) };
    assert_eq!(query(data, &mut buffer), NtStatus::SUCCESS);
    assert_eq!(
        i64::from_le_bytes(buffer[8..16].try_into().unwrap()),
        10_000
    );
    free(data);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn a_set_information_filled_through_windows_sys_members_is_malformed() {
    let world = world();
    let h = world
        .open("C:\\data\\big.bin", Open::read_write())
        .expect("opens");
    let (status, data) = allocate(instance(&world, 'C'), world.file_object(h), true);
    assert_eq!(status, NtStatus::SUCCESS);
    let mut eof = FILE_END_OF_FILE_INFORMATION { EndOfFile: 100 };
    let iopb = iopb_mut(data);
    iopb.MajorFunction = SET_INFORMATION;
    iopb.Parameters.SetFileInformation.Length = 8;
    iopb.Parameters.SetFileInformation.FileInformationClass = FileEndOfFileInformation;
    iopb.Parameters.SetFileInformation.InfoBuffer = (&raw mut eof).cast();
    // SAFETY: the callback data is ours and filled in (wrongly).
    unsafe { FltPerformSynchronousIo(data) };
    // The class was read at 8 (ParentOfTarget's place in windows-sys: zero), so the file was
    // not truncated.
    assert_eq!(io_status(data), NtStatus(STATUS_INVALID_INFO_CLASS));
    assert_eq!(world.contents("C:\\data\\big.bin").unwrap().len(), 10_000);
    let found = messages(&world);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("Parameters.SetFileInformation"),
        "{found:?}"
    );

    // With the C layout, the same request truncates.
    // SAFETY: the data is ours and its request has completed.
    unsafe { FltReuseCallbackData(data) };
    let iopb = iopb_mut(data);
    iopb.MajorFunction = SET_INFORMATION;
    // SAFETY: the set-information member (C layout), in the model's zeroed block.
    let set = unsafe { common::params::SetFileInformation::of_mut(&mut iopb.Parameters) };
    set.Length = 8;
    set.FileInformationClass = FileEndOfFileInformation;
    set.InfoBuffer = (&raw mut eof).cast();
    // SAFETY: the callback data is ours and filled in.
    unsafe { FltPerformSynchronousIo(data) };
    assert_eq!(io_status(data), NtStatus::SUCCESS);
    assert_eq!(world.contents("C:\\data\\big.bin").unwrap().len(), 100);
    free(data);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn a_read_filled_through_windows_sys_members_reads_the_wrong_offset() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    let (status, data) = allocate(instance(&world, 'C'), world.file_object(h), true);
    assert_eq!(status, NtStatus::SUCCESS);
    let mut buffer = [0u8; 16];
    let iopb = iopb_mut(data);
    iopb.MajorFunction = READ;
    iopb.Parameters.Read.Length = 16;
    iopb.Parameters.Read.ByteOffset = 0;
    iopb.Parameters.Read.ReadBuffer = buffer.as_mut_ptr().cast();
    // SAFETY: the callback data is ours and filled in (wrongly).
    unsafe { FltPerformSynchronousIo(data) };
    // C reads `ByteOffset` at 16, where windows-sys put the buffer pointer: far past the end.
    assert_eq!(io_status(data), NtStatus(STATUS_END_OF_FILE));
    assert_eq!(buffer, [0u8; 16]);
    free(data);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn allocation_failure_is_insufficient_resources() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    world.fail_nth("FltAllocateCallbackData", 1);
    world.fail_nth("FltAllocateCallbackDataEx", 1);
    let (status, data) = allocate(instance(&world, 'C'), world.file_object(h), false);
    assert_eq!(
        (status, data.is_null()),
        (NtStatus(STATUS_INSUFFICIENT_RESOURCES), true)
    );
    let (status, data) = allocate(instance(&world, 'C'), world.file_object(h), true);
    assert_eq!(
        (status, data.is_null()),
        (NtStatus(STATUS_INSUFFICIENT_RESOURCES), true)
    );
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn preallocation_moves_the_memory_failure_to_allocation_time() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    let mut buffer = [0u8; 24];
    // Plain allocation: the I/O itself can still fail for memory.
    world.fail_always("FltPerformSynchronousIo.allocation", None);
    let (_, plain) = allocate(instance(&world, 'C'), world.file_object(h), false);
    assert_eq!(
        query(plain, &mut buffer),
        NtStatus(STATUS_INSUFFICIENT_RESOURCES)
    );
    // Preallocated: the same fault cannot hit it.
    let (_, pre) = allocate(instance(&world, 'C'), world.file_object(h), true);
    assert_eq!(query(pre, &mut buffer), NtStatus::SUCCESS);
    assert_eq!(
        i64::from_le_bytes(buffer[8..16].try_into().unwrap()),
        10_000
    );
    free(plain);
    free(pre);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn generated_io_reaches_only_instances_below_the_issuer_and_reuse_resets_it() {
    let world = world();
    world.load_counting_filter("above", 380_000);
    world.load_counting_filter("below", 200_000);
    let h = open(&world, "C:\\data\\big.bin");
    let (_, data) = allocate(instance(&world, 'C'), world.file_object(h), true);
    let mut buffer = [0u8; 24];
    assert_eq!(query(data, &mut buffer), NtStatus::SUCCESS);
    // FltReuseCallbackData resets the request for the next one.
    // SAFETY: the test's idle callback data.
    unsafe { FltReuseCallbackData(data) };
    assert_eq!(iopb_mut(data).MajorFunction, 0);
    assert_eq!(query(data, &mut buffer), NtStatus::SUCCESS);
    free(data);
    let q = usize::from(QUERY);
    assert_eq!(world.counts("above").generated[q], 0);
    assert_eq!(world.counts("below").generated[q], 2);
    world.close(h).unwrap();
    world.finish();
}

#[test]
fn freeing_twice_is_a_finding_and_a_leak_is_reported() {
    let world = world();
    let h = open(&world, "C:\\data\\big.bin");
    let (_, once) = allocate(instance(&world, 'C'), world.file_object(h), false);
    free(once);
    free(once);
    let (_, leaked) = allocate(instance(&world, 'C'), world.file_object(h), false);
    let _ = leaked;
    world.close(h).unwrap();
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("already freed"),
        "{found:?}"
    );
    world.unload(PROBE).unwrap();
    // Callback data is attributed to the filter that owns the instance.
    let leaks = messages(&world);
    assert!(
        leaks.len() == 1 && leaks[0].contains("never freed (FltFreeCallbackData)"),
        "{leaks:?}"
    );
    world.finish();
}

static COMPLETIONS: Mutex<Vec<NTSTATUS>> = Mutex::new(Vec::new());

unsafe extern "system" fn completed(data: *const FLT_CALLBACK_DATA, _: PFLT_CONTEXT) {
    COMPLETIONS.lock().unwrap().push(io_status(data).0);
    // The completion routine owns the callback data now and frees it (<= DISPATCH_LEVEL).
    // SAFETY: callback data the test allocated, freed once here.
    unsafe { FltFreeCallbackData(data) };
}

#[test]
fn asynchronous_io_always_completes_even_when_it_fails_and_even_for_create() {
    let world = world();
    world.fail_file_operation(
        "C:\\data\\big.bin",
        IRP_MJ_QUERY_INFORMATION,
        STATUS_INVALID_DEVICE_REQUEST,
    );
    let h = open(&world, "C:\\data\\big.bin");
    let (_, data) = allocate(instance(&world, 'C'), world.file_object(h), true);
    let mut buffer = [0u8; 24];
    set_query(data, &mut buffer);
    COMPLETIONS.lock().unwrap().clear();
    // SAFETY: set-up callback data, a completion routine that frees it.
    let status = unsafe { FltPerformAsynchronousIo(data, Some(completed), ptr::null()) };
    assert_eq!(NtStatus(status), NtStatus(STATUS_PENDING));
    let start = std::time::Instant::now();
    while COMPLETIONS.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the completion never ran"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        *COMPLETIONS.lock().unwrap(),
        [STATUS_INVALID_DEVICE_REQUEST]
    );

    // A create cannot be asynchronous: the call fails, and the routine has run (and freed the
    // callback data) before it returns, with the failure in IoStatus.
    let (_, create) = allocate(instance(&world, 'C'), world.file_object(h), true);
    iopb_mut(create).MajorFunction = u8::try_from(IRP_MJ_CREATE).unwrap();
    // SAFETY: as above.
    let status = unsafe { FltPerformAsynchronousIo(create, Some(completed), ptr::null()) };
    assert_eq!(
        NtStatus(status),
        NtStatus(STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST)
    );
    assert_eq!(
        *COMPLETIONS.lock().unwrap(),
        [
            STATUS_INVALID_DEVICE_REQUEST,
            STATUS_FLT_INVALID_ASYNCHRONOUS_REQUEST
        ]
    );
    world.close(h).unwrap();
    world.finish();
}

// ---- IRQL ---------------------------------------------------------------------------------------

#[test]
fn calls_above_their_documented_irql_are_findings() {
    let world = world();
    let filter: PFLT_FILTER = world.filter_handle(PROBE);
    world.at_irql(DISPATCH_LEVEL, || {
        let ctx = ContextRef::allocate(filter, FLT_SECTION_CONTEXT, [0u8; 16]);
        // Releasing is fine at DISPATCH_LEVEL.
        drop(ctx);
    });
    let messages = messages(&world);
    assert!(
        messages.len() == 1
            && messages[0].contains(
                "FltAllocateContext called at DISPATCH_LEVEL; its documented maximum is APC_LEVEL"
            ),
        "{messages:?}"
    );
    world.finish();
}

#[test]
fn paged_code_above_apc_level_is_a_finding() {
    let world = world();
    world.at_irql(DISPATCH_LEVEL, || common::paged_code!());
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("PAGED_CODE") && found[0].contains("DISPATCH_LEVEL"),
        "{found:?}"
    );
    world.finish();
}

#[test]
fn a_filter_that_leaves_a_leaked_reference_is_reported_as_an_unload_hang() {
    let world = world();
    let ctx = section_context(&world);
    let _ = ctx;
    world.unload(PROBE).unwrap();
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("FltUnregisterFilter waits for it forever"),
        "{found:?}"
    );
    world.finish();
    // SAFETY: unregistering a filter handle twice is reported, not fatal.
    unsafe { FltUnregisterFilter(0) };
}

// ---- documented statuses of FltAllocateContext and FltCreateSectionForDataScan -----------------

/// `FltAllocateContext(probe, context_type, size, pool)`: the status and the context.
fn allocate_context(
    world: &World,
    context_type: u16,
    size: usize,
    pool: i32,
) -> (NtStatus, PFLT_CONTEXT) {
    let mut raw: PFLT_CONTEXT = ptr::null_mut();
    // SAFETY: the probe's filter handle and a valid out pointer; the model checks the rest.
    let status = unsafe {
        FltAllocateContext(
            world.filter_handle(PROBE),
            context_type,
            size,
            pool,
            &raw mut raw,
        )
    };
    (NtStatus(status), raw)
}

#[test]
fn a_context_type_or_size_no_registration_serves_is_allocation_not_found() {
    let world = world();
    // A type the probe never registered.
    let (status, _) = allocate_context(&world, INSTANCE_CONTEXT, 16, NonPagedPoolNx);
    assert_eq!(status, NtStatus(STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND));
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("registered no context of that type"),
        "{found:?}"
    );
    // A fixed size without FLTFL_CONTEXT_REGISTRATION_NO_EXACT_SIZE_MATCH: that size exactly.
    for size in [8, 24] {
        let (status, _) = allocate_context(&world, SECTION_CONTEXT, size, NonPagedPoolNx);
        assert_eq!(
            status,
            NtStatus(STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND),
            "{size}"
        );
        assert_eq!(messages(&world).len(), 1, "{size}");
    }
    // With the flag: any size up to the registered one; above it, not found.
    for size in [1, 20, 32] {
        let (status, ctx) = allocate_context(&world, STREAMHANDLE_CONTEXT, size, NonPagedPoolNx);
        assert_eq!(status, NtStatus::SUCCESS, "{size}");
        release(ctx);
    }
    let (status, _) = allocate_context(&world, STREAMHANDLE_CONTEXT, 33, NonPagedPoolNx);
    assert_eq!(status, NtStatus(STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND));
    assert_eq!(messages(&world).len(), 1);
    world.finish();
}

/// `FltCreateSectionForDataScan` with the given protection and allocation attributes.
fn create_with(
    inst: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    ctx: PFLT_CONTEXT,
    protection: u32,
    attributes: u32,
) -> NtStatus {
    let object_attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(std::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap(),
        Attributes: OBJ_KERNEL_HANDLE,
        ..Default::default()
    };
    let (mut handle, mut object, mut size): (HANDLE, *mut c_void, i64) =
        (ptr::null_mut(), ptr::null_mut(), 0);
    // SAFETY: valid instance, file object and context; valid out pointers.
    NtStatus(unsafe {
        FltCreateSectionForDataScan(
            inst,
            fo,
            ctx,
            SECTION_MAP_READ,
            &raw const object_attributes,
            ptr::null(),
            protection,
            attributes,
            0,
            &raw mut handle,
            &raw mut object,
            &raw mut size,
        )
    })
}

#[test]
fn a_section_without_protection_or_sec_commit_is_invalid_parameter_8_or_9_and_nothing_is_linked() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let fo = world.file_object(h);
    let ctx = section_context(&world);
    // "SectionPageProtection ... is required and cannot be zero."
    assert_eq!(
        create_with(inst, fo, ctx, 0, SEC_COMMIT),
        NtStatus(STATUS_INVALID_PARAMETER_8)
    );
    // "AllocationAttributes ... is required and cannot be zero"; SEC_COMMIT "is required and
    // cannot be omitted".
    for attributes in [0, SEC_RESERVE] {
        assert_eq!(
            create_with(inst, fo, ctx, PAGE_READONLY, attributes),
            NtStatus(STATUS_INVALID_PARAMETER_9),
            "{attributes:#x}"
        );
    }
    // Nothing was linked: no section context on the stream, and the context was never used,
    // so it is released, not closed.
    assert_eq!(get_section_context(inst, fo).0, NtStatus(STATUS_NOT_FOUND));
    assert_eq!(close_for_data_scan(ctx), NtStatus(STATUS_INVALID_PARAMETER));
    assert_eq!(messages(&world).len(), 1);
    release(ctx);
    world.close(h).unwrap();
    world.finish();
}

// ---- IRQL ceilings that depend on the call's arguments -------------------------------------------

#[test]
fn releasing_a_paged_pool_context_above_apc_level_is_a_finding_and_a_nonpaged_one_is_not() {
    let world = world();
    let (status, nonpaged) = allocate_context(&world, SECTION_CONTEXT, 16, NonPagedPoolNx);
    assert_eq!(status, NtStatus::SUCCESS);
    let (status, paged) = allocate_context(&world, SECTION_CONTEXT, 16, PagedPool);
    assert_eq!(status, NtStatus::SUCCESS);
    world.at_irql(DISPATCH_LEVEL, || release(nonpaged));
    assert_eq!(messages(&world), [] as [String; 0]);
    world.at_irql(DISPATCH_LEVEL, || release(paged));
    let found = messages(&world);
    assert!(
        found.len() == 1
            && found[0].contains(
                "FltReleaseContext (paged-pool context) called at DISPATCH_LEVEL; its documented maximum is APC_LEVEL"
            ),
        "{found:?}"
    );
    world.finish();
}

unsafe extern "system" fn ignore_completion(_: *const FLT_CALLBACK_DATA, _: PFLT_CONTEXT) {}

#[test]
fn asynchronous_io_at_apc_level_is_a_finding_unless_it_is_paging_io() {
    let world = world();
    let inst = instance(&world, 'C');
    let h = open(&world, "C:\\data\\big.bin");
    for (irp_flags, findings) in [(0, 1), (IRP_PAGING_IO, 0)] {
        let mut data: *mut FLT_CALLBACK_DATA = ptr::null_mut();
        // SAFETY: a valid instance and file object, and a valid out pointer.
        let status = unsafe { FltAllocateCallbackData(inst, world.file_object(h), &raw mut data) };
        assert_eq!(NtStatus(status), NtStatus::SUCCESS);
        // SAFETY: freshly allocated callback data, ours alone.
        let iopb = unsafe { (*data).Iopb.cast_mut() };
        // SAFETY: its parameter block, ours alone too. Left a create: the model refuses it as
        // asynchronous I/O after the IRQL check, so nothing is sent down.
        unsafe { (*iopb).IrpFlags = irp_flags };
        world.at_irql(APC_LEVEL, || {
            // SAFETY: our callback data and a routine that does nothing.
            unsafe { FltPerformAsynchronousIo(data, Some(ignore_completion), ptr::null()) };
        });
        let found = messages(&world);
        assert_eq!(found.len(), findings, "{irp_flags:#x}: {found:?}");
        if findings == 1 {
            assert!(
                found[0].contains(
                    "FltPerformAsynchronousIo (not paging I/O) called at APC_LEVEL; its documented maximum is PASSIVE_LEVEL"
                ),
                "{found:?}"
            );
        }
        // SAFETY: our callback data, completed, freed once.
        unsafe { FltFreeCallbackData(data) };
    }
    world.close(h).unwrap();
    world.finish();
}

// ---- critical regions and cancellable waits ------------------------------------------------------

#[test]
fn a_callback_that_returns_inside_a_critical_region_is_a_finding_and_a_stray_leave_too() {
    let world = world();
    // Balanced: nothing to say.
    world.at_irql(PASSIVE_LEVEL, || {
        let region = common::apc::FileSystemRegion::enter();
        drop(region);
    });
    assert_eq!(messages(&world), [] as [String; 0]);
    // Entered and never left before the "callback" returned.
    world.at_irql(PASSIVE_LEVEL, || {
        std::mem::forget(common::apc::FileSystemRegion::enter());
    });
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("returned with 1 critical region(s) entered"),
        "{found:?}"
    );
    // A leave with nothing entered.
    // SAFETY: no preconditions; the model reports the imbalance.
    unsafe { KeLeaveCriticalRegion() };
    let found = messages(&world);
    assert!(
        found.len() == 1 && found[0].contains("without a matching enter"),
        "{found:?}"
    );
    world.finish();
}

#[test]
fn a_cancellable_wait_returns_success_timeout_or_an_injected_documented_status() {
    let world = world();
    let event = Box::new(KEVENT::default());
    let raw = Box::into_raw(event);
    // SAFETY: an event that lives for the whole test.
    unsafe { KeInitializeEvent(raw, NotificationEvent, false) };
    let wait = |timeout: Option<i64>| {
        let timeout_ptr = timeout.as_ref().map_or(ptr::null(), ptr::from_ref);
        // SAFETY: an initialized event, an optional relative timeout, no callback data.
        NtStatus(unsafe { FltCancellableWaitForSingleObject(raw.cast(), timeout_ptr, ptr::null()) })
    };
    // Not signaled: a zero timeout is a poll.
    assert_eq!(wait(Some(0)), NtStatus(STATUS_TIMEOUT));
    // Injected: the thread is terminating.
    world.fail_nth_with(
        "FltCancellableWaitForSingleObject",
        2,
        STATUS_THREAD_IS_TERMINATING,
    );
    assert_eq!(wait(None), NtStatus(STATUS_THREAD_IS_TERMINATING));
    // SAFETY: as above.
    unsafe { KeSetEvent(raw, 0, false) };
    assert_eq!(wait(None), NtStatus::SUCCESS);
    assert_eq!(messages(&world), [] as [String; 0]);
    world.finish();
    // SAFETY: the box leaked above, no longer used.
    drop(unsafe { Box::from_raw(raw) });
}

// ---- what blocks a conflicting operation ----------------------------------------------------------

#[test]
fn a_conflicting_truncation_fails_while_the_section_object_outlives_its_link() {
    let world = world();
    let inst = instance(&world, 'C');
    register_for_data_scan(inst);
    let h = open(&world, "C:\\data\\big.bin");
    let ctx = section_context(&world);
    let created = create_section(inst, world.file_object(h), ctx, true);
    assert_eq!(created.status, NtStatus::SUCCESS);
    let writer = world
        .open("C:\\data\\big.bin", Open::read_write())
        .expect("second handle");
    let truncate = || world.set_end_of_file(writer, 10);
    // The link alone closed: the section object still blocks the truncation, and with no
    // FSCTL_SET_PURGE_FAILURE_MODE outstanding any more the failure reaches the caller.
    assert_eq!(close_for_data_scan(ctx), NtStatus::SUCCESS);
    assert_eq!(truncate(), Err(NtStatus(STATUS_USER_MAPPED_FILE)));
    // SAFETY: the handle the create returned, closed once.
    unsafe { ObCloseHandle(created.handle, 0) };
    assert_eq!(truncate(), Err(NtStatus(STATUS_USER_MAPPED_FILE)));
    // SAFETY: the object reference the create returned, dropped once.
    unsafe { ObfDereferenceObject(created.object) };
    // All three gone: the truncation proceeds.
    assert_eq!(truncate(), Ok(()));
    release(ctx);
    world.close(writer).unwrap();
    world.close(h).unwrap();
    // Closing out of the documented order is allowed; conflicting I/O meanwhile fails.
    assert_eq!(messages(&world), [] as [String; 0]);
    world.finish();
}
