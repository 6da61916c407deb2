//! `FILE_OBJECT.FileName` in the model: the opened name until the file system has the create,
//! and no longer. The `FILE_OBJECT` page: it "should not be considered valid after the file
//! system starts to process the `IRP_MJ_CREATE` request". The model cannot trap a read, so it
//! replaces the string when the create reaches the file system, and a debugger line that prints
//! the replacement is a finding.

use std::ffi::c_void;

use common::{
    bindings::{
        DRIVER_OBJECT, FLT_CALLBACK_DATA, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_WITH_CALLBACK,
        FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, IRP_MJ_CREATE, NTSTATUS,
        STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, RegisteredFilter},
    log,
    name::Utf16,
    registration::{OPERATION_END, OperationTable, Registration, operation},
};
use fltsim::{Open, World};

const NAME: &str = "file-name-probe";
const FILE: &str = "C:\\dir\\a.txt";

static FILTER: FilterSlot = FilterSlot::new();
static OPERATIONS: OperationTable<2> = OperationTable::new([
    operation(IRP_MJ_CREATE, Some(pre_create), Some(post_create)),
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
    let filter = unsafe { RegisteredFilter::register(driver, &REGISTRATION) }.expect("registers");
    filter.start_filtering(&FILTER).expect("starts");
    STATUS_SUCCESS
}

unsafe extern "system" fn unload(_: u32) -> NTSTATUS {
    FILTER.unregister();
    STATUS_SUCCESS
}

/// Prints `FileObject->FileName` as it is now, after `when`.
fn print_file_name(objects: *const FLT_RELATED_OBJECTS, when: &str) {
    // SAFETY: the related objects of the create in progress, valid for the callback.
    let file_object = unsafe { (*objects).FileObject };
    // SAFETY: the create's file object, valid for the callback.
    let name = unsafe { (*file_object).FileName };
    // SAFETY: a counted string of `Length` bytes (what the model put there).
    let units = unsafe { std::slice::from_raw_parts(name.Buffer, usize::from(name.Length / 2)) };
    log!("{NAME}: {when}: {}", Utf16(units));
}

unsafe extern "system" fn pre_create(
    _: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    print_file_name(objects, "pre-create");
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}

unsafe extern "system" fn post_create(
    _: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _: *const c_void,
    _: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    print_file_name(objects, "post-create");
    FLT_POSTOP_FINISHED_PROCESSING
}

/// In pre-create the name is the opened one; in post-create it is the model's replacement, and
/// the line that prints it is the one finding.
#[test]
fn file_name_is_not_valid_once_the_file_system_has_the_create() {
    let world = World::new();
    world.create_dir("C:\\dir");
    world.create_file(FILE, b"x");
    world.load(NAME, 370_020, driver_entry).unwrap();
    let handle = world.open(FILE, Open::read()).unwrap();
    assert_eq!(
        world.log_lines(NAME),
        [
            format!("{NAME}: pre-create: \\dir\\a.txt"),
            format!(
                "{NAME}: post-create: <FILE_OBJECT.FileName is not valid once the file system has the create>"
            ),
        ]
    );
    let findings = world.take_violations();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]
            .message
            .contains("should not be considered valid after the file system starts to process"),
        "{findings:?}"
    );
    world.close(handle).unwrap();
    world.unload(NAME).unwrap();
    world.finish();
}
