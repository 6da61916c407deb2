//! The model changes made for the callback-data sample: `Open::paging_file` delivers
//! `SL_OPEN_PAGING_FILE` in `Iopb->OperationFlags` of the create, and only there.

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
use fltsim::{Open, World};

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
