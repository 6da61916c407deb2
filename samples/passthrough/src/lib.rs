//! # passthrough: the smallest complete minifilter
//!
//! This sample registers with Filter Manager, attaches to every volume it is offered, counts the
//! operations it sees in its pre- and post-operation callbacks, and unloads cleanly. It changes
//! nothing. Every other sample in this workspace starts from this shape.
//!
//! ## The contract it demonstrates
//! - **`DriverEntry`** (IRQL `PASSIVE_LEVEL`): `FltRegisterFilter` with a static
//!   `FLT_REGISTRATION`, then `FltStartFiltering`. If starting fails, the filter is unregistered
//!   before `DriverEntry` returns the error (the `RegisteredFilter` guard does it), because a
//!   driver whose `DriverEntry` fails is unloaded without its unload callback.
//! - **`InstanceSetup`** (`PASSIVE_LEVEL`): return `STATUS_SUCCESS` to attach. Filter Manager calls
//!   it once per volume, before `FltStartFiltering` returns for volumes already mounted.
//! - **Pre/post-operation callbacks**: a pre-operation callback runs at `PASSIVE_LEVEL` or
//!   `APC_LEVEL`; a post-operation callback may run at `DISPATCH_LEVEL`, in an arbitrary thread, so
//!   it only does interlocked counting here. `FLT_PREOP_SUCCESS_WITH_CALLBACK` asks for the post
//!   callback; `FLT_POSTOP_FINISHED_PROCESSING` hands the operation back.
//! - **`FilterUnloadCallback`** (`PASSIVE_LEVEL`): `FltUnregisterFilter`, which tears down every
//!   instance and waits for outstanding references. Without an unload callback, `fltmc unload`
//!   is refused.
//!
//! ## What you see when it is loaded
//! `fltmc load RsPassthrough` prints nothing; `fltmc instances -f RsPassthrough` lists one
//! instance per volume at altitude 370210. Open, read and close a few files, then
//! `fltmc unload RsPassthrough`; the debugger shows one line per major function seen, such as
//! `rs-passthrough: Create: 12 pre, 12 post`.
#![cfg_attr(target_os = "windows", no_std)]

use core::sync::atomic::{AtomicU32, Ordering};

use common::{
    NtStatus,
    bindings::{
        DRIVER_OBJECT, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_WITH_CALLBACK,
        FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
        IRP_MJ_CREATE, IRP_MJ_READ, IRP_MJ_WRITE, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING,
    },
    filter::{FilterSlot, register_and_start},
    log,
    registration::{OPERATION_END, OperationTable, Registration, operation},
};

/// The tag in front of every debugger line this driver prints.
pub const TAG: &str = "rs-passthrough";

/// The major functions this sample counts, in the order it reports them.
const COUNTED: [(u32, &str); 5] = [
    (IRP_MJ_CREATE, "Create"),
    (IRP_MJ_READ, "Read"),
    (IRP_MJ_WRITE, "Write"),
    (IRP_MJ_CLEANUP, "Cleanup"),
    (IRP_MJ_CLOSE, "Close"),
];

/// Pre- and post-operation counts per counted major function. Interlocked, so any IRQL and any
/// thread may update them.
static PRE: [AtomicU32; 5] = [const { AtomicU32::new(0) }; 5];
static POST: [AtomicU32; 5] = [const { AtomicU32::new(0) }; 5];

/// The filter handle, from `FltRegisterFilter` to `FltUnregisterFilter`.
static FILTER: FilterSlot = FilterSlot::new();

/// One row per counted operation; the same two callbacks serve them all.
static OPERATIONS: OperationTable<6> = OperationTable::new([
    operation(IRP_MJ_CREATE, Some(pre_operation), Some(post_operation)),
    operation(IRP_MJ_READ, Some(pre_operation), Some(post_operation)),
    operation(IRP_MJ_WRITE, Some(pre_operation), Some(post_operation)),
    operation(IRP_MJ_CLEANUP, Some(pre_operation), Some(post_operation)),
    operation(IRP_MJ_CLOSE, Some(pre_operation), Some(post_operation)),
    OPERATION_END,
]);

/// The registration Filter Manager reads for as long as the filter is registered.
static REGISTRATION: Registration = Registration::new(FLT_REGISTRATION_VERSION_0202)
    .operations(&OPERATIONS)
    .instance_setup(Some(instance_setup))
    .unload(Some(unload));

/// The driver's entry point: register, then start filtering.
///
/// # Safety
/// Called by the I/O manager (or `fltsim`) with a valid driver object and registry path.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    // Each load starts from zero. On Windows every load maps a fresh image, so the statics start
    // at zero anyway; the host tests load the same code many times in one process, and the unload
    // summary must speak of this load only.
    for counter in PRE.iter().chain(&POST) {
        counter.store(0, Ordering::Relaxed);
    }
    // FltRegisterFilter, then FltStartFiltering; if starting fails the filter is unregistered
    // before the error is returned (a failed DriverEntry gets no unload callback).
    // SAFETY: `driver` is the driver object this entry point was called with.
    unsafe { register_and_start(driver, &REGISTRATION, &FILTER, TAG) }.0
}

/// `InstanceSetup`: attach to every volume.
unsafe extern "system" fn instance_setup(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _volume_device_type: u32,
    _file_system_type: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    STATUS_SUCCESS
}

/// The counter slot of a major function, if this sample counts it.
fn slot(data: *const FLT_CALLBACK_DATA) -> Option<usize> {
    // SAFETY: Filter Manager passes valid callback data, valid for the duration of the callback.
    let iopb = unsafe { common::callback_data::parameters(data) };
    let major = u32::from(iopb.MajorFunction);
    COUNTED.iter().position(|(m, _)| *m == major)
}

/// Pre-operation callback (`PASSIVE_LEVEL` or `APC_LEVEL`): count, and ask for the post callback.
unsafe extern "system" fn pre_operation(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut core::ffi::c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    if let Some(i) = slot(data) {
        PRE[i].fetch_add(1, Ordering::Relaxed);
    }
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}

/// Post-operation callback (up to `DISPATCH_LEVEL`): count only, no waits, no paged memory.
unsafe extern "system" fn post_operation(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *const core::ffi::c_void,
    _flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    if let Some(i) = slot(data) {
        POST[i].fetch_add(1, Ordering::Relaxed);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): report, then unregister.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    // Unregister first: it waits for every operation in flight, so the counts are final.
    FILTER.unregister();
    for (i, (_, name)) in COUNTED.iter().enumerate() {
        log!(
            "{TAG}: {name}: {} pre, {} post",
            PRE[i].load(Ordering::Relaxed),
            POST[i].load(Ordering::Relaxed)
        );
    }
    NtStatus::SUCCESS.0
}
