//! The model's rules for views of data-scan sections (`src/abi/views.rs`): views are live, a view
//! is not readable memory (a direct read crashes the process, shown in a child process), views are
//! whole pages at an allocation-granularity offset (`MmMapViewInSystemSpaceEx`), `MmCopyMemory`
//! copies the live data and fails part-way when a fault is injected, and its misuse is a finding. A
//! probe filter provides the instance; the test thread calls the kernel directly.

use std::{ffi::c_void, ptr};

use common::{
    bindings::{
        DRIVER_OBJECT, FILE_OBJECT, FLT_REGISTRATION_VERSION_0202, FLT_SECTION_CONTEXT,
        FltAllocateContext, FltCloseSectionForDataScan, FltCreateSectionForDataScan,
        FltRegisterForDataScan, FltReleaseContext, HANDLE, MM_COPY_ADDRESS, MM_COPY_ADDRESS_0,
        MM_COPY_MEMORY_PHYSICAL, MM_COPY_MEMORY_VIRTUAL,
        MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS, MmCopyMemory, MmMapViewInSystemSpace,
        MmMapViewInSystemSpaceEx, MmUnmapViewInSystemSpace, NTSTATUS, NonPagedPoolNx,
        OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, ObCloseHandle, ObfDereferenceObject, PAGE_READONLY,
        PFLT_CONTEXT, PFLT_INSTANCE, SEC_COMMIT, SECTION_MAP_READ, STATUS_ACCESS_DENIED,
        STATUS_ACCESS_VIOLATION, STATUS_CANNOT_DELETE, STATUS_DEVICE_NOT_CONNECTED,
        STATUS_IN_PAGE_ERROR, STATUS_INVALID_PARAMETER_4, STATUS_INVALID_PARAMETER_5,
        STATUS_INVALID_VIEW_SIZE, STATUS_MAPPED_ALIGNMENT, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    irql::APC_LEVEL,
    registration::{CONTEXT_END, ContextTable, Registration, context},
};
use fltsim::{Handle, NtStatus, Open, World};
use windows_sys::{
    Wdk::Storage::FileSystem::FILE_DISPOSITION_DELETE,
    Win32::Storage::FileSystem::{DELETE, SYNCHRONIZE},
};

const PROBE: &str = "views-probe";
const FILE: &str = "C:\\views\\data.bin";
const SECTION_CONTEXT: u16 = 0x40;

static FILTER: FilterSlot = FilterSlot::new();
static CONTEXTS: ContextTable<2> = ContextTable::new([
    context(FLT_SECTION_CONTEXT, 16, u32::from_le_bytes(*b"vwpS"), None),
    CONTEXT_END,
]);
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .contexts(&CONTEXTS)
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

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

/// The bytes of the test file: byte `i` is `i % 251`, so every offset is recognisable.
fn contents(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

/// An open section on [`FILE`], with the handle it was created through.
struct Section {
    handle: Handle,
    kernel_handle: HANDLE,
    object: *mut c_void,
    context: PFLT_CONTEXT,
}

fn world_with_section(len: usize) -> (World, Section) {
    let world = World::new();
    world.create_file(FILE, &contents(len));
    world.load(PROBE, 300_100, driver_entry).expect("loads");
    let instance: PFLT_INSTANCE = world.instance_handle(PROBE, 'C').expect("attached");
    // SAFETY: the probe's instance.
    assert_eq!(unsafe { FltRegisterForDataScan(instance) }, STATUS_SUCCESS);
    let handle = world.open(FILE, Open::read()).expect("opens");
    let fo: *const FILE_OBJECT = world.file_object(handle);
    let mut context: PFLT_CONTEXT = ptr::null_mut();
    // SAFETY: the probe's filter, a registered type and size, a valid out pointer.
    let status = unsafe {
        FltAllocateContext(
            world.filter_handle(PROBE),
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
    (
        world,
        Section {
            handle,
            kernel_handle: section,
            object,
            context,
        },
    )
}

fn close(world: &World, s: &Section) {
    // SAFETY: the handle, object and context the create returned, each released once.
    unsafe { ObCloseHandle(s.kernel_handle, 0) };
    // SAFETY: as above.
    unsafe { ObfDereferenceObject(s.object) };
    // SAFETY: as above.
    let closed = unsafe { FltCloseSectionForDataScan(s.context) };
    assert_eq!(closed, STATUS_SUCCESS);
    // SAFETY: as above.
    unsafe { FltReleaseContext(s.context) };
    world.close(s.handle).unwrap();
}

/// `MmMapViewInSystemSpaceEx` with `MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS`: status, base,
/// size, and the offset it wrote back.
fn map_at(object: *mut c_void, offset: i64, size: usize) -> (NtStatus, *mut c_void, usize, i64) {
    map_with(object, offset, size, INPAGE_FLAG)
}

/// `MmMapViewInSystemSpaceEx` with `flags`.
fn map_with(
    object: *mut c_void,
    offset: i64,
    size: usize,
    flags: usize,
) -> (NtStatus, *mut c_void, usize, i64) {
    let (mut base, mut size, mut offset) = (ptr::null_mut(), size, offset);
    // SAFETY: a referenced section object and valid in/out pointers.
    let status = NtStatus(unsafe {
        MmMapViewInSystemSpaceEx(object, &raw mut base, &raw mut size, &raw mut offset, flags)
    });
    (status, base, size, offset)
}

const INPAGE_FLAG: usize = MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS as usize;

fn unmap(base: *mut c_void) {
    // SAFETY: a base the model returned.
    assert_eq!(unsafe { MmUnmapViewInSystemSpace(base) }, STATUS_SUCCESS);
}

/// `MmCopyMemory` of `len` bytes from `source` into a buffer of 0xAA: status, count, buffer.
fn copy_with(source: *const c_void, len: usize, flags: u32) -> (NtStatus, usize, Vec<u8>) {
    let mut target = vec![0xAAu8; len];
    let mut copied = usize::MAX;
    let source = MM_COPY_ADDRESS {
        Anonymous: MM_COPY_ADDRESS_0 {
            VirtualAddress: source.cast_mut(),
        },
    };
    // SAFETY: a writable target of `len` bytes and a valid count; the model checks the source.
    let status = NtStatus(unsafe {
        MmCopyMemory(
            target.as_mut_ptr().cast(),
            source,
            len,
            flags,
            &raw mut copied,
        )
    });
    (status, copied, target)
}

fn copy(source: *const c_void, len: usize) -> (NtStatus, usize, Vec<u8>) {
    copy_with(source, len, MM_COPY_MEMORY_VIRTUAL)
}

fn findings(world: &World) -> Vec<String> {
    world
        .take_violations()
        .into_iter()
        .map(|v| v.message)
        .collect()
}

#[test]
fn a_view_shows_writes_made_through_another_handle_after_it_was_mapped() {
    let (world, s) = world_with_section(10_000);
    let (status, base, _, _) = map_at(s.object, 0, 0);
    assert_eq!(status, NtStatus::SUCCESS);
    assert_eq!(copy(base, 16).2, contents(16));
    // A cached write from another handle, after the section and the view exist.
    let writer = world.open(FILE, Open::read_write()).unwrap();
    world.write(writer, 4, b"live", false).unwrap();
    world.close(writer).unwrap();
    let (status, copied, bytes) = copy(base, 16);
    assert_eq!((status, copied), (NtStatus::SUCCESS, 16));
    let mut expected = contents(16);
    expected[4..8].copy_from_slice(b"live");
    assert_eq!(bytes, expected, "the view is the cache, not a snapshot");
    unmap(base);
    close(&world, &s);
    world.finish();
}

#[test]
fn views_are_whole_pages_at_an_allocation_granularity_offset() {
    let (world, s) = world_with_section(200_000);
    // An offset that is not a multiple of the allocation granularity: refused, and a finding
    // (no page says the call grows the view by what it would round off).
    assert_eq!(
        map_at(s.object, 70_000, 100).0,
        NtStatus(STATUS_MAPPED_ALIGNMENT)
    );
    let found = findings(&world);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("not a multiple of the allocation granularity"));
    // The aligned offset below it, grown by the difference: 100 bytes at 70,000 need two pages.
    let (status, base, size, offset) = map_at(s.object, 65_536, 70_000 - 65_536 + 100);
    assert_eq!(status, NtStatus::SUCCESS);
    assert_eq!((offset, size), (65_536, 8192));
    let (status, copied, bytes) = copy(base.cast::<u8>().wrapping_add(70_000 - 65_536).cast(), 100);
    assert_eq!((status, copied), (NtStatus::SUCCESS, 100));
    assert_eq!(bytes, contents(200_000)[70_000..70_100]);
    unmap(base);
    // The last page is zero past the end of the file; nothing maps past the last page.
    let (status, base, size, offset) = map_at(s.object, 196_608, 0);
    assert_eq!((status, offset, size), (NtStatus::SUCCESS, 196_608, 4096));
    let (_, _, bytes) = copy(base, 4096);
    assert_eq!(bytes[..3392], contents(200_000)[196_608..]);
    assert!(bytes[3392..].iter().all(|b| *b == 0));
    unmap(base);
    assert_eq!(
        map_at(s.object, 196_608, 4097).0,
        NtStatus(STATUS_INVALID_VIEW_SIZE)
    );
    // An offset whose 64 KiB granule starts past the end of the section.
    assert_eq!(
        map_at(s.object, 262_144, 1).0,
        NtStatus(STATUS_INVALID_VIEW_SIZE)
    );
    close(&world, &s);
    world.finish();
}

#[test]
fn views_map_and_copy_at_apc_level() {
    let (world, s) = world_with_section(5000);
    world.at_irql(APC_LEVEL, || {
        let (mut base, mut size) = (ptr::null_mut(), 0usize);
        // SAFETY: a referenced section object, valid out pointers.
        let status = unsafe { MmMapViewInSystemSpace(s.object, &raw mut base, &raw mut size) };
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(copy(base, 5000).0, NtStatus::SUCCESS);
        unmap(base);
    });
    assert_eq!(findings(&world), Vec::<String>::new());
    close(&world, &s);
    world.finish();
}

#[test]
fn an_injected_copy_failure_stops_part_way_with_the_status_and_the_count() {
    let (world, s) = world_with_section(3 * 4096);
    let (_, base, _, _) = map_at(s.object, 0, 0);
    // Default: STATUS_IN_PAGE_ERROR at the middle page; the page before it was copied.
    world.fail_nth("MmCopyMemory", 1);
    let (status, copied, bytes) = copy(base, 3 * 4096);
    assert_eq!((status, copied), (NtStatus(STATUS_IN_PAGE_ERROR), 4096));
    assert_eq!(bytes[..4096], contents(4096));
    assert!(
        bytes[4096..].iter().all(|b| *b == 0xAA),
        "nothing past the failing page"
    );
    // A test may choose the status (a dropped network connection, say).
    world.fail_nth_with("MmCopyMemory", 2, STATUS_DEVICE_NOT_CONNECTED);
    let (status, copied, _) = copy(base.cast::<u8>().wrapping_add(100).cast(), 4096);
    assert_eq!((status, copied), (NtStatus(STATUS_DEVICE_NOT_CONNECTED), 0));
    // The third copy is not failed.
    assert_eq!(copy(base, 3 * 4096).0, NtStatus::SUCCESS);
    assert_eq!(findings(&world), Vec::<String>::new());
    unmap(base);
    close(&world, &s);
    world.finish();
}

#[test]
fn a_failed_paging_read_stops_the_copy_at_its_page_with_its_status_and_the_count() {
    let (world, s) = world_with_section(4 * 4096);
    // Page 2 of the file fails its paging read, for good.
    world.fail_paging_read(FILE, 2 * 4096 + 10, STATUS_IN_PAGE_ERROR);
    let (_, base, _, _) = map_at(s.object, 0, 0);
    // A copy over pages 1 to 3 stops at page 2: the bytes of page 1 from 100 on were copied.
    let from = base.cast::<u8>().wrapping_add(4096 + 100).cast();
    let (status, copied, bytes) = copy(from, 2 * 4096);
    assert_eq!(
        (status, copied),
        (NtStatus(STATUS_IN_PAGE_ERROR), 4096 - 100)
    );
    assert_eq!(bytes[..copied], contents(4 * 4096)[4096 + 100..2 * 4096]);
    assert!(bytes[copied..].iter().all(|b| *b == 0xAA));
    // A copy that starts on the bad page copies nothing; one that stays off it succeeds, and so
    // does a copy again later (only that page is bad).
    let on = base.cast::<u8>().wrapping_add(2 * 4096).cast();
    assert_eq!(copy(on, 1).0, NtStatus(STATUS_IN_PAGE_ERROR));
    assert_eq!(copy(on, 1).1, 0);
    assert_eq!(copy(base, 2 * 4096).0, NtStatus::SUCCESS);
    let last = base.cast::<u8>().wrapping_add(3 * 4096).cast();
    assert_eq!(copy(last, 4096).0, NtStatus::SUCCESS);
    // A test may choose the status (a removed device, say): the earliest bad page wins.
    world.fail_paging_read(FILE, 4096, STATUS_DEVICE_NOT_CONNECTED);
    assert_eq!(
        copy(base, 4 * 4096).0,
        NtStatus(STATUS_DEVICE_NOT_CONNECTED)
    );
    // The view was mapped with MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS: no finding.
    assert_eq!(findings(&world), Vec::<String>::new());
    unmap(base);
    close(&world, &s);
    world.finish();
}

#[test]
fn a_failed_paging_read_on_a_view_mapped_without_the_inpage_flag_is_a_finding() {
    let (world, s) = world_with_section(3 * 4096);
    world.fail_paging_read(FILE, 4096, STATUS_IN_PAGE_ERROR);
    // Flags 0: the copy still fails (the caller's fail-open path runs), and it is a finding.
    let (status, base, _, _) = map_with(s.object, 0, 0, 0);
    assert_eq!(status, NtStatus::SUCCESS);
    // A copy that stays off the bad page is fine without the flag.
    assert_eq!(copy(base, 4096).0, NtStatus::SUCCESS);
    assert_eq!(findings(&world), Vec::<String>::new());
    assert_eq!(copy(base, 3 * 4096).0, NtStatus(STATUS_IN_PAGE_ERROR));
    let found = findings(&world);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("without MM_SYSTEM_VIEW_EXCEPTIONS_FOR_INPAGE_ERRORS"),
        "{found:?}"
    );
    unmap(base);
    // MmMapViewInSystemSpace has no flags: the same.
    let (mut base, mut size) = (ptr::null_mut(), 0usize);
    // SAFETY: a referenced section object, valid out pointers.
    let status = unsafe { MmMapViewInSystemSpace(s.object, &raw mut base, &raw mut size) };
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(copy(base, 3 * 4096).0, NtStatus(STATUS_IN_PAGE_ERROR));
    assert_eq!(findings(&world).len(), 1);
    unmap(base);
    // So does an injected copy fault on such a view: it stands for a failed paging read too.
    let (_, base, _, _) = map_with(s.object, 0, 4096, 0);
    let next = world.call_counts()["MmCopyMemory"] + 1;
    world.fail_nth_with("MmCopyMemory", next, STATUS_IN_PAGE_ERROR);
    assert_eq!(copy(base, 4096).0, NtStatus(STATUS_IN_PAGE_ERROR));
    assert_eq!(findings(&world).len(), 1);
    unmap(base);
    // Flags the WDK does not define: refused, and a finding.
    assert_eq!(
        map_with(s.object, 0, 0, 2).0,
        NtStatus(STATUS_INVALID_PARAMETER_5)
    );
    let found = findings(&world);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("Flags 0x2"), "{found:?}");
    close(&world, &s);
    world.finish();
}

#[test]
fn copy_misuse_is_a_finding() {
    let (world, s) = world_with_section(5000);
    let (_, base, size, _) = map_at(s.object, 0, 0);
    // Not a view.
    let host = [0u8; 16];
    assert_eq!(
        copy(host.as_ptr().cast(), 16).0,
        NtStatus(STATUS_ACCESS_VIOLATION)
    );
    assert!(findings(&world)[0].contains("not in a view the model mapped"));
    // Past the end of the view: the bytes up to its end, and a finding.
    let (status, copied, _) = copy(base, size + 10);
    assert_eq!((status, copied), (NtStatus(STATUS_ACCESS_VIOLATION), size));
    assert!(findings(&world)[0].contains("runs past the end of its view"));
    // Neither flag: documented as invalid, no finding; the physical flag is not modelled.
    assert_eq!(
        copy_with(base, 16, 0).0,
        NtStatus(STATUS_INVALID_PARAMETER_4)
    );
    assert_eq!(findings(&world), Vec::<String>::new());
    assert_eq!(
        copy_with(base, 16, MM_COPY_MEMORY_PHYSICAL).0,
        NtStatus(STATUS_INVALID_PARAMETER_4)
    );
    assert!(findings(&world)[0].contains("MM_COPY_MEMORY_PHYSICAL"));
    // After the unmap.
    unmap(base);
    assert_eq!(copy(base, 16).0, NtStatus(STATUS_ACCESS_VIOLATION));
    assert!(findings(&world)[0].contains("already unmapped"));
    close(&world, &s);
    world.finish();
}

/// The child's half of the test below: map a view and read it directly.
const CHILD: &str = "FLTSIM_VIEWS_DIRECT_READ_CHILD";

#[test]
fn a_direct_read_of_a_view_crashes_the_process() {
    if std::env::var_os(CHILD).is_some() {
        let (_world, s) = world_with_section(5000);
        let (_, base, _, _) = map_at(s.object, 0, 0);
        // SAFETY: none: this is the bug the model exists to catch. The page has no access, so
        // the read kills this (child) process with SIGSEGV / an access violation.
        let byte = unsafe { base.cast::<u8>().read_volatile() };
        println!("read {byte} from a view: the model let a direct read through");
        std::process::exit(0);
    }
    // The parent runs this same test in a child process and watches it die.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_direct_read_of_a_view_crashes_the_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("the model let a direct read through"),
        "{stdout}"
    );
    // On Linux the model names the mistake before the process dies.
    #[cfg(target_os = "linux")]
    {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("{} (address 0x", fltsim::DIRECT_READ)),
            "{stderr}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            matches!(output.status.signal(), Some(libc_signal) if libc_signal == 11 || libc_signal == 10),
            "the child should die of SIGSEGV (or SIGBUS): {:?}",
            output.status
        );
    }
    #[cfg(windows)]
    assert_eq!(
        output.status.code(),
        Some(0xC000_0005_u32 as i32),
        "an access violation"
    );
}

/// The child's half of the test below: with a view mapped (so the fault handler is installed),
/// fault on an address that is no view.
const OTHER_FAULT_CHILD: &str = "FLTSIM_VIEWS_OTHER_FAULT_CHILD";

#[test]
fn a_fault_outside_any_view_is_not_called_a_view_access() {
    if std::env::var_os(OTHER_FAULT_CHILD).is_some() {
        let (_world, s) = world_with_section(5000);
        let _view = map_at(s.object, 0, 0);
        // SAFETY: none: a read of an unmapped low address, made on purpose; this (child) process
        // dies of it.
        let byte = unsafe { std::ptr::without_provenance::<u8>(0x10).read_volatile() };
        println!("read {byte} from address 0x10");
        std::process::exit(0);
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_fault_outside_any_view_is_not_called_a_view_access",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OTHER_FAULT_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("from address 0x10"), "{stdout}");
    assert!(!output.status.success(), "{:?}", output.status);
    assert!(!stderr.contains(fltsim::DIRECT_READ), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(11), "{:?}", output.status);
    }
}

/// A delete disposition from another handle is refused with `STATUS_CANNOT_DELETE` while a view
/// of a data-scan section on the stream is mapped ("there is an existing mapped view to the
/// file"), through either information class, and goes through when only the section exists or
/// once the view is unmapped. It needs `DELETE` access.
#[test]
fn a_delete_disposition_fails_with_cannot_delete_while_a_view_is_mapped() {
    let (world, s) = world_with_section(8192);
    let deleter = world
        .open(
            FILE,
            Open {
                access: DELETE | SYNCHRONIZE,
                ..Open::read()
            },
        )
        .unwrap();
    // The section alone (no view): the delete goes through, and can be taken back.
    world.set_disposition(deleter, true).unwrap();
    assert!(world.query_standard(s.handle).unwrap().DeletePending);
    world.set_disposition(deleter, false).unwrap();
    assert!(!world.query_standard(s.handle).unwrap().DeletePending);

    let (status, base, _, _) = map_at(s.object, 0, 4096);
    assert_eq!(status, NtStatus::SUCCESS);
    let cannot = Err(NtStatus(STATUS_CANNOT_DELETE));
    assert_eq!(world.set_disposition(deleter, true), cannot);
    assert_eq!(
        world.set_disposition_ex(deleter, FILE_DISPOSITION_DELETE),
        cannot
    );
    assert!(!world.query_standard(s.handle).unwrap().DeletePending);
    // Clearing the disposition is not a delete: never refused.
    world.set_disposition_ex(deleter, 0).unwrap();
    unmap(base);

    world
        .set_disposition_ex(deleter, FILE_DISPOSITION_DELETE)
        .unwrap();
    assert!(world.query_standard(s.handle).unwrap().DeletePending);
    // Without DELETE access, whatever the sections.
    assert_eq!(
        world.set_disposition(s.handle, true),
        Err(NtStatus(STATUS_ACCESS_DENIED))
    );
    world.close(deleter).unwrap();
    close(&world, &s);
    world.finish();
}
