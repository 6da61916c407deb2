//! # passthrough: the smallest complete minifilter, and the template for a new one
//!
//! It registers with Filter Manager (`FltRegisterFilter`), starts filtering
//! (`FltStartFiltering`), attaches to every volume (`InstanceSetup`), counts the create, read,
//! write, cleanup and close operations its pre- and post-operation callbacks see, and at unload
//! unregisters (`FltUnregisterFilter`) and prints the counts. It changes nothing. The three
//! registration calls are made here, in the open; the other samples use `common::filter`, which
//! does the same. `cargo xtask new <name>` starts a new driver from this crate.
//!
//! Read it top-down: the registration tables, `DriverEntry`, the callbacks, unload. Every call
//! with its IRQL, statuses and ownership rule: the README. `fltmc load RsPassthrough` prints
//! nothing; `fltmc instances -f RsPassthrough` lists one instance per volume at altitude 370210.
//! At `fltmc unload RsPassthrough` the debugger shows one line per counted operation, such as
//! `rs-passthrough: Create: 12 pre, 12 post`.
#![cfg_attr(target_os = "windows", no_std)]

use core::sync::atomic::{AtomicIsize, AtomicU32, Ordering};

use common::{
    NtStatus,
    bindings::{
        DRIVER_OBJECT, FLT_CALLBACK_DATA, FLT_FILESYSTEM_TYPE, FLT_POSTOP_CALLBACK_STATUS,
        FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_WITH_CALLBACK,
        FLT_REGISTRATION_VERSION_0202, FLT_RELATED_OBJECTS, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
        IRP_MJ_CREATE, IRP_MJ_READ, IRP_MJ_WRITE, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING,
    },
    log,
    registration::{OPERATION_END, OperationTable, Registration, operation},
};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FltRegisterFilter, FltStartFiltering, FltUnregisterFilter, PFLT_FILTER,
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

/// The `PFLT_FILTER` from `FltRegisterFilter`, kept for `FltUnregisterFilter` at unload (0 when
/// not registered). Atomic because callbacks on other threads may read it while it is published.
static FILTER: AtomicIsize = AtomicIsize::new(0);

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

/// The driver's entry point: register, publish the handle, start filtering.
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

    // 1. Register. "Every minifilter driver must call FltRegisterFilter from its DriverEntry
    //    routine", with the driver object DriverEntry received. Filter Manager keeps a pointer to
    //    REGISTRATION, which is why it is a `static`. Nothing is registered if it fails, so there
    //    is nothing to undo.
    let mut filter: PFLT_FILTER = 0;
    // SAFETY: `driver` is the driver object this entry point was called with, REGISTRATION is a
    // well-formed `'static` FLT_REGISTRATION (checked at compile time by `Registration`), and
    // `filter` is a valid place for the handle.
    let status =
        NtStatus(unsafe { FltRegisterFilter(driver, REGISTRATION.as_ptr(), &raw mut filter) });
    if !status.is_success() {
        log!("{TAG}: FltRegisterFilter failed: {status}");
        return status.0;
    }

    // 2. Publish the handle before starting: Filter Manager may call InstanceSetup and the
    //    operation callbacks before FltStartFiltering returns, and the unload callback needs it.
    FILTER.store(filter, Ordering::Release);

    // 3. Start filtering: from now on volumes are offered and I/O arrives.
    // SAFETY: `filter` came from FltRegisterFilter above and has not been unregistered.
    let status = NtStatus(unsafe { FltStartFiltering(filter) });
    if !status.is_success() {
        log!("{TAG}: FltStartFiltering failed: {status}");
        // "If the call to FltStartFiltering does not return STATUS_SUCCESS, the minifilter driver
        // must call FltUnregisterFilter": a DriverEntry that fails is unloaded without its unload
        // callback, so nobody else would. Unregister first, clear the handle after, as at unload.
        // SAFETY: `filter` is registered, and this is its only unregistration (the unload callback
        // never runs after a failed DriverEntry).
        unsafe { FltUnregisterFilter(filter) };
        FILTER.store(0, Ordering::Release);
        return status.0;
    }
    STATUS_SUCCESS
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

/// `FilterUnloadCallback` (`PASSIVE_LEVEL`): unregister, then report.
unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    common::paged_code!();
    // Unregister first: FltUnregisterFilter tears down every instance and waits for every
    // operation in flight, so the counts read after it are final. The handle stays published
    // while it waits (a callback still running may use it: no NULL filter handle during unload)
    // and is cleared once it has returned, when no callback is left.
    let filter = FILTER.load(Ordering::Acquire);
    // SAFETY: Filter Manager calls the unload callback only for a filter whose DriverEntry
    // succeeded, so `filter` is the registered handle, and it calls it once.
    unsafe { FltUnregisterFilter(filter) };
    FILTER.store(0, Ordering::Release);
    for (i, (_, name)) in COUNTED.iter().enumerate() {
        log!(
            "{TAG}: {name}: {} pre, {} post",
            PRE[i].load(Ordering::Relaxed),
            POST[i].load(Ordering::Relaxed)
        );
    }
    NtStatus::SUCCESS.0
}
